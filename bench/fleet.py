"""Helpers of bench/fleet.sh (run by it, never alone).

backend PORT: a status-protocol auth backend on loopback that allows every token after
20 ms (a real backend's round trip) and counts the calls per token (GET /hits).
measure BACKEND REDIS ADMIN_TOKEN A,B,C X,Y,Z ADMIN: the fleet figures: backend calls per
distinct key with the store (instances A, B, C) and without (X, Y, Z); how long a
revocation made on A takes to be refused by A, B and C (p50, p99); store memory per
shared decision.
"""
import base64
import concurrent.futures
import hashlib
import hmac
import http.server
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request


def backend(port):
    hits = {}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            if url.path == "/hits":
                with lock:
                    body = json.dumps(hits).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            token = urllib.parse.parse_qs(url.query).get("token", [""])[0]
            with lock:
                hits[token] = hits.get(token, 0) + 1
            time.sleep(0.02)
            self.send_response(200)
            self.send_header("X-Session-Name", "u-" + token)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def status(port, path, headers=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def check(port, uri, token=None):
    headers = {"X-Original-URI": uri, "X-Original-Method": "GET"}
    if token:
        headers["Authorization"] = "Bearer " + token
    return status(port, "/_resolver/auth-request", headers)


def calls_per_key(backend_port, ports, prefix, keys=100):
    with concurrent.futures.ThreadPoolExecutor(len(ports)) as pool:
        for k in range(keys):
            uri = f"/play/a/index.m3u8?token={prefix}{k}"
            statuses = list(pool.map(lambda p: check(p, uri), ports))
            assert all(s == 200 for s in statuses), statuses
    with urllib.request.urlopen(f"http://127.0.0.1:{backend_port}/hits") as response:
        hits = json.load(response)
    ours = [v for t, v in hits.items() if t.startswith(prefix)]
    return sum(ours) / keys


def jwt(jti):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "hs"}).encode())
    claims = {"sub": "bench", "jti": jti, "iat": int(time.time()), "exp": int(time.time()) + 600}
    payload = b64(json.dumps(claims).encode())
    signing = header + b"." + payload
    key = b"bench-fleet-hmac-secret-of-32-bytes!"
    signature = b64(hmac.new(key, signing, hashlib.sha256).digest())
    return (signing + b"." + signature).decode()


def revocation_ms(ports, admin_port, admin_token, samples=50):
    times = []
    for i in range(samples):
        token = jwt(f"bench-{time.time_ns()}-{i}")
        jti = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]
        assert all(check(p, "/x", token) == 200 for p in ports)
        started = time.perf_counter()
        request = urllib.request.Request(
            f"http://127.0.0.1:{admin_port}/revoke",
            data=json.dumps({"kind": "jti", "value": jti}).encode(),
            headers={"Authorization": "Bearer " + admin_token},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).read()

        def refused(port):
            while check(port, "/x", token) != 401:
                pass
            return time.perf_counter()

        with concurrent.futures.ThreadPoolExecutor(len(ports)) as pool:
            ends = list(pool.map(refused, ports))
        times.append((max(ends) - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def redis(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          check=True).stdout


def used_memory(port):
    for line in redis(port, "INFO", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    raise RuntimeError("no used_memory")


def memory_per_decision(port, instance_port, decisions=2000):
    keys_before = int(redis(port, "DBSIZE").strip())
    before = used_memory(port)
    uris = [f"/play/a/index.m3u8?token=memory-{i}" for i in range(decisions)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda uri: check(instance_port, uri), uris))
    deadline = time.time() + 30
    while int(redis(port, "DBSIZE").strip()) < keys_before + decisions and time.time() < deadline:
        time.sleep(0.1)
    added = int(redis(port, "DBSIZE").strip()) - keys_before
    after = used_memory(port)
    sample = redis(port, "--scan", "--pattern", "verdict:d:*").split()[0]
    usage = int(redis(port, "MEMORY", "USAGE", sample).strip())
    return (after - before) / max(added, 1), usage, added


def measure(backend_port, redis_port, admin_token, fleet, alone, admin_port):
    fleet = [int(p) for p in fleet.split(",")]
    alone = [int(p) for p in alone.split(",")]
    with_store = calls_per_key(backend_port, fleet, "shared-")
    without = calls_per_key(backend_port, alone, "alone-")
    print(f"backend calls per distinct key, each asked on three instances at once: "
          f"with the store {with_store:.2f}, without {without:.2f}")
    p50, p99 = revocation_ms(fleet, int(admin_port), admin_token)
    print(f"revocation refused by all three instances: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    per, usage, added = memory_per_decision(redis_port, fleet[0])
    print(f"store memory per shared decision: {per:.0f} bytes (used_memory over {added} "
          f"decisions; MEMORY USAGE of one: {usage} bytes)")


if __name__ == "__main__":
    if sys.argv[1] == "backend":
        backend(int(sys.argv[2]))
    else:
        measure(*sys.argv[2:8])
