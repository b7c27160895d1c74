"""Chat: the chat document, "Add to chat", "Send to DeepSeek", "Apply to ...".

The chat itself (parsing, the messages for the model, what to append, where
chats live) is ds_lsp/chat.py; this module is its LSP side (docs/chat.md):
- `dsLsp.openChat`, `dsLsp.newChat`: create the chat file if needed, open it in
  the editor with `window/showDocument`;
- `dsLsp.addToChat {uri, range}` (also a code action on any selection): the
  selection, as a fenced block headed by its symbol and a link, goes to the
  pending question;
- `dsLsp.sendChat {uri}` (a code action and a code lens in the chat): the turns
  go to the model, the answer streams into the chat; the reasoning goes to the
  log, the progress, `dsLsp/reasoning` and the hover over the answer's heading;
- `dsLsp.applyFromChat {uri, position}` (a code action on a code block of an
  answer): the block replaces the lines it answers, through the edit pipeline's
  checks, if those lines are still what was added.

Every change to the chat is appended at its end. While the editor has the chat
open (didOpen), appends are versioned `workspace/applyEdit`s at the end of the
server's copy, which didChange keeps current; an append the editor refuses (the
user typed meanwhile) or drops (Neovim answers `applied` for an edit at an old
version and ignores it) is computed again at the new end, so nothing is lost or
duplicated. While it is not open, the file on disk is appended to (atomically).
The server never saves a chat the editor has open: the editor owns that buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types

from ds_lsp import chat, rewrite
from ds_lsp.backends.base import ChatRequest, FinishReason, ModelError
from ds_lsp.context.gather import enclosing_definition
from ds_lsp.documents import Document, file_name_of
from ds_lsp.editing import newline_of, split_lines
from ds_lsp.features.arguments import command_argument
from ds_lsp.features.lsp_edits import apply_text, send_edits
from ds_lsp.features.progress import begin_progress
from ds_lsp.features.reasoning_feed import ReasoningFeed
from ds_lsp.positions import IndexedText
from ds_lsp.reasoning_notes import Note

log = logging.getLogger(__name__)

ADD_COMMAND = "dsLsp.addToChat"
OPEN_COMMAND = "dsLsp.openChat"
NEW_COMMAND = "dsLsp.newChat"
SEND_COMMAND = "dsLsp.sendChat"
APPLY_COMMAND = "dsLsp.applyFromChat"

ADD_TITLE = "DeepSeek: Add to chat"
SEND_TITLE = "Send to DeepSeek"

# A partial line of the answer waits this long for more before it is appended;
# a line break is appended at once (fewer, larger edits than one per token).
FLUSH_SECONDS = 0.05
# Tries to append before giving up, when the editor refuses or drops the edit.
APPEND_ATTEMPTS = 6
# How long to wait for the editor's didChange echoing an applied edit (Neovim
# sends it after a 150 ms debounce), and after a refused one for the change
# that made it stale.
ECHO_SECONDS = 2.0
REFUSED_SECONDS = 0.5
# How long to wait for the didOpen of a document opened with showDocument (an
# editor sends it as it opens the document: Neovim before it answers, VS Code
# at once; one that does not sync Markdown never does, and the file is used).
OPEN_SECONDS = 1.5
# Characters typed at the very end after an append that still count it as there.
_TYPED_AFTER = 200
# Characters of the chat before an append that identify where it went.
_CONTEXT = 64


@dataclass(frozen=True)
class Outcome:
    status: str  # answered, cut_off, cancelled, failed, refused, busy; applied, changed, unchanged
    message: str

    def as_result(self) -> dict:
        return {"status": self.status, "message": self.message}


@dataclass(frozen=True)
class ChatFile:
    """A chat document: its URI as the server names it, and its file."""

    uri: str
    path: Path | None  # None: not a file (an untitled buffer), only ever edited open

    @property
    def key(self) -> str:
        return str(self.path) if self.path is not None else self.uri

    @classmethod
    def of(cls, uri: str) -> ChatFile:
        return cls(uri, _path_of(uri))

    @classmethod
    def at(cls, path: Path) -> ChatFile:
        return cls(path.as_uri(), path)


class AppendFailed(Exception):
    """The chat could not be appended to; str() says why."""


def setup(server) -> None:
    server.chat_answers = {}  # ChatFile.key -> the progress token of the answer streaming in
    server.chat_locks = {}  # ChatFile.key -> asyncio.Lock: one change to a chat at a time
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
        token = f"ds-lsp/chat/{uuid.uuid4()}"
        task = ls.tasks.start(
            _send(ls, ChatFile.of(argument["uri"]), token),
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
        outcome = await _apply(ls, ChatFile.of(argument["uri"]), argument["position"].line)
        return _tell(ls, outcome).as_result()

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))
    def code_lens(ls, params: types.CodeLensParams) -> list[types.CodeLens] | None:
        return _code_lenses(ls, params.text_document.uri)


# ---------------------------------------------------------------- where the chat is


def _path_of(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def _workspace_root(ls) -> Path | None:
    try:
        root = ls.workspace.root_path
    except RuntimeError:  # before initialize
        return None
    return Path(root) if root else None


def _state_dir() -> Path:
    return chat.default_state_dir(os.environ)


def _current_chat(ls, fresh: bool = False) -> ChatFile:
    place = chat.new_chat_path if fresh else chat.chat_path
    return ChatFile.at(place(_workspace_root(ls), ls.settings.chat_location, _state_dir()))


def is_chat(ls, uri: str) -> bool:
    """Whether `uri` is one of this workspace's chats, in either location."""
    path = _path_of(uri)
    if path is None:
        return False
    root, state = _workspace_root(ls), _state_dir()
    return any(chat.is_chat_file(path, root, place, state) for place in ("state", "workspace"))


def _open_document(ls, target: ChatFile) -> Document | None:
    """The chat as the editor has it open, whatever way the editor spells its URI."""
    document = ls.documents.get(target.uri)
    if document is not None or target.path is None:
        return document
    for document in ls.documents.values():
        if _path_of(document.uri) == target.path:
            return document
    return None


def _lock(ls, target: ChatFile) -> asyncio.Lock:
    return ls.chat_locks.setdefault(target.key, asyncio.Lock())


def _read(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", newline="") as file:
            return file.read()
    except FileNotFoundError:
        return None


def _write(path: Path, text: str) -> None:
    """Replace the file's text atomically (a reader never sees half of it)."""
    path = path.resolve()  # through a symlink: replace its target, keep the link
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _text_of(ls, target: ChatFile) -> str | None:
    document = _open_document(ls, target)
    if document is not None:
        return document.text
    return _read(target.path) if target.path is not None else None


def _end_of(ls, text: str) -> types.Range:
    """An empty range at the end of `text`, where the question goes: in front of its
    final line break (Neovim's last line is the one that break ends; a cursor on the
    line after it is outside the buffer)."""
    offset = len(text) - len(_final_break(text))
    end = IndexedText.of(text).position_at(offset, ls.documents.encoding)
    return types.Range(end, end)


async def _until(condition: Callable[[], object], timeout: float) -> bool:
    """Whether `condition()` came true within `timeout` seconds (checked every 10 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def _show(ls, uri: str, selection: types.Range | None) -> bool:
    """Open `uri` in the editor (window/showDocument); False where that is not possible."""
    caps = ls.client_capabilities
    window = caps.window if caps else None
    if not (window and window.show_document and window.show_document.support):
        return False
    params = types.ShowDocumentParams(uri=uri, take_focus=True, selection=selection)
    try:
        result = await ls.window_show_document_async(params)
    except Exception as exc:  # the client answered with an error
        log.debug("showDocument %s failed: %s", uri, exc)
        return False
    return bool(result and result.success)


async def _show_and_wait(ls, target: ChatFile, selection: types.Range | None) -> Document | None:
    """Show the document and, if the editor did not have it open, wait for its didOpen."""
    document = _open_document(ls, target)
    uri = document.uri if document is not None else target.uri
    if await _show(ls, uri, selection) and document is None:
        await _until(lambda: _open_document(ls, target), OPEN_SECONDS)
    return _open_document(ls, target)


# ---------------------------------------------------------------- appending


class _Appender:
    """Appends to one chat, for one command: to the editor's buffer while it has the
    chat open, else to the file. Once an append went to the open buffer, a chat
    closed meanwhile fails the next one instead of writing to a file that lacks what
    the buffer had (the editor's to save or drop).

    Appends keep the text's final line break last (see _append_edit): Neovim's
    buffer is lines, and its text always ends with one ('eol'). So after an append
    that ended mid-line (`dangling`), "It " after "...\n" reads "...\nIt \n", and
    the next append goes in front of that final line break, continuing the line."""

    def __init__(self, ls, target: ChatFile, label: str) -> None:
        self._ls = ls
        self._target = target
        self._label = label
        self.went_to_editor = False
        self._dangling = False  # the last append did not end with a line break

    async def __call__(self, render: Callable[[str], str]) -> str:
        """Append `render(text)` at the end of the chat's current text; returns the
        chat's text afterwards, as far as the server knows it. The caller holds the
        chat's lock. Raises AppendFailed (and OSError for the file)."""
        failure = "the editor did not apply the edit"
        for _ in range(APPEND_ATTEMPTS):
            document = _open_document(self._ls, self._target)
            if document is None:
                return self._to_file(render)
            text = document.text
            brk = _final_break(text)
            # The text as the answer left it: less the line break Neovim added, if so.
            own = text[: len(text) - len(brk)] if self._dangling and brk else text
            addition = render(own)
            if not addition:
                return text
            self.went_to_editor = True
            was_dangling = self._dangling
            refused = await _append_edit(self._ls, document, own, addition, self._label)
            if refused:
                failure = refused
                await self._next_version(document.version, REFUSED_SECONDS)
                continue
            self._dangling = not addition.endswith(("\n", "\r"))
            expected = own + addition
            echoed = await self._next_version(document.version, ECHO_SECONDS)
            if echoed is None:  # no echo (yet): take the editor at its word
                log.debug("%s: the editor applied an edit but sent no didChange", self._label)
                return expected
            marker = expected[-(_CONTEXT + len(addition)) :]
            if marker in echoed.text[-(len(marker) + _TYPED_AFTER) :]:
                return echoed.text
            # Neovim answers `applied` to an edit made for an older version, and drops it.
            log.debug("%s: the editor dropped an edit; appending again", self._label)
            self._dangling = was_dangling
            failure = "the editor dropped the edit"
        raise AppendFailed(failure)

    def _to_file(self, render: Callable[[str], str]) -> str:
        if self.went_to_editor or self._target.path is None:
            raise AppendFailed("the chat was closed in the editor")
        text = _read(self._target.path) or ""
        addition = render(text)
        if addition:
            _write(self._target.path, text + addition)
        return text + addition

    async def _next_version(self, version: int, timeout: float) -> Document | None:
        """The chat once the server's copy is past `version` (None if it did not move)."""

        def moved() -> bool:
            document = _open_document(self._ls, self._target)
            return document is None or document.version != version

        await _until(moved, timeout)
        document = _open_document(self._ls, self._target)
        return document if document is not None and document.version != version else None


def _final_break(text: str) -> str:
    for ending in ("\r\n", "\n", "\r"):
        if text.endswith(ending):
            return ending
    return ""


async def _append_edit(ls, document: Document, own: str, addition: str, label: str) -> str:
    """Make the text `own + addition` with one versioned edit at the end of the
    document (whose text is `own`, or `own` and the line break Neovim ends every
    buffer with); "" when the editor applied it, else why not.

    The edit never touches the text's final line break: it inserts in front of it,
    leaving out the addition's own last line break, which that one then is (and if
    the addition ends mid-line, that line break follows it, as Neovim has it). An
    edit over the final line break makes Neovim drop the last line afterwards
    ('fixeol'), and it reports that in a later didChange than the edit. (apply_text
    would make the edit minimal again, so it is not used.)"""
    text = document.text
    brk = _final_break(text)
    position = len(text) - len(brk)
    new_text = addition
    if brk and new_text.endswith(brk):
        new_text = new_text[: -len(brk)]
    if own == text and brk:
        new_text = brk + new_text  # the final line break was the text's own
    edit = types.TextEdit(
        range=types.Range(document.position_at(position), document.position_at(position)),
        new_text=new_text,
    )
    return await send_edits(ls, document, [edit], label)


# ---------------------------------------------------------------- open, new


async def _open_chat(ls, fresh: bool) -> dict:
    target = _current_chat(ls, fresh)
    async with _lock(ls, target):
        document = _open_document(ls, target)
        text = document.text if document is not None else _read(target.path)
        if text is None:
            text = chat.new_chat_text(_workspace_name(ls))
            try:
                _write(target.path, text)
            except OSError as exc:
                return _refusal(ls, f"could not create the chat {target.path}: {exc}")
            log.info("created the chat %s", target.path)
        # Where the question goes, unless the editor has the chat open (its cursor stays).
        selection = _end_of(ls, text) if document is None else None
        document = await _show_and_wait(ls, target, selection)
    return {"uri": document.uri if document is not None else target.uri}


def _workspace_name(ls) -> str:
    root = _workspace_root(ls)
    return root.name if root is not None and root.name else "no workspace"


def _refusal(ls, message: str) -> dict:
    """A chat command that did nothing: said to the user, and answered without a uri."""
    _tell(ls, Outcome("refused", message))
    return {"status": "refused", "message": message}


# ---------------------------------------------------------------- add to chat


async def _add_to_chat(ls, uri: str, selected: types.Range) -> dict:
    source = ls.documents.get(uri)
    if source is None:
        return _refusal(ls, f"{file_name_of(uri)} is not open in the editor: open it first")
    if is_chat(ls, uri):
        return _refusal(ls, "that is the chat itself: select code in a file to add it")
    start, end = _selected_lines(source, selected)
    lines = split_lines(source.text)
    code = "".join(lines[start : end + 1])
    if not code.strip():
        return _refusal(ls, "the selection is empty: select the code to add to the chat")
    definition = enclosing_definition(source, start, end)
    block = chat.selection_block(
        chat.reference_display(uri, _workspace_root(ls)),
        uri,
        start + 1,
        end + 1,
        definition.name if definition else None,
        _fence_language(source),
        code,
    )
    target = _current_chat(ls)
    if target.key in ls.chat_answers:
        return _refusal(
            ls,
            "an answer is streaming into the chat: wait for it (or cancel it), then add the code",
        )
    async with _lock(ls, target):
        new = _open_document(ls, target) is None and _read(target.path) is None
        # A new chat's text and the block go in one write.
        preamble = chat.new_chat_text(_workspace_name(ls)) if new else ""
        append = _Appender(ls, target, "DeepSeek: add to chat")
        try:
            text = await append(
                lambda current: preamble + chat.selection_addition(preamble + current, block)
            )
        except (AppendFailed, OSError) as exc:
            return _refusal(ls, f"could not add the code to the chat: {exc}")
        document = await _show_and_wait(ls, target, _end_of(ls, text))
    log.info("added %s:%d-%d to the chat", file_name_of(uri), start + 1, end + 1)
    return {"uri": document.uri if document is not None else target.uri}


def _selected_lines(document: Document, selected: types.Range) -> tuple[int, int]:
    """The lines the range touches (one ending at column 0 leaves that line out, as
    editors select whole lines); with nothing selected, the function around it, else
    its line."""
    start = document.position_at(document.offset_at(selected.start))
    end = document.position_at(document.offset_at(selected.end))
    if start == end:
        definition = enclosing_definition(document, start.line)
        if definition is not None:
            return definition.start_line, definition.end_line
        return start.line, start.line
    last = end.line - 1 if end.character == 0 and end.line > start.line else end.line
    return start.line, max(start.line, last)


def _fence_language(document: Document) -> str | None:
    """The code block's tag: the language ds-lsp knows it as, else the editor's id."""
    if document.language:
        return document.language
    language_id = document.language_id.strip()
    return language_id if language_id and language_id != "plaintext" else None


# ---------------------------------------------------------------- send


def _budget(settings) -> int:
    """Tokens the messages may take: the context less the answer's room, and never
    less than a quarter of the context (a max_tokens as large as n_ctx)."""
    return max(settings.n_ctx - settings.max_tokens, settings.n_ctx // 4)


async def _send(ls, target: ChatFile, token: str) -> Outcome:
    if target.key in ls.chat_answers:
        return _tell(
            ls, Outcome("busy", "an answer is still streaming into this chat: wait, or cancel it")
        )
    text = _text_of(ls, target)
    if text is None:
        return _tell(ls, Outcome("failed", f"the chat {file_name_of(target.uri)} does not exist"))
    parsed = chat.parse_chat(text)
    try:
        question = chat.pending_question(parsed)
        messages = chat.to_messages(parsed, _budget(ls.settings))
    except chat.ChatError as exc:
        return _tell(ls, Outcome("refused", f"{exc}; nothing was sent"))
    ls.chat_answers[target.key] = token
    try:
        answer = _Answer(ls, target, token, chat.question_text(question), text)
        return _tell(ls, await answer.run(messages))
    finally:
        ls.chat_answers.pop(target.key, None)


async def _to_the_end(task: asyncio.Task, on_cancel: Callable[[], None]):
    """Await `task` to its end even when the caller is cancelled meanwhile (each cancel
    calls `on_cancel`), so what it appends is never left half-known."""
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()  # raises, if the task itself was cancelled
            on_cancel()


class _Answer:
    """One answer streaming into the chat: the model is read by one task, the chat
    is appended to by another, so a cancel stops the model at once while the
    appends under way finish and what arrived is kept."""

    def __init__(self, ls, target: ChatFile, token: str, question: str, text: str) -> None:
        self._ls = ls
        self._target = target
        self._token = token
        self._question = question
        self._label = f"chat {file_name_of(target.uri)}"
        self._append = _Appender(ls, target, "DeepSeek: answer")
        self._newline = newline_of(text)
        # Where the heading will be (for dsLsp/reasoning), if nobody types meanwhile.
        heading = (text + chat.answer_heading(text)).count("\n") - 2
        self._heading_range = types.Range(
            types.Position(heading, 0), types.Position(heading, len(chat.ASSISTANT_HEADING))
        )
        self._pending = ""  # answer text not appended yet
        self._wake = asyncio.Event()
        self._started = False  # the model said something (reasoning or answer)
        self._answered = False  # a non-blank character of the answer arrived
        self._reader_done = False
        self._heading_added = False
        self._finish: FinishReason | None = None
        self._detail = ""
        self._error: str | None = None

    async def run(self, messages) -> Outcome:
        ls = self._ls
        progress = await begin_progress(ls, self._token, "DeepSeek is answering…", self._label)
        self._feed = ReasoningFeed(
            ls,
            self._target.uri,
            self._heading_range,
            self._token if progress else None,
            self._label,
        )
        settings = ls.settings
        request = ChatRequest(
            messages=messages,
            max_tokens=settings.max_tokens,
            reasoning="on",
            reasoning_budget=settings.reasoning_budget,
            temperature=settings.temperature,
            top_p=settings.top_p,
        )
        outcome = Outcome("cancelled", "the answer was stopped")
        cancelled = False
        reader = asyncio.ensure_future(self._read(ls.models.stream(request)))
        writer = asyncio.ensure_future(self._write())

        def stop() -> None:
            nonlocal cancelled
            if not reader.done():  # a cancel after the model finished changes nothing
                cancelled = True
                reader.cancel()

        try:
            try:
                await _to_the_end(writer, stop)
            except (AppendFailed, OSError) as exc:
                reader.cancel()
                await _to_the_end(_quietly(reader), lambda: None)
                if self._pending:
                    log.info("%s: the answer's end, not added:\n%s", self._label, self._pending)
                outcome = Outcome("failed", f"could not add the answer to the chat: {exc}")
                return outcome
            await _to_the_end(_quietly(reader), stop)
            outcome = self._outcome(cancelled)
            finish = asyncio.ensure_future(self._conclude(outcome))
            try:
                await _to_the_end(finish, lambda: None)
            except (AppendFailed, OSError) as exc:
                outcome = Outcome(
                    "failed", f"could not add the end of the answer to the chat: {exc}"
                )
            return outcome
        finally:
            self._feed.finish()
            self._log_budget()
            if progress:
                ls.work_done_progress.end(
                    self._token, types.WorkDoneProgressEnd(message=outcome.status)
                )

    async def _read(self, stream) -> None:
        try:
            async for delta in stream:
                if delta.reasoning:
                    self._started = True
                    self._feed.feed(delta.reasoning)
                if delta.content:
                    self._take(delta.content)
                if delta.finish is not None:
                    self._finish, self._detail = delta.finish, delta.detail
                self._wake.set()
        except ModelError as exc:
            self._error = str(exc)
        except Exception as exc:  # a bug, not the model: say it, keep what arrived
            log.debug("%s: reading the model failed", self._label, exc_info=exc)
            self._error = f"{type(exc).__name__}: {exc}"
        finally:
            self._reader_done = True
            self._wake.set()
            with contextlib.suppress(Exception):
                await stream.aclose()

    def _take(self, content: str) -> None:
        content = content.replace("\r\n", "\n").replace("\r", "\n")
        if not self._answered:
            content = content.lstrip()  # the blank lines models put after their reasoning
            if not content:
                return
            self._answered = True
        self._started = True
        self._pending += content.replace("\n", self._newline)

    async def _write(self) -> None:
        """Append the heading, then the answer as it comes, until the model is done."""
        while True:
            if self._started and not self._heading_added:
                await self._locked_append(chat.answer_heading)
                self._heading_added = True
                continue
            if self._pending and self._heading_added:
                if "\n" not in self._pending and not self._reader_done:
                    await asyncio.sleep(FLUSH_SECONDS)  # a partial line: let it grow a little
                text, self._pending = self._pending, ""
                await self._locked_append(lambda _current, text=text: text)
                continue
            if self._reader_done:
                return
            self._wake.clear()
            await self._wake.wait()

    async def _locked_append(self, render: Callable[[str], str]) -> str:
        async with _lock(self._ls, self._target):
            return await self._append(render)

    def _outcome(self, cancelled: bool) -> Outcome:
        kept = "what arrived is kept in the chat, marked as cut off"
        untouched = "the chat is as it was"
        if cancelled or self._finish is FinishReason.CANCELLED:
            if not self._heading_added:
                return Outcome("cancelled", f"the answer was cancelled; {untouched}")
            return Outcome("cancelled", f"the answer was stopped; {kept}")
        if self._error is not None:
            where = kept if self._heading_added else f"{untouched}: send it again"
            return Outcome("failed", f"the model failed: {self._error}; {where}")
        detail = f" ({self._detail})" if self._detail else ""
        if self._finish is FinishReason.ERROR:
            where = kept if self._heading_added else untouched
            return Outcome(
                "failed", f"the model server ended the answer abnormally{detail}; {where}"
            )
        if self._finish is FinishReason.LENGTH:
            return Outcome(
                "cut_off",
                f"the answer was cut off{detail}: raise max_tokens (now "
                f"{self._ls.settings.max_tokens}) or reasoning_budget; {kept}",
            )
        if not self._answered:
            return Outcome("failed", "the model reasoned but gave no answer")
        return Outcome("answered", "the answer is in the chat")

    def _marker(self, outcome: Outcome) -> str | None:
        """Why the answer ends early, for its cut-off line; None when it finished."""
        if outcome.status == "answered":
            return None
        if outcome.status == "cancelled":
            return "cancelled"
        if self._error is not None:
            return f"the model failed: {self._error}"
        if self._finish is FinishReason.ERROR:
            return f"the model server ended the answer abnormally ({self._detail or 'no reason'})"
        if self._finish is FinishReason.LENGTH:
            return self._detail or f"max_tokens ({self._ls.settings.max_tokens}) reached"
        return "the model gave no answer"

    async def _conclude(self, outcome: Outcome) -> None:
        """The end of the answer: the cut-off line if it stopped early, the next
        `## You`, and the reasoning for the hover on the heading."""
        if not self._heading_added:
            return  # the model said nothing: nothing was added, nothing to end
        reason = self._marker(outcome)

        def ending(current: str) -> str:
            marker = chat.cut_off_marker(current, reason) if reason else ""
            return marker + chat.next_question_heading(current + marker)

        await self._locked_append(ending)
        self._add_note()

    def _add_note(self) -> None:
        """The reasoning, for the hover over the heading (the last `## DeepSeek`)."""
        document = _open_document(self._ls, self._target)
        text = document.text if document is not None else _text_of(self._ls, self._target)
        answers = [t for t in chat.parse_chat(text or "").turns if t.role == "assistant"]
        if not answers:
            return
        line = answers[-1].heading_line
        backend = self._ls.models.current
        question = " ".join(self._question.split())
        if len(question) > 80:
            question = question[:79] + "…"
        note = Note(
            self._feed.id,
            f"chat: {question}",
            backend.name if backend is not None else "the model",
            self._feed.text,
            line,
            line,
        )
        self._ls.notes.add(document.uri if document is not None else self._target.uri, note)

    def _log_budget(self) -> None:
        if not self._feed.text:
            return
        budget = self._ls.settings.reasoning_budget
        used = self._feed.tokens_used()
        if budget:
            log.info(
                "%s: reasoning used about %d of its %d-token budget", self._label, used, budget
            )
        else:
            log.info("%s: reasoning used about %d tokens (no budget)", self._label, used)


def _quietly(task: asyncio.Future) -> asyncio.Future:
    """`task`, whose own cancellation counts as its end (for _to_the_end)."""

    async def wait() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return asyncio.ensure_future(wait())


# ---------------------------------------------------------------- apply from chat


async def _apply(ls, target: ChatFile, line: int) -> Outcome:
    text = _text_of(ls, target)
    found = chat.answer_block_at(chat.parse_chat(text), line) if text is not None else None
    if found is None:
        return Outcome("refused", "there is no code block here that answers code added to the chat")
    reference = found.reference
    where = f"{reference.display}:{reference.start}-{reference.end}"
    if reference.start == reference.end:
        where = f"{reference.display}:{reference.start}"
    file = ChatFile.of(reference.uri)
    document = _open_document(ls, file)
    if document is None:
        if file.path is not None and not file.path.exists():
            return Outcome(
                "refused",
                f"{reference.display} no longer exists (deleted or moved); nothing was applied",
            )
        lines = types.Range(
            types.Position(max(reference.start - 1, 0), 0), types.Position(reference.end, 0)
        )
        document = await _show_and_wait(ls, file, lines)
        if document is None:
            return Outcome(
                "failed",
                f"{reference.display} is not open in the editor: open it, then apply again",
            )
    wanted = [line.rstrip() for line in reference.code.split("\n")]
    start = _locate(document, reference.start - 1, wanted)
    if start is None:
        return Outcome(
            "changed",
            f"{where} changed since it was added to the chat; nothing was applied. "
            "Add the code to the chat again and ask again",
        )
    end = start + len(wanted) - 1
    request = rewrite.EditRequest(
        file_name=reference.display,
        text=document.text,
        start_line=start,
        end_line=end,
        instruction=_question_answered(chat.parse_chat(text), line),
        language=document.language,
    )
    answer = chat.fenced(found.code, found.block.language or reference.language)
    try:
        _, new_text = rewrite.apply_answer(request, start, answer)
    except rewrite.EditFailed as exc:
        return Outcome("refused", str(exc))
    if new_text == document.text:
        return Outcome("unchanged", f"the code block is what {where} already holds")
    old_lines = split_lines(document.text)
    first = sum(len(x) for x in old_lines[:start])
    last = first + sum(len(x) for x in old_lines[start : end + 1])
    region = new_text[first : len(new_text) - (len(document.text) - last)]
    failure = await apply_text(ls, document, first, last, region, f"DeepSeek: apply to {where}")
    if failure:
        return Outcome("failed", failure)
    moved = f" (now lines {start + 1}-{end + 1})" if start + 1 != reference.start else ""
    return Outcome("applied", f"applied the chat's code to {where}{moved}")


def _locate(document: Document, start: int, wanted: list[str]) -> int | None:
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


def _question_answered(parsed: chat.Chat, line: int) -> str:
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
    if not is_chat(ls, uri):
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
    if found is not None:
        reference = found.reference
        span = (
            f"{reference.start}"
            if reference.start == reference.end
            else (f"{reference.start}-{reference.end}")
        )
        title = f"DeepSeek: Apply to {reference.display}:{span}"
        position = types.Position(params.range.start.line, 0)
        argument = {"uri": uri, "position": ls.protocol._converter.unstructure(position)}
        actions.append(
            types.CodeAction(
                title=title,
                kind=types.CodeActionKind.RefactorRewrite,
                command=types.Command(title=title, command=APPLY_COMMAND, arguments=[argument]),
            )
        )
    if ChatFile.of(uri).key not in ls.chat_answers:
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
    if document is None or not is_chat(ls, uri) or ChatFile.of(uri).key in ls.chat_answers:
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


# ---------------------------------------------------------------- messages


def _tell(ls, outcome: Outcome) -> Outcome:
    """Show the user what happened, unless they see it in the document anyway."""
    if outcome.status in ("answered", "applied"):
        log.info("%s", outcome.message)
        return outcome
    quiet = outcome.status in ("cancelled", "unchanged")
    log.warning("chat %s: %s", outcome.status, outcome.message)
    ls.window_show_message(
        types.ShowMessageParams(
            type=types.MessageType.Info if quiet else types.MessageType.Warning,
            message=f"DeepSeek: {outcome.message}",
        )
    )
    return outcome
