#!/usr/bin/env bash
# The fleet's figures on this machine, loopback only, in one run:
#   1. local hits: verdict with [shared] on and off, the same cached static token (wrk,
#      the two interleaved in each round; medians): the ratio on/off (target >= 0.97)
#   2. a fleet of three with an `http` backend: backend calls per distinct key when each
#      key is asked on all three at once, with the store (target 1.0) and without (3.0)
#   3. a revocation made on one instance, refused by all three: p50 and p99, in ms
#   4. store memory per shared decision (Redis used_memory over many decisions)
# Usage: bench/fleet.sh [seconds per wrk run, default 10] [rounds, default 3]
# Needs wrk and redis-server (installed with apt-get when missing and running as root).
# Stops by itself; only the processes it started are stopped, by their PIDs.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
rounds="${2:-3}"

for tool in wrk redis-server; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
            apt-get install -y -qq "$tool" >/dev/null
        else
            echo "bench/fleet.sh: $tool is missing" >&2; exit 1
        fi
    fi
done

source bench/common.sh
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work" > "$work/redis.log" 2>&1 &
pids+=($!)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/secret"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/admin"

backend_port=$(free_port)
python3 bench/fleet.py backend "$backend_port" > "$work/backend.log" 2>&1 &
pids+=($!)

# instance NAME SHARED(yes|no): a one-worker verdict with a static token, a JWT key and an
# http backend; sets NAME_port, NAME_admin and NAME_pid (in this shell, so the exit trap
# stops it)
instance() {
    local port admin
    port=$(free_port); admin=$(free_port)
    {
        cat <<TOML
[server]
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin"
workers = 1
[authorizers.keys]
type = "static"
[[authorizers.keys.tokens]]
token = "load-test-token"
user_id = "load"
[[authorizers.keys.tokens]]
token = "revoked-load-token"
user_id = "revoked"
[authorizers.jwt]
type = "jwt"
[[authorizers.jwt.keys]]
kid = "hs"
algorithms = ["HS256"]
secret = "bench-fleet-hmac-secret-of-32-bytes!"
[authorizers.backend]
type = "http"
protocol = "status"
urls = ["http://127.0.0.1:$backend_port/check"]
forward_query = true
request_timeout = "2s"
cache_key = ["\${query.token}"]
[default_route]
authorizers = ["keys", "jwt"]
[[route]]
name = "video"
path_glob = "/play/**"
access = "authenticated"
authorizers = ["backend"]
TOML
        if [ "$2" = yes ]; then
            cat <<TOML
[shared]
urls = ["redis://127.0.0.1:$redis_port/0"]
secret_file = "$work/secret"
admin_token_file = "$work/admin"
TOML
        fi
    } > "$work/$1.toml"
    RUST_LOG=warn ./target/release/verdict --config "$work/$1.toml" > "$work/$1.log" 2>&1 &
    pids+=($!)
    printf -v "${1}_port" %s "$port"
    printf -v "${1}_admin" %s "$admin"
    printf -v "${1}_pid" %s "$!"
}

for name in on a b c; do instance "$name" yes; done
instance off no
for name in x y z; do instance "$name" no; done
wait_for_ports "$redis_port" "$backend_port" "$on_port" "$off_port" "$a_port" "$b_port" "$c_port" \
    "$x_port" "$y_port" "$z_port" "$on_admin" "$a_admin"
for admin in "$on_admin" "$a_admin" "$b_admin" "$c_admin"; do
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.1; done
done
# the instance with the store holds one revocation, so every allow is looked up
curl -fs -X POST -H "Authorization: Bearer $(cat "$work/admin")" \
    -d "{\"kind\":\"token\",\"value\":\"$(printf 'revoked-load-token' | sha256sum | cut -d' ' -f1)\"}" \
    "http://127.0.0.1:$on_admin/revoke" >/dev/null

echo "loopback, ${duration}s per run, $rounds rounds, $(nproc) cores, one verdict worker each" >&2
headers=(-H "Authorization: Bearer load-test-token" -H "X-Original-URI: /x" -H "X-Original-Method: GET")
# CPU seconds (user + system) a process has used so far
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq "$rounds"); do
    # the order alternates, so neither side always runs first
    order=(off on); [ $((round % 2)) = 0 ] && order=(on off)
    for which in "${order[@]}"; do
        port_var="${which}_port"; pid_var="${which}_pid"
        before=$(cpu_ticks "${!pid_var}")
        out=$(wrk -t1 -c64 -d"${duration}s" "${headers[@]}" "http://127.0.0.1:${!port_var}/_resolver/auth-request")
        after=$(cpu_ticks "${!pid_var}")
        rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
        total=$(awk '/requests in/ {print $1}' <<< "$out")
        us=$(python3 -c "print(($after - $before) * 1e6 / $(getconf CLK_TCK) / $total)")
        echo "round $round: shared $which: $rps req/s, $us us CPU per request" >&2
        echo "rps.$which $rps" >> "$work/results"
        echo "cpu.$which $us" >> "$work/results"
    done
done
python3 - "$work/results" <<'PY'
import statistics, sys
values = {}
for line in open(sys.argv[1]):
    name, value = line.split()
    values.setdefault(name, []).append(float(value))
m = {k: statistics.median(v) for k, v in values.items()}
print(f"local hits, shared on / off: {m['rps.on']:.0f} / {m['rps.off']:.0f} req/s = "
      f"{m['rps.on'] / m['rps.off']:.3f}; CPU per request {m['cpu.on']:.2f} / "
      f"{m['cpu.off']:.2f} us = {m['cpu.off'] / m['cpu.on']:.3f}")
PY

python3 bench/fleet.py measure "$backend_port" "$redis_port" "$(cat "$work/admin")" \
    "$a_port,$b_port,$c_port" "$x_port,$y_port,$z_port" "$a_admin"
