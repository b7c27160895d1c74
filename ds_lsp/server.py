"""Assembles the language server: the state features share, then each feature.

Features live in ds_lsp/features/, one module each, and register their own
handlers from `setup(server)` (the way esbonio does it). This module only
builds the shared state: settings, open documents, the model scheduler and
the registry of running work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from ds_lsp import __version__, config, preview
from ds_lsp.backends.scheduler import ModelScheduler
from ds_lsp.documents import DocumentStore
from ds_lsp.features import (
    cancel,
    chat,
    code_actions,
    completion,
    documents,
    edit,
    hover,
    settings,
    warmup,
)
from ds_lsp.features import log as log_feature
from ds_lsp.features import settings as settings_feature
from ds_lsp.reasoning_notes import ReasoningNotes
from ds_lsp.tasks import TaskRegistry

log = logging.getLogger("ds_lsp")

# code_actions before the features that offer actions.
FEATURES = (settings, documents, cancel, warmup, completion, code_actions, edit, chat, hover)


@dataclass
class DocumentState:
    """What the server keeps for one open document, besides its text."""

    previews: dict[str, preview.Pending] = field(default_factory=dict)  # by preview id
    editing: bool = False  # an edit is running: one at a time per document


@dataclass
class ChatState:
    """One chat (by its file, or its URI when it is no file) while it is in use."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one change at a time
    answer: str | None = None  # the progress token of the answer streaming in
    users: int = 0  # commands holding it; at 0, with no answer, it is dropped


class ServerState:
    """All per-document state, in one place: `forget(uri)` (didClose) frees it all,
    and calls the forget hooks of what other parts keep by URI (reasoning notes,
    the inline engine's pending suggestions)."""

    def __init__(self) -> None:
        self._documents: dict[str, DocumentState] = {}
        self.chats: dict[str, ChatState] = {}
        self.forget_hooks: list[Callable[[str], None]] = []

    def of(self, uri: str) -> DocumentState:
        """The document's state, made when first needed."""
        return self._documents.setdefault(uri, DocumentState())

    def get(self, uri: str) -> DocumentState | None:
        return self._documents.get(uri)

    def chat(self, key: str) -> ChatState:
        """A chat's state, made when first needed (features/chat/storage.using)."""
        return self.chats.setdefault(key, ChatState())

    def forget(self, uri: str) -> None:
        self._documents.pop(uri, None)
        for hook in self.forget_hooks:
            hook(uri)

    def __len__(self) -> int:
        return len(self._documents)


class DsLspProtocol(LanguageServerProtocol):
    """pygls' protocol, plus: `$/cancelRequest` also cancels our own background work.

    pygls cancels the handler's future only, and for `workspace/executeCommand`
    that is not the coroutine doing the work (see ds_lsp/tasks.py).
    """

    # ds-lsp keeps its own copy of each document (documents.DocumentStore). pygls'
    # built-in handlers would keep a second one in its workspace, applying each change
    # character by character: the echo of a 3,000-edit rename held the event loop
    # for 3 s. These pass the notifications to ds-lsp's handlers only.

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None

    def structure_message(self, data: dict):
        """A request whose params do not fit its method gets an error answer, so the
        client never waits on it (pygls only logs it, as the id is lost with it);
        one whose method is not even a string is an Invalid Request (JSON-RPC 2.0)."""
        try:
            if "id" in data and "method" in data and not isinstance(data["method"], str):
                raise JsonRpcInvalidRequest(f"the method must be a string, not {data['method']!r}")
            return super().structure_message(data)
        except JsonRpcException as exc:
            if "id" in data and "method" in data:
                self._send_response(data["id"], None, exc.to_response_error())
            raise

    def _execute_handler(self, msg_id, handler, callback, args=None, kwargs=None):
        # pygls 2.1 keeps the future of every notification's handler for good: about
        # 10 MB a minute of fast typing. Forget each one once it is done.
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None and getattr(callback, "func", None) != self._send_handler_result:
            # Later, not in the callback: shutdown cancels these futures while it
            # iterates over them.
            loop = asyncio.get_running_loop()
            future.add_done_callback(
                lambda _: loop.call_soon_threadsafe(self._request_futures.pop, msg_id, None)
            )

    def _handle_cancel_notification(self, msg_id) -> None:
        super()._handle_cancel_notification(msg_id)
        self._server.tasks.cancel_request(msg_id)


class DsLspServer(LanguageServer):
    """The server and the state its features share."""

    def __init__(self, settings: config.Settings, problems: list[str]) -> None:
        super().__init__(name="ds-lsp", version=__version__, protocol_cls=DsLspProtocol)
        # What the CLI gave us (defaults < file < env < flags); the editor's
        # settings are merged on top of it, never replacing it.
        self.base_settings = settings
        self.settings = settings
        self.init_settings = settings  # plus initializationOptions, once they came
        self.tasks = TaskRegistry()
        self.documents = DocumentStore()  # replaced at initialize, in the agreed encoding
        self.models = ModelScheduler(settings)
        self.notes = ReasoningNotes()  # where reasoning shows on hover
        self.state = ServerState()  # per document (and per chat); freed on didClose
        self.state.forget_hooks.append(self.notes.forget)
        self.client_name = ""  # clientInfo.name, for the odd editor-specific turn
        self.log_forwarder = log_feature.LogForwarder(self)
        log.addHandler(self.log_forwarder)
        log_feature.install_redaction(self.secrets)
        self.apply_log_level()
        # Kept by the log forwarder until the editor is connected.
        settings_feature.report_problems(problems)

    def secrets(self) -> list[str]:
        """What must never reach a log: the API keys in use now."""
        return [key for key in (self.base_settings.api_key, self.settings.api_key) if key]

    def report_server_error(self, error: Exception, source) -> None:
        """A message the server could not handle (bad JSON, a change to a document that
        is not open, a failed handler): to the log panel, not a pop-up; the server
        goes on. Failed requests already answer with an error of their own."""
        if source.__name__ == "FeatureRequestError":
            return
        log.error("could not handle a message from the editor: %s: %s", type(error).__name__, error)

    def apply_log_level(self) -> None:
        level = getattr(logging, self.settings.log_level.upper())
        log.setLevel(level)
        self.log_forwarder.setLevel(level)
        # pygls' own trace (every message in and out) only at debug; it is
        # redacted like ours (features/log.py).
        pygls_level = logging.DEBUG if level <= logging.DEBUG else logging.WARNING
        logging.getLogger("pygls").setLevel(pygls_level)


def build_server(settings: config.Settings, problems: list[str]) -> DsLspServer:
    server = DsLspServer(settings, problems)
    for feature in FEATURES:
        feature.setup(server)

    # pygls takes one handler per method: features that need `initialize`
    # expose `on_initialize(ls, params)` and are called from here, in order.
    @server.feature(types.INITIALIZE)
    def initialize(ls: DsLspServer, params: types.InitializeParams) -> None:
        ls.client_name = params.client_info.name if params.client_info else ""
        for feature in FEATURES:
            if hasattr(feature, "on_initialize"):
                feature.on_initialize(ls, params)

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls, params) -> None:
        # Stop what the model is generating and free the llama context now, not at exit.
        await ls.models.aclose()

    return server
