#!/usr/bin/env python3
"""An EMQX 5-style HTTP authorization backend (verdict `protocol = "json"`).

Reads `username` and `topic` from a JSON POST body (or the GET query) and answers
200 {"result": "allow"|"deny"}. Users may touch topics under their own name; `admin/#`
is denied to everyone. Standard library only.

    python3 examples/backends/json_backend.py --port 9200
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def decide(username, topic):
    if not username or topic.startswith("admin/"):
        return "deny"
    return "allow" if topic.startswith(f"users/{username}/") else "deny"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, fields):
        body = json.dumps({"result": decide(fields.get("username", ""), fields.get("topic", ""))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        query = parse_qs(urlsplit(self.path).query)
        self.answer({k: v[0] for k, v in query.items()})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        try:
            fields = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            fields = {}
        self.answer(fields if isinstance(fields, dict) else {})

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9200)
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
