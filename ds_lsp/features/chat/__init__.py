"""Chat: the chat document, "Add to chat", "Send to DeepSeek", "Apply to ...".

The chat itself (parsing, the messages for the model, what to append, where
chats live) is ds_lsp/chat.py; this package is its LSP side (docs/chat.md):
- `dsLsp.openChat`, `dsLsp.newChat`: create the chat file if needed, open it in
  the editor with `window/showDocument`;
- `dsLsp.addToChat {uri, range}` (also a code action on any selection): the
  selection, as a fenced block headed by its symbol and a link, goes to the
  pending question;
- `dsLsp.sendChat {uri}` (a code action and a code lens in the chat): answer.py;
- `dsLsp.applyFromChat {uri, position}` (a code action on a code block of an
  answer): apply.py.
Where a chat is, and how it is read and written safely: storage.py; appending
to it, open or not: appender.py. This module holds the commands, the code
actions and the code lens.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from lsprotocol import types

from ds_lsp import chat, chat_writing
from ds_lsp.context.definitions import enclosing_definition
from ds_lsp.documents import Document, file_name_of
from ds_lsp.features.arguments import command_argument
from ds_lsp.features.chat import answer, apply, storage
from ds_lsp.features.chat.appender import Appender, AppendFailed
from ds_lsp.features.lsp_edits import Outcome, selected_lines, tell
from ds_lsp.fs import UnsafePath
from ds_lsp.text import split_lines

log = logging.getLogger(__name__)

ADD_COMMAND = "dsLsp.addToChat"
OPEN_COMMAND = "dsLsp.openChat"
NEW_COMMAND = "dsLsp.newChat"
SEND_COMMAND = "dsLsp.sendChat"
APPLY_COMMAND = "dsLsp.applyFromChat"

ADD_TITLE = "DeepSeek: Add to chat"
SEND_TITLE = "Send to DeepSeek"


def setup(server) -> None:
    # Per chat (server.state.chats): the lock for one change at a time, the answer.
    server.code_action_providers.append(_code_actions)

    @server.command(OPEN_COMMAND)
    async def open_chat(ls, *args) -> dict:
        return await _open_chat(ls, fresh=False)

    @server.command(NEW_COMMAND)
    async def new_chat(ls, *args) -> dict:
        return await _open_chat(ls, fresh=True)

    @server.command(ADD_COMMAND)
    async def add_to_chat(ls, *args) -> dict:
        argument = command_argument(
            ls, args, ADD_COMMAND, "{uri, range}", uri=str, range=types.Range
        )
        return await _add_to_chat(ls, argument["uri"], argument["range"])

    @server.command(SEND_COMMAND)
    async def send_chat(ls, *args) -> dict:
        argument = command_argument(ls, args, SEND_COMMAND, "{uri}", uri=str)
        target = storage.chat_file(ls, argument["uri"])
        if target is None:
            return _tell(ls, _not_a_chat(argument["uri"])).as_result()
        token = f"ds-lsp/chat/{uuid.uuid4()}"
        task = ls.tasks.start(
            answer.send(ls, target, token),
            name=SEND_COMMAND,
            request_id=ls.protocol.msg_id,
            progress_token=token,
        )
        try:
            outcome = await task
        except asyncio.CancelledError:  # cancelled before the model was asked
            outcome = Outcome("cancelled", "sending was cancelled; the chat is as it was")
        return outcome.as_result()

    @server.command(APPLY_COMMAND)
    async def apply_from_chat(ls, *args) -> dict:
        argument = command_argument(
            ls, args, APPLY_COMMAND, "{uri, position}", uri=str, position=types.Position
        )
        target = storage.chat_file(ls, argument["uri"])
        if target is None:
            return _tell(ls, _not_a_chat(argument["uri"])).as_result()
        try:
            outcome = await apply.apply(ls, target, argument["position"].line)
        except UnsafePath as exc:
            outcome = Outcome("refused", f"{exc}; nothing was applied")
        except storage.OutOfSync as exc:
            outcome = Outcome("failed", f"{exc}; nothing was applied")
        return _tell(ls, outcome).as_result()

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))
    def code_lens(ls, params: types.CodeLensParams) -> list[types.CodeLens] | None:
        return _code_lenses(ls, params.text_document.uri)


def _not_a_chat(uri: str) -> Outcome:
    return Outcome(
        "refused",
        f'{file_name_of(uri)} is not a chat of this workspace: open one with "DeepSeek: Open chat"',
    )


def _tell(ls, outcome: Outcome) -> Outcome:
    return tell(ls, outcome, "chat")


def _refusal(ls, message: str) -> dict:
    """A chat command that did nothing: said to the user, and answered without a uri."""
    _tell(ls, Outcome("refused", message))
    return {"status": "refused", "message": message}


# ---------------------------------------------------------------- open, new


async def _open_chat(ls, fresh: bool) -> dict:
    target = storage.current_chat(ls, fresh)
    async with storage.using(ls, target) as state, state.lock:
        document = storage.open_document(ls, target)
        try:
            text = storage.text_of(ls, target)
            if text is None:
                text = chat_writing.new_chat_text(storage.workspace_name(ls))
                storage.write(target, text)
                log.info("created the chat %s", target.path)
        except (OSError, storage.OutOfSync) as exc:
            return _refusal(ls, f"could not open the chat {target.path}: {exc}")
        # Where the question goes, unless the editor has the chat open (its cursor stays).
        selection = storage.end_of(ls, text) if document is None else None
        document = await storage.show_and_wait(ls, target.uri, target.path, selection)
    return {"uri": document.uri if document is not None else target.uri}


# ---------------------------------------------------------------- add to chat


async def _add_to_chat(ls, uri: str, selected: types.Range) -> dict:
    source = ls.documents.get(uri)
    if source is None:
        return _refusal(ls, f"{file_name_of(uri)} is not open in the editor: open it first")
    if storage.is_chat(ls, uri):
        return _refusal(ls, "that is the chat itself: select code in a file to add it")
    start, end = _selected_lines(source, selected)
    code = "".join(split_lines(source.text)[start : end + 1])
    if not code.strip():
        return _refusal(ls, "the selection is empty: select the code to add to the chat")
    definition = enclosing_definition(source, start, end)
    block = chat_writing.selection_block(
        chat_writing.reference_display(uri, storage.workspace_root(ls)),
        uri,
        start + 1,
        end + 1,
        definition.name if definition else None,
        _fence_language(source),
        code,
    )
    target = storage.current_chat(ls)
    async with storage.using(ls, target) as state:
        if state.answer is not None:
            return _refusal(
                ls,
                "an answer is streaming into the chat: wait for it (or cancel it), "
                "then add the code",
            )
        async with state.lock:
            try:
                new = not storage.is_open(ls, target) and storage.read(target) is None
                # A new chat's text and the block go in one write.
                preamble = chat_writing.new_chat_text(storage.workspace_name(ls)) if new else ""
                append = Appender(ls, target, "DeepSeek: add to chat")

                def addition(current: str) -> str:
                    return preamble + chat_writing.selection_addition(preamble + current, block)

                text = await append(addition)
            except (AppendFailed, OSError) as exc:
                return _refusal(ls, f"could not add the code to the chat: {exc}")
            selection = storage.end_of(ls, text)
            document = await storage.show_and_wait(ls, target.uri, target.path, selection)
    log.info("added %s:%d-%d to the chat", file_name_of(uri), start + 1, end + 1)
    return {"uri": document.uri if document is not None else target.uri}


def _selected_lines(document: Document, selected: types.Range) -> tuple[int, int]:
    """The lines the range touches; with nothing selected, the function around it,
    else its line."""
    if selected.start == selected.end:
        line = document.position_at(document.offset_at(selected.start)).line
        definition = enclosing_definition(document, line)
        if definition is not None:
            return definition.start_line, definition.end_line
        return line, line
    return selected_lines(document, selected)


def _fence_language(document: Document) -> str | None:
    """The code block's tag: the language ds-lsp knows it as, else the editor's id."""
    if document.language:
        return document.language
    language_id = document.language_id.strip()
    return language_id if language_id and language_id != "plaintext" else None


# ---------------------------------------------------------------- code actions, lens


def _code_actions(ls, params: types.CodeActionParams) -> list[types.CodeAction]:
    """ "Add to chat" on a selection in a file; "Apply to ..." on an answer's code block
    and "Send to DeepSeek" in a chat. Kinds the server announces (code_actions.KINDS),
    which editors list with the other actions on a selection (a `source` action VS
    Code would only show in its "Source Action..." menu); "Add to chat" goes with
    the edit actions, as `refactor.rewrite`."""
    uri = params.text_document.uri
    document = ls.documents.get(uri)
    if document is None:
        return []
    target = storage.chat_file(ls, uri)
    if target is None:
        if params.range.start == params.range.end:
            return []
        argument = {"uri": uri, "range": ls.protocol._converter.unstructure(params.range)}
        command = types.Command(title=ADD_TITLE, command=ADD_COMMAND, arguments=[argument])
        return [
            types.CodeAction(
                title=ADD_TITLE, kind=types.CodeActionKind.RefactorRewrite, command=command
            )
        ]
    actions = []
    found = chat.answer_block_at(chat.parse_chat(document.text), params.range.start.line)
    if found is not None and not apply.refusal(ls, found.reference):
        title = f"DeepSeek: Apply to {apply.where(found.reference)}"
        position = types.Position(params.range.start.line, 0)
        argument = {"uri": uri, "position": ls.protocol._converter.unstructure(position)}
        actions.append(
            types.CodeAction(
                title=title,
                kind=types.CodeActionKind.RefactorRewrite,
                command=types.Command(title=title, command=APPLY_COMMAND, arguments=[argument]),
            )
        )
    if not storage.answer_streaming(ls, target):
        actions.append(
            types.CodeAction(
                title=SEND_TITLE,
                kind=types.CodeActionKind.QuickFix,
                is_preferred=found is None,
                command=types.Command(
                    title=SEND_TITLE, command=SEND_COMMAND, arguments=[{"uri": uri}]
                ),
            )
        )
    return actions


def _code_lenses(ls, uri: str) -> list[types.CodeLens] | None:
    """ "Send to DeepSeek" over the pending `## You`, in a chat that can take one."""
    document = ls.documents.get(uri)
    target = storage.chat_file(ls, uri) if document is not None else None
    if target is None or storage.answer_streaming(ls, target):
        return None
    turns = chat.parse_chat(document.text).turns
    if not turns or turns[-1].role != "user":
        return None
    line = turns[-1].heading_line
    return [
        types.CodeLens(
            range=types.Range(
                types.Position(line, 0), types.Position(line, len(chat.USER_HEADING))
            ),
            command=types.Command(title=SEND_TITLE, command=SEND_COMMAND, arguments=[{"uri": uri}]),
        )
    ]
