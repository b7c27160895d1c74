"""The diff behind every edit: applying its replacements gives exactly the new
text, lines that did not change are not touched, and big edits stay line-sized."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from ds_lsp.text_edits import (
    apply_replacements,
    at_most,
    minimal_replacements,
    minimal_replacements_off_loop,
)

# Few distinct lines, so texts repeat lines as code does ("}", blank lines).
_LINES = st.sampled_from(["}\n", "\n", "x = 1\n", "\r\n", "y\r", "return a;\n", "é😀\n", "z"])
_TEXTS = st.lists(_LINES, max_size=40).map("".join)


def _c_like(lines: int, renamed: bool) -> str:
    name = "total_count" if renamed else "count"
    out = []
    for n in range(lines):
        if n % 3 == 0:
            out.append(f"    {name} += item_{n % 7}(data);\n")
        elif n % 3 == 1:
            out.append("    }\n")
        else:
            out.append("\n")
    return "".join(out)


def _assert_well_formed(old: str, replacements) -> None:
    position = 0
    for r in replacements:
        assert position <= r.start <= r.end <= len(old)
        position = r.end


@settings(max_examples=400, deadline=None)
@given(_TEXTS, _TEXTS)
def test_applying_the_replacements_gives_the_new_text(old, new):
    replacements = minimal_replacements(old, new)
    _assert_well_formed(old, replacements)
    assert apply_replacements(old, replacements) == new


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60))
def test_any_characters_at_all(old, new):
    replacements = minimal_replacements(old, new)
    _assert_well_formed(old, replacements)
    assert apply_replacements(old, replacements) == new


@settings(max_examples=60, deadline=None)
@given(st.lists(_LINES, min_size=250, max_size=500), st.data())
def test_big_repetitive_texts(old_lines, data):
    # Big enough that gaps skip SequenceMatcher and walk line by line instead.
    new_lines = list(old_lines)
    for _ in range(data.draw(st.integers(1, 30))):
        at = data.draw(st.integers(0, len(new_lines)))
        if data.draw(st.booleans()) and at < len(new_lines):
            del new_lines[at]
        else:
            new_lines.insert(at, data.draw(_LINES))
    old, new = "".join(old_lines), "".join(new_lines)
    replacements = minimal_replacements(old, new)
    _assert_well_formed(old, replacements)
    assert apply_replacements(old, replacements) == new


def test_equal_texts_need_no_edit():
    assert minimal_replacements("a\nb\n", "a\nb\n") == []


def test_a_changed_word_is_the_only_thing_replaced():
    old = "def f():\n    return count\n"
    new = "def f():\n    return total_count\n"
    [r] = minimal_replacements(old, new)
    assert old[r.start : r.end] == "" and r.text == "total_"


def test_a_rename_on_every_third_line_of_5000_touches_only_those_lines():
    old, new = _c_like(5000, renamed=False), _c_like(5000, renamed=True)
    replacements = minimal_replacements(old, new)
    assert apply_replacements(old, replacements) == new
    # One small edit per renamed line: nothing else in the file is replaced.
    assert len(replacements) == len(range(0, 5000, 3))
    assert all(old[r.start : r.end] == "" and r.text == "total_" for r in replacements)


def test_a_rename_with_added_lines_still_keeps_the_unchanged_lines():
    old = _c_like(3000, renamed=False)
    lines = _c_like(3000, renamed=True).splitlines(keepends=True)
    for at in range(len(lines) - 1, 0, -50):
        lines.insert(at, "    check(data);\n")
    new = "".join(lines)
    replacements = minimal_replacements(old, new)
    assert apply_replacements(old, replacements) == new
    # Small edits near each change, not one replacement of the whole text.
    assert max(r.end - r.start for r in replacements) < 200


def test_lines_moved_and_inserted_among_repeated_lines():
    old = "}\n" * 50 + "a\n" + "}\n" * 50 + "b\n"
    new = "b\n" + "}\n" * 50 + "a\n" + "}\n" * 51 + "c\n"
    replacements = minimal_replacements(old, new)
    assert apply_replacements(old, replacements) == new


async def test_off_the_loop_gives_the_same_replacements():
    old, new = _c_like(300, renamed=False), _c_like(300, renamed=True)
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    try:
        assert await minimal_replacements_off_loop(old, new) == minimal_replacements(old, new)
    finally:
        ticker.cancel()
    assert ticks > 0  # the loop ran while the diff was computed


@settings(max_examples=300, deadline=None)
@given(_TEXTS, _TEXTS, st.integers(min_value=1, max_value=6))
def test_at_most_merges_the_closest_replacements_and_keeps_the_change(old, new, count):
    replacements = minimal_replacements(old, new)
    fewer = at_most(replacements, old, count)
    assert len(fewer) <= max(count, 0) or not replacements
    assert apply_replacements(old, fewer) == new
    if len(replacements) <= count:
        assert fewer == replacements


def test_a_rename_of_many_lines_goes_out_as_few_edits_that_keep_the_far_ones_apart():
    old = "".join(f"x{n} = 1\n" for n in range(300)) + "\n" * 500 + "tail = 1\n"
    new = old.replace(" = 1\n", " = 2\n")
    replacements = minimal_replacements(old, new)
    assert len(replacements) == 301
    fewer = at_most(replacements, old, 100)
    assert apply_replacements(old, fewer) == new
    assert len(fewer) == 2, "the close ones merged; the one 500 lines below stays apart"
    assert fewer[1].text == "2"
