"""The chat document: parse it, turn it into model messages, find what to apply.

The chat is a Markdown file the server owns (docs/chat.md). Turns sit under
`## You` and `## DeepSeek` headings; the user writes the next question under the
last `## You`. "Add to chat" appends code from a file to that pending question:

    `parse_args` in [src/cli.py:12-40](file:///home/me/proj/src/cli.py#L12-L40)
    ```python
    def parse_args(argv): ...
    ```

The link text names the file for people (relative to the workspace root when
inside it); the link target is the file's URI with GitHub's `#L12-L40` fragment,
so editors can follow it and the file is found again wherever the chat lives. A
target that a bare Markdown link cannot hold (parentheses, spaces) is written in
`<...>`. The link line is immediately followed by the fenced block.

What the server writes into a chat (added code, headings, the model's text
made inert) is ds_lsp/chat_writing.py. Pure text logic, no LSP; only chat_path
and new_chat_path look at a folder. Line numbers: the chat document's lines are
0-based, as in LSP; the lines of a referenced file are 1-based and inclusive,
as the links show them.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ds_lsp import prompts
from ds_lsp.backends.base import Message
from ds_lsp.markdown import FencedBlock, block_at, fence_for
from ds_lsp.reasoning import split_reasoning
from ds_lsp.text import estimate_tokens, lines_of

Role = Literal["user", "assistant"]

USER_HEADING = "## You"
ASSISTANT_HEADING = "## DeepSeek"

# `## You`, `## DeepSeek`, optionally with a note: `## DeepSeek (cut off)`.
HEADING = re.compile(r"## (?P<name>You|DeepSeek)(?:[ \t]+\(.*\))?[ \t]*")
_ROLES: dict[str, Role] = {"You": "user", "DeepSeek": "assistant"}

# The line heading a referenced block: optional `symbol` in, then a link whose text
# may escape brackets and whose target is bare or in <...>.
_REFERENCE = re.compile(
    r"(?:`(?P<symbol>[^`]+)` in )?"
    r"\[(?P<display>(?:\\.|[^\\\]])+)\]"
    r"\((?:<(?P<angled>[^<>]*)>|(?P<bare>[^\s()<>]+))\)[ \t]*"
)
_LINES_FRAGMENT = re.compile(r"L(?P<start>\d+)(?:-L?(?P<end>\d+))?")
_LINES_SUFFIX = re.compile(r":(?P<start>\d+)(?:-(?P<end>\d+))?\Z")
_CUT_OFF = re.compile(r"\*\(cut off\b.*\)\*[ \t]*\Z")

# Template markers and role names cost a few tokens per message.
_MESSAGE_OVERHEAD = 4


class ChatError(Exception):
    """The chat cannot be sent as it is; str() says why and what to do, in one line."""


class ChatFormatError(ChatError):
    """The document is not a conversation ending in a `## You` turn."""


class EmptyQuestion(ChatError):
    """The last `## You` turn has no question in it."""


class ChatTooLong(ChatError):
    """The question and the code it needs do not fit the context budget."""


# ---------------------------------------------------------------- parsing


@dataclass(frozen=True)
class CodeReference:
    """Code added to a question: where it came from and what it was then."""

    uri: str  # the link target without its #L fragment: the file's URI
    display: str  # the file as the link text names it (`src/cli.py`)
    start: int  # first line in the file, 1-based
    end: int  # last line, 1-based, inclusive
    symbol: str | None  # the enclosing function or class, when there was one
    language: str | None  # canonical language of the block's tag
    code: str
    line: int  # the chat line of the link; its block starts on the next line


@dataclass(frozen=True)
class Turn:
    role: Role
    heading_line: int
    end_line: int  # the line after the turn: the next heading, or the line count
    text: str  # the lines under the heading as written, "\n" between them
    blocks: tuple[FencedBlock, ...]
    references: tuple[CodeReference, ...]  # in user turns only

    @property
    def start_line(self) -> int:
        """The first line of the turn's text."""
        return self.heading_line + 1


@dataclass(frozen=True)
class Chat:
    turns: tuple[Turn, ...]

    def turn_at(self, line: int) -> Turn | None:
        """The turn whose heading or text holds `line`; None above the first heading."""
        for turn in self.turns:
            if turn.heading_line <= line < turn.end_line:
                return turn
        return None


def parse_chat(text: str) -> Chat:
    """The turns of a chat document; text before the first heading (a title) is ignored.

    Never raises: a chat that cannot be sent (no turns, ending in an answer) is still
    parsed, so code actions work while an answer streams; `pending_question` judges
    whether it can be sent. A heading inside a fenced block is code, not a heading.
    """
    lines = lines_of(text)
    headings: list[tuple[int, Role]] = []
    blocks: list[FencedBlock] = []
    for row, item in scan(lines):
        if isinstance(item, FencedBlock):
            blocks.append(item)
        else:
            headings.append((row, item))
    turns = []
    for index, (heading_line, role) in enumerate(headings):
        end = headings[index + 1][0] if index + 1 < len(headings) else len(lines)
        own = tuple(block for block in blocks if heading_line < block.start_line < end)
        references = tuple(_references(lines, own, heading_line + 1)) if role == "user" else ()
        body = "\n".join(lines[heading_line + 1 : end])
        turns.append(Turn(role, heading_line, end, body, own, references))
    return Chat(tuple(turns))


def scan(lines: list[str]) -> Iterator[tuple[int, Role | FencedBlock]]:
    """The headings (as their role) and fenced blocks, in order, with their lines."""
    row = 0
    while row < len(lines):
        heading = HEADING.fullmatch(lines[row])
        if heading:
            yield row, _ROLES[heading["name"]]
        elif block := block_at(lines, row):
            yield row, block
            row = block.end_line
        row += 1


def _references(lines: list[str], blocks: Sequence[FencedBlock], first_line: int):
    for block in blocks:
        link_line = block.start_line - 1
        if link_line < first_line:
            continue
        found = _REFERENCE.fullmatch(lines[link_line])
        if not found:
            continue
        target = found["angled"] if found["angled"] is not None else found["bare"]
        display = re.sub(r"\\(.)", r"\1", found["display"])
        uri, _, fragment = target.partition("#")
        # The fragment is what editors follow; the text is the fallback (a hand-made link).
        lines_found = _LINES_FRAGMENT.fullmatch(fragment) or _LINES_SUFFIX.search(display)
        if not lines_found or not uri:
            continue
        start = int(lines_found["start"])
        end = int(lines_found["end"] or start)
        display = _LINES_SUFFIX.sub("", display)
        symbol = found["symbol"]
        yield CodeReference(uri, display, start, end, symbol, block.language, block.code, link_line)


# ---------------------------------------------------------------- sending


def pending_question(chat: Chat) -> Turn:
    """The last `## You` turn, the question to send.

    Raises ChatFormatError when the chat does not end in a `## You` turn, and
    EmptyQuestion when that turn holds nothing but whitespace and added code.
    """
    if not chat.turns:
        raise ChatFormatError(
            f'the chat has no "{USER_HEADING}" heading: write "{USER_HEADING}" on a line '
            "of its own, then your question under it"
        )
    question = chat.turns[-1]
    if question.role != "user":
        raise ChatFormatError(
            f'the chat does not end with a "{USER_HEADING}" turn: add a line '
            f'"{USER_HEADING}" at the end and write your question under it'
        )
    if not _without_references(question).strip():
        raise EmptyQuestion(
            f'the question under the last "{USER_HEADING}" is empty: write it, then send'
        )
    return question


def question_text(turn: Turn) -> str:
    """A user turn's own words: its text less the added code, with one blank line
    where the code was and no blank edges."""
    return re.sub(r"\n(?:[ \t]*\n)+", "\n\n", _trim(_without_references(turn)))


def _without_references(turn: Turn) -> str:
    """The turn's text less its added code (link lines and their blocks)."""
    lines = turn.text.split("\n")
    for reference in turn.references:
        block = next(b for b in turn.blocks if b.start_line == reference.line + 1)
        for row in range(reference.line, block.end_line + 1):
            lines[row - turn.start_line] = ""
    return "\n".join(lines)


def to_messages(
    chat: Chat,
    budget_tokens: int,
    count_tokens: Callable[[str], int] = estimate_tokens,
) -> list[Message]:
    """The messages to send for the pending question (see pending_question's errors).

    The first user message starts with prompts/chat.txt (R1 wants no system prompt).
    Each reference's link becomes plain text for the model (`f` in src/a.py:3-9).
    Answers lose a leading `<think>...</think>` (reasoning never goes back to the
    model) and the cut-off marker. Consecutive turns of one role become one message.

    Trimming, when the messages cost more than `budget_tokens` (count_tokens of each
    message plus a few tokens of overhead): whole exchanges (questions and their
    answers) are dropped, oldest first, never the last question. The code added to
    a dropped question is kept: its blocks move, in order and once each, into the
    first message under "Code from earlier in this chat:". If the question and the
    kept code alone exceed the budget, ChatTooLong says so.
    """
    pending_question(chat)
    instructions = prompts.render("chat").strip()
    exchanges = _exchanges(chat.turns)
    folded: list[CodeReference] = []
    while True:
        messages = _messages(instructions, folded, exchanges)
        cost = sum(count_tokens(message.content) + _MESSAGE_OVERHEAD for message in messages)
        if cost <= budget_tokens:
            return messages
        if len(exchanges) == 1:
            raise ChatTooLong(
                f"the question and its code need about {cost} tokens, more than the "
                f"{budget_tokens} the context allows: remove some code, or use a larger n_ctx"
            )
        dropped, exchanges = exchanges[0], exchanges[1:]
        kept = {_identity(r) for exchange in exchanges for t in exchange for r in t.references}
        for reference in (r for turn in dropped for r in turn.references):
            if _identity(reference) not in kept | {_identity(r) for r in folded}:
                folded.append(reference)


def _exchanges(turns: Sequence[Turn]) -> list[list[Turn]]:
    """Turns grouped as questions followed by their answers; a user turn after an
    answer starts the next group."""
    groups: list[list[Turn]] = []
    for turn in turns:
        if not groups or (turn.role == "user" and groups[-1][-1].role == "assistant"):
            groups.append([])
        groups[-1].append(turn)
    return groups


def _identity(reference: CodeReference) -> tuple:
    return (reference.uri, reference.start, reference.end, reference.code)


def _messages(
    instructions: str, folded: Sequence[CodeReference], exchanges: Sequence[Sequence[Turn]]
) -> list[Message]:
    preamble = instructions
    if folded:
        blocks = "\n\n".join(_reference_for_model(reference) for reference in folded)
        preamble += f"\n\nCode from earlier in this chat:\n\n{blocks}"
    messages = [Message("user", preamble)]
    for turn in (turn for exchange in exchanges for turn in exchange):
        if turn.role == "user":
            text = _user_text_for_model(turn)
        else:
            text = _answer_text_for_model(turn.text)
        if not text:
            continue
        if messages[-1].role == turn.role:
            messages[-1] = Message(turn.role, f"{messages[-1].content}\n\n{text}")
        else:
            messages.append(Message(turn.role, text))
    return messages


def _reference_heading_for_model(reference: CodeReference) -> str:
    where = f"{reference.display}:{line_span(reference.start, reference.end)}"
    return f"`{reference.symbol}` in {where}" if reference.symbol else where


def _reference_for_model(reference: CodeReference) -> str:
    fence = fence_for(reference.code)
    return (
        f"{_reference_heading_for_model(reference)}\n"
        f"{fence}{reference.language or ''}\n{reference.code}\n{fence}"
    )


def _user_text_for_model(turn: Turn) -> str:
    lines = turn.text.split("\n")
    for reference in turn.references:
        lines[reference.line - turn.start_line] = _reference_heading_for_model(reference)
    return _trim("\n".join(lines))


def _answer_text_for_model(text: str) -> str:
    _, answer = split_reasoning(text, open=False)  # drops a leading <think>...</think>
    lines = _trim(answer).split("\n")
    if _CUT_OFF.fullmatch(lines[-1]):
        lines.pop()
    return _trim("\n".join(lines))


def _trim(text: str) -> str:
    """No blank lines before or trailing whitespace after; the first line's indent stays."""
    return re.sub(r"\A(?:[ \t]*\n)+", "", text).rstrip()


# ---------------------------------------------------------------- applying an answer


@dataclass(frozen=True)
class AnswerBlock:
    block: FencedBlock  # the code block in the answer
    reference: CodeReference  # the added code it answers, to apply it to

    @property
    def code(self) -> str:
        return self.block.code


def answer_block_at(chat: Chat, line: int) -> AnswerBlock | None:
    """The code block of an answer at `line` (its fences included) and the reference it
    answers, for "Apply to src/cli.py:12-40"; None when there is no such pair.

    The candidates are the references of the questions just before the answer, less
    those whose language differs from the block's tag (a `bash` install line is not
    applied to a Python file). Of them: the only one; else the one whose symbol name
    the block mentions; else None (refusing to guess). A block the answer was cut off
    in (never closed, or followed by nothing but the cut-off marker) is not offered.
    """
    turn = chat.turn_at(line)
    if turn is None or turn.role != "assistant":
        return None
    block = next((b for b in turn.blocks if b.start_line <= line <= b.end_line), None)
    if block is None or _cut_short(turn, block):
        return None
    candidates = [
        reference
        for reference in _references_answered(chat, turn)
        if None in (block.language, reference.language) or block.language == reference.language
    ]
    if len(candidates) > 1:
        candidates = [r for r in candidates if r.symbol and _mentions(block.code, r.symbol)]
    return AnswerBlock(block, candidates[0]) if len(candidates) == 1 else None


def _cut_short(answer: Turn, block: FencedBlock) -> bool:
    after = answer.text.split("\n")[block.end_line + 1 - answer.start_line :]
    rest = [line for line in after if line.strip()]
    return not block.closed or (len(rest) == 1 and _CUT_OFF.fullmatch(rest[0]) is not None)


def _references_answered(chat: Chat, answer: Turn) -> list[CodeReference]:
    """The references of the user turns before `answer` (back to the previous answer)."""
    index = chat.turns.index(answer)
    while index > 0 and chat.turns[index - 1].role == "assistant":
        index -= 1
    references: list[CodeReference] = []
    while index > 0 and chat.turns[index - 1].role == "user":
        index -= 1
        references[:0] = chat.turns[index].references
    return references


def _mentions(code: str, symbol: str) -> bool:
    name = symbol.rsplit(".", 1)[-1]  # Parser.parse_args -> parse_args
    return re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", code) is not None


# ---------------------------------------------------------------- where chats live

ChatLocation = Literal["state", "workspace"]

_CHAT_FILE = re.compile(r"chat(?:-(?P<number>[0-9]+))?\.md")


def default_state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_STATE_HOME, else ~/.local/state (a relative value is invalid, per the spec)."""
    value = environ.get("XDG_STATE_HOME", "")
    return Path(value) if os.path.isabs(value) else Path.home() / ".local" / "state"


def chat_folder(workspace_root: Path | None, location: ChatLocation, state_dir: Path) -> Path:
    """Where a workspace's chats live: `<root>/.ds-lsp` with location "workspace",
    else `<state_dir>/ds-lsp/chats/<name>-<hash of the root>` (the hash tells apart
    two workspaces of one name). With no workspace, always the state folder."""
    if location not in ("state", "workspace"):
        raise ValueError(f"unknown chat location {location!r}: use 'state' or 'workspace'")
    if workspace_root is None:
        return state_dir / "ds-lsp" / "chats" / "no-workspace"
    if location == "workspace":
        return workspace_root / ".ds-lsp"
    name = re.sub(r"[^\w.-]+", "_", workspace_root.name).strip("._") or "root"
    digest = hashlib.sha256(str(workspace_root).encode("utf-8", "surrogatepass")).hexdigest()
    return state_dir / "ds-lsp" / "chats" / f"{name}-{digest[:8]}"


def chat_path(workspace_root: Path | None, location: ChatLocation, state_dir: Path) -> Path:
    """The workspace's current chat: the newest of chat.md, chat-2.md, ... (chat.md
    when there is none yet; creating it is the caller's job)."""
    folder = chat_folder(workspace_root, location, state_dir)
    return _numbered(folder, max(_chat_numbers(folder), default=1))


def new_chat_path(workspace_root: Path | None, location: ChatLocation, state_dir: Path) -> Path:
    """Where a new chat goes: the next number after the newest; older chats stay."""
    folder = chat_folder(workspace_root, location, state_dir)
    return _numbered(folder, max(_chat_numbers(folder), default=0) + 1)


def is_chat_file(
    path: Path, workspace_root: Path | None, location: ChatLocation, state_dir: Path
) -> bool:
    """Whether `path` is one of the workspace's chats (chat.md, chat-2.md, ...)."""
    folder = chat_folder(workspace_root, location, state_dir)
    return path.parent == folder and _CHAT_FILE.fullmatch(path.name) is not None


def _chat_numbers(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    found = (_CHAT_FILE.fullmatch(entry.name) for entry in folder.iterdir())
    return [int(m["number"] or 1) for m in found if m]


def _numbered(folder: Path, number: int) -> Path:
    return folder / ("chat.md" if number <= 1 else f"chat-{number}.md")


def line_span(start: int, end: int) -> str:
    """`12-40`, or `12` for one line (1-based, as links and messages show lines)."""
    return str(start) if start == end else f"{start}-{end}"
