#!/usr/bin/env python3
"""hutch-httpbin: a small httpbin-style HTTP echo server for the `httpbin` template.

GET/POST/PUT/PATCH/DELETE /anything[/...], /get, /post, /put, /patch, /delete echo the request
(method, url, args, headers, body as text and JSON when it parses) as JSON; /status/<code>
answers with that status; /headers and /ip echo those; /health answers 200. Port: argv[1] or 8080.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    server_version = "hutch-httpbin/1"

    def log_message(self, fmt, *args):  # quiet: the sandbox has no one reading stderr
        pass

    def _send(self, status, payload):
        body = json.dumps(payload, indent=2).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _echo(self):
        parts = urlsplit(self.path)
        path = parts.path
        if path == "/health":
            return self._send(200, {"ok": True})
        if path.startswith("/status/"):
            try:
                code = int(path.split("/")[2])
            except ValueError:
                return self._send(400, {"error": "status must be a number"})
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if path == "/headers":
            return self._send(200, {"headers": dict(self.headers.items())})
        if path == "/ip":
            return self._send(200, {"origin": self.client_address[0]})
        method_paths = {"/get": "GET", "/post": "POST", "/put": "PUT", "/patch": "PATCH", "/delete": "DELETE"}
        if path in method_paths and method_paths[path] != self.command:
            return self._send(405, {"error": f"{path} expects {method_paths[path]}"})
        if path not in method_paths and not path.startswith("/anything") and path != "/":
            return self._send(404, {"error": f"no route {path}"})
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        data = raw.decode("utf-8", "replace")
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        args = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(parts.query).items()}
        return self._send(200, {
            "method": self.command,
            "url": self.path,
            "args": args,
            "headers": dict(self.headers.items()),
            "data": data,
            "json": parsed,
            "origin": self.client_address[0],
        })

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _echo


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
