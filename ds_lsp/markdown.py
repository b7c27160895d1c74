"""Fenced code blocks in Markdown: find them (with their lines), tag them, write them.

CommonMark's rules, which both the model's answers (editing.py) and the chat
(chat.py) follow: a fence is three or more backticks or tildes, indented by
spaces or tabs; a backtick fence's info string holds no backtick; the closing
fence uses the same character, is at least as long and has no info string; a
fence never closed runs to the end. Pure text logic, no LSP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ds_lsp.context.treesitter import language_for_lsp_id, language_for_path
from ds_lsp.text import leading_whitespace, normalize_breaks

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")

# Fence tags that are neither an LSP languageId nor a file extension.
_TAG_ALIASES = {
    "python3": "python",
    "py3": "python",
    "node": "javascript",
    "golang": "go",
    "c++": "cpp",
}


@dataclass(frozen=True)
class FencedBlock:
    language: str | None  # canonical language of its tag (`py` -> python); None untagged
    code: str  # its lines, "\n" between them, less the opening fence's indent
    start_line: int  # the opening fence's line
    end_line: int  # the closing fence's line (the last line when never closed)
    closed: bool = True  # False: the fence runs to the end of the text
    indent: str = ""  # the opening fence's indent
    fence: str = "```"  # the opening fence itself


def canonical_language(name: str) -> str:
    """'py' -> 'python', 'typescriptreact' -> 'tsx', 'app.rs' -> 'rust'; unknown names as is."""
    name = name.lower()
    return (
        _TAG_ALIASES.get(name)
        or language_for_lsp_id(name)
        or language_for_path("x." + name)  # an extension, or a file name like app.py
        or name
    )


def tag_language(info: str) -> str | None:
    """The canonical language of a fence's info string; None when it names none."""
    # Tags come as `python`, `python title="x.py"`, `{python}`, `py:src/app.py`, `app.py`.
    words = re.split(r"[\s:{},]+", info.strip())
    tag = next((word.lstrip(".") for word in words if word.lstrip(".")), None)  # pandoc: {.py}
    return canonical_language(tag) if tag else None


def block_at(lines: list[str], row: int) -> FencedBlock | None:
    """The fenced block opening on line `row` of `lines` (no line breaks), or None."""
    opening = FENCE.match(lines[row])
    if not opening or (opening["fence"][0] == "`" and "`" in opening["info"]):
        return None
    fence = opening["fence"]
    closing = re.compile(rf"[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*")
    indent = len(opening["indent"])  # a fence indented in a list item indents its code
    end = row + 1
    while end < len(lines) and not closing.fullmatch(lines[end]):
        end += 1
    body = [line[min(indent, len(leading_whitespace(line))) :] for line in lines[row + 1 : end]]
    closed = end < len(lines)
    return FencedBlock(
        tag_language(opening["info"]),
        "\n".join(body),
        row,
        min(end, len(lines) - 1),
        closed,
        opening["indent"],
        fence,
    )


def find_blocks(lines: list[str]) -> list[FencedBlock]:
    """The fenced blocks of `lines` (no line breaks), in order."""
    blocks = []
    row = 0
    while row < len(lines):
        block = block_at(lines, row)
        if block is not None:
            blocks.append(block)
            row = block.end_line
        row += 1
    return blocks


def fence_for(code: str) -> str:
    """A backtick fence longer than any backtick fence line in the code."""
    fences = (FENCE.match(line) for line in code.split("\n"))
    runs = [len(m["fence"]) for m in fences if m and m["fence"][0] == "`"]
    return "`" * max([3, *(run + 1 for run in runs)])


def fenced(code: str, language: str | None = None) -> str:
    """`code` in a fenced block that no line of it can close (a longer fence when
    the code holds fences itself); no line break at the end."""
    code = normalize_breaks(code).removesuffix("\n")
    fence = fence_for(code)
    return f"{fence}{language or ''}\n{code}\n{fence}"
