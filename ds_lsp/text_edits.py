"""The smallest set of replacements that turns one text into another.

An edit applied as "replace the whole selection" moves the user's cursor,
unfolds folds and loses marks on lines that did not change. So the change is
sent as a diff instead: lines first, then, where a run of changed lines kept
its number of lines, only the characters that differ in each line.

The line diff is a patience diff (as git's --patience): lines found once on
each side anchor the match, and the gaps between anchors are diffed again.
difflib's SequenceMatcher alone is quadratic on code, where "}" and blank
lines repeat (a 4,000-line rename took over 50 s), so it only runs on small
gaps. A gap that is too big, or work past the time limit, is left unmatched:
changed line by line when it kept its length, else replaced whole. Less
minimal, never wrong.

Pure text logic: offsets are indexes into the old text (Python characters);
the caller turns them into LSP positions. It can take a while on big texts:
from the event loop, await `minimal_replacements_off_loop`.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import time
from bisect import bisect_left
from dataclasses import dataclass
from itertools import pairwise

from ds_lsp.editing import split_lines

# SequenceMatcher runs on a gap of old x new lines up to this product (quadratic).
SMALL_GAP = 40_000
# Past this, what is left of the line diff is sent as whole replacements.
TIME_LIMIT = 0.5  # seconds
# In a big gap without unique lines, how far ahead (old + new lines) to look for a match.
RESYNC_WINDOW = 16


@dataclass(frozen=True)
class Replacement:
    start: int  # offset into the old text
    end: int  # offset into the old text (exclusive)
    text: str  # what goes there


def minimal_replacements(old: str, new: str) -> list[Replacement]:
    """Non-overlapping replacements, in order, that turn `old` into `new`."""
    old_lines, new_lines = split_lines(old), split_lines(new)
    starts = [0]
    for line in old_lines:
        starts.append(starts[-1] + len(line))
    replacements = []
    for i1, i2, j1, j2 in _changed_blocks(old_lines, new_lines, time.monotonic() + TIME_LIMIT):
        if i2 - i1 == j2 - j1:
            # As many lines as before (a rename, say): each line changed in place.
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                if old_lines[i] != new_lines[j]:
                    replacements.append(_within_line(starts[i], old_lines[i], new_lines[j]))
        else:
            replacements.append(Replacement(starts[i1], starts[i2], "".join(new_lines[j1:j2])))
    return replacements


async def minimal_replacements_off_loop(old: str, new: str) -> list[Replacement]:
    """`minimal_replacements` in a worker thread, so the server keeps answering."""
    return await asyncio.to_thread(minimal_replacements, old, new)


def _changed_blocks(
    old: list[str], new: list[str], deadline: float
) -> list[tuple[int, int, int, int]]:
    """(i1, i2, j1, j2) for each run of old[i1:i2] that became new[j1:j2], in order."""
    # Lines as small ints: cheaper to hash and compare than the strings.
    ids: dict[str, int] = {}
    a = [ids.setdefault(line, len(ids)) for line in old]
    b = [ids.setdefault(line, len(ids)) for line in new]
    matched: list[tuple[int, int]] = []  # (i, j): old[i] stays as new[j]
    todo = [(0, len(a), 0, len(b))]
    while todo:  # a stack, not recursion: gaps can nest deeply
        alo, ahi, blo, bhi = todo.pop()
        while alo < ahi and blo < bhi and a[alo] == b[blo]:
            matched.append((alo, blo))
            alo, blo = alo + 1, blo + 1
        while alo < ahi and blo < bhi and a[ahi - 1] == b[bhi - 1]:
            ahi, bhi = ahi - 1, bhi - 1
            matched.append((ahi, bhi))
        if alo == ahi or blo == bhi:
            continue
        if time.monotonic() > deadline:
            continue  # out of time: this gap is replaced whole
        anchors = _unique_common(a, alo, ahi, b, blo, bhi)
        if anchors:
            matched.extend(anchors)
            edges = [(alo - 1, blo - 1), *anchors, (ahi, bhi)]
            for (i, j), (k, m) in zip(edges, edges[1:], strict=False):
                todo.append((i + 1, k, j + 1, m))
        elif (ahi - alo) * (bhi - blo) <= SMALL_GAP:
            matcher = difflib.SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=False)
            for i, j, size in matcher.get_matching_blocks():
                matched.extend((alo + i + k, blo + j + k) for k in range(size))
        else:
            matched.extend(_nearby_matches(a, alo, ahi, b, blo, bhi, deadline))
    matched.sort()
    blocks = []
    i = j = 0
    for mi, mj in [*matched, (len(a), len(b))]:
        if mi > i or mj > j:
            blocks.append((i, mi, j, mj))
        i, j = mi + 1, mj + 1
    return blocks


def _unique_common(
    a: list[int], alo: int, ahi: int, b: list[int], blo: int, bhi: int
) -> list[tuple[int, int]]:
    """The longest in-order run of (i, j) pairs of lines found exactly once in each range."""
    count: dict[int, int] = {}
    for line in a[alo:ahi]:
        count[line] = count.get(line, 0) + 1
    in_b: dict[int, int] = {}  # line -> its index in b, for lines once in a
    for j in range(blo, bhi):
        line = b[j]
        if count.get(line) == 1:
            in_b[line] = -1 if line in in_b else j
    pairs = [(i, in_b[a[i]]) for i in range(alo, ahi) if in_b.get(a[i], -1) >= 0]
    return _longest_increasing(pairs)


def _nearby_matches(
    a: list[int], alo: int, ahi: int, b: list[int], blo: int, bhi: int, deadline: float
) -> list[tuple[int, int]]:
    """Matches for a big gap without unique lines (repetitive code): walk both
    sides, and at each difference take the nearest pair of equal lines ahead."""
    matches = []
    i, j = alo, blo
    while i < ahi and j < bhi:
        if a[i] == b[j]:
            matches.append((i, j))
            i, j = i + 1, j + 1
            continue
        if time.monotonic() > deadline:
            break
        found = next(
            (
                (i + di, j + distance - di)
                for distance in range(1, RESYNC_WINDOW + 1)
                for di in range(distance + 1)
                if i + di < ahi and j + distance - di < bhi and a[i + di] == b[j + distance - di]
            ),
            None,
        )
        if found is None:
            break  # nothing alike nearby: the rest of the gap is replaced
        i, j = found
    return matches


def _longest_increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest subsequence of pairs (sorted by i) whose j increase (patience sorting)."""
    tops: list[int] = []  # j at the top of each pile
    top_index: list[int] = []  # index into pairs of each pile's top
    back: list[int] = []  # index of the pair below each pair, -1 for none
    for index, (_, j) in enumerate(pairs):
        pile = bisect_left(tops, j)
        back.append(top_index[pile - 1] if pile else -1)
        if pile == len(tops):
            tops.append(j)
            top_index.append(index)
        else:
            tops[pile], top_index[pile] = j, index
    run = []
    index = top_index[-1] if top_index else -1
    while index >= 0:
        run.append(pairs[index])
        index = back[index]
    return run[::-1]


def _within_line(offset: int, old: str, new: str) -> Replacement:
    """One line changed into one line: keep its common start and end."""
    prefix = len(os.path.commonprefix([old, new]))
    room = min(len(old), len(new)) - prefix
    suffix = len(os.path.commonprefix([old[::-1], new[::-1]]))
    suffix = min(suffix, room)
    return Replacement(offset + prefix, offset + len(old) - suffix, new[prefix : len(new) - suffix])


def at_most(replacements: list[Replacement], old: str, count: int) -> list[Replacement]:
    """The same change in `count` replacements or fewer: where there are more, the ones
    that lie closest together are merged (with the old text between them). An editor
    echoes every edit back, and each one costs the server time to send and to take in
    again, all on its event loop: thousands of them stalled it for 100 ms."""
    if len(replacements) <= count:
        return replacements
    gaps = sorted(b.start - a.end for a, b in pairwise(replacements))
    widest_merged = gaps[len(replacements) - count - 1]
    merged = [replacements[0]]
    for replacement in replacements[1:]:
        last = merged[-1]
        if replacement.start - last.end <= widest_merged:
            text = last.text + old[last.end : replacement.start] + replacement.text
            merged[-1] = Replacement(last.start, replacement.end, text)
        else:
            merged.append(replacement)
    return merged


def apply_replacements(text: str, replacements: list[Replacement]) -> str:
    """`text` with the replacements made (what an editor does with the edits)."""
    out, position = [], 0
    for replacement in replacements:
        out.append(text[position : replacement.start])
        out.append(replacement.text)
        position = replacement.end
    out.append(text[position:])
    return "".join(out)
