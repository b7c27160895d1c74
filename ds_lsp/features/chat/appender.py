"""Appending to a chat: the editor's buffer while it has the chat open, else the file.

Every change to the chat is appended at its end. While the editor has the chat
open (didOpen), appends are versioned `workspace/applyEdit`s at the end of the
server's copy, which didChange keeps current; an append the editor refuses (the
user typed meanwhile) or drops (Neovim answers `applied` for an edit at an old
version and ignores it) is computed again at the new end, so nothing is lost or
duplicated. While it is not open, the file is appended to (atomically, never
through a link: storage.write).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lsprotocol import types

from ds_lsp.documents import Document
from ds_lsp.features.chat import storage
from ds_lsp.features.chat.storage import ChatFile
from ds_lsp.features.lsp_edits import send_edits, until
from ds_lsp.text import ends_with_break, final_break

log = logging.getLogger(__name__)

# Tries to append before giving up, when the editor refuses or drops the edit.
APPEND_ATTEMPTS = 6
# How long to wait for the editor's didChange echoing an applied edit (Neovim
# sends it after a 150 ms debounce), and after a refused one for the change
# that made it stale.
ECHO_SECONDS = 2.0
REFUSED_SECONDS = 0.5
# Characters typed at the very end after an append that still count it as there.
_TYPED_AFTER = 200
# Characters of the chat before an append that identify where it went.
_CONTEXT = 64


class AppendFailed(Exception):
    """The chat could not be appended to; str() says why."""


class Appender:
    """Appends to one chat, for one command: to the editor's buffer while it has the
    chat open, else to the file. Once an append went to the open buffer, a chat
    closed meanwhile fails the next one instead of writing to a file that lacks what
    the buffer had (the editor's to save or drop).

    Appends keep the text's final line break last (see append_edit): Neovim's
    buffer is lines, and its text always ends with one ('eol'). So after an append
    that ended mid-line (`dangling`), "It " after "...\\n" reads "...\\nIt \\n", and
    the next append goes in front of that final line break, continuing the line."""

    def __init__(self, ls, target: ChatFile, label: str) -> None:
        self._ls = ls
        self._target = target
        self._label = label
        self.went_to_editor = False
        self._dangling = False  # the last append did not end with a line break

    async def __call__(self, render: Callable[[str], str]) -> str:
        """Append `render(text)` at the end of the chat's current text; returns the
        chat's text afterwards, as far as the server knows it. The caller holds the
        chat's lock. Raises AppendFailed (and OSError for the file)."""
        failure = "the editor did not apply the edit"
        for _ in range(APPEND_ATTEMPTS):
            document = storage.open_document(self._ls, self._target)
            if document is None:
                return self._to_file(render)
            text = document.text
            brk = final_break(text)
            # The text as the answer left it: less the line break Neovim added, if so.
            own = text[: len(text) - len(brk)] if self._dangling and brk else text
            addition = render(own)
            if not addition:
                return text
            self.went_to_editor = True
            was_dangling = self._dangling
            refused = await append_edit(self._ls, document, own, addition, self._label)
            if refused:
                failure = refused
                await self._next_version(document.version, REFUSED_SECONDS)
                continue
            self._dangling = not ends_with_break(addition)
            expected = own + addition
            echoed = await self._next_version(document.version, ECHO_SECONDS)
            if echoed is None:  # no echo (yet): take the editor at its word
                log.debug("%s: the editor applied an edit but sent no didChange", self._label)
                return expected
            marker = expected[-(_CONTEXT + len(addition)) :]
            if marker in echoed.text[-(len(marker) + _TYPED_AFTER) :]:
                return echoed.text
            # Neovim answers `applied` to an edit made for an older version, and drops it.
            log.debug("%s: the editor dropped an edit; appending again", self._label)
            self._dangling = was_dangling
            failure = "the editor dropped the edit"
        raise AppendFailed(failure)

    def _to_file(self, render: Callable[[str], str]) -> str:
        if storage.is_open(self._ls, self._target):
            raise AppendFailed(str(storage.out_of_sync(self._ls, self._target)))
        if self.went_to_editor:
            raise AppendFailed("the chat was closed in the editor")
        text = storage.read(self._target) or ""
        addition = render(text)
        if addition:
            storage.write(self._target, text + addition)
        return text + addition

    async def _next_version(self, version: int, timeout: float) -> Document | None:
        """The chat once the server's copy is past `version` (None if it did not move)."""

        def moved() -> bool:
            document = storage.open_document(self._ls, self._target)
            return document is None or document.version != version

        await until(moved, timeout)
        document = storage.open_document(self._ls, self._target)
        return document if document is not None and document.version != version else None


async def append_edit(ls, document: Document, own: str, addition: str, label: str) -> str:
    """Make the text `own + addition` with one versioned edit at the end of the
    document (whose text is `own`, or `own` and the line break Neovim ends every
    buffer with); "" when the editor applied it, else why not.

    The edit never touches the text's final line break: it inserts in front of it,
    leaving out the addition's own last line break, which that one then is (and if
    the addition ends mid-line, that line break follows it, as Neovim has it). An
    edit over the final line break makes Neovim drop the last line afterwards
    ('fixeol'), and it reports that in a later didChange than the edit. (apply_text
    would make the edit minimal again, so it is not used; the Appender checks the
    echo itself.)"""
    text = document.text
    brk = final_break(text)
    position = len(text) - len(brk)
    new_text = addition
    if brk and new_text.endswith(brk):
        new_text = new_text[: -len(brk)]
    if own == text and brk:
        new_text = brk + new_text  # the final line break was the text's own
    edit = types.TextEdit(
        range=types.Range(document.position_at(position), document.position_at(position)),
        new_text=new_text,
    )
    return await send_edits(ls, document, [edit], label)
