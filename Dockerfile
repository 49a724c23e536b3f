# verdict: build on the Rust image, run on a small Debian base as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin verdict && strip target/release/verdict

FROM debian:bookworm-slim
# TLS roots for https backends are compiled in (webpki-roots); nothing else is needed.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin verdict
COPY --from=build /src/target/release/verdict /usr/local/bin/verdict
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/verdict"]
