"""Ghost text from a model's answer: what the user would see at the cursor.

Each case gives the text around the cursor (`before`, `after`), the model's raw
answer and the suggestion shown. Pure: no model, no server.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ds_lsp.context.gather import CompletionContext
from ds_lsp.reasoning import CLOSE_TAG, OPEN_TAG, SPECIAL_TOKENS
from ds_lsp.suggestion_cache import AROUND_CHARS, SuggestionCache, TextAround, typed_ahead
from ds_lsp.suggestions import SuggestionStream, clean_suggestion


def context(
    before: str,
    after: str = "",
    mode: str | None = None,
    language: str | None = "python",
    file_name: str = "app.py",
) -> CompletionContext:
    """The context at a cursor between `before` and `after`. Mode by default: one line
    in the middle of a line, else a block after a line ending in `:` or `{`."""
    line_prefix = before.rsplit("\n", 1)[-1]
    line_suffix = after.split("\n", 1)[0]
    if mode is None:
        opens = line_prefix.rstrip().endswith((":", "{"))
        mode = "multi_line" if opens and not line_suffix.strip() else "single_line"
    return CompletionContext(
        file_name=file_name,
        language=language,
        prefix=before,
        suffix=after,
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        scope="",
        imports="",
        related="",
        mode=mode,
        indent=line_prefix[: len(line_prefix) - len(line_prefix.lstrip())],
    )


METHOD = "class Account:\n    def deposit(self, amount):"
BODY = "def total(values):\n    result = 0\n    "
JS_FUNCTION = "function area(w, h) {"


def case(before, after, raw, expected, mode=None, language="python", id=None):
    return pytest.param(context(before, after, mode, language), raw, expected, id=id)


CASES = [
    # Reasoning remnants and special tokens.
    case("x = ", "\n", "<think>\nThe answer is 42.\n</think>\n\n42", "42", id="think block"),
    case("x = ", "\n", "</think>\n\n42", "42", id="lone close tag"),
    case("x = ", "\n", "<think>\nStill thinking", "", id="reasoning never closed"),
    case("x = ", "\n", "42<|im_end|>", "42", id="token at the end"),
    case("x = ", "\n", "42<｜end▁of▁sentence｜>garbage", "42", id="token ends it"),
    case("x = ", "\n", "<|fim_middle|>42", "42", id="token at the start"),
    case("x = ", "\n", "42 </think> and then", "42", id="late tag ends it"),
    case("x = ", "\n", "42<|file_sep|>README.md", "42", id="fim marker ends it"),
    case("x = ", "\n", "42<EOT>", "42", id="codellama end of infill"),
    # Fences.
    case("x = ", "\n", "```python\n42\n```", "42", id="fenced"),
    case("x = ", "\n", "~~~\n42\n~~~", "42", id="tilde fence"),
    case("x = ", "\n", "\n```py\n42\n```\nThis sets x.", "42", id="fence after a blank line"),
    case(
        "def area(w, h):",
        "\n",
        "```python\n    return w * h\n```\nThis multiplies them.",
        "\n    return w * h",
        id="fenced body",
    ),
    case(
        "def area(w, h):",
        "\n",
        "\n    return w * h\n```\nThis multiplies them.",
        "\n    return w * h",
        id="closing fence only",
    ),
    # Echo of the text before the cursor.
    case("total = sum(", ")\n", "total = sum(values)", "values", id="echo of the line"),
    case("    x = ", "\n", "x = 42", "42", id="echo without indentation"),
    case(BODY, "\n", "result = 0\n    for v in values:", "for v in values:", id="echo of 2 lines"),
    case(
        "class A:\n    def f(self):",
        "\n",
        "def f(self):\n    return 1",
        "\n        return 1",
        id="echo with the model's own indentation",
    ),
    case("x = ", "\n", "x_max = 3", "x_max = 3", id="not an echo"),
    case("x = ", "\n", "x = ", "", id="nothing but the echo"),
    # Text that is already after the cursor.
    case("foo(", ")\n", "a, b)", "a, b", id="closer already there"),
    case("foo(", ")\n", "a, b))", "a, b", id="two closers"),
    case("foo(", ", b)\n", "a, b)", "a", id="rest of the line copied"),
    case('print("', '")\n', 'hello")', "hello", id="closing quote and bracket"),
    case('print("', '")\n', 'hello"', "hello", id="closing quote only"),
    case("x = [", "]\n", "1, 2]", "1, 2", id="square bracket"),
    case("x = 1", "  # one\n", "0  # one", "0", id="comment after the cursor"),
    case("pri", "nt(x)\n", "nt(x)", "", id="only the rest of the line"),
    case("x = f(", ")\n", "g(1))", "g(1)", id="own brackets kept"),
    case("x = f(", ")\n", "g(1)", "g(1)", id="own closer is not a copy"),
    case("print(f(", "))\n", "g(1)", "g(1)", id="own closer is not a copy either"),
    case("x = 1", ";\n", "0;", "0", id="semicolon already there"),
    case("foo(", "b)\n", "a, ", "a, ", id="space before the text after the cursor kept"),
    case("if (ok", ") {\n", " && ready) {", " && ready", language="javascript", id="js condition"),
    # Brackets.
    case("foo(a, ", "\n", "b)", "b)", id="closes a bracket from before the cursor"),
    case("x = (", "\n", "1]", "1", id="mismatched closer"),
    case("x = foo(", ")\n", '")", 1)', '")", 1', id="bracket in a string"),
    case(
        JS_FUNCTION,
        "\n}\n",
        "\n  return w * h;\n}",
        "\n  return w * h;",
        language="javascript",
        id="js brace already there",
    ),
    case(
        JS_FUNCTION,
        "\n",
        "\n  return w * h;\n}\n\nfunction volume() {",
        "\n  return w * h;\n}",
        language="javascript",
        id="js brace needed",
    ),
    # One line.
    case("x = ", "\n", "42\ny = 1", "42", id="single line stops at its end"),
    case("x = ", "\n", "\n42", "", id="single line starting with a line break"),
    case("foo(", ")\n", "a,\nb)", "a,", id="mid-line stops at its end"),
    case("x =", "\n", " 42", " 42", id="space the line needs kept"),
    case("x = ", "\n", "  42  ", "42", id="spaces around dropped"),
    case("x = 1  # see (", "\n", "notes)", "notes)", mode="single_line", id="in a comment"),
    case("x = [", "\n", "1, 2]", "1, 2]", language=None, id="plain text"),
    # Blocks and indentation.
    case("def area(w, h):", "\n", "\n    return w * h", "\n    return w * h", id="python body"),
    case("def area(w, h):", "\n", "\r\n    return w * h\r\n", "\n    return w * h", id="crlf"),
    case("def area(w, h): ", "\n", "\n    return w", "\n    return w", id="space after colon"),
    case(
        METHOD,
        "\n",
        "\n    self.balance += amount",
        "\n        self.balance += amount",
        id="rebased",
    ),
    case(METHOD, "\n", "\n        self.n += 1", "\n        self.n += 1", id="already absolute"),
    case(METHOD, "\n", "self.n += 1", "\n        self.n += 1", id="body on the cursor line"),
    case(
        "class Account:\n\tdef deposit(self, amount):",
        "\n",
        "\n    if amount:\n        self.n += 1",
        "\n\t\tif amount:\n\t\t\tself.n += 1",
        id="tabs",
    ),
    case(
        BODY,
        "\n",
        "    for v in values:\n        result += v",
        "for v in values:\n        result += v",
        mode="multi_line",
        id="blank line, model indents like the file",
    ),
    case(
        BODY,
        "\n",
        "for v in values:\n    result += v",
        "for v in values:\n        result += v",
        mode="multi_line",
        id="blank line, model from column 0",
    ),
    case(
        BODY,
        "\n",
        "\n\n    for v in values:\n        result += v",
        "for v in values:\n        result += v",
        mode="multi_line",
        id="leading blank lines",
    ),
    case(
        "def area(w, h):",
        "\n",
        "\n    return w * h\n\nprint(area(2, 3))",
        "\n    return w * h",
        id="stops at the end of the block",
    ),
    case(
        BODY,
        "\n",
        "    result += 1\n    return result\ndef other():",
        "result += 1\n    return result",
        mode="multi_line",
        id="stops below the block",
    ),
    case(
        "if ready:",
        "\n",
        "\n    go()\nelse:\n    wait()",
        "\n    go()",
        id="else leaves the block",
    ),
    case(
        "if (ready) {",
        "\n",
        "\n  go();\n} else {\n  wait();\n}",
        "\n  go();\n} else {\n  wait();\n}",
        language="javascript",
        id="a line starting with a bracket stays",
    ),
    case(
        "def area(w, h):",
        "\n",
        "\n    area = w * h   \n\n\n    return area\n\n",
        "\n    area = w * h\n\n\n    return area",
        id="trailing spaces and blank lines",
    ),
    # The code after the cursor reached again.
    case(
        BODY,
        "\n    return result\n",
        "for v in values:\n    result += v\nreturn result\n",
        "for v in values:\n        result += v",
        mode="multi_line",
        id="repeats the next line",
    ),
    case(BODY, "\n\n    return result\n", "return result", "", mode="multi_line", id="only that"),
    case(
        "function run() {\n  ",
        "\n}\n",
        "if (a) {\n  b();\n}",
        "if (a) {\n    b();\n  }",
        mode="multi_line",
        language="javascript",
        id="a brace it opened is not the next line",
    ),
    # Nothing to show.
    case("x = ", "\n", "", "", id="empty"),
    case("x = ", "\n", "  \n \n", "", id="whitespace"),
    case("x = ", "\n", "```\n```", "", id="empty fence"),
    case("x = ", "\n", "<think>Hmm.</think>", "", id="reasoning only"),
]


@pytest.mark.parametrize(("ctx", "raw", "expected"), CASES)
def test_clean_suggestion(ctx, raw, expected):
    assert clean_suggestion(raw, ctx) == expected


@pytest.mark.parametrize(("ctx", "raw", "expected"), CASES)
def test_streaming_one_character_at_a_time_gives_the_same(ctx, raw, expected):
    stream = SuggestionStream(ctx)
    for character in raw:
        if not stream.feed(character):
            break
    assert stream.text == expected


# ---------------------------------------------------------------- when the stream stops


def feed_until_complete(ctx: CompletionContext, chunks: list[str]) -> int | None:
    """The index of the chunk after which the stream said it is complete."""
    stream = SuggestionStream(ctx)
    for index, chunk in enumerate(chunks):
        if not stream.feed(chunk):
            return index
    return None


STOPS = [
    pytest.param(context("x = ", "\n"), ["4", "2", "\n", "y"], 2, id="end of the line"),
    pytest.param(context("foo(", ")\n"), ["a", ", b", ")", ";"], 2, id="closer already there"),
    pytest.param(context("foo(", "\n"), ["a", ", b", ")", "\n"], 3, id="needed closer goes on"),
    pytest.param(
        context(BODY, "\n    return result\n", mode="multi_line"),
        ["result += 1\n", "return result", "\n"],
        2,
        id="line repeating the next one",
    ),
    pytest.param(
        context("def f(a):", "\n"),
        ["\n    return a", "\n\n", "p", "rint(f(1))"],
        2,
        id="dedent out of the block",
    ),
    pytest.param(
        context("def f(a):", "\n"),
        ["\n    return a\n", "``", "`"],
        2,
        id="closing fence",
    ),
    pytest.param(context("x = ", "\n"), ["42", " </thi", "nk>"], 2, id="think tag"),
    pytest.param(
        context("x = ", "\n"), ["42", "<|im_end|>", "\n", "x"], 3, id="token, once text follows"
    ),
    pytest.param(context("def f(a):", "\n"), ["\n    a = 1", "\n    return a"], None, id="goes on"),
]


@pytest.mark.parametrize(("ctx", "chunks", "stop"), STOPS)
def test_stream_stops_the_model_at_the_right_chunk(ctx, chunks, stop):
    assert feed_until_complete(ctx, chunks) == stop


def test_text_shows_the_suggestion_so_far():
    stream = SuggestionStream(context("def f(a):", "\n"))
    assert stream.text == ""
    stream.feed("\n    if a:")
    assert stream.text == "\n    if a:"
    stream.feed("\n        return")
    assert stream.text == "\n    if a:\n        return"
    stream.feed(" a\nprint(1)")
    assert stream.complete
    assert stream.text == "\n    if a:\n        return a"
    assert stream.feed("more") is False
    assert stream.text == "\n    if a:\n        return a"


def test_text_holds_back_what_may_still_be_an_echo():
    stream = SuggestionStream(context("total = sum(", ")\n"))
    stream.feed("total = s")
    assert stream.text == "total = s"  # if the answer ended here, it is not an echo
    stream.feed("um(values)")
    assert stream.text == "values"


# ---------------------------------------------------------------- typed ahead


@pytest.mark.parametrize(
    ("shown_prefix", "suggestion", "new_prefix", "rest"),
    [
        ("x = ", "compute(a, b)", "x = com", "pute(a, b)"),
        ("x = ", "compute(a, b)", "x = ", "compute(a, b)"),
        ("x = ", "compute(a, b)", "x = compute(a, b)", ""),
        ("x = ", "compute(a, b)", "x = cap", None),
        ("x = ", "compute(a, b)", "x =", None),  # deleted a character
        ("x = ", "compute(a, b)", "y = com", None),
        ("def f():", "\n    return 1", "def f():\n    ", "return 1"),
    ],
)
def test_typed_ahead(shown_prefix, suggestion, new_prefix, rest):
    assert typed_ahead(shown_prefix, suggestion, new_prefix) == rest


# ---------------------------------------------------------------- the cache


def test_cache_evicts_the_least_recently_used():
    cache = SuggestionCache(size=2)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"  # now "b" is the least recently used
    cache.put("c", "3")
    assert cache.get("b") is None
    assert cache.get("a") == "1"
    assert cache.get("c") == "3"
    assert len(cache) == 2


def test_cache_put_replaces_and_refreshes():
    cache = SuggestionCache(size=2)
    cache.put("a", "1")
    cache.put("b", "2")
    cache.put("a", "one")
    cache.put("c", "3")
    assert cache.get("a") == "one"
    assert cache.get("b") is None


# ---------------------------------------------------------------- properties

# Answers made of what the rules react to: line breaks, indentation, brackets,
# quotes, fences, tags, special tokens and the text around the cursor.
FRAGMENTS = st.sampled_from(
    [
        *"\n\n  \t()[]{}\"'#x=:;,",
        "    ",
        "```",
        "```python\n",
        "~~~",
        OPEN_TAG,
        CLOSE_TAG,
        "</thi",
        "<|im_",
        "<|im_end|>",
        "<｜end▁of▁sentence｜>",
        "return a",
        "total = sum(",
        "values)",
        "def f(a):",
        "result = 0",
        "return result",
        "}",
    ]
)
CONTEXTS = st.sampled_from(
    [
        context("x = ", "\n"),
        context("total = sum(", ")\n"),
        context("foo(", ", b)\n"),
        context('print("', '")\n'),
        context("def f(a):", "\n"),
        context(METHOD, "\n"),
        context(BODY, "\n    return result\n", mode="multi_line"),
        context("function run() {\n  ", "\n}\n", mode="multi_line", language="javascript"),
        context(JS_FUNCTION, "\n", language="javascript"),
        context("\tx = [", "]\n", language=None),
    ]
)


@st.composite
def chunked(draw):
    raw = "".join(draw(st.lists(FRAGMENTS, max_size=30)))
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    chunks = [raw[start:end] for start, end in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    return raw, chunks


@settings(max_examples=400, deadline=None)
@given(ctx=CONTEXTS, answer=chunked())
def test_any_chunking_gives_what_the_whole_answer_gives(ctx, answer):
    raw, chunks = answer
    stream = SuggestionStream(ctx)
    for chunk in chunks:
        if not stream.feed(chunk):
            break
    assert stream.text == clean_suggestion(raw, ctx)


@settings(max_examples=400, deadline=None)
@given(ctx=CONTEXTS, answer=chunked())
def test_a_suggestion_never_shows_tokens_or_trailing_blanks(ctx, answer):
    suggestion = clean_suggestion(answer[0], ctx)
    for token in (*SPECIAL_TOKENS, OPEN_TAG, CLOSE_TAG):
        assert token not in suggestion
    if suggestion:
        assert suggestion.strip()
        if not ctx.line_suffix.strip():
            assert suggestion == suggestion.rstrip()
    if ctx.mode != "multi_line":
        assert "\n" not in suggestion


# -- the next line, at the end of a finished line (continuation and FIM models) ----------

LOOP = "def total(items):\n    result = 0\n    for item in items:\n        result += item.price"
AFTER_LOOP = "\n    return result\n"


def continued(ctx: CompletionContext, answer: str) -> str:
    """The suggestion a model that goes on from the file's text gets from `answer`."""
    stream = SuggestionStream(ctx, continues_text=True)
    stream.feed(answer)
    return stream.text


def test_at_the_end_of_a_finished_line_the_next_line_is_the_suggestion():
    ctx = context(LOOP, AFTER_LOOP)
    answer = "\n        count += 1\n        seen.add(item)\n"
    assert continued(ctx, answer) == "\n        count += 1"


def test_the_next_line_is_never_the_code_already_below():
    ctx = context(LOOP, "\n        count += 1\n    return result\n")
    assert continued(ctx, "\n        count += 1\n") == ""


def test_the_next_line_stops_where_the_block_ends():
    assert continued(context(LOOP, AFTER_LOOP), "\n    return result\n") == ""


def test_a_line_the_model_goes_on_with_stays_one_line():
    unfinished = context(LOOP.removesuffix(".price"), AFTER_LOOP)
    assert continued(unfinished, ".price\n        count += 1\n") == ".price"


def test_with_text_after_the_cursor_no_next_line():
    mid_line = context(LOOP.removesuffix(".price"), ".price" + AFTER_LOOP)
    assert continued(mid_line, "\n        count += 1\n") == ""


def test_a_chat_model_gets_no_next_line():
    stream = SuggestionStream(context(LOOP, AFTER_LOOP), continues_text=False)
    stream.feed("\n        count += 1\n")
    assert stream.text == ""


def test_the_text_around_the_cursor_is_all_of_a_usual_file():
    around = TextAround.at("def f():\n    return 1\n", 13)
    assert (around.start, around.before, around.after) == (0, "def f():\n    ", "return 1\n")
    assert around.offset == 13


def test_in_a_huge_file_the_text_around_is_bounded_and_its_start_stays_while_typing():
    text = "x = 1\n" * 2_000_000  # 12 MB
    around = TextAround.at(text, 6_000_000)
    assert around.start % AROUND_CHARS == 0
    assert AROUND_CHARS <= len(around.before) < 2 * AROUND_CHARS
    assert len(around.after) == AROUND_CHARS
    assert around.offset == 6_000_000 and text[around.start : around.offset] == around.before

    typed = text[:6_000_000] + "y = 2" + text[6_000_000:]
    later = TextAround.at(typed, 6_000_005)
    assert later.start == around.start
    assert later.typed_since(around) == "y = 2"
    assert around.typed_since(later) is None


def test_text_typed_since_needs_the_same_start_and_an_extension():
    earlier = TextAround(0, "ab", "")
    assert TextAround(0, "abc", "").typed_since(earlier) == "c"
    assert TextAround(0, "xbc", "").typed_since(earlier) is None
    assert TextAround(AROUND_CHARS, "abc", "").typed_since(earlier) is None
