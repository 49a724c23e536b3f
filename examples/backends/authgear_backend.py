#!/usr/bin/env python3
"""An Authgear-resolver-style backend (verdict `protocol = "authgear"`).

Looks at `Authorization: Bearer <session>`; a known session gets 200 with
x-authgear-session-valid: true and the user's headers, an unknown one `false`, no
credential no header at all. Standard library only.

    python3 examples/backends/authgear_backend.py --port 9300
"""
import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SESSIONS = {"session-alice": ("u-alice", "editor,viewer"), "session-bob": ("u-bob", "viewer")}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        self.send_response(200)
        if auth.lower().startswith("bearer "):
            session = SESSIONS.get(auth[7:].strip())
            if session:
                user, roles = session
                self.send_header("x-authgear-session-valid", "true")
                self.send_header("x-authgear-user-id", user)
                self.send_header("x-authgear-user-roles", roles)
                self.send_header("x-authgear-session-amr", "pwd")
            else:
                self.send_header("x-authgear-session-valid", "false")
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
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9300)
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
