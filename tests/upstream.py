"""A real HTTP API on loopback for the tests: it records every request it gets.

Paths choose the answer (anything may come after the prefixes shown):
  /page            an HTML page (for a browser to run fetch() from)
  /status/<code>   that status with a JSON body
  .../cors/star    sends its own `Access-Control-Allow-Origin: *`
  .../cors/public  a public API: `Access-Control-Allow-Origin: *`, and a preflight answer allowing
                   the header `authorization` (listed by name: `*` never covers it)
  .../cors/other   sends `Access-Control-Allow-Origin: https://elsewhere.example` twice, and Vary: Accept-Encoding
  /sse             a text/event-stream: one event, then waits `?hold=<s>` before the second
  .../options405   answers OPTIONS with 405
  /redirect        302 to /target
  /cookie/set      sets the cookie `sid=<?value=...>`
  /session/login-secure   sets `sid=s3cret; Path=/; Secure` with no Domain (/session/me is 401 without sid=s3cret)
  anything else    200 JSON echoing method, path, Origin and Cookie
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# The README's login recipe: reverse mode in front of this API, for a page on localhost (the browser tests).
LOGIN_RULES = """
[[rules]]
name = "api"
hosts = ["127.0.0.1:{api}"]
allow_origins = ["http://localhost:{page}"]
allow_credentials = true
cookies = "{mode}"
"""


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def add(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self.lock:
            self.requests.append((method, path, headers))

    def methods(self, path_prefix: str = "") -> list[str]:
        with self.lock:
            return [m for m, p, _ in self.requests if p.startswith(path_prefix)]

    def last(self) -> tuple[str, str, dict[str, str]]:
        with self.lock:
            return self.requests[-1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: Upstream

    def log_message(self, format, *args) -> None:  # keep test output clean
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.recorder.add(self.command, url.path, headers)
        path, query = url.path, parse_qs(url.query)
        if path == "/sse":
            return self._sse(float(query.get("hold", ["0.5"])[0]))
        status, extra, content_type = 200, [], "application/json"
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
        elif path.endswith("/cors/star"):
            extra = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "GET")]
        elif path.endswith("/cors/public"):
            extra = [("Access-Control-Allow-Origin", "*")]
            if self.command == "OPTIONS":
                extra.append(("Access-Control-Allow-Headers", "authorization"))
        elif path.endswith("/cors/other"):
            extra = [
                ("Access-Control-Allow-Origin", "https://elsewhere.example"),
                ("Access-Control-Allow-Origin", "https://elsewhere.example"),
                ("Vary", "Accept-Encoding"),
            ]
        elif path.endswith("/options405") and self.command == "OPTIONS":
            status = 405
        elif path == "/redirect":
            status, extra = 302, [("Location", "/target")]
        elif path == "/session/login":  # a production API's session cookie, for its own domain
            extra = [("Set-Cookie", "sid=s3cret; Domain=api.example.com; Path=/; Secure; HttpOnly; SameSite=Lax")]
        elif path == "/session/login-secure":  # the same cookie for the host called, still Secure
            extra = [("Set-Cookie", "sid=s3cret; Path=/; Secure; HttpOnly; SameSite=Lax")]
        elif path == "/session/me" and "sid=s3cret" not in headers.get("cookie", ""):
            status = 401
        elif path == "/cookie/set":
            extra = [("Set-Cookie", f"sid={query.get('value', ['x'])[0]}; Path=/; SameSite=Lax")]
        if path == "/page":
            content_type = "text/html"
            body = b"<!doctype html><meta charset=utf-8><title>page</title><p>test page"
        else:
            echo = {"method": self.command, "path": path, "origin": headers.get("origin"), "status": status}
            body = json.dumps({**echo, "cookie": headers.get("cookie")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("X-Request-Id", "abc123")
        self.send_header("Set-Cookie", "session=1; Path=/")
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _sse(self, hold: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"data: first\n\n")
        self.wfile.flush()
        time.sleep(hold)
        self.wfile.write(b"data: second\n\n")
        self.wfile.flush()
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle


class Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None, port: int = 0) -> None:
        super().__init__((host, port), Handler)
        if tls is not None:
            # The handshake happens on first read, in the handler thread, not in accept().
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.recorder = Recorder()
        self.connections = 0  # TCP connections accepted
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def get_request(self):
        self.connections += 1
        return super().get_request()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def __enter__(self) -> Upstream:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


if __name__ == "__main__":  # for trying the addon by hand
    import sys

    with Upstream() as up:
        print(f"upstream on 127.0.0.1:{up.port}", flush=True)
        sys.stdin.read() if not sys.stdin.isatty() else threading.Event().wait()
