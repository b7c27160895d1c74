"""The open documents: text, version, language and a live tree-sitter tree for each.

`DocumentStore` follows didOpen/didChange/didClose. Each change makes a new
`Document` snapshot; one that a feature holds never changes under it (its tree is
edited only in a copy).

Trees are updated incrementally: each change is applied with `tree.edit(...)` at
once, and `parser.parse(new_bytes, edited_tree)` runs when `Document.tree` is first
read, so a burst of keystrokes costs one parse, and typing never waits for one. That
matters: inside an unclosed bracket tree-sitter's error recovery can reparse the
rest of the file on every keystroke (tens of ms on 5,000 lines; bench/keystroke.py).
Only a whole-document change parses from scratch. A document over
SYNTAX_LIMIT_BYTES gets no tree at all (see there). Positions are in the encoding
negotiated at initialize; every conversion lives in ds_lsp.positions.

Parsers are shared per language and not thread-safe: use the store, and read
`Document.tree`, on one thread (the server's event loop).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePath

import tree_sitter
from lsprotocol.types import (
    Position,
    PositionEncodingKind,
    Range,
    TextDocumentContentChangePartial,
    TextDocumentContentChangeWholeDocument,
)
from pygls.uris import to_fs_path, uri_scheme

from ds_lsp.context.treesitter import get_parser, language_for_document
from ds_lsp.positions import ByteEdit, IndexedText, LspPosition

log = logging.getLogger(__name__)

TextChange = TextDocumentContentChangePartial | TextDocumentContentChangeWholeDocument

# Versions kept per document, to check an edit in the editor's echo of it.
_HISTORY = 8
# ... and at most about this many bytes of them (but always the last two).
_HISTORY_BYTES = 32_000_000
# Up to this size, the changes of one didChange that go up the document are applied in
# one pass, which makes the line index afresh (about 1 ms per 100 KB).
BATCH_LIMIT_BYTES = 2_000_000
# Above this size a document gets no syntax tree: tree-sitter's first parse would
# hold the event loop about 0.1 s per MB (1 s for 10 MB), and inside an unclosed
# bracket later parses can cost as much. Such a file is read as plain text: the
# context is the text around the cursor (as for a language without a grammar).
SYNTAX_LIMIT_BYTES = 1_000_000


@dataclass(frozen=True, eq=False)
class Document:
    """One version of an open document. Immutable: the store replaces it on each change."""

    uri: str
    language_id: str  # as the client sent it
    language: str | None  # canonical tree-sitter name; None for plain text
    version: int
    content: IndexedText
    encoding: PositionEncodingKind
    _syntax: _Syntax | None = field(default=None, repr=False)  # None: no tree

    @property
    def tree(self) -> tree_sitter.Tree | None:
        """The syntax tree of `text` (parsed now if not yet); None for plain text.

        None too when the language's grammar failed to load (that was logged).
        """
        return self._syntax.tree() if self._syntax else None

    @property
    def text(self) -> str:
        return self.content.text

    @property
    def source(self) -> bytes:
        """The text in UTF-8, as the tree's byte offsets count."""
        return self.content.data

    @property
    def line_count(self) -> int:
        return self.content.line_count

    def line(self, number: int) -> str:
        """Line `number` (0-based) without its line break; "" past the end."""
        return self.content.line(number)

    def offset_at(self, position: LspPosition) -> int:
        """The code point offset into `text` of an LSP position (clamped)."""
        return self.content.offset_at(position, self.encoding)

    def position_at(self, offset: int) -> Position:
        """The LSP position of a code point offset into `text`."""
        return self.content.position_at(offset, self.encoding)

    def byte_at(self, position: LspPosition) -> int:
        """The byte offset into `source` (tree-sitter's) of an LSP position (clamped)."""
        return self.content.byte_at(position, self.encoding)

    def position_of_byte(self, byte: int) -> Position:
        """The LSP position of a byte offset, such as a node's start_byte or end_byte."""
        return self.content.position_of_byte(byte, self.encoding)

    def with_insertion(self, offset: int, text: str) -> Document:
        """This document with `text` inserted at code point `offset`, as a new snapshot
        outside the store (a suggestion imagined accepted); the tree follows
        incrementally, as on a didChange."""
        content, edit = self.content.replace(offset, offset, text)
        syntax = self._syntax.edited(content.data, [edit]) if self._syntax else None
        return replace(self, content=content, _syntax=syntax)


class DocumentStore:
    """The documents the client has open, by URI.

    Create it once the position encoding is negotiated (at initialize); UTF-16 is
    the LSP default.
    """

    def __init__(self, encoding: PositionEncodingKind = PositionEncodingKind.Utf16) -> None:
        self.encoding = encoding
        self._documents: dict[str, Document] = {}
        self._diverged: dict[str, str] = {}  # uri -> why its copy is out of sync
        self._history: dict[str, deque[Document]] = {}  # the last few versions, oldest first

    def open(self, uri: str, language_id: str, version: int, text: str) -> Document:
        """Start following a document (didOpen); opening it again starts afresh."""
        language = language_for_document(language_id, uri)
        content = IndexedText.of(text)
        syntax = _fresh_syntax(uri, language, content)
        if syntax is None and content.byte_length > SYNTAX_LIMIT_BYTES:
            content = content.without_bytes()  # nothing reads them: keystrokes copy less
        document = Document(uri, language_id, language, version, content, self.encoding, syntax)
        self._diverged.pop(uri, None)
        self._keep(document, fresh=True)
        return document

    def change(self, uri: str, version: int, changes: Sequence[TextChange]) -> Document:
        """Apply didChange's changes in order and return the new document.

        ValueError for an unknown URI. OutOfSync when the changes cannot be applied
        (a range ending before it starts, a version that does not go up): the
        server's copy can no longer be the editor's, so from then on `get` answers
        None and every later change is refused too, until a change with the whole
        text (or a didOpen) brings it back. A position past the end of a line or of
        the text is clamped, as LSP allows.
        """
        document = self._documents.get(uri)
        if document is None:
            raise ValueError(f"change to a document that is not open: {uri}")
        if uri in self._diverged:
            whole = [n for n, c in enumerate(changes) if getattr(c, "range", None) is None]
            if not whole:
                raise OutOfSync(uri, self._diverged[uri])
            changes = changes[whole[-1] :]  # the editor's whole text: in step again
            del self._diverged[uri]
        elif version <= document.version:
            raise self._diverge(uri, f"version {version} came after version {document.version}")
        try:
            new_document = self._applied(document, version, changes)
        except ValueError as exc:
            raise self._diverge(uri, str(exc)) from None
        self._keep(new_document)
        return new_document

    def _applied(self, document: Document, version: int, changes: Sequence[TextChange]):
        content = document.content
        edits: list[ByteEdit] = []
        whole = False
        # Changes that go up the document from its bottom (an editor's echo of a
        # multi-edit) are gathered and applied together, with one copy of the text.
        batch: list[tuple[int, int, str]] = []

        def apply_batch() -> None:
            nonlocal content
            if len(batch) == 1 or content.byte_length > BATCH_LIMIT_BYTES:
                for start, end, text in batch:
                    content, edit = content.replace(start, end, text)
                    if edit is not None:
                        edits.append(edit)
            elif batch:
                content, batch_edits = content.replace_many(batch)
                edits.extend(batch_edits)
            batch.clear()

        # Work out every change before touching the tree, so a bad one changes nothing.
        for change in changes:
            change_range = getattr(change, "range", None)
            if change_range is None:
                batch.clear()
                content, edits, whole = IndexedText.of(change.text), [], True
                continue
            span = self._span(content, change_range, change.text)
            # Strictly above the last one, its position means the same in the text that
            # one left (even one clamped to its line's end); else apply those first.
            if batch and span[1] >= batch[-1][0]:
                apply_batch()
                span = self._span(content, change_range, change.text)
            batch.append(span)
        apply_batch()
        syntax = document._syntax
        was_big = document.content.byte_length > SYNTAX_LIMIT_BYTES
        is_big = content.byte_length > SYNTAX_LIMIT_BYTES
        if syntax is not None and not is_big:
            syntax = syntax.edited(content.data, None if whole else edits)
        elif syntax is not None or (was_big and not is_big):  # the limit was crossed
            syntax = _fresh_syntax(document.uri, document.language, content)
        if syntax is None and is_big:
            content = content.without_bytes()  # nothing reads them: keystrokes copy less
        return replace(document, version=version, content=content, _syntax=syntax)

    def _span(self, content: IndexedText, change_range: Range, text: str) -> tuple[int, int, str]:
        start = content.offset_at(change_range.start, self.encoding)
        end = content.offset_at(change_range.end, self.encoding)
        if start > end:
            raise ValueError(
                f"a change range ends before it starts: {_show(change_range.start)}"
                f" to {_show(change_range.end)}"
            )
        return start, end, text

    def _diverge(self, uri: str, reason: str) -> OutOfSync:
        self._diverged[uri] = reason
        return OutOfSync(uri, reason)

    def _keep(self, document: Document, fresh: bool = False) -> None:
        self._documents[document.uri] = document
        history = self._history.get(document.uri)
        if fresh or history is None:
            history = self._history[document.uri] = deque(maxlen=_HISTORY)
        history.append(document)
        # Each version is a whole copy: a huge document keeps fewer of them.
        while len(history) > 2 and len(history) * document.content.byte_length > _HISTORY_BYTES:
            history.popleft()

    def close(self, uri: str) -> None:
        """Stop following a document (didClose); an unknown URI is ignored."""
        self._documents.pop(uri, None)
        self._diverged.pop(uri, None)
        self._history.pop(uri, None)

    def get(self, uri: str) -> Document | None:
        """The document as the editor has it; None when it is not open, or when the
        server's copy is out of sync (see `change`): nothing may be computed on it."""
        return None if uri in self._diverged else self._documents.get(uri)

    def out_of_sync(self, uri: str) -> str | None:
        """Why the server's copy of an open document no longer matches the editor's;
        None when it does (or the document is not open)."""
        return self._diverged.get(uri)

    def versions_after(self, uri: str, version: int) -> list[Document]:
        """The versions after `version` among the last few kept, oldest first: where
        the editor's echo of an edit made at `version` is."""
        return [d for d in self._history.get(uri, ()) if d.version > version]

    def values(self) -> list[Document]:
        """The documents in sync with the editor."""
        return [d for uri, d in self._documents.items() if uri not in self._diverged]

    def __iter__(self) -> Iterator[Document]:
        return iter(self.values())

    def __len__(self) -> int:
        return len(self._documents)

    def __contains__(self, uri: object) -> bool:
        """Whether the editor has the document open (in sync or not)."""
        return uri in self._documents


class OutOfSync(ValueError):
    """A change that cannot be applied: the server's copy is no longer the editor's."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(
            f"{uri}: the server's copy is out of sync with the editor's ({reason}); "
            "DeepSeek will not touch it until the editor sends its whole text or reopens it"
        )
        self.uri = uri
        self.reason = reason


class _Syntax:
    """The tree of one version's source: parsed when first asked for, then kept."""

    __slots__ = ("_parser", "_source", "_tree", "_parsed")

    def __init__(
        self, parser: tree_sitter.Parser, source: bytes, old_tree: tree_sitter.Tree | None
    ) -> None:
        self._parser = parser
        self._source = source
        self._tree = old_tree  # until parsed: an earlier tree, edited to match `source`
        self._parsed = False

    def tree(self) -> tree_sitter.Tree:
        if not self._parsed:
            if self._tree is None:
                self._tree = self._parser.parse(self._source)
            else:
                self._tree = self._parser.parse(self._source, self._tree)
            self._parsed = True
        return self._tree

    def edited(self, source: bytes, edits: Sequence[ByteEdit] | None) -> _Syntax:
        """The syntax of `source`, made from this one by `edits` (None: parse afresh)."""
        if edits is None or self._tree is None:
            return _Syntax(self._parser, source, None)
        # Edit a copy, so that holders of this version keep their tree as it is. An
        # edited tree not yet parsed takes more edits: one parse covers them all.
        tree = self._tree.copy()
        for edit in edits:
            tree.edit(*edit)
        return _Syntax(self._parser, source, tree)


def _fresh_syntax(uri: str, language: str | None, content: IndexedText) -> _Syntax | None:
    """A syntax to parse from scratch, or None: plain text, no grammar, or too big (said
    once each time a document goes over the limit)."""
    parser = _parser(language)
    if parser is None:
        return None
    if content.byte_length > SYNTAX_LIMIT_BYTES:
        log.info(
            "%s is %.1f MB, more than %.0f MB: it gets no syntax tree, and DeepSeek reads it "
            "as plain text (the lines around the cursor)",
            file_name_of(uri),
            content.byte_length / 1e6,
            SYNTAX_LIMIT_BYTES / 1e6,
        )
        return None
    return _Syntax(parser, content.data, None)


def _parser(language: str | None) -> tree_sitter.Parser | None:
    """The language's parser, or None: plain text, or its grammar failed to load."""
    if language is None:
        return None
    try:
        return get_parser(language)
    except Exception as exc:  # a broken grammar wheel costs its own language only
        log.warning("no syntax tree for %s files: %s: %s", language, type(exc).__name__, exc)
        return None


def _show(position: LspPosition) -> str:
    return f"{position.line}:{position.character}"


def file_name_of(uri: str) -> str:
    """The file name a URI ends in, for messages: file:///a/b%20c.py -> "b c.py"."""
    path = to_fs_path(uri) if uri_scheme(uri) == "file" else None
    return PurePath(path).name if path else uri.rsplit("/", 1)[-1] or uri
