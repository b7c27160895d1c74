"""The import statements of the file being completed, for the prompt.

Pure: no LSP types.
"""

from __future__ import annotations

import re

from ds_lsp.context.cursor import Cursor

# Top-level nodes that import something; the callables need a look at their text.
_IMPORT_NODES: dict[str, frozenset[str]] = {
    "python": frozenset({"import_statement", "import_from_statement", "future_import_statement"}),
    "javascript": frozenset({"import_statement"}),
    "typescript": frozenset({"import_statement", "import_alias"}),
    "tsx": frozenset({"import_statement", "import_alias"}),
    "go": frozenset({"import_declaration"}),
    "rust": frozenset({"use_declaration", "extern_crate_declaration"}),
    "java": frozenset({"import_declaration"}),
    "c": frozenset({"preproc_include"}),
    "cpp": frozenset({"preproc_include", "using_declaration"}),
    "csharp": frozenset({"using_directive"}),
}
_IMPORT_CALLS: dict[str, tuple[frozenset[str], re.Pattern[str]]] = {
    "javascript": (
        frozenset({"lexical_declaration", "variable_declaration"}),
        re.compile(r"[^\n]*\brequire\s*\("),
    ),
    "ruby": (frozenset({"call"}), re.compile(r"(require|require_relative|load)\b")),
    "lua": (frozenset({"variable_declaration"}), re.compile(r"[^\n]*\brequire\b")),
    "bash": (frozenset({"command"}), re.compile(r"(source|\.)\s")),
}
_IMPORT_CALLS["typescript"] = _IMPORT_CALLS["tsx"] = _IMPORT_CALLS["javascript"]


def import_lines(cursor: Cursor) -> list[str]:
    """The file's top-level import statements, except one on the cursor line (being
    typed, it would change the start of the prompt at each keystroke)."""
    language = cursor.language or ""
    kinds = _IMPORT_NODES.get(language, frozenset())
    calls, call_pattern = _IMPORT_CALLS.get(language, (frozenset(), None))
    if cursor.root is None or not (kinds or calls):
        return []
    source = cursor.source
    found = []
    for node in cursor.root.children:
        kind = node.type
        if kind not in kinds and kind not in calls:
            continue
        if node.start_byte <= cursor.line_end_byte and node.end_byte > cursor.line_start_byte:
            continue  # on the cursor line
        text = source[node.start_byte : node.end_byte].decode("utf-8", "replace").rstrip()
        if kind in kinds or call_pattern.match(text):
            found.append(text)
    return found
