"""What the model sees for an inline completion, gathered from the syntax tree.

`gather` cuts a `CompletionContext` out of an open document at the cursor: the
text before and after it within a token budget (context.windows), the enclosing
function and class signatures, the file's imports (context.imports), the
signatures of symbols from other open documents that the code near the cursor
uses (context.related), and the completion mode (context.cursor).

The prompt renderers put the slowly changing parts first and the text before the
cursor last, so a typed character only adds tokens at the end and the model's KV
cache keeps the rest. For the same reason every part except the prefix's tail is
chosen so that typing on the cursor line does not change it: imports and related
symbols ignore the cursor line, and the prefix window starts on a line number
that moves in steps of `WINDOW_STEP` lines, not with each character.

Pure: no LSP types. Read `Document.tree` on one thread (the server's event loop).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ds_lsp.context.cursor import INDENT, Cursor, Mode, decide_mode
from ds_lsp.context.imports import import_lines
from ds_lsp.context.related import related_signatures
from ds_lsp.context.windows import display_name, prefix_window, suffix_window
from ds_lsp.documents import Document
from ds_lsp.text import CHARS_PER_TOKEN

# Shares of the budget the extra context may take at most, so the code around the
# cursor always gets most of it.
_IMPORTS_SHARE = 1 / 8
_RELATED_SHARE = 1 / 8
_SCOPE_SHARE = 1 / 16
_SUFFIX_SHARE = 1 / 4  # of what is left for code; the prefix gets the rest


@dataclass(frozen=True)
class CompletionContext:
    file_name: str  # path relative to the workspace if known, else the file name
    language: str | None  # tree-sitter name; None for plain text
    prefix: str  # text before the cursor, within budget (whole lines, then the cursor line's start)
    suffix: str  # text after the cursor, within budget (the cursor line's rest, then whole lines)
    line_prefix: str  # the cursor line up to the cursor
    line_suffix: str  # the cursor line after the cursor
    scope: str  # signature line(s) of the enclosing functions / classes ("" at top level)
    imports: str  # the file's import lines
    related: str  # signatures from OTHER open documents of symbols used near the cursor
    mode: Mode
    indent: str  # leading whitespace of the cursor line


def gather(
    document: Document,
    offset: int,
    others: Iterable[Document],
    budget_tokens: int,
    invoked: bool = False,
    root_uri: str | None = None,
    reserved_chars: int = 0,
) -> CompletionContext:
    """The context for a completion at `offset` (code points into document.text).

    `others` are the other open documents (for related signatures); `root_uri` the
    workspace folder, for the file name. The context takes about `budget_tokens`
    tokens, less `reserved_chars` characters the prompt's own text needs
    (completion_prompts.reserved_chars).
    """
    cursor = Cursor(document, offset)
    mode = decide_mode(cursor, invoked)
    budget = max(0, int(budget_tokens * CHARS_PER_TOKEN))
    file_name = display_name(document.uri, root_uri)
    code_budget = budget - reserved_chars - len(file_name)

    imports = _fit_lines(import_lines(cursor), int(budget * _IMPORTS_SHARE))
    related = related_signatures(cursor, others, int(budget * _RELATED_SHARE))
    scope = _fit_scopes(cursor.scopes(), int(budget * _SCOPE_SHARE))
    code_budget -= len(imports) + len(related) + len(scope)

    suffix = suffix_window(cursor, max(0, int(code_budget * _SUFFIX_SHARE)))
    prefix = prefix_window(cursor, max(0, code_budget - len(suffix)))
    line = cursor.line_prefix + cursor.line_suffix
    return CompletionContext(
        file_name=file_name,
        language=document.language,
        prefix=prefix,
        suffix=suffix,
        line_prefix=cursor.line_prefix,
        line_suffix=cursor.line_suffix,
        scope=scope,
        imports=imports,
        related=related,
        mode=mode,
        indent=INDENT.match(line).group(),
    )


def _fit_scopes(scopes: list[str], budget: int) -> str:
    """The innermost scopes that fit in `budget` characters, outermost first."""
    kept: list[str] = []
    used = 0
    for signature in reversed(scopes):
        used += len(signature) + 1
        if used > budget:
            break
        kept.append(signature)
    return "\n".join(reversed(kept))


def _fit_lines(blocks: list[str], budget: int) -> str:
    """The first blocks that fit in `budget` characters, one per line."""
    kept: list[str] = []
    used = 0
    for block in blocks:
        used += len(block) + 1
        if used > budget:
            break
        kept.append(block)
    return "\n".join(kept)
