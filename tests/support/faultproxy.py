"""A fault-injecting HTTP proxy in front of moto's S3 server, for retry tests.

boto3 and pyarrow's C++ client both talk HTTP to the endpoint, so a proxy on
127.0.0.1 is the one place where the same fault reaches either client. It
forwards every request to moto unchanged, except the next ``n`` requests that
match a filter, which get an S3 error answer (throttling, 5xx or a permanent
error) without reaching moto.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}


@dataclass
class Fault:
    remaining: int
    status: int
    code: str
    methods: tuple[str, ...] = ("GET", "PUT", "POST", "HEAD", "DELETE")
    path_contains: str = ""


@dataclass
class FaultProxy:
    """Counts requests and injected faults; ``inject`` arms the next faults."""

    upstream: str
    requests: int = 0
    injected: int = 0
    log: list[tuple[str, str, int]] = field(default_factory=list)
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(
        self,
        n: int,
        status: int = 503,
        code: str = "SlowDown",
        *,
        methods: tuple[str, ...] | None = None,
        path_contains: str = "",
    ) -> None:
        with self._lock:
            self._faults.append(
                Fault(n, status, code, methods or Fault.__dataclass_fields__["methods"].default, path_contains)
            )

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests = self.injected = 0
            self.log.clear()

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests += 1
            for fault in self._faults:
                if fault.remaining > 0 and method in fault.methods and fault.path_contains in path:
                    fault.remaining -= 1
                    self.injected += 1
                    return fault
            return None


def start_proxy(upstream: str) -> tuple[FaultProxy, ThreadingHTTPServer, str]:
    """Start a proxy to ``upstream`` on a free port of 127.0.0.1; returns (state, server, endpoint URL)."""
    state = FaultProxy(upstream)
    target = urlparse(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output clean
            return

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fault = state._take(self.command, self.path)
            if fault is not None:
                payload = (
                    f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                    f"<Message>injected by test proxy</Message></Error>"
                ).encode()
                state.log.append((self.command, self.path, fault.status))
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload) if self.command != "HEAD" else 0))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                return
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            state.log.append((self.command, self.path, response.status))
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            # HEAD answers carry the object's length without a body
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server, f"http://127.0.0.1:{server.server_address[1]}"
