"""Turn a model's answer into the code that replaces a selection, or refuse with a reason.

Pure text logic (no I/O, no LSP), used by the editor's edit action and `ds-lsp edit`:

    code = extract_code(answer, language)   # pick the code out of the answer
    code = reindent(code, original)         # give it the selection's indentation
    new_text = replace_lines(text, start, end, code)
    check_syntax(text, new_text, language)  # refuse a parse that got worse

Every refusal is an `UnusableAnswer` whose str() is one line for the user. The
rules err on the side of refusing: a refused edit costs a retry, a wrong one can
silently destroy the user's code.

Which code block is taken (extract_code):
- one fenced block (``` or ~~~, three or more, tagged or not): that block,
  whatever its tag (a Python dict tagged `json` is still what the model meant;
  check_syntax catches a block in the wrong language);
- several blocks: the one tagged with the selection's language, or failing that
  with a close relative (javascript/typescript/tsx, c/cpp). Two or more such
  blocks (e.g. "before" and "after") are refused. If none is, and exactly one
  block is untagged while all others name other languages (a `bash` install
  line next to the code), the untagged one is the code. Anything else, or
  several blocks and no language to choose by, is refused;
- a fence never closed (a cut stream, a sloppy model): everything after it;
- no fence: the whole answer if it is code, not prose (see _unfenced_code).
"""

from __future__ import annotations

import difflib
import os
import re

from ds_lsp.context.treesitter import SUPPORTED_LANGUAGES, parse_error_count
from ds_lsp.markdown import FencedBlock, canonical_language, find_blocks
from ds_lsp.text import (
    LINE_BREAK,
    leading_whitespace,
    newline_of,
    normalize_breaks,
    split_lines,
)


class UnusableAnswer(Exception):
    """The answer cannot be applied; str() is the reason, in one line."""


# ---------------------------------------------------------------- code blocks

# Blocks in a close relative of the selection's language are the next best thing.
_FAMILIES = {"javascript": "js", "typescript": "js", "tsx": "js", "c": "c", "cpp": "c"}


def _choose_block(blocks: list[FencedBlock], language: str | None) -> str:
    if len(blocks) == 1:
        return blocks[0].code
    count = len(blocks)
    if language is None:
        raise UnusableAnswer(
            f"the answer has {count} code blocks and no language to choose by: refusing to guess"
        )
    matches = [block for block in blocks if block.language == language]
    kind = language
    if not matches:
        family = _FAMILIES.get(language, language)
        matches = [
            block
            for block in blocks
            if block.language is not None and _FAMILIES.get(block.language) == family
        ]
        kind = "/".join(sorted({block.language for block in matches}))
    if len(matches) == 1:
        return matches[0].code
    if matches:
        raise UnusableAnswer(
            f"the answer has {len(matches)} {kind} code blocks: "
            "refusing to guess which one to apply"
        )
    untagged = [block for block in blocks if block.language is None]
    if len(untagged) == 1:
        return untagged[0].code
    raise UnusableAnswer(
        f"the answer has {count} code blocks and none is {language}: refusing to guess"
    )


# ---------------------------------------------------------------- no fence: code or prose?

# Characters that prose hardly uses and code can hardly do without.
_CODE_CHARACTERS = frozenset('(){}[];=<>+*/%&|^~\\"$@#')
_MARKDOWN_BULLET = re.compile(r"^\s*(?:[-+*]|\d+[.)])\s+")
_INLINE_CODE = re.compile(r"`[^`]*`")


def _reads_like_prose(line: str) -> bool:
    """A sentence ("Sure! Here is the updated function.", "Here is the fix:"), not code.
    Markdown decoration is dropped first so "**Note:** use `f()`." still reads as prose.
    Comment lines (#, //) never count: they start with code punctuation."""
    text = _MARKDOWN_BULLET.sub("", line)
    text = _INLINE_CODE.sub("code", text).replace("**", "").replace("__", "").strip()
    if not text or not text[0].isalpha() or any(c in _CODE_CHARACTERS for c in text):
        return False
    words = text.split()
    if text[-1] in ".!?":  # code never ends a line on a full stop
        return True
    capitalised = words[0][0].isupper()
    if text.endswith(":") and len(words) >= 3 and capitalised:  # "Here is the fix:"
        return True
    # "This function adds two numbers" (but not `from foo import bar`).
    return capitalised and len(words) >= 4 and all(w.strip(",'’").isalpha() for w in words)


def _unfenced_code(text: str, language: str | None) -> str:
    """The answer itself, if it is code.

    Each non-blank line is judged prose or not (_reads_like_prose). No prose line: it is
    code, even a fragment that does not parse alone (`else:` and its body; check_syntax
    judges it in its document). All prose: refused. A few prose-like lines are allowed
    when the whole text parses cleanly in the selection's language: those are docstrings
    and strings, e.g. a docstring line "Add two numbers." inside a function.
    """
    one_line = text.strip()
    if "\n" not in one_line and re.fullmatch(r"`[^`]+`", one_line):
        return one_line[1:-1]  # the whole answer in inline code: `return a + b`
    lines = [line for line in text.split("\n") if line.strip()]
    prose = sum(_reads_like_prose(line) for line in lines)
    if prose == 0:
        return text
    if prose == len(lines):
        raise UnusableAnswer("the answer has no code, only prose")
    if (
        language in SUPPORTED_LANGUAGES
        and prose * 2 < len(lines)
        and parse_error_count(_dedent(text), language) == 0
    ):
        return text
    raise UnusableAnswer(
        "the answer has no code block and mixes prose with code: refusing to guess"
    )


# ---------------------------------------------------------------- lazy placeholders

# A comment alone on its line: `# x`, `// x`, `/// x`, `/* x */`, JSX `{/* x */}`.
_COMMENT_LINE = re.compile(r"\s*(?:#|//+!?|\{?/\*+)(?P<body>.*?)(?:\*+/\}?)?\s*")

# With an ellipsis, any of these words makes a comment an elision:
# `# ... existing code ...`, `// ... rest of the code unchanged`, `# ... (rest of the function)`.
_ELIDING_WORD = re.compile(
    r"\b(?:existing|previous|original|remaining|unchanged|omitted|elided|same|rest|remainder|"
    r"before|other|etc|code|implementation|logic|body|methods?|functions?|fields?|imports?)\b"
)
# Without one, the whole comment must say that code was left out; a comment that only
# mentions such a word ("return the input unchanged") is left alone.
_CODE_NOUN = (
    r"(?:code|implementation|logic|body|functions?|methods?|class|file|module|fields?|imports?|"
    r"cases?|tests?|lines|members|props|handlers?|routes|program|script|component|struct|impl)"
)
_ELIDED_TAIL = (
    r"(?: (?:is |are )?(?:unchanged|the same|as before|as is|here|goes here|go here|not shown|"
    r"omitted(?: for brevity)?|(?:remains?|stays?) (?:the same|unchanged|as is)))?"
)
_ELISION_COMMENTS = [
    # rest of code remains the same / rest of the function / the remainder of the file is unchanged
    re.compile(rf"(?:the )?(?:rest|remainder) of (?:the )?(?:\w+ )?{_CODE_NOUN}{_ELIDED_TAIL}"),
    # existing code / other methods unchanged / keep the existing implementation
    re.compile(
        r"(?:keep(?:ing)? )?(?:the |your )?(?:existing|previous|original|other|remaining|"
        rf"unchanged|same) (?:\w+ )?{_CODE_NOUN}{_ELIDED_TAIL}"
    ),
    # (unchanged) / code omitted for brevity / no changes below / same as before
    re.compile(
        rf"(?:(?:the )?(?:\w+ )?{_CODE_NOUN} (?:is |are )?)?(?:unchanged|omitted(?: for brevity)?|"
        r"elided|no changes?(?: \w+)?|same as (?:before|above)|as before)"
    ),
]


def _elides_code(line: str, language: str | None) -> bool:
    stripped = line.strip()
    if stripped == "…" or (stripped == "..." and language not in (None, "python")):
        return True  # a bare `...` is a statement in Python (a stub body), elision elsewhere
    comment = _COMMENT_LINE.fullmatch(line)
    if not comment:
        return False
    body = comment["body"]
    words = " ".join(re.sub(r"[^\w\s']", " ", body.lower()).split())
    if "..." in body or "…" in body:
        return not words or _ELIDING_WORD.search(words) is not None
    return any(pattern.fullmatch(words) for pattern in _ELISION_COMMENTS)


def _refuse_placeholders(code: str, language: str | None) -> None:
    for line in code.split("\n"):
        if _elides_code(line, language):
            raise UnusableAnswer(
                f"the answer elides code with a placeholder ({line.strip()!r}): "
                "refusing to apply it"
            )


# ---------------------------------------------------------------- extract_code


def extract_code(answer: str, language: str | None = None) -> str:
    """The code the answer proposes for the selection (see the module docstring).

    `language` is the selection's language (any alias: py, typescriptreact, ...).
    The code comes back with "\\n" line breaks, no leading or trailing blank lines and
    no final newline; replace_lines adds what the document needs.
    """
    text = normalize_breaks(answer)
    if not text.strip():
        raise UnusableAnswer("the answer is empty")
    language = canonical_language(language) if language else None
    blocks = find_blocks(text.split("\n"))
    code = _choose_block(blocks, language) if blocks else _unfenced_code(text, language)
    code = _trim_blank_lines(code)
    if not code:
        raise UnusableAnswer("the answer's code block is empty")
    _refuse_placeholders(code, language)
    return code


def _trim_blank_lines(code: str) -> str:
    lines = code.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines).rstrip()


# ---------------------------------------------------------------- indentation


def _indents(text: str) -> list[str]:
    return [leading_whitespace(line) for line in split_lines(text) if line.strip()]


def _common_indent(text: str) -> str:
    return os.path.commonprefix(_indents(text))


def _dedent(text: str) -> str:
    margin = len(_common_indent(text))
    return "".join(line[margin:] if line.strip() else line for line in split_lines(text))


def _smallest_step(indents: list[str], margin: int) -> int:
    """The smallest indentation beyond the margin: the file's indent unit (4 if none)."""
    return min((len(i) - margin for i in indents if len(i) > margin), default=4)


def reindent(code: str, original: str) -> str:
    """Give `code` the selection's indentation when the model returned it dedented.

    If `original` is indented and `code` does not already start at that indentation,
    every non-blank line of `code` is moved to it, keeping the relative indentation.
    The relative indentation then follows the original's style: tabs when the original
    indents with tabs, spaces (in the original's indent unit) when it uses spaces.
    """
    target = _common_indent(original)
    current = _common_indent(code)
    if not target or current.startswith(target):
        return code
    code_indents = _indents(code)
    if target.startswith("\t"):
        # Spaces -> tabs, one tab per step of the code's own indent unit.
        step = _smallest_step([i for i in code_indents if "\t" not in i], len(current))
        tab = " " * step
    else:
        tab = " " * _smallest_step(_indents(original), len(target))
    result = []
    for line in split_lines(code):
        if not line.strip():
            result.append(line)
            continue
        relative = leading_whitespace(line)[len(current) :]
        if target.startswith("\t"):
            width = len(relative.replace("\t", tab))
            relative = "\t" * (width // len(tab)) + " " * (width % len(tab))
        else:
            relative = relative.replace("\t", tab)
        result.append(target + relative + line.lstrip(" \t"))
    return "".join(result)


# ---------------------------------------------------------------- applying and checking


def replace_lines(text: str, start: int, end: int, code: str) -> str:
    """`text` with its lines start..end (0-based, inclusive) replaced by `code`.

    The code takes the document's line endings (its first one; "\\n" if it has none),
    and ends with one exactly when the replaced lines did. Everything outside those
    lines is left byte for byte. Empty `code` deletes the lines. The empty line after
    a final newline (where an editor's cursor can be) counts as a line.
    """
    lines = split_lines(text)
    if not lines or lines[-1].endswith(("\n", "\r")):
        lines.append("")
    if not 0 <= start <= end < len(lines):
        raise ValueError(f"lines {start}..{end} are outside a text of {len(lines)} lines")
    newline = newline_of(text)
    replacement = LINE_BREAK.sub(newline, code)
    if replacement:
        region_ends_with_newline = lines[end].endswith(("\n", "\r"))
        if region_ends_with_newline and not replacement.endswith(newline):
            replacement += newline
        elif not region_ends_with_newline and replacement.endswith(newline):
            replacement = replacement[: -len(newline)]
    return "".join(lines[:start]) + replacement + "".join(lines[end + 1 :])


def check_syntax(old_text: str, new_text: str, language: str | None) -> None:
    """Refuse an edit after which tree-sitter finds more parse errors than before.

    Comparing with the old text, not with zero, keeps working in a file that was
    already broken. Languages without a grammar are not checked.
    """
    if language not in SUPPORTED_LANGUAGES:
        return
    added = parse_error_count(new_text, language) - parse_error_count(old_text, language)
    if added > 0:
        plural = "" if added == 1 else "s"
        raise UnusableAnswer(f"the edit would break the syntax ({added} new parse error{plural})")


def unified_diff(old_text: str, new_text: str, path: str) -> str:
    """A unified diff with a/ and b/ headers (as git writes them); "" when equal."""
    name = path.lstrip("/")  # "/tmp/x.py" -> "a/tmp/x.py", as `git diff --no-index` does
    lines = difflib.unified_diff(
        split_lines(old_text), split_lines(new_text), f"a/{name}", f"b/{name}"
    )
    out = []
    for line in lines:
        out.append(line)
        if not line.endswith(("\n", "\r")):
            out.append("\n\\ No newline at end of file\n")
    return "".join(out)
