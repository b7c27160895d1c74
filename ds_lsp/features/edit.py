"""Edit highlighted code: code actions, `dsLsp.editSelection`, preview accept/reject.

The pipeline (prompt, model, answer to checked code) is ds_lsp/rewrite.py, the
same one `ds-lsp edit` runs. This module only does the LSP side:
- code actions on a selection (one per prompts/edit/ template, plus the
  selection's own `# ds:` comment); with nothing selected, on the enclosing
  function;
- the command: a cancellable progress, the reasoning fed live
  (features/reasoning_feed.py), then the result as minimal versioned text edits;
- a refusal, a failure, a cancel or a document that changed meanwhile never
  touches the document, and is shown with `window/showMessage`;
- preview mode (`edit_preview`): a diff block (ds_lsp/preview.py) with Accept
  and Reject actions.
The result of the command says what happened (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from lsprotocol import types

from ds_lsp import preview, prompts, rewrite
from ds_lsp.backends.base import ModelError
from ds_lsp.context.definitions import enclosing_definition
from ds_lsp.documents import Document, file_name_of
from ds_lsp.features.arguments import command_argument
from ds_lsp.features.lsp_edits import Outcome, apply_text, current, selected_lines, tell
from ds_lsp.features.progress import begin_progress
from ds_lsp.features.reasoning_feed import ReasoningFeed
from ds_lsp.reasoning_notes import Note
from ds_lsp.text import newline_of, split_lines

log = logging.getLogger(__name__)

EDIT_COMMAND = "dsLsp.editSelection"
ACCEPT_COMMAND = "dsLsp.acceptEdit"
REJECT_COMMAND = "dsLsp.rejectEdit"
_SHAPE = "{uri, range, instruction}"
_SEE_LOG = "(details in the DeepSeek log)"


def setup(server) -> None:
    # Per document (server.state): whether an edit runs, and the previews pending.
    server.code_action_providers.append(_code_actions)

    @server.command(EDIT_COMMAND)
    async def edit_selection(ls, *args) -> dict:
        argument = command_argument(
            ls, args, EDIT_COMMAND, _SHAPE, uri=str, range=types.Range, instruction_=str
        )
        token = f"ds-lsp/edit/{uuid.uuid4()}"
        task = ls.tasks.start(
            _edit(ls, argument["uri"], argument["range"], argument["instruction"] or "", token),
            name=EDIT_COMMAND,
            request_id=ls.protocol.msg_id,
            progress_token=token,
        )
        try:
            outcome = await task
        except asyncio.CancelledError:
            outcome = Outcome("cancelled", "the edit was cancelled; nothing was changed")
        return {"id": "", **outcome.as_result()}

    @server.command(ACCEPT_COMMAND)
    async def accept_edit(ls, *args) -> dict:
        argument = command_argument(ls, args, ACCEPT_COMMAND, "{uri, id}", uri=str, id=str)
        outcome = await _settle_preview(ls, argument["uri"], argument["id"], accept=True)
        return {"id": "", **outcome.as_result()}

    @server.command(REJECT_COMMAND)
    async def reject_edit(ls, *args) -> dict:
        argument = command_argument(ls, args, REJECT_COMMAND, "{uri, id}", uri=str, id=str)
        outcome = await _settle_preview(ls, argument["uri"], argument["id"], accept=False)
        return {"id": "", **outcome.as_result()}


# ---------------------------------------------------------------- code actions


def _code_actions(ls, params: types.CodeActionParams) -> list[types.CodeAction]:
    uri = params.text_document.uri
    document = ls.documents.get(uri)
    if document is None:
        return []
    actions = _preview_actions(ls, document, params.range.start.line)
    if actions:
        return actions  # inside a diff block: only accept or reject
    target = _target_range(document, params.range)
    if target is None:
        return []
    first_line = document.line(target.start.line)
    commented = rewrite.instruction_from_comment(first_line)
    choices = [(commented, "")] if commented else []
    choices += [(action.title, action.instruction) for action in prompts.edit_actions()]
    actions = []
    for title, instruction in choices:
        argument = {
            "uri": uri,
            "range": ls.protocol._converter.unstructure(target),
            "instruction": instruction,
        }
        actions.append(
            types.CodeAction(
                title=f"DeepSeek: {title}",
                kind=types.CodeActionKind.RefactorRewrite,
                is_preferred=bool(commented) and not instruction,
                command=types.Command(
                    title=f"DeepSeek: {title}", command=EDIT_COMMAND, arguments=[argument]
                ),
            )
        )
    return actions


def _target_range(document: Document, selected: types.Range) -> types.Range | None:
    """The selection; with nothing selected, the function (or class) around the cursor."""
    if selected.start != selected.end:
        return selected
    definition = enclosing_definition(document, selected.start.line)
    if definition is None:
        return None
    end_of_last_line = document.content.line_start(definition.end_line) + len(
        document.line(definition.end_line).rstrip("\r\n")
    )
    return types.Range(
        types.Position(definition.start_line, 0), document.position_at(end_of_last_line)
    )


def _preview_actions(ls, document: Document, line: int) -> list[types.CodeAction]:
    state = ls.state.get(document.uri)
    actions = []
    for pending in state.previews.values() if state else ():
        block = preview.find_block(document.text, pending)
        if block is None:
            continue
        first = document.position_at(block.start).line
        last = document.position_at(max(block.start, block.end - 1)).line
        if not first <= line <= last:
            continue
        argument = {"uri": document.uri, "id": pending.id}
        for title, command in (("Accept", ACCEPT_COMMAND), ("Reject", REJECT_COMMAND)):
            actions.append(
                types.CodeAction(
                    title=f"DeepSeek: {title} the proposed edit",
                    kind=types.CodeActionKind.QuickFix,
                    is_preferred=title == "Accept",
                    command=types.Command(title=title, command=command, arguments=[argument]),
                )
            )
    return actions


# ---------------------------------------------------------------- the command


async def _edit(ls, uri: str, selected: types.Range, instruction: str, token: str) -> Outcome:
    document = ls.documents.get(uri)
    if document is None:
        unusable = ls.documents.out_of_sync(uri) and f"the server's copy of {file_name_of(uri)}"
        if unusable:
            message = f"{unusable} is out of sync with the editor's: close and reopen it"
        else:
            message = f"{file_name_of(uri)} is not open in the editor: open it first"
        return _tell(ls, Outcome("failed", message))
    state = ls.state.of(uri)
    if state.editing:
        return _tell(
            ls,
            Outcome(
                "busy",
                f"an edit of {file_name_of(uri)} is still running: wait for it, or cancel it first",
            ),
        )
    state.editing = True
    try:
        return _tell(ls, await _run(ls, document, selected, instruction, token))
    finally:
        state.editing = False


async def _run(
    ls, document: Document, selected: types.Range, instruction: str, token: str
) -> Outcome:
    # Nothing selected: the function around the cursor, as the code actions offer.
    selected = _target_range(document, selected) or selected
    start_line, end_line = selected_lines(document, selected)
    request = rewrite.EditRequest(
        file_name=file_name_of(document.uri),
        text=document.text,
        start_line=start_line,
        end_line=end_line,
        instruction=instruction,
        language=document.language,
    )
    label = f"edit {request.file_name}:{start_line + 1}-{end_line + 1}"
    try:
        rewrite.resolve_instruction(request)  # no instruction: say so before any model work
    except rewrite.EditFailed as exc:
        return Outcome("refused", str(exc))
    progress = await begin_progress(ls, token, "DeepSeek is thinking…", label)
    feed = ReasoningFeed(ls, document.uri, selected, token if progress else None, label)
    outcome = Outcome("cancelled", "the edit was cancelled; nothing was changed")
    try:
        try:
            result = await rewrite.run_edit(ls.models.stream, ls.settings, request, on_delta=feed)
        except rewrite.AnswerRefused as exc:
            outcome = Outcome("refused", f"{exc} {_SEE_LOG}")
            return outcome
        except rewrite.EditFailed as exc:  # cut off, or the server ended abnormally
            outcome = Outcome("failed", f"{exc} {_SEE_LOG}")
            return outcome
        except ModelError as exc:
            outcome = Outcome("failed", f"the model failed: {exc}")
            return outcome
        finally:
            feed.finish()
            _log_budget(ls, feed, label)
        outcome = await _land(ls, document, request, result, feed)
        return outcome
    finally:
        if progress:
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=outcome.status))


async def _land(
    ls, document: Document, request: rewrite.EditRequest, result, feed: ReasoningFeed
) -> Outcome:
    """Apply the checked result, or show it as a preview, if the document is unchanged."""
    moved = current(ls, document)
    if moved and ls.documents.out_of_sync(document.uri):
        return Outcome("failed", f"{moved}; nothing was applied")
    if moved:
        return Outcome(
            "stale",
            f"{moved} while the model was working; nothing was applied. "
            "Run the edit again to retry",
        )
    if result.new_text == document.text:
        return Outcome("unchanged", "the model's answer leaves the selection as it was")
    backend = ls.models.current
    model = backend.name if backend is not None else "the model"
    start, end, new_region = _changed_region(document.text, result.new_text, request)
    note_id = feed.id
    if ls.settings.edit_preview:
        original = document.text[start:end]
        block = preview.render_block(original, new_region, note_id, newline_of(document.text))
        new_text = document.text[:start] + block + document.text[end:]
        last_line = request.start_line + len(split_lines(block)) - 1
        note = Note(note_id, result.instruction, model, feed.text, request.start_line, last_line)
        pending = preview.Pending(note_id, document.uri, original, newline_of(document.text), note)
        ls.state.of(document.uri).previews[note_id] = pending
        failure = await apply_text(ls, document, start, end, block, "DeepSeek: preview an edit")
        if failure:
            # The block may be in the document all the same: keep it settleable.
            if preview.find_block(_text_now(ls, document), pending) is None:
                ls.state.of(document.uri).previews.pop(note_id, None)
            return Outcome("failed", failure)
        ls.notes.add(document.uri, note, once_text_is=new_text)
        _notes_catch_up(ls, document.uri)
        return Outcome(
            "preview", "the proposed edit is in the document: Accept or Reject it", note_id
        )
    lines_written = max(1, len(split_lines(new_region)))
    note = Note(
        note_id,
        result.instruction,
        model,
        feed.text,
        request.start_line,
        request.start_line + lines_written - 1,
    )
    ls.notes.add(document.uri, note, once_text_is=result.new_text)
    failure = await apply_text(
        ls, document, start, end, new_region, f"DeepSeek: {result.instruction}"
    )
    if failure:
        ls.notes.drop(document.uri, note_id)  # no reasoning over lines it never wrote
        return Outcome("failed", failure)
    _notes_catch_up(ls, document.uri)
    return Outcome("applied", f"edited {request.file_name}", note_id)


def _changed_region(old: str, new: str, request: rewrite.EditRequest) -> tuple[int, int, str]:
    """(start, end) offsets of the selection's lines in `old`, and what replaces them."""
    lines = split_lines(old)
    start = sum(len(line) for line in lines[: request.start_line])
    end = start + sum(len(line) for line in lines[request.start_line : request.end_line + 1])
    return start, end, new[start : len(new) - (len(old) - end)]


def _text_now(ls, document: Document) -> str:
    now = ls.documents.get(document.uri)
    return now.text if now is not None else ""


def _notes_catch_up(ls, uri: str) -> None:
    """The editor may have echoed the edit before answering: look once more."""
    current = ls.documents.get(uri)
    if current is not None:
        ls.notes.text_is(uri, current.text)


# ---------------------------------------------------------------- preview


async def _settle_preview(ls, uri: str, block_id: str, accept: bool) -> Outcome:
    state = ls.state.get(uri)
    pending = state.previews.get(block_id) if state else None
    document = ls.documents.get(uri)
    block = preview.find_block(document.text, pending) if pending and document else None
    if block is None:
        if state is not None:
            state.previews.pop(block_id, None)
        return _tell(
            ls,
            Outcome(
                "failed",
                "that proposed edit is no longer in the document as it was made "
                "(resolve it by hand, like a merge conflict)",
            ),
        )
    if accept:
        text = preview.accepted_text(block, pending.original)
    else:
        text = pending.original
    new_text = document.text[: block.start] + text + document.text[block.end :]
    if accept:
        start_line = document.position_at(block.start).line
        lines = max(1, len(split_lines(text)))
        note = Note(
            block_id,
            pending.note.instruction,
            pending.note.model,
            pending.note.reasoning,
            start_line,
            start_line + lines - 1,
        )
        ls.notes.add(uri, note, once_text_is=new_text)
    failure = await apply_text(
        ls, document, block.start, block.end, text, f"DeepSeek: {'accept' if accept else 'reject'}"
    )
    if failure:
        ls.notes.drop(uri, block_id)
        return _tell(ls, Outcome("failed", failure, block_id))
    state.previews.pop(block_id, None)
    if accept:
        _notes_catch_up(ls, uri)
        return Outcome("applied", "the proposed edit was accepted", block_id)
    return Outcome("rejected", "the proposed edit was rejected; the code is as it was", block_id)


# ---------------------------------------------------------------- messages


def _tell(ls, outcome: Outcome) -> Outcome:
    return tell(ls, outcome, "edit")


def _log_budget(ls, feed: ReasoningFeed, label: str) -> None:
    budget = ls.settings.reasoning_budget
    used = feed.tokens_used()
    if not feed.text:
        return
    if budget:
        log.info("%s: reasoning used about %d of its %d-token budget", label, used, budget)
    else:
        log.info("%s: reasoning used about %d tokens (no budget)", label, used)
