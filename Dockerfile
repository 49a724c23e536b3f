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
# Inside a container both listeners must be reachable from other containers (the proxy,
# the health probes). Forwarded facts are still trusted only from trusted_proxies, which
# stays loopback here: set VERDICT__SERVER__TRUSTED_PROXIES to your proxy's address or
# network (a peer outside it gets 403, and the log says which peer).
ENV VERDICT__SERVER__LISTEN=0.0.0.0:8080 \
    VERDICT__SERVER__ADMIN_LISTEN=0.0.0.0:9090
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/verdict"]
