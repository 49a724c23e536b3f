#!/usr/bin/env bash
# Envoy in front of an app (nginx `return 204`), the same RS256 token on every request, in
# one run, the scenarios interleaved in each round (medians):
#   1. Envoy's own jwt_authn (local JWKS, its verified-token cache on)     (the yardstick)
#   2. Envoy ext_authz over HTTP -> verdict (the shipped envoy/envoy.yaml)
#   3. Envoy ext_authz over gRPC -> verdict (the shipped envoy/envoy-grpc.yaml)
# and prints requests/s, CPU per request of Envoy and verdict, and the ratios of 2 and 3
# to 1. Usage: bench/envoy.sh [seconds per run, default 10] [rounds, default 3]
# [connections, default 64]. Needs wrk, nginx and Envoy (build/proxies/bin, from
# scripts/test). Loopback only; stops by itself; only its own processes are stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
rounds="${2:-3}"
connections="${3:-64}"
envoy_bin="${VERDICT_PROXY_BIN:-$PWD/build/proxies/bin}/envoy"
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
for tool in wrk openssl "$envoy_bin" "$nginx_bin"; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "$tool" ] || { echo "bench/envoy.sh: $tool is missing (scripts/test installs Envoy)" >&2; exit 1; }
done

source bench/common.sh
app_port=$(free_port)
verdict_port=$(free_port); admin_port=$(free_port); grpc_port=$(free_port)
jwt_port=$(free_port); http_port=$(free_port); grpc_envoy_port=$(free_port)

# the key, its JWKS and one RS256 token (valid for an hour)
key=tests/fixtures/rsa.key.pem
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
modulus=$(openssl rsa -in "$key" -noout -modulus | cut -d= -f2 | xxd -r -p | b64url)
jwks="{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k1\",\"alg\":\"RS256\",\"use\":\"sig\",\"n\":\"$modulus\",\"e\":\"AQAB\"}]}"
now=$(date +%s)
header=$(printf '{"alg":"RS256","typ":"JWT","kid":"k1"}' | b64url)
payload=$(printf '{"sub":"bench","iss":"https://idp.bench","aud":"api","iat":%d,"exp":%d}' "$now" $((now + 3600)) | b64url)
signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$key" -binary | b64url)
token="$header.$payload.$signature"
openssl rsa -in "$key" -pubout -out "$work/rsa.pub.pem" 2>/dev/null

nginx_config "
  server {
    listen 127.0.0.1:$app_port;
    location / { return 204; }
  }" > "$work/nginx.conf"
"$nginx_bin" -c "$work/nginx.conf" -p "$work" -e "$work/error.log" &
pids+=($!)

cat > "$work/verdict.toml" <<TOML
[server]
listen = "127.0.0.1:$verdict_port"
admin_listen = "127.0.0.1:$admin_port"
grpc_listen = "127.0.0.1:$grpc_port"
workers = 1
[authorizers.idp]
type = "jwt"
issuers = ["https://idp.bench"]
audiences = ["api"]
[[authorizers.idp.keys]]
kid = "k1"
algorithms = ["RS256"]
pem_file = "$work/rsa.pub.pem"
TOML
RUST_LOG=warn ./target/release/verdict --config "$work/verdict.toml" > "$work/verdict.log" 2>&1 &
verdict_pid=$!
pids+=("$verdict_pid")

# the shipped files, ports swapped (as the suite does)
sed -e "s/port_value: 10000/port_value: $http_port/" -e "s/address: 0.0.0.0/address: 127.0.0.1/" \
    -e "s/port_value: 9901/port_value: $(free_port)/" -e "s/port_value: 8080/port_value: $verdict_port/" \
    -e "s/port_value: 9000/port_value: $app_port/" envoy/envoy.yaml > "$work/envoy-http.yaml"
sed -e "s/port_value: 10000/port_value: $grpc_envoy_port/" -e "s/address: 0.0.0.0/address: 127.0.0.1/" \
    -e "s/port_value: 9901/port_value: $(free_port)/" -e "s/port_value: 9191/port_value: $grpc_port/" \
    -e "s/port_value: 9000/port_value: $app_port/" envoy/envoy-grpc.yaml > "$work/envoy-grpc.yaml"
cat > "$work/envoy-jwt.yaml" <<YAML
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $(free_port) } }
static_resources:
  listeners:
    - address: { socket_address: { address: 127.0.0.1, port_value: $jwt_port } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: jwt
                route_config:
                  virtual_hosts:
                    - name: app
                      domains: ["*"]
                      routes: [{ match: { prefix: "/" }, route: { cluster: app } }]
                http_filters:
                  - name: envoy.filters.http.jwt_authn
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
                      providers:
                        idp:
                          issuer: https://idp.bench
                          audiences: [api]
                          local_jwks: { inline_string: '$jwks' }
                          forward: true
                          jwt_cache_config: { jwt_cache_size: 1000 }
                      rules: [{ match: { prefix: "/" }, requires: { provider_name: idp } }]
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: app
      type: STATIC
      load_assignment:
        cluster_name: app
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $app_port } } } }] }]
YAML
declare -A envoy_pid
for name in jwt http grpc; do
    "$envoy_bin" -c "$work/envoy-$name.yaml" --concurrency 1 --disable-hot-restart \
        --base-id $((RANDOM % 10000 + 100)) -l warn > "$work/envoy-$name.log" 2>&1 &
    pids+=($!)
    envoy_pid[$name]=$!
done
wait_for_ports "$app_port" "$verdict_port" "$grpc_port" "$jwt_port" "$http_port" "$grpc_envoy_port"
declare -A port=([jwt]=$jwt_port [http]=$http_port [grpc]=$grpc_envoy_port)
for name in jwt http grpc; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:${port[$name]}/x")
    [ "$code" = 204 ] || { echo "bench/envoy.sh: $name answered $code, not 204" >&2; cat "$work/envoy-$name.log" >&2; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "loopback, ${duration}s per run, $rounds rounds, c=$connections, $(nproc) cores, one Envoy worker each, one verdict worker" >&2
for round in $(seq "$rounds"); do
    for name in jwt http grpc; do
        envoy_before=$(cpu_ticks "${envoy_pid[$name]}"); verdict_before=$(cpu_ticks "$verdict_pid")
        out=$(wrk -t1 -c"$connections" -d"${duration}s" -H "Authorization: Bearer $token" "http://127.0.0.1:${port[$name]}/x")
        envoy_after=$(cpu_ticks "${envoy_pid[$name]}"); verdict_after=$(cpu_ticks "$verdict_pid")
        rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
        total=$(awk '/requests in/ {print $1}' <<< "$out")
        tick=$(getconf CLK_TCK)
        envoy_us=$(python3 -c "print(($envoy_after - $envoy_before) * 1e6 / $tick / $total)")
        verdict_us=$(python3 -c "print(($verdict_after - $verdict_before) * 1e6 / $tick / $total)")
        printf 'round %s: %-4s %10s req/s   CPU/request: envoy %.1f us, verdict %.1f us\n' \
            "$round" "$name" "$rps" "$envoy_us" "$verdict_us" >&2
        echo "rps.$name $rps" >> "$work/results"
        echo "envoy.$name $envoy_us" >> "$work/results"
        echo "verdict.$name $verdict_us" >> "$work/results"
    done
done
python3 - "$work/results" <<'PY'
import statistics, sys
values = {}
for line in open(sys.argv[1]):
    name, value = line.split()
    values.setdefault(name, []).append(float(value))
m = {k: statistics.median(v) for k, v in values.items()}
for name, label in (("jwt", "Envoy jwt_authn"), ("http", "ext_authz HTTP -> verdict"), ("grpc", "ext_authz gRPC -> verdict")):
    print(f"{label:28s} {m['rps.' + name]:9.0f} req/s = {m['rps.' + name] / m['rps.jwt']:.2f} of jwt_authn; "
          f"CPU/request envoy {m['envoy.' + name]:.1f} us, verdict {m['verdict.' + name]:.1f} us")
PY
