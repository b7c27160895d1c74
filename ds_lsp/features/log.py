"""The server's log: forwarded to the editor, and never carrying a secret.

Editors show `window/logMessage` in their LSP log panel (VS Code's output
channel, Neovim's :LspLog, LSP4IJ's console). Records can come from worker
threads (the llama-cpp backend), so sending is always handed to the server's
event loop. Records logged before the client is ready (settings problems found
at start-up) are kept and delivered once it is.

Secrets are removed where records are made, not where they are shown: pygls
logs whole messages (InitializeParams with its `apiKey`, configuration
results) at info and debug level, and every handler (stderr, the editor, a
file a user adds) must get the redacted text.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Callable, Iterable
from logging.handlers import RotatingFileHandler

from lsprotocol import types

from ds_lsp.redact import HIDDEN, redact_text

_LEVELS = [
    (logging.ERROR, types.MessageType.Error),
    (logging.WARNING, types.MessageType.Warning),
    (logging.INFO, types.MessageType.Info),
]
# Records kept while no client is connected; the oldest go first past this.
_PENDING_LIMIT = 500
# Loggers whose records may carry settings or URLs with credentials: pygls's,
# ours, and the HTTP stack's (httpx logs each request's URL).
# asyncio logs the exceptions of tasks nobody awaited, tracebacks included.
_REDACTED_LOGGERS = ("pygls", "ds_lsp", "httpx", "httpcore", "openai", "asyncio")
_TRACEBACKS = logging.Formatter()
# An api key written as a field, in JSON, Python reprs or attrs reprs:
# "apiKey": "sk-...", 'api_key': 'sk-...', api_key='sk-...'.
# A value already shown as a placeholder ('<set>') is left as it is.
_KEY_FIELD = re.compile(
    r"""(api[_-]?key['"]?\s*[:=]\s*)(['"])(?!<[a-z ]*>\2)(?:(?!\2).)*\2""", re.IGNORECASE
)

# An Authorization header's value, whatever the key: "Bearer sk-...".
_BEARER = re.compile(r"(\bBearer\s+)[^\s'\",]+", re.IGNORECASE)


def message_type(levelno: int) -> types.MessageType:
    for threshold, kind in _LEVELS:
        if levelno >= threshold:
            return kind
    return types.MessageType.Log


def redact_log_text(text: str, secrets: Iterable[str]) -> str:
    text = _KEY_FIELD.sub(lambda m: f"{m[1]}{m[2]}{HIDDEN}{m[2]}", text)
    text = _BEARER.sub(rf"\1{HIDDEN}", text)
    return redact_text(text, list(secrets))


def redact_record(record: logging.LogRecord, secrets: list[str]) -> None:
    """Redact the record's message, its traceback and its stack, in place."""
    if record.exc_info:
        # Formatted now and kept as text: every handler prints exc_text as it is,
        # and no formatter gets the exception itself (its text may hold a key).
        text = record.exc_text or _TRACEBACKS.formatException(record.exc_info)
        record.exc_info, record.exc_text = None, redact_log_text(text, secrets)
    elif record.exc_text:
        record.exc_text = redact_log_text(record.exc_text, secrets)
    if record.stack_info:
        record.stack_info = redact_log_text(record.stack_info, secrets)
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: let logging report it
        return
    record.msg, record.args = redact_log_text(message, secrets), ()


def install_redaction(secrets: Callable[[], Iterable[str]]) -> None:
    """Redact every record of pygls and ds-lsp as it is made.

    `secrets()` gives the secret strings known now (the API keys of the current
    settings). A record factory sees records of every logger, child loggers
    included, which a logger's own filters would not.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "ds_lsp_redacting", False):
        previous = previous.wrapped  # installed before (tests build several servers)

    def make_record(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name.startswith(_REDACTED_LOGGERS):
            redact_record(record, list(secrets()))
        return record

    make_record.ds_lsp_redacting = True
    make_record.wrapped = previous
    logging.setLogRecordFactory(make_record)


def log_to_file(path: str, max_bytes: int = 10 * 1024 * 1024, keep: int = 3) -> None:
    """Also write the log to `path`, rotated at `max_bytes` with `keep` old files.

    The handler goes on each redacted logger (they are siblings): every record
    reaches the file once and redacted, whether or not the editor is connected.
    """
    handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=keep, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in _REDACTED_LOGGERS:
        logging.getLogger(name).addHandler(handler)


class LogForwarder(logging.Handler):
    def __init__(self, server) -> None:
        super().__init__()
        self.server = server
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[types.LogMessageParams] = []
        self.setFormatter(logging.Formatter("%(message)s"))

    def connect(self, loop: asyncio.AbstractEventLoop) -> None:
        """The client is ready: deliver what was kept, then forward as records come."""
        self.loop = loop
        # From now on the editor shows our records: not on stderr as well, which
        # editors also show in the same panel (VS Code does), each line twice.
        logging.getLogger("ds_lsp").propagate = False
        pending, self._pending = self._pending, []
        for params in pending:
            self.server.window_log_message(params)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            params = types.LogMessageParams(
                type=message_type(record.levelno), message=self.format(record)
            )
            loop = self.loop
            if loop is None:
                self._pending = self._pending[-(_PENDING_LIMIT - 1) :] + [params]
                return
            if not loop.is_running():  # shutting down: the editor is gone, stderr is left
                sys.stderr.write(
                    f"ds-lsp: {logging.getLevelName(record.levelno)}: {self.format(record)}\n"
                )
                return
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self.server.window_log_message(params)
            else:
                loop.call_soon_threadsafe(self.server.window_log_message, params)
        except Exception:  # a log line must never take the server down
            self.handleError(record)
