"""Changing a document in the editor, for edits and the chat: one way, checked twice.

An edit is computed on the server's copy of a document at one version and sent
as `workspace/applyEdit` for that version (`documentChanges`; plain `changes` to
a client that takes nothing else). The editor's answer is not trusted alone:
Neovim answers `applied` to an edit for an older version and drops it, and a
client without versions applies plain `changes` wherever the positions fall
now. So every edit is verified in the editor's next version of the document
(its `didChange` echo), and what the user is told is what the document holds.
An edit is never sent for a copy that is out of sync or at another version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from lsprotocol import types

from ds_lsp.documents import Document, file_name_of
from ds_lsp.text_edits import at_most, minimal_replacements

log = logging.getLogger(__name__)

# How long to wait for the editor's didChange echoing an applied edit (Neovim
# sends it after a 150 ms debounce).
ECHO_SECONDS = 2.0
# Text edits in one applyEdit at most; more are merged where they lie closest
# (text_edits.at_most): a rename of 3,000 lines is then 100 edits, not 3,000.
MAX_TEXT_EDITS = 100
# Characters around an edit that must come back with it in the echo: enough to
# tell it from the user's typing elsewhere in the same didChange.
_CONTEXT = 64

# Outcomes the user sees happen in the document anyway: logged, not shown.
_SEEN = frozenset({"applied", "preview", "rejected", "answered"})
# Outcomes the user asked for, or that change nothing: shown as information.
_QUIET = frozenset({"unchanged", "cancelled"})


@dataclass(frozen=True)
class Outcome:
    """What a command did: a status (docs/protocol.md, docs/chat.md) and one line."""

    status: str
    message: str
    id: str | None = None  # the edit's id (previews, reasoning), for edit commands

    def as_result(self) -> dict:
        result = {"status": self.status, "message": self.message}
        return result if self.id is None else {**result, "id": self.id}


def tell(ls, outcome: Outcome, what: str) -> Outcome:
    """Show the user what happened (`window/showMessage`), unless they see it in the
    document anyway; `what` ("edit", "chat") prefixes the log line."""
    if outcome.status in _SEEN:
        log.info("%s", outcome.message)
        return outcome
    quiet = outcome.status in _QUIET
    log.warning("%s %s: %s", what, outcome.status, outcome.message)
    ls.window_show_message(
        types.ShowMessageParams(
            type=types.MessageType.Info if quiet else types.MessageType.Warning,
            message=f"DeepSeek: {outcome.message}",
        )
    )
    return outcome


def selected_lines(document: Document, selected: types.Range) -> tuple[int, int]:
    """The lines a range touches (0-based, inclusive); one ending at column 0 leaves
    that line out, as editors select whole lines that way."""
    start = document.position_at(document.offset_at(selected.start))
    end = document.position_at(document.offset_at(selected.end))
    last = end.line - 1 if end.character == 0 and end.line > start.line else end.line
    return start.line, max(start.line, last)


def current(ls, document: Document) -> str:
    """ "" when `document` is still the server's copy of its document, in sync with
    the editor; else why an edit computed on it must not be sent."""
    name = file_name_of(document.uri)
    reason = ls.documents.out_of_sync(document.uri)
    if reason is not None:
        return (
            f"the server's copy of {name} is out of sync with the editor's ({reason}): "
            "close and reopen it"
        )
    now = ls.documents.get(document.uri)
    if now is None:
        return f"{name} was closed"
    if now.version != document.version:
        return f"{name} changed"
    return ""


async def apply_text(ls, document: Document, start: int, end: int, text: str, label: str) -> str:
    """Replace document[start:end] with `text`, as minimal edits at the document's
    version, and check the editor's next version holds it. Returns "" when it does,
    else why not (said so that the user knows what the document holds)."""

    old = document.text[start:end]

    def smallest_edits() -> list[types.TextEdit]:
        return [
            types.TextEdit(
                range=types.Range(
                    document.position_at(start + r.start), document.position_at(start + r.end)
                ),
                new_text=r.text,
            )
            for r in at_most(minimal_replacements(old, text), old, MAX_TEXT_EDITS)
        ]

    # Off the event loop: a diff of thousands of lines must not stall every other
    # request (the document is an immutable snapshot, safe to read from a thread).
    edits = await asyncio.to_thread(smallest_edits)
    if not edits:
        return ""
    failure = await send_edits(ls, document, edits, label)
    if failure:
        return f"{failure}. Nothing was changed; try again"
    expected = document.text[:start] + text + document.text[end:]
    return await verify(ls, document, expected, start, start + len(text))


async def send_edits(ls, document: Document, edits: list[types.TextEdit], label: str) -> str:
    """`workspace/applyEdit` for the document at its version: "" when the editor
    answered that it applied it, else why not. Not sent at all when the server's
    copy moved on or is out of sync: the edit was computed on other text."""
    stale = current(ls, document)
    if stale:
        return f"the edit was not sent: {stale} since it was computed"
    if takes_versioned_edits(ls):
        identifier = types.OptionalVersionedTextDocumentIdentifier(
            uri=document.uri, version=document.version
        )
        workspace_edit = types.WorkspaceEdit(
            document_changes=[types.TextDocumentEdit(text_document=identifier, edits=edits)]
        )
    else:
        workspace_edit = types.WorkspaceEdit(changes={document.uri: edits})
    try:
        response = await ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=workspace_edit, label=label)
        )
    except Exception as exc:  # the client answered with an error
        return f"the editor did not apply the edit: {exc}"
    if not response.applied:
        return f"the editor did not apply the edit: {response.failure_reason or 'no reason given'}"
    return ""


async def verify(ls, document: Document, expected: str, start: int, end: int) -> str:
    """ "" when a later version of the document (the editor's echo) holds the edit
    that makes `expected` from `document`: expected[start:end] with what surrounds
    it, so the user's typing elsewhere in the same change is fine; else why not."""
    name = file_name_of(document.uri)
    around = expected[max(0, start - _CONTEXT) : end + _CONTEXT]

    def holds_it() -> bool:
        later = ls.documents.versions_after(document.uri, document.version)
        return any(d.text == expected or around in d.text for d in later)

    def settled() -> bool:  # the edit is there, or nothing more will come
        gone = document.uri not in ls.documents or ls.documents.out_of_sync(document.uri)
        return bool(gone) or holds_it()

    await until(settled, ECHO_SECONDS)
    if holds_it():
        return ""
    if ls.documents.out_of_sync(document.uri):
        return f"the server's copy of {name} went out of sync: check it, then reopen it"
    if document.uri not in ls.documents:
        return f"{name} was closed before the editor confirmed the edit"
    if not ls.documents.versions_after(document.uri, document.version):
        return (
            f"the editor answered that it applied the edit to {name} but sent no change "
            "for it: check the file"
        )
    # Neovim drops an edit for an older version; a client without versions puts
    # plain `changes` where the positions fall now.
    return (
        f"the editor answered that it applied the edit, but {name} does not hold it: "
        "check the file (undo if the edit landed elsewhere) and try again"
    )


async def until(condition: Callable[[], object], timeout: float) -> bool:
    """Whether `condition()` came true within `timeout` seconds (checked every 10 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def takes_versioned_edits(ls) -> bool:
    """Whether to send `documentChanges`, which name the version the edit is for:
    where the client says it takes them, and in Neovim, which does not say so but
    takes them (and drops an edit for an older version), while plain `changes` it
    applies wherever the positions now fall."""
    caps = ls.client_capabilities
    workspace = caps.workspace if caps else None
    edit = workspace.workspace_edit if workspace else None
    if edit and edit.document_changes:
        return True
    return ls.client_name == "Neovim"
