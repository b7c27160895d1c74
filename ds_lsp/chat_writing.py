"""What the server writes into a chat: added code, headings, the model's text.

The server only ever appends, at the end of the chat as it knows it (kept
current by didChange). Each render helper takes the chat's current text and
returns exactly what to insert at its end: it closes a code fence left open (a
cut-off answer), leaves one blank line before the addition, and uses the
document's line endings. Nothing the user wrote is changed, lost or duplicated.

The model's text is untrusted: AnswerText keeps it from reading as the chat's
structure (ds_lsp/chat.py parses that structure back). Pure text logic, no LSP.
"""

from __future__ import annotations

import re
from pathlib import Path

from ds_lsp.chat import (
    ASSISTANT_HEADING,
    HEADING,
    USER_HEADING,
    line_span,
    parse_chat,
    scan,
)
from ds_lsp.fs import path_of
from ds_lsp.markdown import FENCE, FencedBlock, fence_for
from ds_lsp.text import LINE_BREAK, lines_of, newline_of, normalize_breaks


def reference_display(uri: str, workspace_root: Path | None) -> str:
    """How the chat names a file: relative to the workspace root when inside it, else
    its absolute path; a URI that is not a file (untitled:...) as it is."""
    path = path_of(uri)
    if path is None:
        return uri
    if workspace_root is not None and path.is_relative_to(workspace_root):
        return path.relative_to(workspace_root).as_posix()
    return path.as_posix()


def selection_block(
    display: str,
    target: str,
    start: int,
    end: int,
    symbol: str | None,
    language: str | None,
    code: str,
) -> str:
    """Code from a file as the chat shows it: the link line, then the fenced block.

    `display` names the file (reference_display), `target` is its URI; lines are
    1-based, inclusive; `symbol` is the enclosing definition's name
    (context.definitions.enclosing_definition). No line break at the end; append it
    with selection_addition.
    """
    span = line_span(start, end)
    fragment = f"#L{start}" if start == end else f"#L{start}-L{end}"
    destination = target + fragment
    if re.search(r"[\s()<>]", destination):
        destination = f"<{destination}>"
    link = f"[{_escape_link_text(display)}:{span}]({destination})"
    if symbol and "`" not in symbol:
        link = f"`{symbol}` in {link}"
    code = normalize_breaks(code).removesuffix("\n")
    fence = fence_for(code)
    return f"{link}\n{fence}{language or ''}\n{code}\n{fence}"


def selection_addition(chat_text: str, block: str) -> str:
    """What to append to the chat to add `block` (selection_block) to the pending
    question, after a blank line; with a new `## You` heading when the chat does not
    end in one (empty, or ending in an answer). Ends with a blank line to type in."""
    closing = _closing_fence(chat_text)
    turns = parse_chat(chat_text + closing).turns
    heading = "" if turns and turns[-1].role == "user" else f"{USER_HEADING}\n\n"
    return _addition(chat_text, f"{heading}{block}\n\n")


def answer_heading(chat_text: str) -> str:
    """What to append before streaming an answer: the `## DeepSeek` heading."""
    return _addition(chat_text, f"{ASSISTANT_HEADING}\n\n")


def cut_off_marker(chat_text: str, reason: str = "the answer was stopped") -> str:
    """What to append after an answer that did not finish (cancelled, cut at max
    tokens, a model error): a one-line note, which is not sent back to the model."""
    return _addition(chat_text, f"*(cut off: {' '.join(reason.split())})*")


def next_question_heading(chat_text: str) -> str:
    """What to append after an answer: an empty `## You` turn for the next question."""
    return _addition(chat_text, f"{USER_HEADING}\n\n")


def new_chat_text(workspace_name: str, newline: str = "\n") -> str:
    """A fresh chat: a title, a short how-to comment, and the first `## You`."""
    text = (
        f"# Chat with DeepSeek: {workspace_name}\n\n"
        f'<!-- Write your question under the last "{USER_HEADING}", then send it with the '
        '"Send to DeepSeek" code action or code lens. "Add to chat" on a selection in a '
        "file adds its code here. The model's reasoning goes to the log and to the hover "
        f'on "{ASSISTANT_HEADING}". -->\n\n'
        f"{USER_HEADING}\n\n"
    )
    return text.replace("\n", newline)


def _addition(chat_text: str, addition: str) -> str:
    """`addition` ("\\n" line breaks) as appended to `chat_text`: an open fence closed
    first, then one blank line before it, all in the document's line breaks."""
    closing = _closing_fence(chat_text)
    text = chat_text + closing
    breaks = len(LINE_BREAK.findall(text[len(text.rstrip()) :]))
    at_line_start = not text or text.endswith(("\n", "\r"))
    wanted = 2 if text.strip() else 0  # a blank line after content; none at the top
    separator = "\n" * max(wanted - breaks, 0 if at_line_start else 1)
    return (closing + separator + addition).replace("\n", newline_of(chat_text))


def _closing_fence(chat_text: str) -> str:
    """A line closing the fenced block the chat ends inside ("" when it ends outside),
    so the headings appended next are headings, not code."""
    lines = lines_of(chat_text)
    last = None
    for _, item in scan(lines):
        last = item
    if not isinstance(last, FencedBlock) or last.closed:
        return ""
    line_break = "" if lines[-1] == "" else "\n"
    return f"{line_break}{last.indent}{last.fence}\n"


def _escape_link_text(text: str) -> str:
    return re.sub(r"([\\\[\]])", r"\\\1", text)


class AnswerText:
    """The model's answer, as it streams, made into chat text that cannot be read
    as the chat's structure: a line that would be a turn heading (outside a code
    block) gets a backslash in front. `\\## You` shows as "## You" and is no
    heading, so the model cannot write a question in the user's name. The line
    breaks are "\\n" in and out.

    A line that might still become a heading (it starts with `#`) is held back
    until it is complete; everything else goes out as it comes."""

    def __init__(self) -> None:
        self._line = ""  # the answer's current line so far
        self._given = 0  # how much of it was given out already
        self._fence: tuple[str, int] | None = None  # the open fence: its character, length

    def feed(self, text: str) -> str:
        """What to append for `text`, the next piece of the answer."""
        out = []
        for piece in re.split(r"(\n)", text):
            if piece == "\n":
                out.append(self._release(complete=True) + "\n")
                self._follow_fences(self._line)
                self._line, self._given = "", 0
            elif piece:
                self._line += piece
                if not (self._fence is None and self._line.startswith("#")):
                    out.append(self._release(complete=False))
        return "".join(out)

    def finish(self) -> str:
        """What is left to append when the answer ended (mid-line, maybe)."""
        rest = self._release(complete=True)
        self._line, self._given = "", 0
        return rest

    def _release(self, complete: bool) -> str:
        line = self._line
        if complete and self._given == 0 and self._fence is None and HEADING.fullmatch(line):
            line = "\\" + line
        out, self._given = line[self._given :], len(line)
        return out

    def _follow_fences(self, line: str) -> None:
        if self._fence is None:
            opening = FENCE.match(line)
            if opening and not (opening["fence"][0] == "`" and "`" in opening["info"]):
                self._fence = (opening["fence"][0], len(opening["fence"]))
        elif re.fullmatch(rf"[ \t]*{re.escape(self._fence[0])}{{{self._fence[1]},}}[ \t]*", line):
            self._fence = None
