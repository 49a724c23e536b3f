#!/usr/bin/env python3
"""A Cesbo Astra/Alta-style auth backend (verdict `protocol = "status"`).

Allows `?token=` values listed in TOKENS with 200 and an X-Session-Name; anything else
gets 403, with an X-Location to a promo stream when PROMO is set. Standard library only.

    python3 examples/backends/status_backend.py --port 9100
"""
import argparse
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKENS = {"123": "alice", "456": "bob"}
PROMO = os.environ.get("PROMO", "")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        query = parse_qs(urlsplit(self.path).query)
        token = (query.get("token") or [""])[0]
        name = TOKENS.get(token)
        if name:
            self.send_response(200)
            self.send_header("X-Session-Name", name)
        else:
            self.send_response(403)
            if PROMO:
                self.send_header("X-Location", PROMO)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        # the same answer; the body is read first, or it would be parsed as the next
        # request on this kept-alive connection
        length = int(self.headers.get("Content-Length") or "0")
        if length > 0:
            self.rfile.read(length)
        self.do_GET()

    def log_message(self, fmt, *args):
        # the default log line holds the request path, and with it the token
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
