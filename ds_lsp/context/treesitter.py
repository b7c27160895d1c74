"""Tree-sitter parsers for the languages ds-lsp understands.

Each grammar comes from its own wheel (tree-sitter-python, ...) and is imported
only when first needed, so a broken grammar breaks its own language and nothing
else. Parsers are cached per language; a tree_sitter.Parser is not thread-safe,
so use them from one thread (the server's event loop).
"""

from __future__ import annotations

import functools
import importlib
import os

import tree_sitter

# Canonical language name -> (grammar module, function returning its language).
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "rust": ("tree_sitter_rust", "language"),
    "go": ("tree_sitter_go", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "lua": ("tree_sitter_lua", "language"),
    "bash": ("tree_sitter_bash", "language"),
}

SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(_GRAMMARS)

_EXTENSIONS: dict[str, str] = {
    "py": "python",
    "pyi": "python",
    "js": "javascript",
    "mjs": "javascript",
    "cjs": "javascript",
    # The JavaScript grammar parses JSX too.
    "jsx": "javascript",
    "ts": "typescript",
    "tsx": "tsx",
    "rs": "rust",
    "go": "go",
    "java": "java",
    "c": "c",
    # A .h file may be C++; the C grammar is the safer guess for plain headers.
    "h": "c",
    "cc": "cpp",
    "cpp": "cpp",
    "cxx": "cpp",
    "hpp": "cpp",
    "hh": "cpp",
    "cs": "csharp",
    "csx": "csharp",
    "rb": "ruby",
    "rake": "ruby",
    "gemspec": "ruby",
    "ru": "ruby",
    "lua": "lua",
    "sh": "bash",
    "bash": "bash",
}

# Files known by their whole name, having no extension (or only a leading dot).
_FILE_NAMES: dict[str, str] = {
    "gemfile": "ruby",
    "rakefile": "ruby",
    ".bashrc": "bash",
    ".bash_profile": "bash",
    ".bash_aliases": "bash",
    ".profile": "bash",
    "pkgbuild": "bash",
}

_LSP_LANGUAGE_IDS: dict[str, str] = {
    "python": "python",
    "javascript": "javascript",
    "javascriptreact": "javascript",
    "typescript": "typescript",
    "typescriptreact": "tsx",
    "rust": "rust",
    "go": "go",
    "java": "java",
    "c": "c",
    "cpp": "cpp",
    "csharp": "csharp",
    "ruby": "ruby",
    "lua": "lua",
    # VS Code says "shellscript"; Neovim sends its filetype, "sh" or "bash".
    "shellscript": "bash",
    "sh": "bash",
    "bash": "bash",
}

# A few lines each grammar must parse without errors (see check_grammars).
_SAMPLES: dict[str, str] = {
    "python": "def f(x):\n    return x + 1\n",
    "javascript": "function f(x) {\n  return <b>{x}</b>;\n}\n",
    "typescript": "function f(x: number): number {\n  return x + 1;\n}\n",
    "tsx": "const f = (x: number) => <b>{x}</b>;\n",
    "rust": "fn f(x: i32) -> i32 {\n    x + 1\n}\n",
    "go": "package main\n\nfunc f(x int) int {\n\treturn x + 1\n}\n",
    "java": "class A {\n  int f(int x) { return x + 1; }\n}\n",
    "c": "int f(int x) {\n  return x + 1;\n}\n",
    "cpp": "template <typename T> T f(T x) {\n  return x + 1;\n}\n",
    "csharp": "class A {\n  int F(int x) => x + 1;\n}\n",
    "ruby": "def f(x)\n  x + 1\nend\n",
    "lua": "local function f(x)\n  return x + 1\nend\n",
    "bash": 'f() {\n  echo "$(( $1 + 1 ))"\n}\n',
}


def language_for_path(path: str) -> str | None:
    """The canonical language of a file (or file URI), from its extension or name."""
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if extension:
        return _EXTENSIONS.get(extension)
    return _FILE_NAMES.get(os.path.basename(path).lower())


def language_for_lsp_id(language_id: str) -> str | None:
    """The canonical language for an LSP languageId ("typescriptreact" -> "tsx")."""
    return _LSP_LANGUAGE_IDS.get(language_id)


def language_for_document(language_id: str, uri: str) -> str | None:
    """An open document's language: its languageId first, its file name second.

    None (plain text) for anything without a grammar.
    """
    return language_for_lsp_id(language_id) or language_for_path(uri)


@functools.cache
def get_language(language: str) -> tree_sitter.Language:
    if language not in _GRAMMARS:
        raise ValueError(f"unsupported language: {language!r}")
    module_name, function_name = _GRAMMARS[language]
    module = importlib.import_module(module_name)
    return tree_sitter.Language(getattr(module, function_name)())


@functools.cache
def get_parser(language: str) -> tree_sitter.Parser:
    """The cached parser for a canonical language name; ValueError if unsupported."""
    return tree_sitter.Parser(get_language(language))


def parse_error_count(text: str, language: str) -> int:
    """How many ERROR and MISSING nodes the parse of `text` has (0: it parses cleanly).

    Safe in any thread: it parses with a parser of its own (the shared ones belong to
    the event loop), so an edit's checks can run off the loop."""
    tree = tree_sitter.Parser(get_language(language)).parse(text.encode("utf-8"))
    count = 0
    pending = [tree.root_node]
    while pending:
        node = pending.pop()
        if node.is_error or node.is_missing:
            count += 1
        # has_error covers the whole subtree: skip the parts that parsed cleanly.
        pending.extend(child for child in node.children if child.has_error)
    return count


def check_grammars() -> dict[str, str | None]:
    """language -> None if its grammar loads and parses a sample cleanly, else why not."""
    results: dict[str, str | None] = {}
    for language in SUPPORTED_LANGUAGES:
        try:
            errors = parse_error_count(_SAMPLES[language], language)
        except Exception as exc:  # any failure to load is reported, not raised
            results[language] = f"{type(exc).__name__}: {exc}"
            continue
        results[language] = f"a valid sample parsed with {errors} errors" if errors else None
    return results
