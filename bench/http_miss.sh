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

source bench/common.sh
verdict_port=$(free_port); admin_port=$(free_port); backend_port=$(free_port)

nginx_config "
  server {
    listen 127.0.0.1:$backend_port;
    location / { add_header X-Session-Name viewer; return 200; }
  }" > "$work/nginx.conf"
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
wait_for_ports $verdict_port $backend_port

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
