#!/usr/bin/env bash
# Load comparison on this machine, loopback only, in one run:
#   1. nginx alone answering `return 204`            (the floor: what a proxy costs)
#   2. verdict answering /_resolver/auth-request     (a cached static-token allow)
#   3. nginx auth_request -> verdict, app = `return 204` (the real deployment)
# Prints requests/s and latency for each and the ratios against (1).
# Usage: bench/load.sh [seconds per run, default 10] [connections, default 32]
# Needs wrk and nginx (installed with apt-get when missing and running as root).
# Stops by itself; only the processes it started are stopped, by their PIDs.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections="${2:-32}"
threads=1

for tool in wrk nginx; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
        if [ "$(id -u)" = 0 ]; then
            apt-get install -y -qq "$( [ "$tool" = nginx ] && echo nginx-light || echo wrk )" >/dev/null
        else
            echo "bench/load.sh: $tool is missing" >&2; exit 1
        fi
    fi
done
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"

cargo build --release --quiet
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
verdict_port=$(free_port); admin_port=$(free_port); nginx_port=$(free_port); app_port=$(free_port)

cat > "$work/verdict.toml" <<TOML
[server]
listen = "127.0.0.1:$verdict_port"
admin_listen = "127.0.0.1:$admin_port"
workers = 1
[authorizers.keys]
type = "static"
[[authorizers.keys.tokens]]
token = "load-test-token"
user_id = "load"
TOML
RUST_LOG=warn ./target/release/verdict --config "$work/verdict.toml" &
pids+=($!)

sed -e "s/127.0.0.1:8080/127.0.0.1:$verdict_port/" \
    -e "s/127.0.0.1:9000/127.0.0.1:$app_port/" \
    -e "s/listen 80;/listen 127.0.0.1:$nginx_port;/" nginx/verdict.conf > "$work/site.conf"
cat > "$work/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  server { listen 127.0.0.1:$app_port; location / { return 204; } }
  include $work/site.conf;
}
NGINX
"$nginx_bin" -c "$work/nginx.conf" -p "$work" -e "$work/error.log" &
pids+=($!)

for port in $verdict_port $nginx_port $app_port; do
    for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done

run() { # name url [header]
    local name="$1" url="$2"; shift 2
    local out
    out=$(wrk -t$threads -c"$connections" -d"${duration}s" --latency "$@" "$url")
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    printf '%-34s %12s req/s   p50 %8s   p99 %8s\n' "$name" "$rps" "$p50" "$p99" >&2
    echo "$rps"
}

echo "loopback, ${duration}s per run, $connections connections, $(nproc) cores" >&2
base=$(run "nginx return 204" "http://127.0.0.1:$app_port/")
direct=$(run "verdict auth-request (cached)" "http://127.0.0.1:$verdict_port/_resolver/auth-request" \
    -H 'Authorization: Bearer load-test-token' -H 'X-Original-URI: /app/page?x=1' -H 'X-Original-Method: GET')
full=$(run "nginx auth_request -> verdict" "http://127.0.0.1:$nginx_port/app/page?x=1" -H 'Authorization: Bearer load-test-token')
python3 - "$base" "$direct" "$full" <<'PY'
import sys
base, direct, full = (float(x) for x in sys.argv[1:])
print(f"ratio verdict / nginx-204:                 {direct / base:.2f}")
print(f"ratio nginx+verdict / nginx-204:           {full / base:.2f}")
PY
