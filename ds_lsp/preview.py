"""Preview mode: an edit shown in the document as a diff block to accept or reject.

Tabby shows a proposed edit inline, between marker lines; so does ds-lsp, in
the shape of a merge conflict, which editors already colour (VS Code even adds
its own "Accept" lenses):

    <<<<<<< DeepSeek 3f2a: current
    the selection, as it was
    =======
    the proposed code
    >>>>>>> DeepSeek 3f2a: proposed (Accept or Reject in the code actions)

The block is found again by what the server remembers of it (`Pending`), not
by reading back text the user can see: the opening marker (its id makes it
unique), then exactly the original lines and the middle marker, so a
`=======` inside the proposed code (an RST title) is code; then the closing
marker. Rejecting restores the original lines, which the server kept byte for
byte. Accepting takes the proposed part as the document has it now: the user
may have touched it up. Line breaks are the document's, CR-only ones included.

Pure text logic, no LSP.
"""

from __future__ import annotations

from dataclasses import dataclass

from ds_lsp.reasoning_notes import Note
from ds_lsp.text import ends_with_break

_OPEN = "<<<<<<< DeepSeek {id}: current"
_MIDDLE = "======="
_CLOSE = ">>>>>>> DeepSeek {id}: proposed (Accept or Reject in the code actions)"


@dataclass(frozen=True)
class Pending:
    """A preview block in a document, as the server made it."""

    id: str
    uri: str
    original: str  # the lines the block replaced, byte for byte
    newline: str  # the document's line break, which the markers end with
    note: Note  # the reasoning, for the hover once accepted


@dataclass(frozen=True)
class Block:
    start: int  # offset of the opening marker
    end: int  # offset just past the closing marker's line (its line break included)
    proposed: str  # the proposed lines as the document has them now


def _lines(text: str, newline: str) -> str:
    return text if not text or ends_with_break(text) else text + newline


def render_block(original: str, code: str, block_id: str, newline: str) -> str:
    """The block that replaces `original` (whole lines, as in the document).

    `code` is the proposed replacement. The closing marker ends with a line
    break exactly when `original` did, so the lines after it stay as they were.
    """
    block = (
        _OPEN.format(id=block_id)
        + newline
        + _lines(original, newline)
        + _MIDDLE
        + newline
        + _lines(code, newline)
        + _CLOSE.format(id=block_id)
    )
    return block + newline if ends_with_break(original) else block


def find_block(text: str, pending: Pending) -> Block | None:
    """Where the block `pending` is in `text`; None when it is gone, or when its
    markers or its current (original) part were edited: then it is the user's to
    resolve by hand, as a merge conflict."""
    head = _OPEN.format(id=pending.id) + pending.newline
    head += _lines(pending.original, pending.newline) + _MIDDLE + pending.newline
    start = _at_line_start(text, head, 0)
    if start is None:
        return None
    proposed_start = start + len(head)
    close = _at_line_start(text, _CLOSE.format(id=pending.id), proposed_start)
    if close is None:
        return None
    end = close + len(_CLOSE.format(id=pending.id))
    for line_break in ("\r\n", "\n", "\r"):  # its own line break, if any
        if text.startswith(line_break, end):
            end += len(line_break)
            break
    return Block(start, end, text[proposed_start:close])


def _at_line_start(text: str, wanted: str, start: int) -> int | None:
    """The first offset from `start` where `wanted` begins a line; None if none."""
    found = text.find(wanted, start)
    while found != -1:
        if found == 0 or text[found - 1] in "\r\n":
            return found
        found = text.find(wanted, found + 1)
    return None


def accepted_text(block: Block, original: str) -> str:
    """What replaces the block on Accept: its proposed lines, ending like the original."""
    if ends_with_break(original):
        return block.proposed
    return block.proposed.rstrip("\r\n") if ends_with_break(block.proposed) else block.proposed
