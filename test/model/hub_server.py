"""A tiny local stand-in for the Hugging Face Hub's file endpoints (for offline loading tests)."""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import hashlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import threading

__all__ = ['fake_hub']

COMMIT = '0123456789abcdef0123456789abcdef01234567'


@contextlib.contextmanager
def fake_hub(files: dict[str, Path], gated: bool = False) -> Iterator[str]:
    """
    Serve ``/<repo>/resolve/<revision>/<name>`` for the given files on 127.0.0.1.

    Unknown names answer 404 with the Hub's ``EntryNotFound`` error code; ``gated`` answers every
    request 403 ``GatedRepo``.

    :param files: file name → local file.
    :param gated: behave like a gated repository without access.
    :return: the endpoint URL (context manager).
    """

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: bool) -> None:
            name = self.path.rsplit('/', 1)[-1]
            if gated:
                self.send_response(403)
                self.send_header('X-Error-Code', 'GatedRepo')
                self.send_header('X-Error-Message', 'Access to this model is restricted')
                self.send_header('Content-Length', '0')
                self.end_headers()
                return
            if name not in files:
                self.send_response(404)
                self.send_header('X-Error-Code', 'EntryNotFound')
                self.send_header('X-Repo-Commit', COMMIT)
                self.send_header('Content-Length', '0')
                self.end_headers()
                return
            data = files[name].read_bytes()
            self.send_response(200)
            self.send_header('ETag', '"' + hashlib.sha256(data).hexdigest() + '"')
            self.send_header('X-Repo-Commit', COMMIT)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self._answer(body=False)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._answer(body=True)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
