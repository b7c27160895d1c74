"""Turn a model's answer into the ghost text that goes at the cursor, as it streams.

Pure text logic (no I/O, no LSP). `SuggestionStream` reads the answer as it
arrives and says when the suggestion is complete, so the caller can stop the
model early; `clean_suggestion` does the same on a whole answer. The answer
goes through these steps, each one streaming:

1. Reasoning and special tokens (`reasoning.ReasoningSplitter`, answer only):
   a leading `<think>...</think>` block or a lone leading `</think>` is dropped,
   leaked special tokens at the edges too. A special token, a FIM marker or a
   think tag later in the answer ends the suggestion: the model went off the rails.
2. Fences: a fence line (```` ```lang ```` or `~~~`) before the first code is
   dropped; any later fence line ends the suggestion.
3. Echo: an answer that starts by repeating the cursor line up to the cursor
   (or up to three lines before it, ending with it) loses that repetition. Lines
   are compared without their indentation; the cursor line's text must match.
4. Leading whitespace: on a blank cursor line the cursor already stands at the
   indentation, so leading blank lines and indentation go; after a space, leading
   spaces go.
5. Lines and brackets:
   - single-line mode, or text after the cursor on its line: stop at the end of
     the first line;
   - a closing bracket that closes nothing opened in the suggestion, nor a
     bracket left open before the cursor (and not closed after it), ends the
     suggestion before it: the closer is already in the file, or it is wrong.
     Strings (one line long) and line comments are skipped when counting;
   - multi-line after a line that opens a block: the suggestion starts on a new
     line, even when the answer does not (an indented line, code after a fence);
   - multi-line: each later line keeps the model's indentation relative to the
     cursor line, re-based on the file's. How the model indented the cursor line
     is known from an echo of it, or on a blank line from the answer's first
     line; otherwise the first body line tells: deeper than the cursor line, the
     model indented like the file; less deep, it started from column 0; not
     indented at all, the body gets one level (4 columns, a tab in a tab file);
   - multi-line: a line that leaves the block ends the suggestion (below the
     cursor line's indentation; after a line that opens a block, down to it),
     unless it starts with a bracket (`}`, `) {`);
   - a line that repeats the next non-blank line after the cursor (outside any
     bracket the suggestion opened) ends the suggestion before it (Continue's
     "stop at similar line"): the model has reached the code that follows;
   - a line that repeats a line of the prompt's comment header (`# Path: x.py`)
     ends the suggestion before it: prompt furniture is never shown.
6. At the end: trailing whitespace and blank lines go; in the middle of a line,
   a tail that copies the start of the text after the cursor goes: all of that
   text, when the answer ran to the line's end; or its start, when the answer was
   cut at the closer that follows that start, or when it is only quotes and
   separators (`"`, `;`). A copy whose closer closes a bracket the suggestion
   opened stays (`f(` + `g(1)` before `)`). A suggestion with nothing visible is "".

Guarantee: however the answer is chunked, `SuggestionStream(ctx)` fed the chunks
(until `feed` returns False, or all of them) has `text == clean_suggestion(answer,
ctx)`. Each step decides only from the text seen so far and holds back just what
is still undecided (a possible tag, fence or echo; a line's indentation), so a
stop is decided at the same character either way. `text` read earlier is what
the suggestion would be if the answer ended there. Clean an answer once: a
cleaned suggestion is no model answer (its lines are re-based already).

Steps 5 and 6 are in suggestion_lines.py; reuse with no model call (the cache,
typed-ahead) is in suggestion_cache.py.
"""

from __future__ import annotations

import copy
import re

from ds_lsp.completion_prompts import next_line_may_follow
from ds_lsp.context.gather import CompletionContext
from ds_lsp.reasoning import CLOSE_TAG, OPEN_TAG, SPECIAL_TOKENS, ReasoningSplitter
from ds_lsp.suggestion_lines import Lines, indentation_of, opens_block, tidy

# Lines before the cursor, the cursor line included, that an echo may repeat.
ECHO_MAX_LINES = 3

# Fill-in-the-middle models' own markers (Qwen2.5-Coder, DeepSeek-Coder, StarCoder, CodeLlama).
_FIM_MARKERS = (
    "<|file_sep|>",
    "<|repo_name|>",
    "<｜fim▁begin｜>",
    "<｜fim▁hole｜>",
    "<｜fim▁end｜>",
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    "<fim_pad>",
    "<file_sep>",
    "<EOT>",
)
_STOP_TOKENS = (*SPECIAL_TOKENS, *_FIM_MARKERS, OPEN_TAG, CLOSE_TAG)
_STOP_TOKEN = re.compile("|".join(re.escape(token) for token in _STOP_TOKENS))
_STOP_TOKEN_STARTS = frozenset(
    token[:end] for token in _STOP_TOKENS for end in range(1, len(token))
)
_LONGEST_STOP_TOKEN = max(map(len, _STOP_TOKENS))
_FENCES = ("```", "~~~")


# ---------------------------------------------------------------- the public API


def clean_suggestion(raw: str, context: CompletionContext) -> str:
    """The ghost text for a whole answer: see the module docstring for the rules."""
    stream = SuggestionStream(context)
    stream.feed(raw)
    return stream.text


class SuggestionStream:
    """Filters a streaming answer as it arrives; `feed` is False once it is complete."""

    def __init__(self, context: CompletionContext, continues_text: bool = False) -> None:
        """`continues_text`: the model goes on from the file's own text (a continuation
        or FIM prompt), so its later lines are indented as in the file."""
        self._context = context
        self._continues_text = continues_text
        self._blank_line = not context.line_prefix.strip()
        after_space = context.line_prefix[-1:] in (" ", "\t")
        self._echo = _Echo(_echo_candidates(context))
        self._lead = _Lead(
            drop_line_breaks=self._blank_line,
            drop_spaces=self._blank_line or (after_space and not opens_block(context)),
        )
        self._lines = Lines(
            context,
            frame=self._model_indentation,
            next_line=continues_text and next_line_may_follow(context),
        )
        self._steps = [_Answer(), _Fences(), self._echo, self._lead, self._lines]
        self._complete = False
        self._text: str | None = ""

    def feed(self, text: str) -> bool:
        """Take the next piece of the answer; False once the suggestion is complete."""
        if not self._complete:
            self._push(0, text, final=False)
            self._text = None
        return not self._complete

    @property
    def complete(self) -> bool:
        return self._complete

    @property
    def text(self) -> str:
        """The cleaned suggestion so far: what it would be if the answer ended now."""
        if self._text is None:
            if self._complete:
                self._text = tidy(self._lines, self._context)
            else:
                ended = copy.deepcopy(self, {id(self._context): self._context})
                ended._push(0, "", final=True)
                self._text = tidy(ended._lines, self._context)
        return self._text

    def _model_indentation(self) -> str | None:
        """How the model indented the cursor line: as the file does when it continues
        the file's text; else known from an echo of it, or on a blank cursor line from
        the answer's first line."""
        if self._continues_text:
            return indentation_of(self._context.line_prefix)
        if self._echo.frame is not None:
            return self._echo.frame
        return self._lead.dropped_indent if self._blank_line else None

    def _push(self, first: int, text: str, final: bool) -> None:
        """Pass `text` through the steps from `first` on; a step that cuts the answer
        completes the suggestion, and the steps after it get their held text out."""
        for index, step in enumerate(self._steps[first:], start=first):
            text = step.feed(text, final)
            if step.done and not final:
                self._complete = True
                self._push(index + 1, text, final=True)
                return


# ---------------------------------------------------------------- steps 1-4


class _Answer:
    """Step 1: the answer without reasoning; a later special token or tag ends it."""

    def __init__(self) -> None:
        self._splitter = ReasoningSplitter(open=False)
        self._held = ""  # what may still become a token
        self.done = False

    def feed(self, text: str, final: bool) -> str:
        pieces = self._splitter.feed(text) if text else []
        if final:
            pieces += self._splitter.finish()
        text = self._held + "".join(piece for kind, piece in pieces if kind == "answer")
        match = _STOP_TOKEN.search(text)
        if match:
            self.done = True
            self._held = ""
            return text[: match.start()]
        keep = 0 if final else _token_start_length(text)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep]


def _token_start_length(text: str) -> int:
    """Length of the end of `text` that may still become a stop token."""
    for start in range(max(0, len(text) - _LONGEST_STOP_TOKEN + 1), len(text)):
        if text[start] == "<" and text[start:] in _STOP_TOKEN_STARTS:
            return len(text) - start
    return 0


def _is_fence(line: str) -> bool:
    return line.startswith(_FENCES)


def _may_become_fence(partial_line: str) -> bool:
    return any(fence.startswith(partial_line) for fence in _FENCES)


class _Fences:
    """Step 2: drop an opening fence line; a later fence line ends the suggestion."""

    def __init__(self) -> None:
        self._pending = ""  # text not decided yet
        self._started = False  # the first visible line was seen
        self._line_start = True  # the pending text starts a line
        self.done = False

    def feed(self, text: str, final: bool) -> str:
        self._pending += text
        out: list[str] = []
        while self._pending and not self.done:
            if not self._started:
                head = self._pending.lstrip()
                if not head:
                    break  # only blank so far
                line, newline, rest = head.partition("\n")
                if _is_fence(line):
                    if not newline and not final:
                        break  # the fence line's language tag may go on
                    self._pending, self._started = rest, True
                    continue
                if _may_become_fence(line) and not newline and not final:
                    break
                self._started = True
                continue
            if self._line_start:
                line, newline, _ = self._pending.partition("\n")
                visible = line.lstrip(" \t")
                if _is_fence(visible):
                    self.done = True
                    break
                if _may_become_fence(visible) and not newline and not final:
                    break
            line, newline, self._pending = self._pending.partition("\n")
            out.append(line + newline)
            self._line_start = bool(newline)
        if final:
            self._pending = ""  # blank lines only, or a cut: nothing to show
        return "".join(out)


def _echo_candidates(context: CompletionContext) -> list[list[str]]:
    """The line sequences ending at the cursor that an answer may repeat, longest first."""
    before = context.prefix.split("\n")[:-1]
    candidates = []
    for count in range(ECHO_MAX_LINES, 0, -1):
        if count - 1 > len(before):
            continue
        lines = [*before[len(before) - (count - 1) :], context.line_prefix]
        if lines[0].strip():  # a blank first line adds nothing to a shorter candidate
            candidates.append(lines)
    return candidates


_MAYBE = "maybe"


class _Echo:
    """Step 3: drop a leading repetition of the text before the cursor."""

    def __init__(self, candidates: list[list[str]]) -> None:
        self._candidates = candidates
        self._pending = ""
        self._decided = not candidates
        # The model's indentation of the cursor line, when it repeated that line.
        self.frame: str | None = None
        self.done = False

    def feed(self, text: str, final: bool) -> str:
        if self._decided:
            return text
        self._pending += text
        # Leading blank lines are not part of an echo.
        lead = len(self._pending) - len(self._pending.lstrip())
        lead = self._pending.rfind("\n", 0, lead) + 1
        answer = self._pending[lead:]
        for candidate in self._candidates:
            found = _match_echo(answer, candidate, final)
            if found == _MAYBE:
                return ""  # wait: this longer echo may still complete
            if found is not None:
                end, self.frame = found
                self._decided = True
                return answer[end:]
        self._decided = True
        return self._pending


def _match_echo(answer: str, candidate: list[str], final: bool) -> tuple[int, str] | str | None:
    """(end of the echo in `answer`, the model's cursor-line indentation), _MAYBE while
    `answer` may still turn into this echo, or None."""
    lines = answer.split("\n")
    position = 0
    for index, wanted in enumerate(candidate):
        if index >= len(lines):
            return None if final else _MAYBE
        line = lines[index]
        complete = index < len(lines) - 1 or final
        if index < len(candidate) - 1:
            if complete and line.strip() != wanted.strip():
                return None
            if not complete:
                return _MAYBE if wanted.strip().startswith(line.strip()) else None
            position += len(line) + 1
            continue
        # The cursor line: its text up to the cursor, then the suggestion.
        wanted, said = wanted.lstrip(), line.lstrip()
        indentation = line[: len(line) - len(said)]
        if not said and not complete:
            return _MAYBE
        if said and said.startswith(wanted):
            return position + len(indentation) + len(wanted), indentation
        if wanted.startswith(said) and not complete:
            return _MAYBE
        return None
    return None


class _Lead:
    """Step 4: drop leading whitespace the cursor's position already provides."""

    def __init__(self, drop_line_breaks: bool, drop_spaces: bool) -> None:
        self._characters = " \t\r\n" if drop_line_breaks else " \t" if drop_spaces else ""
        self._pending = ""
        self._decided = not self._characters
        self.dropped_indent: str | None = None  # the dropped indentation of the first line
        self.done = False

    def feed(self, text: str, final: bool) -> str:
        if self._decided:
            return text
        self._pending += text
        rest = self._pending.lstrip(self._characters)
        if not rest:
            return ""  # whitespace only so far (at the end: nothing)
        dropped = self._pending[: len(self._pending) - len(rest)]
        self.dropped_indent = dropped[dropped.rfind("\n") + 1 :].replace("\r", "")
        self._decided = True
        return rest
