"""A small static HTTP server for the bundled demo and the fixture sites of the tests.

It binds 127.0.0.1 on a free port, in a background thread. Text files have the placeholder
``__BASE__`` replaced by the server's own base URL, so sitemaps and robots.txt can hold absolute
URLs. It answers conditional GETs (ETag and Last-Modified). A file ``NAME.meta.json`` next to
``NAME`` changes how NAME is served, for fixtures of misbehaving sites:

    {"status": 503, "headers": {"Retry-After": "120"}, "delay": 0.5, "pad_bytes": 6000000,
     "content_type": "text/html; charset=windows-1251"}
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import sys
import threading
import time
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

TEXT_TYPES = (".html", ".xml", ".txt", ".json", ".rss", ".atom")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        self.server.hits.append(self.path)

    def _resolve(self) -> Path | None:
        path = unquote(urlsplit(self.path).path)
        target = (self.server.root / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.server.root):
            return None
        if target.is_dir():
            target = target / "index.html"
        return target if target.is_file() and not target.name.endswith(".meta.json") else None

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        target = self._resolve()
        if target is None:
            return self._send(
                404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html; charset=utf-8"
            )
        meta_path = target.with_name(target.name + ".meta.json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        if meta.get("delay"):
            time.sleep(float(meta["delay"]))
        body = target.read_bytes()
        if target.suffix in TEXT_TYPES:
            body = body.replace(b"__BASE__", self.server.base.encode())
        if meta.get("pad_bytes"):
            body += b" " * int(meta["pad_bytes"])
        ctype = meta.get("content_type") or _content_type(target)
        status = int(meta.get("status", 200))
        headers = dict(meta.get("headers", {}))
        if status == 200:
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            mtime = target.stat().st_mtime
            headers.setdefault("ETag", etag)
            headers.setdefault("Last-Modified", formatdate(mtime, usegmt=True))
            if self._not_modified(etag, mtime):
                return self._send(304, b"", ctype, headers)
        self._send(status, body, ctype, headers)

    def _not_modified(self, etag: str, mtime: float) -> bool:
        if self.headers.get("If-None-Match"):
            return self.headers["If-None-Match"] == etag
        since = self.headers.get("If-Modified-Since")
        if since:
            try:
                return int(mtime) <= parsedate_to_datetime(since).timestamp()
            except (TypeError, ValueError):
                return False
        return False

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.server.statuses.append((self.path, status))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)) if status != 304 else "0")
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.end_headers()
        if status != 304:
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up, e.g. a crawler refusing an oversized body


def _content_type(path: Path) -> str:
    if path.suffix == ".xml":
        return "application/xml"
    guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    root: Path
    base: str
    hits: list[str]
    statuses: list[tuple[str, int]]

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that went away (a killed crawler) is not a server error
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class StaticSite:
    """``with StaticSite(root) as site: site.base`` serves ``root`` until the block ends."""

    def __init__(self, root: Path | str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = _Server((host, port), _Handler)
        self.server.root = Path(root).resolve()
        self.server.base = f"http://{host}:{self.server.server_address[1]}"
        self.server.hits = []
        self.server.statuses = []
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return self.server.base

    @property
    def hits(self) -> list[str]:
        return self.server.hits

    def __enter__(self) -> StaticSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
