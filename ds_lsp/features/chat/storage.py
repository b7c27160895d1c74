"""Where a chat is and how it is read and written: the editor's buffer or the file.

A chat is a file in the chat folder (ds_lsp/chat.py: `chat_folder`), in the
state folder or in the workspace's `.ds-lsp`. Its file is only ever read and
written through ds_lsp/fs.py: never through a link below the workspace or
state folder (a repository may ship `.ds-lsp/chat.md` as a link to a file of
the user's), and atomically. While the editor has the chat open, its buffer is
the chat: the server never writes a file the editor has open.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import from_fs_path

from ds_lsp import chat, fs
from ds_lsp.documents import Document
from ds_lsp.features.lsp_edits import until
from ds_lsp.positions import IndexedText
from ds_lsp.text import final_break

if TYPE_CHECKING:
    from ds_lsp.server import ChatState

log = logging.getLogger(__name__)

# How long to wait for the didOpen of a document opened with showDocument (an
# editor sends it as it opens the document: Neovim before it answers, VS Code
# at once; one that does not sync Markdown never does, and the file is used).
OPEN_SECONDS = 1.5


@dataclass(frozen=True)
class ChatFile:
    """A chat document: its URI as the server names it, its file, and the folder
    below which no link is followed (the workspace, or the state folder)."""

    uri: str
    path: Path
    root: Path

    @property
    def key(self) -> str:
        return str(self.path)


def workspace_root(ls) -> Path | None:
    try:
        root = ls.workspace.root_path
    except RuntimeError:  # before initialize
        return None
    return Path(root) if root else None


def workspace_folders(ls) -> list[Path]:
    """The workspace folders the editor named (the root when it named none)."""
    try:
        folders = list(ls.workspace.folders.values())
    except RuntimeError:  # before initialize
        return []
    paths = [fs.path_of(folder.uri) for folder in folders]
    found = [path for path in paths if path is not None]
    root = workspace_root(ls)
    return found or ([root] if root is not None else [])


def workspace_name(ls) -> str:
    root = workspace_root(ls)
    return root.name if root is not None and root.name else "no workspace"


def state_dir() -> Path:
    return chat.default_state_dir(os.environ)


def _root_for(ls, location: chat.ChatLocation) -> Path:
    root = workspace_root(ls)
    return root if location == "workspace" and root is not None else state_dir()


def current_chat(ls, fresh: bool = False) -> ChatFile:
    """The workspace's current chat (fresh: the path of a new one)."""
    place = chat.new_chat_path if fresh else chat.chat_path
    location = ls.settings.chat_location
    path = place(workspace_root(ls), location, state_dir())
    return ChatFile(from_fs_path(str(path)) or path.as_uri(), path, _root_for(ls, location))


def chat_file(ls, uri: str) -> ChatFile | None:
    """The chat `uri` names, in either location; None when it is no chat of this
    workspace (the server reads and sends nothing else)."""
    path = fs.path_of(uri)
    if path is None:
        return None
    root, state = workspace_root(ls), state_dir()
    for location in ("state", "workspace"):
        if chat.is_chat_file(path, root, location, state):
            return ChatFile(uri, path, _root_for(ls, location))
    return None


def is_chat(ls, uri: str) -> bool:
    """Whether `uri` is one of this workspace's chats, in either location."""
    return chat_file(ls, uri) is not None


def open_document(ls, target: ChatFile) -> Document | None:
    """The chat as the editor has it open, whatever way the editor spells its URI."""
    return document_for(ls, target.uri, target.path)


def document_for(ls, uri: str, path: Path) -> Document | None:
    """The file as the editor has it open, whatever way the editor spells its URI
    (None when it is not open, or the server's copy is out of sync)."""
    document = ls.documents.get(uri)
    if document is not None:
        return document
    for document in ls.documents.values():
        if fs.path_of(document.uri) == path:
            return document
    return None


def is_open(ls, target: ChatFile) -> bool:
    """Whether the editor has the chat open, even when the server's copy is out of sync."""
    return target.uri in ls.documents or open_document(ls, target) is not None


def read(target: ChatFile) -> str | None:
    """The chat file's text; None when there is none. fs.UnsafePath for a link."""
    return fs.read_text(target.path, target.root)


def write(target: ChatFile, text: str) -> None:
    """Replace the chat file's text atomically. fs.UnsafePath for a link."""
    fs.atomic_write(target.path, text, target.root)


class OutOfSync(Exception):
    """The editor has the chat open, but the server's copy is out of sync with it."""


def out_of_sync(ls, target: ChatFile) -> OutOfSync:
    reason = ls.documents.out_of_sync(target.uri) or "a change could not be applied"
    return OutOfSync(
        f"the server's copy of the chat is out of sync with the editor's ({reason}): "
        "close and reopen the chat"
    )


def text_of(ls, target: ChatFile) -> str | None:
    """The chat as the editor has it, else as the file has it (None: no such file).
    OutOfSync when the editor has it open but the server's copy is not the editor's
    (the file would be older than what the user sees)."""
    document = open_document(ls, target)
    if document is not None:
        return document.text
    if is_open(ls, target):
        raise out_of_sync(ls, target)
    return read(target)


@contextlib.asynccontextmanager
async def using(ls, target: ChatFile) -> AsyncIterator[ChatState]:
    """The chat's state while a command works on it; dropped when the last is done
    and no answer streams in, so nothing piles up per chat."""
    state = ls.state.chat(target.key)
    state.users += 1
    try:
        yield state
    finally:
        state.users -= 1
        if state.users == 0 and state.answer is None:
            ls.state.chats.pop(target.key, None)


def answer_streaming(ls, target: ChatFile) -> bool:
    state = ls.state.chats.get(target.key)
    return state is not None and state.answer is not None


def end_of(ls, text: str) -> types.Range:
    """An empty range at the end of `text`, where the question goes: in front of its
    final line break (Neovim's last line is the one that break ends; a cursor on the
    line after it is outside the buffer)."""
    offset = len(text) - len(final_break(text))
    end = IndexedText.of(text).position_at(offset, ls.documents.encoding)
    return types.Range(end, end)


async def show(ls, uri: str, selection: types.Range | None) -> bool:
    """Open `uri` in the editor (window/showDocument); False where that is not possible."""
    caps = ls.client_capabilities
    window = caps.window if caps else None
    if not (window and window.show_document and window.show_document.support):
        return False
    params = types.ShowDocumentParams(uri=uri, take_focus=True, selection=selection)
    try:
        result = await ls.window_show_document_async(params)
    except Exception as exc:  # the client answered with an error
        log.debug("showDocument %s failed: %s", uri, exc)
        return False
    return bool(result and result.success)


async def show_and_wait(ls, uri: str, path: Path, selection: types.Range | None):
    """Show the document and, if the editor did not have it open, wait for its
    didOpen; the document as then open (None if it is not)."""

    def opened() -> Document | None:
        return document_for(ls, uri, path)

    document = opened()
    if await show(ls, document.uri if document else uri, selection) and document is None:
        await until(opened, OPEN_SECONDS)
    return opened()
