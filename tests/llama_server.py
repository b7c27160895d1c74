"""A real llama.cpp `llama-server` for tests and benchmarks (a pytest plugin).

The binary is built by `make llama-server` (.ci/build-llama-server) from the
llama.cpp source vendored in llama-cpp-python's sdist, so it is the same
llama.cpp as the in-process backend, and cached in
`~/.cache/ds-lsp-test/llama-server-<llama-cpp-python version>/`.
`DS_LSP_LLAMA_SERVER` names another binary instead.

`running_llama_server(model)` starts it on a free loopback port with `--jinja`
(the GGUF's own chat template, reasoning in `reasoning_content`, as users run
it), waits for `/health`, yields the OpenAI base URL and stops it. The
`llama_server` fixture serves one GGUF per test session and model.

Send temperature 0: a scripted tiny GGUF says its script every time under
llama-server only then (at 0.6 a fresh server sometimes skips a word).

A missing binary fails the tests loudly (a build that broke must not pass for
green); `DS_LSP_SKIP_LLAMA_SERVER=1` skips them on purpose.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from importlib.metadata import version
from pathlib import Path

import pytest

SKIP_VARIABLE = "DS_LSP_SKIP_LLAMA_SERVER"
BINARY_VARIABLE = "DS_LSP_LLAMA_SERVER"
STARTUP_TIMEOUT = 60  # seconds; the tiny GGUF loads in well under one


def llama_server_binary() -> Path:
    """The llama-server to run: $DS_LSP_LLAMA_SERVER, else the cached build.

    Raises FileNotFoundError saying how to build it.
    """
    named = os.environ.get(BINARY_VARIABLE)
    if named:
        binary = Path(named)
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise FileNotFoundError(f"{BINARY_VARIABLE}={named} is not an executable file")
        return binary
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    binary = cache / "ds-lsp-test" / f"llama-server-{version('llama-cpp-python')}" / "llama-server"
    if not binary.is_file():
        raise FileNotFoundError(
            f"no llama-server at {binary}: run `make llama-server` to build it "
            f"(or set {SKIP_VARIABLE}=1 to skip the tests that need it)"
        )
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):  # refused while starting, 503 while loading
        return False


@contextmanager
def running_llama_server(
    model: Path | str, extra_args: Sequence[str] = (), binary: Path | None = None
) -> Iterator[str]:
    """Serve `model` on a free loopback port; yields the base URL (`http://…/v1`).

    The server's log goes to a temporary file, shown in the error if it fails to start.
    """
    binary = binary or llama_server_binary()
    port = _free_port()
    command = [
        str(binary),
        *("--model", str(model), "--host", "127.0.0.1", "--port", str(port)),
        "--jinja",  # the GGUF's own chat template, as users run it for R1
        *extra_args,
    ]
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not _healthy(f"http://127.0.0.1:{port}/health"):
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = "".join(log.readlines()[-30:])
                    raise RuntimeError(
                        f"llama-server did not start ({' '.join(command)}); its log:\n{tail}"
                    )
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


# For the tiny test models: one thread is fastest (a 64-wide model has nothing to
# share out, and spinning threads crawl on a busy 2-core machine: 10x slower
# measured); /metrics lets tests see what the server did.
TEST_SERVER_ARGS = ("--threads", "1", "--threads-batch", "1", "--metrics")


@pytest.fixture(scope="session")
def llama_server() -> Iterator[Callable[..., str]]:
    """`llama_server(gguf_path, *extra_args) -> base_url`: one server per model and
    arguments for the whole session, stopped at its end."""
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(f"{SKIP_VARIABLE}=1: the tests against a real llama-server are skipped")
    try:
        binary = llama_server_binary()
    except FileNotFoundError as missing:
        problem = str(missing)
    else:
        problem = None
    if problem:  # failed outside the except block, so pytest shows the message once
        pytest.fail(problem, pytrace=False)
    servers: dict[tuple, str] = {}
    with ExitStack() as stack:

        def serve(model: Path, *extra_args: str) -> str:
            key = (Path(model), extra_args)
            if key not in servers:
                arguments = (*TEST_SERVER_ARGS, *extra_args)
                servers[key] = stack.enter_context(
                    running_llama_server(model, arguments, binary=binary)
                )
            return servers[key]

        yield serve
