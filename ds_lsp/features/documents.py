"""Document sync: the server's copy of each open document, with its syntax tree.

Handlers only pass the notifications on to `ds_lsp.documents.DocumentStore`,
which keeps the text and updates the tree incrementally. A change the store
cannot apply puts the document out of sync (said in the log once); until the
editor sends its whole text or reopens it, no feature computes anything on it.
didClose frees everything the server keeps for the document (`server.state`).
"""

from __future__ import annotations

import logging

from lsprotocol import types

from ds_lsp.documents import OutOfSync
from ds_lsp.reasoning_notes import LineChange

log = logging.getLogger(__name__)


def on_initialize(ls, params: types.InitializeParams) -> None:
    # pygls picked the encoding from the client's `general.positionEncodings`
    # and advertises it; our positions must follow the same one.
    ls.documents.encoding = ls.workspace.position_encoding


def setup(server) -> None:
    # The inline engine (features/completion.py) keeps pending suggestions by URI.
    server.state.forget_hooks.append(lambda uri: _forget_inline(server, uri))

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        ls.documents.open(item.uri, item.language_id, item.version, item.text)
        ls.inline.note_open(ls.documents.get(item.uri))  # the model gets ready now

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls, params: types.DidChangeTextDocumentParams) -> None:
        document = params.text_document
        already = ls.documents.out_of_sync(document.uri) is not None
        try:
            changed = ls.documents.change(document.uri, document.version, params.content_changes)
        except OutOfSync as exc:
            # Said once; the changes that follow are refused quietly until it heals.
            log.log(logging.DEBUG if already else logging.WARNING, "%s", exc)
            return
        if already:
            log.info("%s: back in sync with the editor", document.uri)
        if ls.notes.tracks(document.uri):  # a keystroke elsewhere costs nothing more
            ls.notes.changed(document.uri, _line_changes(params.content_changes), changed.text)
        # Ghost text starts here, at the end of the typed text, not at the request.
        ls.inline.note_change(changed, typed_end(changed, params.content_changes))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls, params: types.DidCloseTextDocumentParams) -> None:
        ls.documents.close(params.text_document.uri)
        ls.state.forget(params.text_document.uri)  # previews, notes, suggestions

    setup_inspect(server)


def typed_end(document, changes) -> int | None:
    """Where the cursor most likely is after a change: the end of the text the last
    change put in (code points into the new text); None for a whole-text change."""
    last = changes[-1] if changes else None
    if not isinstance(last, types.TextDocumentContentChangePartial):
        return None
    return document.offset_at(last.range.start) + len(last.text)


def _forget_inline(server, uri: str) -> None:
    inline = getattr(server, "inline", None)
    if inline is not None:
        inline.forget(uri)


def _line_changes(changes) -> list[LineChange | None]:
    """didChange's changes, by lines, for what follows lines (reasoning notes)."""
    out: list[LineChange | None] = []
    for change in changes:
        if not isinstance(change, types.TextDocumentContentChangePartial):
            out.append(None)  # the whole text
            continue
        start, end = change.range.start, change.range.end
        out.append(LineChange(start.line, start.character, end.line, end.character, change.text))
    return out


INSPECT_COMMAND = "dsLsp.inspectDocument"


def setup_inspect(server) -> None:
    @server.command(INSPECT_COMMAND)
    def inspect_document(ls, *args) -> dict | None:
        """What the server holds for a document: for bug reports, and the tests."""
        uri = args[0].get("uri") if args and isinstance(args[0], dict) else None
        document = ls.documents.get(uri) if isinstance(uri, str) else None
        if document is None:
            return None
        root = document.tree.root_node if document.tree is not None else None
        return {
            "uri": document.uri,
            "version": document.version,
            "languageId": document.language_id,
            "language": document.language,
            "positionEncoding": getattr(document.encoding, "value", document.encoding),
            "text": document.text,
            "syntaxTree": str(root) if root is not None else None,
        }
