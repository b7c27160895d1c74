"""Hover over lines the model wrote: the instruction, the model, the reasoning.

The notes are kept by `ds_lsp.reasoning_notes` (they follow the text as the
user edits); edits and chat answers add them. `dsLsp.showReasoning` returns a
note whole, for clients with a panel.
"""

from __future__ import annotations

from lsprotocol import types

from ds_lsp.features.arguments import command_argument
from ds_lsp.reasoning_notes import Note

SHOW_REASONING_COMMAND = "dsLsp.showReasoning"
# Characters of reasoning in a hover; the rest is in the log and showReasoning.
HOVER_REASONING_CHARS = 1500


def setup(server) -> None:
    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls, params: types.HoverParams) -> types.Hover | None:
        note = ls.notes.at(params.text_document.uri, params.position.line)
        if note is None:
            return None
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=hover_text(note))
        )

    @server.command(SHOW_REASONING_COMMAND)
    def show_reasoning(ls, *args) -> dict | None:
        argument = command_argument(
            ls, args, SHOW_REASONING_COMMAND, "{uri, position}", uri=str, position=types.Position
        )
        note = ls.notes.at(argument["uri"], argument["position"].line)
        if note is None:
            return None
        return {"instruction": note.instruction, "model": note.model, "reasoning": note.reasoning}


def hover_text(note: Note) -> str:
    reasoning = note.reasoning.strip()
    shown = reasoning
    if len(reasoning) > HOVER_REASONING_CHARS:
        shown = reasoning[:HOVER_REASONING_CHARS].rsplit(" ", 1)[0] + " …"
    quoted = "\n".join("> " + line if line.strip() else ">" for line in shown.splitlines())
    parts = [
        "**DeepSeek**",
        f"**Instruction:** {note.instruction}",
        f"**Model:** `{note.model}`",
    ]
    if reasoning:
        parts += ["**Reasoning:**", quoted]
        if shown != reasoning:
            parts.append("*Truncated: the full reasoning is in the log.*")
    else:
        parts.append("*The model gave no reasoning.*")
    return "\n\n".join(parts)
