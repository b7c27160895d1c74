"""Rewrite a selection: prompt -> model stream -> checked replacement text.

Shared by `ds-lsp edit` and the editor's "edit highlighted code" action. No
LSP here: the caller decides how to show reasoning and how to apply the result.
Every way it can fail raises `EditFailed` with one line for the user, and the
document is never touched here, so a failed, cancelled or cut-off generation
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ds_lsp import editing, prompts
from ds_lsp.backends.base import (
    Backend,
    ChatRequest,
    Delta,
    FinishReason,
    Generation,
    Message,
    collect,
)
from ds_lsp.config import Settings

# Lines of the file shown around the selection. Later: tree-sitter scopes.
CONTEXT_LINES = 60


class EditFailed(Exception):
    """The edit cannot be applied; str() is the reason, in one line."""


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


def build_prompt(request: EditRequest) -> str:
    lines = editing.split_lines(request.text)
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


async def run_edit(
    backend: Backend,
    settings: Settings,
    request: EditRequest,
    on_delta: Callable[[Delta], None] | None = None,
) -> EditResult:
    """Generate and check the rewrite. Raises EditFailed or ModelError."""
    lines = editing.split_lines(request.text)
    if not 0 <= request.start_line <= request.end_line < max(len(lines), 1):
        raise EditFailed(
            f"lines {request.start_line + 1}-{request.end_line + 1} are outside the file "
            f"({len(lines)} lines)"
        )
    prompt = build_prompt(request)
    generation = await collect(backend.stream(chat_request(prompt, settings)), on_delta)
    check_finish(generation, settings)
    try:
        code = editing.extract_code(generation.answer, request.language)
        original = "".join(lines[request.start_line : request.end_line + 1])
        code = editing.reindent(code, original)
        new_text = editing.replace_lines(request.text, request.start_line, request.end_line, code)
        editing.check_syntax(request.text, new_text, request.language)
    except editing.UnusableAnswer as exc:
        raise EditFailed(f"the answer is not usable: {exc}; nothing was changed") from exc
    return EditResult(new_text=new_text, code=code, generation=generation)
