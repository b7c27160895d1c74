"""Rewrite a selection: prompt -> model stream -> checked replacement text.

Shared by `ds-lsp edit` and the editor's "edit highlighted code" action. No
LSP here: the caller decides how to show reasoning and how to apply the result.
Every way it can fail raises `EditFailed` with one line for the user, and the
document is never touched here, so a failed, cancelled or cut-off generation
changes nothing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from ds_lsp import editing, prompts
from ds_lsp.backends.base import (
    ChatRequest,
    Delta,
    FinishReason,
    Generation,
    Message,
    collect,
)
from ds_lsp.config import Settings
from ds_lsp.text import split_lines

# Lines of the file shown around the selection. Later: tree-sitter scopes.
CONTEXT_LINES = 60


class EditFailed(Exception):
    """The edit cannot be applied; str() is the reason, in one line."""


class AnswerRefused(EditFailed):
    """The model answered, but not with code that can be applied."""


@dataclass(frozen=True)
class EditRequest:
    file_name: str
    text: str  # the whole document
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, inclusive
    instruction: str
    language: str | None = None  # tree-sitter name (python, rust, ...)


@dataclass(frozen=True)
class EditResult:
    new_text: str  # the whole document after the edit
    code: str  # what replaced the selection
    generation: Generation  # reasoning and raw answer, for hover and logs
    instruction: str  # the one followed (given, or from a `ds:` comment)


# `# ds: make it async`, `// ds: ...`, `-- ds: ...`, `/* ds: ... */` on the selection's
# first line: an instruction for editors that cannot ask the user for text.
_INSTRUCTION_COMMENT = re.compile(
    r"\s*(?:#|//+|--|;+|%|/\*+)\s*ds:\s*(?P<instruction>.*?)\s*(?:\*+/)?\s*", re.IGNORECASE
)


def instruction_from_comment(line: str) -> str | None:
    """The instruction a `ds:` comment line carries, or None."""
    match = _INSTRUCTION_COMMENT.fullmatch(line.rstrip("\r\n"))
    return match["instruction"] or None if match else None


def resolve_instruction(request: EditRequest) -> tuple[EditRequest, int]:
    """The request with its instruction settled, and the first line of the code to
    rewrite. A `ds:` comment on the first line gives the instruction when none was
    given; that line is then replaced along with the code, so it leaves the file."""
    lines = split_lines(request.text)
    first = lines[request.start_line] if request.start_line < len(lines) else ""
    from_comment = instruction_from_comment(first)
    if from_comment is None:
        if not request.instruction.strip():
            raise EditFailed(
                "no instruction: give one, or start the selection with a comment "
                "like `# ds: add type hints`"
            )
        return request, request.start_line
    if request.start_line == request.end_line:
        raise EditFailed("the selection holds only the `ds:` comment: select the code too")
    instruction = request.instruction.strip() or from_comment
    return replace(request, instruction=instruction), request.start_line + 1


# Instructions that ask for less code: the "deleted most of it" rule does not apply.
_ASKS_FOR_LESS = re.compile(
    r"\b(?:delete|remove|drop|cut|shorten|strip|simplif|condense|compress|minimi|shrink|"
    r"trim|reduce|collapse|one[- ]liner|inline|dedupe|deduplicate|clean ?up)",
    re.IGNORECASE,
)
# Below this many non-blank lines a selection is too small to judge by size.
_SMALLEST_JUDGED = 4


def refuse_mass_deletion(original: str, code: str, instruction: str) -> None:
    """Refuse an answer that keeps less than half of the selection's code, unless the
    instruction asks for less (a model that lost track often returns one fragment)."""
    if _ASKS_FOR_LESS.search(instruction):
        return
    before = [line for line in original.splitlines() if line.strip()]
    if len(before) < _SMALLEST_JUDGED:
        return
    kept = sum(len(line.strip()) for line in code.splitlines())
    total = sum(len(line.strip()) for line in before)
    if kept * 2 < total:
        raise editing.UnusableAnswer(
            f"it would delete most of the selection ({kept} of {total} characters of code "
            "left) and the instruction does not ask for that"
        )


def build_prompt(request: EditRequest) -> str:
    lines = split_lines(request.text)
    before, after = prompts.context_window(
        lines, request.start_line, request.end_line, CONTEXT_LINES
    )
    selection = "".join(lines[request.start_line : request.end_line + 1])
    return prompts.render(
        "edit",
        file_name=request.file_name,
        language=request.language or "",
        before=before,
        selection=selection.rstrip("\r\n"),
        after=after,
        instruction=request.instruction.strip(),
    )


def chat_request(prompt: str, settings: Settings) -> ChatRequest:
    return ChatRequest(
        messages=[Message("user", prompt)],
        max_tokens=settings.max_tokens,
        reasoning="on",
        reasoning_budget=settings.reasoning_budget,
        temperature=settings.temperature,
        top_p=settings.top_p,
    )


def check_finish(generation: Generation, settings: Settings) -> None:
    """Refuse anything but a model that finished its answer."""
    detail = f" ({generation.detail})" if generation.detail else ""
    if generation.finish is FinishReason.CANCELLED:
        raise EditFailed("the edit was cancelled; nothing was changed")
    if generation.finish is FinishReason.LENGTH:
        where = "while still reasoning" if not generation.answer.strip() else "mid-answer"
        raise EditFailed(
            f"the model was cut off {where}{detail}; nothing was changed. "
            f"Raise max_tokens (now {settings.max_tokens}) or reasoning_budget, "
            "or select less code"
        )
    if generation.finish is FinishReason.ERROR:
        raise EditFailed(f"the model server ended the answer abnormally{detail}")
    if not generation.answer.strip():
        raise EditFailed("the model reasoned but gave no answer; nothing was changed")


StreamModel = Callable[[ChatRequest], AsyncIterator[Delta]]


async def run_edit(
    stream_model: StreamModel,
    settings: Settings,
    request: EditRequest,
    on_delta: Callable[[Delta], None] | None = None,
) -> EditResult:
    """Generate and check the rewrite. Raises EditFailed or ModelError.

    `stream_model` is a backend's (or the scheduler's) `stream`.
    """
    lines = split_lines(request.text)
    if not 0 <= request.start_line <= request.end_line < max(len(lines), 1):
        raise EditFailed(
            f"lines {request.start_line + 1}-{request.end_line + 1} are outside the file "
            f"({len(lines)} lines)"
        )
    request, code_start = resolve_instruction(request)
    # The model sees the code without the `ds:` comment; the comment's line is replaced too.
    prompt = build_prompt(replace(request, start_line=code_start))
    generation = await collect(stream_model(chat_request(prompt, settings)), on_delta)
    check_finish(generation, settings)
    # Off the event loop: on a selection of thousands of lines, the checks (parses,
    # re-indenting) take tens of ms that other requests would wait for.
    code, new_text = await asyncio.to_thread(apply_answer, request, code_start, generation.answer)
    return EditResult(
        new_text=new_text,
        code=code,
        generation=generation,
        instruction=request.instruction,
    )


def _code_of(request: EditRequest, code_start: int, answer: str) -> str:
    """The answer's code, checked and indented like the selection (see `apply_answer`)."""
    lines = split_lines(request.text)
    try:
        code = editing.extract_code(answer, request.language)
        first_line = code.split("\n", 1)[0]
        if code_start > request.start_line and instruction_from_comment(first_line):
            code = code.split("\n", 1)[1] if "\n" in code else ""  # the model kept the comment
        original = "".join(lines[code_start : request.end_line + 1])
        refuse_mass_deletion(original, code, request.instruction)
        return editing.reindent(code, original)
    except editing.UnusableAnswer as exc:
        raise AnswerRefused(f"the answer is not usable: {exc}; nothing was changed") from exc


def apply_answer(request: EditRequest, code_start: int, answer: str) -> tuple[str, str]:
    """The answer's code, and the whole document with it in place of the selection.

    Refusals (EditFailed): no code, prose only, lazy placeholders, most of the
    selection deleted unasked, a parse with more errors than before."""
    code = _code_of(request, code_start, answer)
    new_text = editing.replace_lines(request.text, request.start_line, request.end_line, code)
    try:
        editing.check_syntax(request.text, new_text, request.language)
    except editing.UnusableAnswer as exc:
        raise AnswerRefused(f"the answer is not usable: {exc}; nothing was changed") from exc
    return code, new_text
