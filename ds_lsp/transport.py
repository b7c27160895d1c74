"""Reading LSP messages from the editor, so that no message can stop the server.

pygls's own stdio loop (pygls.io_.run_async) trusts what it reads: a
`Content-Length` of 2 GB makes it wait for 2 GB, a request whose params do not
fit the method's type is dropped with no answer (the editor waits forever),
and requests after `shutdown` get no answer either. This loop answers every
request it cannot take with a JSON-RPC error, and goes on:

- a `Content-Length` over MAX_CONTENT_LENGTH is refused unread, as clangd
  refuses one over 1 GiB ("Expect protocol errors"); the next header found
  in the stream starts the next message;
- bytes that are not UTF-8 become U+FFFD (said once), not a lost message;
- a body that is not JSON, or not a JSON-RPC 2.0 object, is logged and skipped;
- a request whose id is no integer or string gets -32600 (Invalid Request), id null;
- a request with params of the wrong shape is answered by DsLspProtocol
  (server.py) and skipped here;
- a request before `initialize` gets -32002 (ServerNotInitialized), one after
  `shutdown` -32600 (InvalidRequest), as the LSP specification says;
  notifications then are dropped, `exit` aside.

Everything else goes to pygls as before. The same loop serves stdio
(`start_io`) and TCP (`start_tcp`).

On the way out, error answers are redacted: pygls builds the error of a failed
request from the exception's text and traceback, which no log filter sees.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from ds_lsp.features.log import redact_log_text

log = logging.getLogger("ds_lsp")

# ~10x the largest document ds-lsp serves (10 MB), escaped as JSON.
MAX_CONTENT_LENGTH = 128 * 1024 * 1024
# A header line longer than this is garbage: read in pieces, never whole.
MAX_HEADER_LINE = 64 * 1024
# Searched anywhere in a line: after a refused message its body runs into the
# next message's header on one line ('{...}Content-Length: 52').
_CONTENT_LENGTH = re.compile(rb"content-length:[ \t]*(\d+)[ \t]*\r?\n?$", re.IGNORECASE)

SERVER_NOT_INITIALIZED = -32002
INVALID_REQUEST = -32600


class _Reader:
    """Blocking reads of stdin in the server's thread pool, off the event loop."""

    def __init__(self, stream: BinaryIO, executor) -> None:
        self.stream = stream
        self.executor = executor

    async def readline(self) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.stream.readline, MAX_HEADER_LINE)

    async def read(self, size: int) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.stream.read, size)


class _StreamReader:
    """The same reads from a TCP connection (asyncio streams)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader  # its limit (64 KiB by default) bounds a line

    async def readline(self) -> bytes:
        try:
            return await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial  # the end of input: b"" once all is read
        except asyncio.LimitOverrunError as exc:
            return await self.reader.read(exc.consumed)  # a piece of an over-long line

    async def read(self, size: int) -> bytes:
        try:
            return await self.reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            return exc.partial


class _TcpStream:
    """An asyncio StreamWriter as the byte stream RedactingWriter writes to."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    def flush(self) -> None:
        pass  # asyncio sends buffered data as the loop runs

    def close(self) -> None:
        self.writer.close()


class MessageReader:
    """Frames, checks and hands on each message the editor sends (see the module doc)."""

    def __init__(self, protocol, error_handler=None) -> None:
        self.protocol = protocol
        self.error_handler = error_handler
        self.initialized = False
        self.shut_down = False
        self.warned_encoding = False  # said once per session

    async def run(self, reader: _Reader | _StreamReader) -> None:
        while True:
            length = await self._read_headers(reader)
            if length is None:
                return  # end of input: the editor is gone
            if length < 0:
                continue
            body = await reader.read(length)
            if len(body) < length:
                log.error("the editor's input ended inside a message")
                return
            self.take(body)

    async def _read_headers(self, reader: _Reader | _StreamReader) -> int | None:
        """The Content-Length of the next message; -1 when it cannot be read; None at EOF."""
        length = -1
        while True:
            line = await reader.readline()
            if not line:
                return None
            if not line.strip():
                if length >= 0:
                    return length
                continue  # stray blank lines between messages
            match = _CONTENT_LENGTH.search(line)
            if match:
                length = int(match[1])
                if length > MAX_CONTENT_LENGTH:
                    log.error(
                        "refusing to read a message of %d bytes (the limit is %d); "
                        "expect protocol errors",
                        length,
                        MAX_CONTENT_LENGTH,
                    )
                    return -1  # its body is read as headers: skipped up to a real one

    def take(self, body: bytes) -> None:
        """Check one message and hand it to pygls, or answer it with an error."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            # LSP is UTF-8: bad bytes (a file read in another encoding) become U+FFFD
            # rather than losing the whole message, a didOpen say.
            text = body.decode("utf-8", "replace")
            if not self.warned_encoding:
                self.warned_encoding = True
                log.warning("the editor sent bytes that are not UTF-8 (%s); replaced", exc.reason)
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            log.error("skipped a message that is not JSON: %s", exc)
            return
        if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
            log.error("skipped a message that is not a JSON-RPC 2.0 object")
            self._refuse(data, INVALID_REQUEST, "not a JSON-RPC 2.0 request")
            return
        method = data.get("method")
        if "method" in data and not isinstance(method, str):
            log.error("skipped a message whose method is not a string")
            self._refuse(data, INVALID_REQUEST, "a method is a string")
            return
        is_request = "id" in data and "method" in data
        if is_request and not _usable_id(data["id"]):
            self._refuse(data, INVALID_REQUEST, "a request id is an integer or a string")
            return
        if method == types.EXIT:
            pass  # always allowed: the editor may end the server at any time
        elif self.shut_down:
            self._refuse(data, INVALID_REQUEST, "the server is shut down")
            return
        elif not self.initialized and method != types.INITIALIZE and "method" in data:
            self._refuse(data, SERVER_NOT_INITIALIZED, "the server is not initialized yet")
            return
        if method == types.CANCEL_REQUEST:
            params = data.get("params")
            if not isinstance(params, dict) or params.get("id") is None:
                log.error("skipped a $/cancelRequest without an id")
                return
            if not _usable_id(params["id"]):
                log.error("skipped a $/cancelRequest for an id of the wrong type")
                return
        if "method" in data:
            data.setdefault("params", None)  # optional in JSON-RPC; pygls's types want it
        try:
            # DsLspProtocol.structure_message answers a request that does not fit.
            message = self.protocol.structure_message(data)
        except Exception as exc:
            log.error("skipped a message that does not fit %r: %s", method, exc)
            return
        if is_request and method == types.INITIALIZE:
            self.initialized = True
        elif is_request and method == types.SHUTDOWN:
            self.shut_down = True
        try:
            self.protocol.handle_message(message)
        except Exception as exc:
            log.exception("could not handle %r", method)
            if self.error_handler:
                self.error_handler(exc, JsonRpcException)

    def _refuse(self, data: Any, code: int, message: str) -> None:
        """Answer a request with an error; a notification gets none (it has no id)."""
        if not isinstance(data, dict) or "id" not in data or "method" not in data:
            return
        msg_id = data["id"] if _usable_id(data["id"]) else None  # JSON-RPC: null then
        body = json.dumps(
            {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}
        )
        self.protocol.writer.write(
            f"Content-Length: {len(body)}\r\n\r\n{body}".encode()  # ASCII: dumps escapes
        )


class RedactingWriter:
    """stdout for pygls, with every error answer redacted (see the module doc)."""

    def __init__(self, stream: BinaryIO, secrets: Callable[[], Iterable[str]]) -> None:
        self.stream = stream
        self.secrets = secrets

    def close(self) -> None:
        self.stream.close()

    def write(self, data: bytes) -> None:
        if b'"error"' in data:  # cheap: most messages are no error answer
            data = redact_error_answer(data, list(self.secrets()))
        self.stream.write(data)
        self.stream.flush()


def redact_error_answer(frame: bytes, secrets: list[str]) -> bytes:
    """The framed message with the strings of its `error` redacted, if it is an error answer."""
    _, _, body = frame.partition(b"\r\n\r\n")
    try:
        message = json.loads(body)
    except ValueError:
        return frame
    if not isinstance(message, dict) or "error" not in message or "method" in message:
        return frame
    message["error"] = _redact_strings(message["error"], secrets)
    body = json.dumps(message).encode()  # ASCII: dumps escapes
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _redact_strings(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact_log_text(value, secrets)
    if isinstance(value, list):
        return [_redact_strings(item, secrets) for item in value]
    if isinstance(value, dict):
        return {key: _redact_strings(item, secrets) for key, item in value.items()}
    return value


def _usable_id(msg_id: Any) -> bool:
    """LSP ids are integers or strings (null is allowed too, but answers go nowhere)."""
    return msg_id is None or (isinstance(msg_id, int | str) and not isinstance(msg_id, bool))


def start_io(server, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
    """Serve the editor over stdio: pygls's LanguageServer.start_io with this loop."""
    reader = _Reader(stdin or sys.stdin.buffer, server.thread_pool)
    secrets = getattr(server, "secrets", list)  # DsLspServer.secrets: the keys in use
    server.protocol.set_writer(RedactingWriter(stdout or sys.stdout.buffer, secrets))
    messages = MessageReader(server.protocol, server.report_server_error)
    try:
        asyncio.run(messages.run(reader))  # `exit` ends it with SystemExit
    except BrokenPipeError:
        log.error("the connection to the editor is lost; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()


def start_tcp(server, host: str, port: int) -> None:
    """Serve one editor at a time over TCP: pygls's LanguageServer.start_tcp with this loop."""
    secrets = getattr(server, "secrets", list)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.protocol.set_writer(RedactingWriter(_TcpStream(writer), secrets))
        messages = MessageReader(server.protocol, server.report_server_error)
        await messages.run(_StreamReader(reader))
        listening.close()  # the editor is gone: stop, as on stdio

    async def serve() -> None:
        nonlocal listening
        listening = await asyncio.start_server(connection, host, port)
        log.info("listening on %s:%s", host, port)
        async with listening:
            try:
                await listening.serve_forever()
            except asyncio.CancelledError:
                pass  # closed after the editor left

    listening: asyncio.Server
    try:
        asyncio.run(serve())  # `exit` ends it with SystemExit
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()
