"""Apply from chat: an answer's code block replaces the lines it answers.

The block's target is the code the user added to the question it answers
(chat.answer_block_at): only a reference in a user turn, which the model cannot
write (answer.py keeps its text inert), and only a file inside the workspace
folders, reached through no link. Anything else is refused with why. The lines
must still be what was added (or have moved as a whole); the block goes through
the edit pipeline's checks and lands as one verified edit (lsp_edits).
"""

from __future__ import annotations

from lsprotocol import types

from ds_lsp import chat, fs, rewrite
from ds_lsp.documents import Document
from ds_lsp.features.chat import storage
from ds_lsp.features.chat.storage import ChatFile
from ds_lsp.features.lsp_edits import Outcome, apply_text
from ds_lsp.markdown import fenced
from ds_lsp.text import split_lines


def where(reference: chat.CodeReference) -> str:
    """`src/cli.py:12-40`, as the action's title and messages name the lines."""
    if reference.start == reference.end:
        return f"{reference.display}:{reference.start}"
    return f"{reference.display}:{reference.start}-{reference.end}"


def refusal(ls, reference: chat.CodeReference) -> str:
    """Why the code may not be applied to the file `reference` names; "" when it may:
    a file inside a workspace folder, reached through no link."""
    path = fs.path_of(reference.uri)
    if path is None:
        return f"{reference.display} is not a file: the chat applies code to files only"
    folders = storage.workspace_folders(ls)
    if not folders:
        return "no workspace folder is open: the chat applies code to files in the workspace only"
    reasons = []
    for folder in folders:
        try:
            fs.check_inside(path, folder)
            return ""
        except fs.UnsafePath as exc:
            reasons.append(str(exc))
    linked = [reason for reason in reasons if "link" in reason]
    if linked:
        return f"{linked[0]}; nothing was applied"
    return (
        f"{path} is outside the workspace folders: the chat applies code to files in the "
        "workspace only; nothing was applied"
    )


async def apply(ls, target: ChatFile, line: int) -> Outcome:
    text = storage.text_of(ls, target)
    found = chat.answer_block_at(chat.parse_chat(text), line) if text is not None else None
    if found is None:
        return Outcome("refused", "there is no code block here that answers code added to the chat")
    reference = found.reference
    refused = refusal(ls, reference)
    if refused:
        return Outcome("refused", refused)
    lines_of_it = where(reference)
    path = fs.path_of(reference.uri)
    document = storage.document_for(ls, reference.uri, path)
    if document is None:
        if not path.exists():
            return Outcome(
                "refused",
                f"{reference.display} no longer exists (deleted or moved); nothing was applied",
            )
        lines = types.Range(
            types.Position(max(reference.start - 1, 0), 0), types.Position(reference.end, 0)
        )
        document = await storage.show_and_wait(ls, reference.uri, path, lines)
        if document is None:
            return Outcome(
                "failed",
                f"{reference.display} is not open in the editor: open it, then apply again",
            )
    wanted = [line.rstrip() for line in reference.code.split("\n")]
    start = locate(document, reference.start - 1, wanted)
    if start is None:
        return Outcome(
            "changed",
            f"{lines_of_it} changed since it was added to the chat; nothing was applied. "
            "Add the code to the chat again and ask again",
        )
    end = start + len(wanted) - 1
    request = rewrite.EditRequest(
        file_name=reference.display,
        text=document.text,
        start_line=start,
        end_line=end,
        instruction=question_answered(chat.parse_chat(text), line),
        language=document.language,
    )
    answer = fenced(found.code, found.block.language or reference.language)
    try:
        _, new_text = rewrite.apply_answer(request, start, answer)
    except rewrite.EditFailed as exc:
        return Outcome("refused", str(exc))
    if new_text == document.text:
        return Outcome("unchanged", f"the code block is what {lines_of_it} already holds")
    old_lines = split_lines(document.text)
    first = sum(len(x) for x in old_lines[:start])
    last = first + sum(len(x) for x in old_lines[start : end + 1])
    region = new_text[first : len(new_text) - (len(document.text) - last)]
    label = f"DeepSeek: apply to {lines_of_it}"
    failure = await apply_text(ls, document, first, last, region, label)
    if failure:
        return Outcome("failed", failure)
    moved = f" (now lines {start + 1}-{end + 1})" if start + 1 != reference.start else ""
    return Outcome("applied", f"applied the chat's code to {lines_of_it}{moved}")


def locate(document: Document, start: int, wanted: list[str]) -> int | None:
    """The 0-based line where the `wanted` lines (added from line `start`) are now:
    still there, else the one place they moved to (lines added above them); None
    when they changed (trailing whitespace aside)."""
    current = [document.line(n).rstrip() for n in range(document.line_count)]
    if current[start : start + len(wanted)] == wanted:
        return start
    places = [
        n for n in range(len(current) - len(wanted) + 1) if current[n : n + len(wanted)] == wanted
    ]
    return places[0] if len(places) == 1 else None


def question_answered(parsed: chat.Chat, line: int) -> str:
    """The words of the questions the answer at `line` answers: the edit checks'
    instruction ("simplify it" allows a shorter result)."""
    answer = parsed.turn_at(line)
    if answer is None:
        return ""
    index = parsed.turns.index(answer)
    while index > 0 and parsed.turns[index - 1].role == "assistant":
        index -= 1
    words = []
    while index > 0 and parsed.turns[index - 1].role == "user":
        index -= 1
        words.insert(0, chat.question_text(parsed.turns[index]))
    return "\n\n".join(w for w in words if w)
