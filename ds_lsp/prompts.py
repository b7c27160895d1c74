"""Prompt templates: one plain-text file per action in prompts/, with named slots.

Slots are written `${name}` (string.Template), so braces and most dollar signs
in code need no escaping; the code goes in as a slot value, never as template
text. Templates ship inside the wheel as ds_lsp/prompts/; in a source checkout
they are read from the top-level prompts/ folder.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

_SOURCE_TREE = Path(__file__).resolve().parent.parent / "prompts"


def _template_text(action: str) -> str:
    packaged = resources.files("ds_lsp").joinpath("prompts", f"{action}.txt")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    path = _SOURCE_TREE / f"{action}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"no prompt template for {action!r} (looked for {path})")
    return path.read_text(encoding="utf-8")


def _folder_files(folder: str) -> dict[str, str]:
    """{file stem: text} of the .txt files in a prompts/ subfolder."""
    packaged = resources.files("ds_lsp").joinpath("prompts", folder)
    entries = packaged.iterdir() if packaged.is_dir() else (_SOURCE_TREE / folder).glob("*.txt")
    return {
        entry.name.removesuffix(".txt"): entry.read_text(encoding="utf-8")
        for entry in entries
        if entry.name.endswith(".txt")
    }


@dataclass(frozen=True)
class EditAction:
    """One ready-made instruction from prompts/edit/: the file's first line is the
    title the editor shows, the rest the instruction the model gets."""

    name: str  # the file's stem: add-type-hints
    title: str
    instruction: str


@cache
def edit_actions() -> tuple[EditAction, ...]:
    actions = []
    for name, text in sorted(_folder_files("edit").items()):
        title, _, instruction = text.strip().partition("\n")
        if title and instruction.strip():
            actions.append(EditAction(name, title.strip(), instruction.strip()))
    return tuple(actions)


@cache
def template(action: str) -> string.Template:
    return string.Template(_template_text(action))


def render(action: str, **slots: str) -> str:
    """Fill a template; a missing slot is a bug, so it raises KeyError."""
    return template(action).substitute(slots).strip() + "\n"


def context_window(lines: list[str], start: int, end: int, around: int) -> tuple[str, str]:
    """The `around` lines before line `start` and after line `end` (0-based, inclusive)."""
    before = "".join(lines[max(0, start - around) : start])
    after = "".join(lines[end + 1 : end + 1 + around])
    return before.rstrip("\r\n"), after.rstrip("\r\n")
