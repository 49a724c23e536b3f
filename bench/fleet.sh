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
# http backend; prints "port admin"
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
    echo "$port $admin"
}

read -r on_port on_admin < <(instance on yes)
read -r off_port off_admin < <(instance off no)
read -r a_port a_admin < <(instance a yes)
read -r b_port b_admin < <(instance b yes)
read -r c_port c_admin < <(instance c yes)
read -r x_port x_admin < <(instance x no)
read -r y_port y_admin < <(instance y no)
read -r z_port z_admin < <(instance z no)
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
for round in $(seq "$rounds"); do
    for which in off on; do
        port=$([ "$which" = on ] && echo "$on_port" || echo "$off_port")
        rps=$(wrk -t1 -c64 -d"${duration}s" "${headers[@]}" "http://127.0.0.1:$port/_resolver/auth-request" \
            | awk '/Requests\/sec/ {print $2}')
        echo "round $round: shared $which: $rps req/s" >&2
        echo "rps.$which $rps" >> "$work/results"
    done
done
python3 - "$work/results" <<'PY'
import statistics, sys
values = {}
for line in open(sys.argv[1]):
    name, value = line.split()
    values.setdefault(name, []).append(float(value))
on, off = statistics.median(values["rps.on"]), statistics.median(values["rps.off"])
print(f"local hits, shared on / off: {on:.0f} / {off:.0f} req/s = {on / off:.3f}")
PY

python3 bench/fleet.py measure "$backend_port" "$redis_port" "$(cat "$work/admin")" \
    "$a_port,$b_port,$c_port" "$x_port,$y_port,$z_port" "$a_admin"
