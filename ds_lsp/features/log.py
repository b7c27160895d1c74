"""Forward the server's log records to the editor (`window/logMessage`).

Editors show these in their LSP log panel (VS Code's output channel, Neovim's
:LspLog, LSP4IJ's console). Records can come from worker threads (the
llama-cpp backend), so sending is always handed to the server's event loop.
"""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types

_LEVELS = [
    (logging.ERROR, types.MessageType.Error),
    (logging.WARNING, types.MessageType.Warning),
    (logging.INFO, types.MessageType.Info),
]


def message_type(levelno: int) -> types.MessageType:
    for threshold, kind in _LEVELS:
        if levelno >= threshold:
            return kind
    return types.MessageType.Log


class LogForwarder(logging.Handler):
    def __init__(self, server, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__()
        self.server = server
        self.loop = loop
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            params = types.LogMessageParams(
                type=message_type(record.levelno), message=self.format(record)
            )
            loop = self.loop
            if loop is None or not loop.is_running():
                return  # not connected yet (or shutting down): stderr still has it
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
