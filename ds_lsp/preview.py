"""Preview mode: an edit shown in the document as a diff block to accept or reject.

Tabby shows a proposed edit inline, between marker lines; so does ds-lsp, in
the shape of a merge conflict, which editors already colour (VS Code even adds
its own "Accept" lenses):

    <<<<<<< DeepSeek 3f2a: current
    the selection, as it was
    =======
    the proposed code
    >>>>>>> DeepSeek 3f2a: proposed (Accept or Reject in the code actions)

The original lines are also kept by the caller, so rejecting restores them
byte for byte, whatever happens to the block's text. Accepting takes the
proposed part as the document has it now: the user may have touched it up.

Pure text logic, no LSP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPEN = "<<<<<<< DeepSeek {id}: current"
_MIDDLE = "======="
_CLOSE = ">>>>>>> DeepSeek {id}: proposed (Accept or Reject in the code actions)"
_ANY_OPEN = re.compile(r"^<<<<<<< DeepSeek (?P<id>\S+): current$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    start: int  # offset of the opening marker
    end: int  # offset just past the closing marker's line (its line break included)
    proposed: str  # the proposed lines as the document has them now


def render_block(original: str, code: str, block_id: str, newline: str) -> str:
    """The block that replaces `original` (whole lines, as in the document).

    `code` is the proposed replacement. The closing marker ends with a line
    break exactly when `original` did, so the lines after it stay as they were.
    """
    ends_with_break = original.endswith(("\n", "\r"))

    def lines(text: str) -> str:
        return text if not text or text.endswith(("\n", "\r")) else text + newline

    block = (
        _OPEN.format(id=block_id)
        + newline
        + lines(original)
        + _MIDDLE
        + newline
        + lines(code)
        + _CLOSE.format(id=block_id)
    )
    return block + newline if ends_with_break else block


def find_block(text: str, block_id: str) -> Block | None:
    """The block `block_id` in `text`, or None when it was edited beyond recognition."""
    opening = re.search(rf"^{re.escape(_OPEN.format(id=block_id))}(\r\n|\r|\n)", text, re.M)
    if opening is None:
        return None
    closing = re.compile(rf"^{re.escape(_CLOSE.format(id=block_id))}(\r\n|\r|\n)?", re.M)
    close = closing.search(text, opening.end())
    middle = re.compile(rf"^{_MIDDLE}(\r\n|\r|\n)", re.M)
    # The last middle marker before the close: the original may hold one of its own.
    middles = [m for m in middle.finditer(text, opening.end(), close.start() if close else 0)]
    if close is None or not middles:
        return None
    return Block(opening.start(), close.end(), text[middles[-1].end() : close.start()])


def block_ids(text: str) -> list[str]:
    return _ANY_OPEN.findall(text) if "<<<<<<< DeepSeek" in text else []


def accepted_text(block: Block, original: str) -> str:
    """What replaces the block on Accept: its proposed lines, ending like the original."""
    if original.endswith(("\n", "\r")):
        return block.proposed
    return (
        block.proposed.rstrip("\r\n") if block.proposed.endswith(("\n", "\r")) else block.proposed
    )
