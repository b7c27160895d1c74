"""The tree-sitter helper: every grammar loads offline and finds errors in broken code."""

import pytest

from ds_lsp.context.treesitter import (
    SUPPORTED_LANGUAGES,
    check_grammars,
    get_parser,
    language_for_document,
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
    "csharp": (
        "class A {\n  int Add(int a, int b) => a + b;\n}\n",
        "class A {\n  int Add(int a, int b => a + ;\n}\n",
    ),
    "ruby": (
        "def add(a, b)\n  a + b\nend\n",
        "def add(a, b\n  a +\n",
    ),
    "lua": (
        "local function add(a, b)\n  return a + b\nend\n",
        "local function add(a, b\n  return a +\nend\n",
    ),
    "bash": (
        'add() {\n  echo "$(( $1 + $2 ))"\n}\nif [ -n "$1" ]; then add 1 2; fi\n',
        'add() {\n  echo "$(( $1 + ))"\n}\nif [ -n "$1" ]; then add 1 2;\n',
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
    # tree-sitter may repair `let x = 1` with a MISSING ";" rather than an ERROR node;
    # how it repairs depends on the grammar's version, but the code must count as broken
    # and the count must take in every ERROR and MISSING node.
    code = "fn f() {\n    let x = 1\n}\n"
    nodes, pending = [], [get_parser("rust").parse(code.encode()).root_node]
    while pending:
        node = pending.pop()
        nodes.append(node)
        pending.extend(node.children)
    flagged = [node for node in nodes if node.is_missing or node.is_error]
    assert parse_error_count(code, "rust") == len(flagged) > 0


def test_more_breakage_counts_more_errors():
    once = "def f(a):\n    return a +\n"
    twice = once + "def g(b:\n    return b +\n"
    assert parse_error_count(twice, "python") > parse_error_count(once, "python") > 0


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
        ("Program.cs", "csharp"),
        ("lib/a.rb", "ruby"),
        ("tasks.rake", "ruby"),
        ("Gemfile", "ruby"),
        ("file:///home/me/app/Rakefile", "ruby"),
        ("init.lua", "lua"),
        ("run.sh", "bash"),
        ("run.bash", "bash"),
        ("/home/me/.bashrc", "bash"),
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
        ("csharp", "csharp"),
        ("ruby", "ruby"),
        ("lua", "lua"),
        ("shellscript", "bash"),
        ("sh", "bash"),
        ("bash", "bash"),
        ("markdown", None),
        ("plaintext", None),
    ],
)
def test_language_for_lsp_id(language_id, language):
    assert language_for_lsp_id(language_id) == language


@pytest.mark.parametrize(
    ("language_id", "uri", "language"),
    [
        ("python", "file:///notes.txt", "python"),  # the languageId wins
        ("ruby", "file:///a.py", "ruby"),
        ("dockerfile", "file:///build.sh", "bash"),  # no grammar for it: the extension
        ("plaintext", "file:///a.lua", "lua"),
        ("markdown", "file:///README.md", None),  # neither: plain text
        ("", "untitled:Untitled-1", None),
    ],
)
def test_language_for_document_prefers_the_language_id(language_id, uri, language):
    assert language_for_document(language_id, uri) == language
