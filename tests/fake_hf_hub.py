"""A tiny stand-in for the Hugging Face Hub's file endpoint, for download tests.

It answers `HEAD` and `GET /{repo}/resolve/{revision}/{filename}` the way the
Hub does for a file, with the headers huggingface_hub 2.x reads
(file_download.get_hf_file_metadata): `X-Repo-Commit` (required), `ETag`
(required; the sha256 for a large file), and the size in `Content-Length` or
`X-Linked-Size`. Errors carry the Hub's `X-Error-Code` (RepoNotFound,
EntryNotFound), which huggingface_hub turns into its typed exceptions.

Point HF_ENDPOINT at `hub.url` (in a fresh process: huggingface_hub reads it
when first imported).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeFile:
    content: bytes
    claimed_size: int | None = None  # announce this size instead (e.g. larger than any disk)
    status: int | None = None  # answer every request with this HTTP status instead


@dataclass
class FakeHub:
    files: dict[tuple[str, str], FakeFile] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    url: str = ""

    def add(self, repo: str, filename: str, content: bytes, **options) -> None:
        self.files[(repo, filename)] = FakeFile(content, **options)

    def serve(self) -> ThreadingHTTPServer:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._answer(with_body=False)

            def do_GET(self) -> None:
                self._answer(with_body=True)

            def _answer(self, with_body: bool) -> None:
                hub.requests.append((self.command, self.path))
                repo, sep, rest = unquote(self.path).partition("/resolve/")
                filename = rest.partition("/")[2]
                repo = repo.lstrip("/")
                if not sep or not any(r == repo for r, _ in hub.files):
                    return self._error(404, "RepoNotFound")
                served = hub.files.get((repo, filename))
                if served is None:
                    return self._error(404, "EntryNotFound")
                if served.status is not None:
                    return self._error(served.status, None)
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(served.content).hexdigest()}"')
                self.send_header("Content-Length", str(len(served.content)))
                if served.claimed_size is not None:
                    self.send_header("X-Linked-Size", str(served.claimed_size))
                self.end_headers()
                if with_body:
                    self.wfile.write(served.content)

            def _error(self, status: int, code: str | None) -> None:
                self.send_response(status)
                self.send_header("X-Repo-Commit", COMMIT)
                if code:
                    self.send_header("X-Error-Code", code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        # A short poll interval: shutdown() waits up to one interval.
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return server
