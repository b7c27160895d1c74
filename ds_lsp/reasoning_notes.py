"""Where the model's reasoning belongs in a document: the lines an edit wrote
(or a chat answer's heading), kept in place while the user goes on typing.

Hover shows a note over its lines; `dsLsp.showReasoning` returns it whole.
A note follows the text: lines inserted or deleted above it move it, edits
inside it grow or shrink it, and it disappears when its lines are deleted.

A note is added before the editor has applied the edit it describes, so it
waits ("pending") until the document's text is the one the edit produces:
editors echo an applied edit as `didChange`, at a moment of their choosing.

Pure logic: line numbers and texts in, no LSP.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Note:
    id: str
    instruction: str
    model: str
    reasoning: str
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, inclusive


@dataclass(frozen=True)
class LineChange:
    """One `didChange` content change, by lines: `None` range means the whole text."""

    start_line: int
    start_character: int
    end_line: int
    end_character: int
    text: str


@dataclass
class _Notes:
    active: list[Note] = field(default_factory=list)
    pending: list[tuple[Note, str]] = field(default_factory=list)  # (note, text awaited)


class ReasoningNotes:
    def __init__(self) -> None:
        self._by_uri: dict[str, _Notes] = {}

    def add(self, uri: str, note: Note, once_text_is: str | None = None) -> None:
        """Keep `note`; with `once_text_is`, only from when the document has that text."""
        notes = self._by_uri.setdefault(uri, _Notes())
        if once_text_is is None:
            notes.active.append(note)
        else:
            notes.pending.append((note, once_text_is))

    def text_is(self, uri: str, text: str) -> None:
        """The document now has `text`: the notes waiting for it become active."""
        notes = self._by_uri.get(uri)
        if notes is None:
            return
        waiting = []
        for note, awaited in notes.pending:
            if awaited == text:
                notes.active.append(note)
            else:
                waiting.append((note, awaited))
        notes.pending = waiting

    def tracks(self, uri: str) -> bool:
        """Whether any note (active or pending) belongs to `uri`: every keystroke asks."""
        return uri in self._by_uri

    def changed(self, uri: str, changes: list[LineChange | None], text: str) -> None:
        """The document changed (in order); `text` is what it is now."""
        notes = self._by_uri.get(uri)
        if notes is None:
            return
        for change in changes:
            if change is None:  # the whole text replaced: no line can be followed
                notes.active = []
                continue
            notes.active = [moved for note in notes.active if (moved := _follow(note, change))]
        self.text_is(uri, text)

    def at(self, uri: str, line: int) -> Note | None:
        """The newest note over `line`."""
        notes = self._by_uri.get(uri)
        found = [n for n in notes.active if n.start_line <= line <= n.end_line] if notes else []
        return found[-1] if found else None

    def drop(self, uri: str, note_id: str) -> None:
        """Forget one note, active or pending (an edit that did not land)."""
        notes = self._by_uri.get(uri)
        if notes is None:
            return
        notes.active = [note for note in notes.active if note.id != note_id]
        notes.pending = [(note, text) for note, text in notes.pending if note.id != note_id]
        if not notes.active and not notes.pending:
            del self._by_uri[uri]

    def forget(self, uri: str) -> None:
        """Forget every note of a document (it was closed)."""
        self._by_uri.pop(uri, None)


def _follow(note: Note, change: LineChange) -> Note | None:
    """Where `note` is after `change`; None when its lines were deleted."""
    added = change.text.count("\n") + change.text.count("\r") - change.text.count("\r\n")
    delta = added - (change.end_line - change.start_line)
    if change.end_line < note.start_line or (
        change.end_line == note.start_line and change.end_character == 0 and delta != 0
    ):
        # Wholly above (an insertion at column 0 of its first line is above it too).
        return replace(note, start_line=note.start_line + delta, end_line=note.end_line + delta)
    if change.start_line > note.end_line:
        return note
    covers_start = change.start_line < note.start_line or (
        change.start_line == note.start_line and change.start_character == 0
    )
    if covers_start and change.end_line > note.end_line:
        return None  # all its lines deleted or replaced: the reasoning is about code gone
    start = min(note.start_line, change.start_line)
    end = max(start, note.end_line + delta)
    return replace(note, start_line=start, end_line=end)
