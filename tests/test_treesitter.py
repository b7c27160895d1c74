"""The tree-sitter helper: every grammar loads offline and finds errors in broken code."""

import pytest

from ds_lsp.context.treesitter import (
    SUPPORTED_LANGUAGES,
    check_grammars,
    get_parser,
    language_for_lsp_id,
    language_for_path,
    parse_error_count,
)

# language -> (code that parses, the same code broken)
SAMPLES = {
    "python": ("def add(a, b):\n    return a + b\n", "def add(a, b:\n    return a +\n"),
    "javascript": (
        "const add = (a, b) => a + b;\nconst el = <b>{add(1, 2)}</b>;\n",
        "const add = (a, b => a + ;\n",
    ),
    "typescript": (
        "function add(a: number, b: number): number {\n  return a + b;\n}\n",
        "function add(a: number, b: number): number {\n  return a + ;\n",
    ),
    "tsx": (
        "const View = (p: { n: number }) => <b>{p.n}</b>;\n",
        "const View = (p: { n: number }) => <b>{p.n</b>;\n",
    ),
    "rust": ("fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n", "fn add(a: i32, b: i32 -> i32 {\n"),
    "go": (
        "package main\n\nfunc add(a, b int) int {\n\treturn a + b\n}\n",
        "package main\n\nfunc add(a, b int) int {\n\treturn a +\n",
    ),
    "java": (
        "class A {\n  int add(int a, int b) { return a + b; }\n}\n",
        "class A {\n  int add(int a, int b { return a + b; }\n}\n",
    ),
    "c": (
        "int add(int a, int b) {\n  return a + b;\n}\n",
        "int add(int a, int b {\n  return a +;\n",
    ),
    "cpp": (
        "template <typename T> T add(T a, T b) {\n  return a + b;\n}\n",
        "template <typename T T add(T a, T b) {\n  return a + ;\n}\n",
    ),
}


def test_samples_cover_every_supported_language():
    assert set(SAMPLES) == set(SUPPORTED_LANGUAGES)


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_each_grammar_parses_good_code_cleanly_and_counts_errors_in_broken_code(language):
    good, broken = SAMPLES[language]
    assert parse_error_count(good, language) == 0
    assert parse_error_count(broken, language) > 0


def test_missing_nodes_count_as_errors():
    # tree-sitter repairs `let x = 1` with a MISSING ";" rather than an ERROR node.
    assert parse_error_count("fn f() {\n    let x = 1\n}\n", "rust") == 1


def test_non_ascii_text_is_parsed():
    assert parse_error_count("name = 'Zoë ✓'\n", "python") == 0


def test_every_grammar_passes_the_doctor_check():
    assert check_grammars() == {language: None for language in SUPPORTED_LANGUAGES}


def test_parsers_are_cached_and_unknown_languages_are_refused():
    assert get_parser("python") is get_parser("python")
    with pytest.raises(ValueError, match="cobol"):
        get_parser("cobol")


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("src/app.py", "python"),
        ("stubs/app.pyi", "python"),
        ("a.js", "javascript"),
        ("a.mjs", "javascript"),
        ("a.cjs", "javascript"),
        ("a.jsx", "javascript"),
        ("a.ts", "typescript"),
        ("a.tsx", "tsx"),
        ("src/main.rs", "rust"),
        ("main.go", "go"),
        ("A.java", "java"),
        ("a.c", "c"),
        ("a.h", "c"),
        ("a.cc", "cpp"),
        ("a.cpp", "cpp"),
        ("a.cxx", "cpp"),
        ("a.hpp", "cpp"),
        ("a.hh", "cpp"),
        ("file:///home/me/Project/App.PY", "python"),
        ("README.md", None),
        ("Makefile", None),
        ("archive.tar.gz", None),
    ],
)
def test_language_for_path(path, language):
    assert language_for_path(path) == language


@pytest.mark.parametrize(
    ("language_id", "language"),
    [
        ("python", "python"),
        ("javascript", "javascript"),
        ("javascriptreact", "javascript"),
        ("typescript", "typescript"),
        ("typescriptreact", "tsx"),
        ("rust", "rust"),
        ("go", "go"),
        ("java", "java"),
        ("c", "c"),
        ("cpp", "cpp"),
        ("markdown", None),
        ("plaintext", None),
    ],
)
def test_language_for_lsp_id(language_id, language):
    assert language_for_lsp_id(language_id) == language
