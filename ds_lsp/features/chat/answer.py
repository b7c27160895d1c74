"""Sending a chat: its turns go to the model, the answer streams into the chat.

One task reads the model (reasoning to a ReasoningFeed: the log, the progress,
`dsLsp/reasoning`), another appends (appender.py): the `## DeepSeek` heading when
the model first says something, then the answer a line at a time or every 50 ms.
The model's text goes in through chat_writing.AnswerText, so no line of it can read as
a turn heading: what the model writes never becomes the user's words. A cancel
cancels only the reader, so the stream closes at once while the appends under
way finish; then the cut-off line and the next `## You` go in, and the
reasoning is put on the heading for hover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from lsprotocol import types

from ds_lsp import chat, chat_writing
from ds_lsp.backends.base import ChatRequest, FinishReason, ModelError
from ds_lsp.documents import file_name_of
from ds_lsp.features.chat import storage
from ds_lsp.features.chat.appender import Appender, AppendFailed
from ds_lsp.features.chat.storage import ChatFile
from ds_lsp.features.lsp_edits import Outcome, tell
from ds_lsp.features.progress import begin_progress
from ds_lsp.features.reasoning_feed import ReasoningFeed
from ds_lsp.fs import UnsafePath
from ds_lsp.reasoning_notes import Note
from ds_lsp.text import newline_of

log = logging.getLogger(__name__)

# A partial line of the answer waits this long for more before it is appended;
# a line break is appended at once (fewer, larger edits than one per token).
FLUSH_SECONDS = 0.05


def budget(settings) -> int:
    """Tokens the messages may take: the context less the answer's room, and never
    less than a quarter of the context (a max_tokens as large as n_ctx)."""
    return max(settings.n_ctx - settings.max_tokens, settings.n_ctx // 4)


async def send(ls, target: ChatFile, token: str) -> Outcome:
    """Send the chat's pending question; the answer streams into the chat."""
    async with storage.using(ls, target) as state:
        if state.answer is not None:
            busy = "an answer is still streaming into this chat: wait, or cancel it"
            return tell(ls, Outcome("busy", busy), "chat")
        try:
            text = storage.text_of(ls, target)
        except UnsafePath as exc:
            return tell(ls, Outcome("refused", f"{exc}; nothing was sent"), "chat")
        except storage.OutOfSync as exc:
            return tell(ls, Outcome("failed", f"{exc}; nothing was sent"), "chat")
        if text is None:
            missing = f"the chat {file_name_of(target.uri)} does not exist"
            return tell(ls, Outcome("failed", missing), "chat")
        parsed = chat.parse_chat(text)
        try:
            question = chat.pending_question(parsed)
            messages = chat.to_messages(parsed, budget(ls.settings))
        except chat.ChatError as exc:
            return tell(ls, Outcome("refused", f"{exc}; nothing was sent"), "chat")
        state.answer = token
        try:
            answer = Answer(ls, target, state.lock, token, chat.question_text(question), text)
            return tell(ls, await answer.run(messages), "chat")
        finally:
            state.answer = None


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


class Answer:
    """One answer streaming into the chat: the model is read by one task, the chat
    is appended to by another, so a cancel stops the model at once while the
    appends under way finish and what arrived is kept."""

    def __init__(
        self, ls, target: ChatFile, lock: asyncio.Lock, token: str, question: str, text: str
    ) -> None:
        self._ls = ls
        self._target = target
        self._lock = lock
        self._text = chat_writing.AnswerText()  # no line of the model's becomes a heading
        self._token = token
        self._question = question
        self._label = f"chat {file_name_of(target.uri)}"
        self._append = Appender(ls, target, "DeepSeek: answer")
        self._newline = newline_of(text)
        # Where the heading will be (for dsLsp/reasoning), if nobody types meanwhile.
        heading = (text + chat_writing.answer_heading(text)).count("\n") - 2
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
            self._pending += self._text.finish().replace("\n", self._newline)
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
        self._pending += self._text.feed(content).replace("\n", self._newline)

    async def _write(self) -> None:
        """Append the heading, then the answer as it comes, until the model is done."""
        while True:
            if self._started and not self._heading_added:
                await self._locked_append(chat_writing.answer_heading)
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
        async with self._lock:
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
            marker = chat_writing.cut_off_marker(current, reason) if reason else ""
            return marker + chat_writing.next_question_heading(current + marker)

        await self._locked_append(ending)
        self._add_note()

    def _add_note(self) -> None:
        """The reasoning, for the hover over the heading (the last `## DeepSeek`)."""
        document = storage.open_document(self._ls, self._target)
        try:
            text = storage.text_of(self._ls, self._target)
        except (OSError, storage.OutOfSync):  # no hover, then: the answer is in
            return
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
