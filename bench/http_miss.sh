#!/usr/bin/env bash
# CPU per `http` authorizer miss, loopback only: every request carries a token verdict has
# not seen (a new `?token=` in X-Original-URI), so each one is a cache miss that asks the
# backend (nginx answering `return 200` + X-Session-Name, the Cesbo status contract).
# Prints verdict's CPU per request and the backend's, from /proc/<pid>/stat.
# Usage: bench/http_miss.sh [seconds, default 10] [connections, default 16]
# Needs wrk and nginx. Stops by itself; only the processes it started are stopped, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections="${2:-16}"
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
command -v wrk >/dev/null || { echo "bench/http_miss.sh: wrk is missing" >&2; exit 1; }

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
verdict_port=$(free_port); admin_port=$(free_port); backend_port=$(free_port)

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
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$backend_port;
    location / { add_header X-Session-Name viewer; return 200; }
  }
}
NGINX
"$nginx_bin" -c "$work/nginx.conf" -p "$work" -e "$work/error.log" &
backend_pid=$!
pids+=("$backend_pid")

cat > "$work/verdict.toml" <<TOML
[server]
listen = "127.0.0.1:$verdict_port"
admin_listen = "127.0.0.1:$admin_port"
workers = 1
[authorizers.backend]
type = "http"
protocol = "status"
urls = ["http://127.0.0.1:$backend_port/check"]
forward_query = true
pool_size = $connections
TOML
RUST_LOG=warn ./target/release/verdict --config "$work/verdict.toml" > "$work/verdict.log" 2>&1 &
verdict_pid=$!
pids+=("$verdict_pid")
for port in $verdict_port $backend_port; do
    for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done

cat > "$work/miss.lua" <<'LUA'
local counter = 0
request = function()
    counter = counter + 1
    return wrk.format("GET", "/_resolver/auth-request", {
        ["X-Original-URI"] = "/play/a001/index.m3u8?token=t" .. counter .. "-" .. math.random(1e9),
        ["X-Original-Method"] = "GET",
    })
end
LUA

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# warm the pools once
curl -s -o /dev/null -H 'X-Original-URI: /play/a001/x?token=warm' -H 'X-Original-Method: GET' \
    "http://127.0.0.1:$verdict_port/_resolver/auth-request" || true
verdict_before=$(ticks "$verdict_pid"); backend_before=$(ticks "$backend_pid")
out=$(wrk -t1 -c"$connections" -d"${duration}s" --latency -s "$work/miss.lua" \
    "http://127.0.0.1:$verdict_port")
verdict_after=$(ticks "$verdict_pid"); backend_after=$(ticks "$backend_pid")
echo "$out" | grep -E 'Requests/sec|requests in|Non-2xx|Socket errors|50%|99%' >&2
requests=$(awk '/requests in/ {print $1}' <<<"$out")
python3 - "$requests" "$(getconf CLK_TCK)" "$((verdict_after - verdict_before))" \
    "$((backend_after - backend_before))" <<'PY'
import sys
requests, hz, verdict, backend = (int(x) for x in sys.argv[1:])
per = lambda ticks: ticks / hz / max(requests, 1) * 1e6
print(f"http authorizer miss: verdict {per(verdict):.1f} µs CPU per request, "
      f"backend (nginx) {per(backend):.1f} µs, {requests} requests")
PY
