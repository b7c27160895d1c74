"""The inline-completion context: mode, windows, scope, imports, related symbols, prompts."""

from __future__ import annotations

import random

import pytest
from lsprotocol.types import Position, Range, TextDocumentContentChangePartial

from ds_lsp.completion_prompts import (
    CURSOR,
    FIM_PRESETS,
    PromptStyle,
    render_chat_prompt,
    render_fim,
    reserved_chars,
)
from ds_lsp.context.cursor import completion_mode
from ds_lsp.context.gather import CompletionContext, gather
from ds_lsp.context.windows import WINDOW_STEP
from ds_lsp.documents import Document, DocumentStore
from ds_lsp.text import CHARS_PER_TOKEN

HERE = "‸"  # marks the cursor in the texts below


def open_at(
    text: str, language_id: str, uri: str | None = None, store: DocumentStore | None = None
) -> tuple[Document, int]:
    """The document `text` without its cursor mark, and the cursor's offset."""
    offset = text.index(HERE)
    extension = {"python": "py", "typescript": "ts", "go": "go", "rust": "rs"}.get(language_id)
    uri = uri or f"file:///work/project/main.{extension or 'txt'}"
    document = (store or DocumentStore()).open(uri, language_id, 1, text.replace(HERE, "", 1))
    return document, offset


# Room for the longest prompt's own text (the chat prompt's), as the engine leaves it.
RESERVED = reserved_chars(PromptStyle("chat"))


def context_at(text: str, language_id: str, others=(), budget: int = 1536, **kwargs):
    document, offset = open_at(text, language_id)
    return gather(document, offset, others, budget, reserved_chars=RESERVED, **kwargs)


def mode_at(text: str, language_id: str, invoked: bool = False) -> str:
    document, offset = open_at(text, language_id)
    return completion_mode(document, offset, invoked)


# ---------------------------------------------------------------- modes

MODES = [
    # Python
    ("python", "# a note about ‸things\nx = 1\n", "none"),
    ("python", "x = 1  # trailing‸\n", "none"),
    ("python", 'x = "hello ‸world"\n', "none"),
    ("python", 'def f():\n    """Docs ‸here."""\n', "none"),
    ("python", 'x = "unclosed ‸\ny = 2\n', "none"),  # being typed: not a string node yet
    ("python", 'x = "done"‸\n', "single_line"),  # right after the closing quote
    ("python", 'x = f"{valu‸}"\n', "single_line"),  # code inside an f-string
    ("python", "result = compute(‸)\n", "single_line"),  # mid-line
    ("python", "result = comp‸\n", "single_line"),
    ("python", "def f(x):‸\n", "multi_line"),  # after a block opener
    ("python", "class A:\n    def f(self):\n        x = 1\n        ‸\n", "multi_line"),
    ("python", "def f(x):\n    return x\n\n‸", "single_line"),  # top level again
    ("python", "def f(x):\n‸", "multi_line"),  # the line after a header, not indented yet
    # TypeScript
    ("typescript", "// explain ‸\nlet x = 1;\n", "none"),
    ("typescript", "/* block ‸ comment */\n", "none"),
    ("typescript", "/* block comment */‸\n", "single_line"),
    ("typescript", "const s = 'quoted ‸';\n", "none"),
    ("typescript", "const s = `template ${nam‸}`;\n", "single_line"),
    ("typescript", "function f(a: number): number {‸\n", "multi_line"),
    ("typescript", "function f(a: number): number {\n  const b = a;\n  ‸\n}\n", "multi_line"),
    ("typescript", "const total = items.map(‸);\n", "single_line"),
    ("typescript", "const total = ‸\n", "single_line"),
    # Go
    ("go", "package main\n\n// Run does ‸\nfunc Run() {}\n", "none"),
    ("go", 'package main\n\nfunc main() {\n\tx := "a‸"\n}\n', "none"),
    ("go", "package main\n\nfunc main() {‸\n", "multi_line"),
    ("go", "package main\n\nfunc main() {\n\tx := 1\n\t‸\n}\n", "multi_line"),
    ("go", "package main\n\nfunc main() {\n\tfmt.Println(‸)\n}\n", "single_line"),
    # Rust
    ("rust", "fn main() {\n    // later ‸\n}\n", "none"),
    ("rust", 'fn main() {\n    let s = "a‸b";\n}\n', "none"),
    ("rust", "fn f<'a>(x: &'a str) -> &'a str {\n    let s = \"ab‸\n}\n", "none"),
    ("rust", "fn main() {‸\n", "multi_line"),
    (
        "rust",
        "impl A {\n    fn f(&self) {\n        let x = 1;\n        ‸\n    }\n}\n",
        "multi_line",
    ),
    ("rust", "fn main() {\n    let v = vec![1, ‸];\n}\n", "single_line"),
    # Others
    ("ruby", "class A\n  def f(x)‸\n", "multi_line"),
    ("lua", "local function f(x)‸\n", "multi_line"),
    ("bash", "if [ -f x ]; then‸\n", "multi_line"),
    # Plain text has no tree: always one line.
    ("plaintext", "Some notes about ‸\n", "single_line"),
    ("plaintext", "# not a comment here ‸\n", "single_line"),
]


@pytest.mark.parametrize(("language_id", "text", "expected"), MODES)
def test_the_node_at_the_cursor_decides_the_mode(language_id, text, expected):
    assert mode_at(text, language_id) == expected


@pytest.mark.parametrize(
    ("language_id", "text"),
    [
        ("python", "# a note about ‸things\n"),
        ("python", 'x = "hello ‸world"\n'),
        ("typescript", "// explain ‸\n"),
        ("go", 'package main\n\nvar x = "a‸"\n'),
    ],
)
def test_asking_inside_a_comment_or_string_completes_one_line(language_id, text):
    assert mode_at(text, language_id, invoked=True) == "single_line"
    assert context_at(text, language_id, invoked=True).mode == "single_line"


def test_gather_reports_the_mode_the_line_and_its_indentation():
    context = context_at("class A:\n    def f(self):\n        value = self.comp‸ute(1)\n", "python")
    assert context.mode == "single_line"
    assert context.line_prefix == "        value = self.comp"
    assert context.line_suffix == "ute(1)"
    assert context.indent == "        "
    assert context.language == "python"
    assert context.file_name == "main.py"


# ---------------------------------------------------------------- scope


def test_a_method_in_a_class_has_the_class_and_the_def_lines_as_scope():
    text = (
        "import os\n\n"
        "class Store:\n"
        '    """Keeps things."""\n\n'
        "    def save(self, key: str,\n"
        "             value: int) -> None:\n"
        "        # write it down\n"
        "        path = os.path.join(key)\n"
        "        ‸\n\n"
        "def other():\n    pass\n"
    )
    context = context_at(text, "python")
    assert context.scope == (
        "class Store:\n    def save(self, key: str,\n             value: int) -> None:"
    )
    assert context.mode == "multi_line"


def test_a_nested_function_inside_a_method_lists_every_level():
    text = "class A:\n    def f(self):\n        def inner(x):\n            return x‸\n"
    assert context_at(text, "python").scope == ("class A:\n    def f(self):\n        def inner(x):")


def test_a_blank_line_belongs_to_the_block_its_indentation_says():
    text = "class A:\n    def f(self):\n        return 1\n    ‸\n"
    assert context_at(text, "python").scope == "class A:"
    assert context_at(text.replace("    ‸", "‸"), "python").scope == ""


def test_the_signature_being_written_is_not_its_own_scope():
    assert context_at("class A:\n    def f(self):‸\n", "python").scope == "class A:"


@pytest.mark.parametrize(
    ("language_id", "text", "scope"),
    [
        (
            "typescript",
            "export class App {\n  run(path: string): void {\n    const x = 1;\n    ‸\n  }\n}\n",
            "export class App {\n  run(path: string): void {",
        ),
        (
            "go",
            "package main\n\nfunc (s *Server) Run(port int) error {\n\t‸\n\treturn nil\n}\n",
            "func (s *Server) Run(port int) error {",
        ),
        (
            "rust",
            "impl Server {\n    pub fn start(&self) -> io::Result<()> {\n        ‸\n    }\n}\n",
            "impl Server {\n    pub fn start(&self) -> io::Result<()> {",
        ),
        (
            "java",
            "public class A {\n  public int f(int x) {\n    ‸\n  }\n}\n",
            "public class A {\n  public int f(int x) {",
        ),
        ("ruby", "module M\n  def f(x)\n    ‸\n  end\nend\n", "module M\n  def f(x)"),
        ("typescript", "function f() {\n}\n‸\n", ""),  # after the closing brace
    ],
)
def test_scope_in_brace_and_keyword_languages(language_id, text, scope):
    assert context_at(text, language_id).scope == scope


# ---------------------------------------------------------------- imports


@pytest.mark.parametrize(
    ("language_id", "text", "imports"),
    [
        (
            "python",
            "import os\nfrom x import (a,\n    b)\n\ndef f():\n    import json\n    ‸\n",
            "import os\nfrom x import (a,\n    b)",  # top level only
        ),
        (
            "typescript",
            'import { a } from "./a";\nimport * as fs from "fs";\nconst c = require("c");\n'
            "const d = 1;\n‸\n",
            'import { a } from "./a";\nimport * as fs from "fs";\nconst c = require("c");',
        ),
        (
            "go",
            'package main\n\nimport (\n\t"fmt"\n\t"os"\n)\nimport "strings"\n\nfunc main() {‸}\n',
            'import (\n\t"fmt"\n\t"os"\n)\nimport "strings"',
        ),
        (
            "rust",
            "use std::io;\nuse std::collections::{HashMap, HashSet};\nextern crate foo;\n"
            "fn main() {‸}\n",
            "use std::io;\nuse std::collections::{HashMap, HashSet};\nextern crate foo;",
        ),
        ("java", "package a;\nimport java.util.List;\nclass A {‸}\n", "import java.util.List;"),
        (
            "c",
            '#include <stdio.h>\n#include "x.h"\nint x;‸\n',
            '#include <stdio.h>\n#include "x.h"',
        ),
        (
            "cpp",
            "#include <vector>\nusing namespace std;\n‸\n",
            "#include <vector>\nusing namespace std;",
        ),
        ("csharp", "using System;\nusing System.IO;\n‸\n", "using System;\nusing System.IO;"),
        (
            "ruby",
            'require "json"\nrequire_relative "x"\nputs 1\n‸\n',
            'require "json"\nrequire_relative "x"',
        ),
        ("lua", 'local json = require("json")\nlocal M = {}\n‸\n', 'local json = require("json")'),
        ("bash", "source ./lib.sh\n. other.sh\necho hi\n‸\n", "source ./lib.sh\n. other.sh"),
        ("plaintext", "import os\n‸\n", ""),
    ],
)
def test_the_files_import_lines_per_language(language_id, text, imports):
    assert context_at(text, language_id).imports == imports


def test_an_import_being_typed_on_the_cursor_line_is_not_listed():
    context = context_at("import os\nimport sy‸\n", "python")
    assert context.imports == "import os"


# ---------------------------------------------------------------- related symbols


def test_signatures_of_other_documents_symbols_used_near_the_cursor():
    store = DocumentStore()
    store.open(
        "file:///work/project/utils.py",
        "python",
        1,
        "import re\n\n"
        "def parse_config(path: str) -> dict:\n    return {}\n\n"
        "def unused_helper(x):\n    return x\n\n"
        "class Loader:\n    def load(self, name: str) -> bytes:\n        return b''\n",
    )
    scripts = store.open(
        "file:///work/project/other.ts", "typescript", 1, "function parse_config() {}\n"
    )
    text = (
        "from utils import parse_config, Loader\n\n"
        "def main(path):\n"
        "    config = parse_config(path)\n"
        "    data = Loader().load(config['name'])\n"
        "    ‸\n"
    )
    document, offset = open_at(text, "python", store=store)
    context = gather(document, offset, store.values(), 1536)
    assert context.related == (
        "utils.py:\n"
        "def parse_config(path: str) -> dict:\n"
        "class Loader:\n"
        "    def load(self, name: str) -> bytes:"
    )
    assert "unused_helper" not in context.related
    assert scripts.uri not in context.related, "a TypeScript file's symbols are not Python's"
    assert "Signatures from other open files:" in render_chat_prompt(context)


@pytest.mark.parametrize(
    ("language_id", "other_text", "text", "expected", "unexpected"),
    [
        (
            "typescript",
            "export function parseConfig(path: string): Config {\n  return {};\n}\n"
            "export const helper = (x: number): number => x;\n"
            "export interface Config { a: number }\nfunction notUsed() {}\n",
            "const c = parseConfig(p);\nconst h = helper(2);\n‸\n",
            [
                "export function parseConfig(path: string): Config {",
                "export const helper = (x: number): number => x;",
            ],
            "notUsed",
        ),
        (
            "go",
            "package main\n\nfunc ParseConfig(path string) (*Config, error) {\n"
            "\treturn nil, nil\n}\n\ntype Config struct {\n\tA int\n}\n\nfunc NotUsed() {}\n",
            'package main\n\nfunc main() {\n\tcfg, _ := ParseConfig("x")\n\tvar c Config\n\t‸\n}\n',
            ["func ParseConfig(path string) (*Config, error) {", "type Config struct {"],
            "NotUsed",
        ),
        (
            "rust",
            "pub struct Config {\n    pub a: i32,\n}\n\nimpl Config {\n"
            "    pub fn load(path: &str) -> Config {\n        todo!()\n    }\n}\n"
            "pub fn not_used() {}\n",
            'fn main() {\n    let c = Config::load("x");\n    ‸\n}\n',
            ["impl Config {\n    pub fn load(path: &str) -> Config {", "pub struct Config {"],
            "not_used",
        ),
        (
            "c",
            "int add(int a, int b);\nint counter;\nstatic int *make(int n) {\n  return 0;\n}\n",
            "int main(void) {\n  int r = add(1, 2) + counter;\n  ‸\n}\n",
            ["int add(int a, int b);"],
            "counter",  # a variable, not a function
        ),
    ],
)
def test_related_signatures_per_language(language_id, other_text, text, expected, unexpected):
    store = DocumentStore()
    extension = {"typescript": "ts", "go": "go", "rust": "rs", "c": "h"}[language_id]
    store.open(f"file:///work/project/lib.{extension}", language_id, 1, other_text)
    document, offset = open_at(
        text, language_id, uri=f"file:///work/project/main.{extension}x", store=store
    )
    related = gather(document, offset, store.values(), 1536).related
    for signature in expected:
        assert signature in related
    assert unexpected not in related


def test_related_signatures_do_not_change_while_a_name_is_typed():
    store = DocumentStore()
    store.open(
        "file:///w/lib.py", "python", 1, "def parse(x):\n    pass\n\ndef parser():\n    pass\n"
    )
    document, offset = open_at("def f():\n    y = parse(1)\n    z = pars‸\n", "python", store=store)
    first = gather(document, offset, store.values(), 1536).related
    assert first == "lib.py:\ndef parse(x):"
    typed = store.change(document.uri, 2, [insert(document, offset, "er(")])
    assert gather(typed, offset + 3, store.values(), 1536).related == first


def test_when_related_signatures_do_not_all_fit_the_nearest_used_are_kept():
    store = DocumentStore()
    long_parameters = ", ".join(f"p{n}: int" for n in range(12))
    store.open(
        "file:///w/lib.py",
        "python",
        1,
        f"def far_away({long_parameters}):\n    pass\n\n"
        f"def close_by({long_parameters}):\n    pass\n",
    )
    text = "far_away()\n" + "x = 1\n" * 20 + "close_by()\n‸\n"
    document, offset = open_at(text, "python", store=store)
    related = gather(document, offset, store.values(), 400).related
    assert related == f"lib.py:\ndef close_by({long_parameters}):"
    both = gather(document, offset, store.values(), 4000).related
    assert both.index("def far_away") < both.index("def close_by"), "shown in file order"


def test_a_budget_too_small_for_related_signatures_leaves_them_out():
    store = DocumentStore()
    store.open("file:///w/lib.py", "python", 1, "def parse(x):\n    pass\n")
    document, offset = open_at("y = parse(1)\n‸\n", "python", store=store)
    assert gather(document, offset, store.values(), 1536).related
    assert gather(document, offset, store.values(), 20).related == ""


# ---------------------------------------------------------------- the budget


def big_python_file(lines: int = 5000) -> str:
    rng = random.Random(3)
    parts = ['"""A big module."""\n', "import os\n", "from typing import Any\n", "\n"]
    index = 0
    while len(parts) < lines:
        index += 1
        parts += [
            f"class Thing{index}:\n",
            f"    def method_{index}(self, value: int) -> int:\n",
            f"        total = value * {rng.randint(1, 999)}\n",
            "        for item in range(value):\n",
            f"            total += item % {rng.randint(2, 9)}  # {'x' * rng.randint(0, 60)}\n",
            "        return total\n",
            "\n",
        ]
    return "".join(parts[:lines])


def test_a_big_file_fits_the_budget_in_whole_lines_with_the_cursor_line_intact():
    text = big_python_file()
    lines = text.splitlines(keepends=True)
    row = 2506
    assert lines[row].startswith("        for item")
    offset = sum(len(line) for line in lines[:row]) + len("        for item in ra")
    document = DocumentStore().open("file:///w/big.py", "python", 1, text)
    budget = 1536
    context = gather(document, offset, [], budget, reserved_chars=RESERVED)

    limit = budget * CHARS_PER_TOKEN
    assert len(render_chat_prompt(context)) <= limit
    for preset in FIM_PRESETS:
        assert len(render_fim(context, preset).text) <= limit
    assert len(context.prefix) + len(context.suffix) > limit * 0.6, "the budget is used"
    assert len(context.prefix) > 2 * len(context.suffix)

    # Whole lines: the prefix starts a line and ends at the cursor; the suffix starts
    # at the cursor and ends a line.
    assert text[:offset].endswith(context.prefix)
    assert text[offset - len(context.prefix) - 1] == "\n"
    assert text[offset:].startswith(context.suffix)
    assert context.suffix.endswith("\n")
    assert context.prefix.endswith("        for item in ra")
    assert context.suffix.startswith("nge(value):\n")
    # The file's imports are far above the window: they come as their own section.
    assert "import os" not in context.prefix
    assert context.imports == "import os\nfrom typing import Any"
    assert "Imports of this file:\n```python\nimport os\n" in render_chat_prompt(context)
    number = (row - 4) // 7 + 1  # a 4-line header, then 7-line classes
    assert (
        context.scope == f"class Thing{number}:\n    def method_{number}(self, value: int) -> int:"
    )


def test_an_endless_cursor_line_is_cut_at_the_budget():
    line = "x = [" + ", ".join(str(n) for n in range(3000)) + "‸]\n"
    context = context_at(line, "python", budget=500)
    assert len(render_chat_prompt(context)) <= 500 * CHARS_PER_TOKEN
    assert context.prefix.endswith("2998, 2999")
    assert context.suffix == "]\n"


def test_a_small_file_is_shown_whole_and_its_imports_only_once():
    context = context_at("import os\n\ndef f():\n    return os.‸\n\nf()\n", "python")
    assert context.prefix == "import os\n\ndef f():\n    return os."
    assert context.suffix == "\n\nf()\n"
    prompt = render_chat_prompt(context)
    assert prompt.count("import os") == 1
    assert prompt.count("def f():") == 1


# ---------------------------------------------------------------- prompt order


def insert(document: Document, offset: int, text: str) -> TextDocumentContentChangePartial:
    position = document.position_at(offset)
    return TextDocumentContentChangePartial(range=Range(position, position), text=text)


@pytest.mark.parametrize("row", [2, 1202, 4990])
def test_a_typed_character_only_changes_the_end_of_the_prompt(row):
    store = DocumentStore()
    store.open("file:///w/lib.py", "python", 1, "def method_171(self, value):\n    pass\n")
    text = big_python_file()
    document = store.open("file:///w/big.py", "python", 1, text)
    offset = document.offset_at(Position(row, len(document.line(row)) - 2))
    for typed in "ab(":
        before = gather(document, offset, store.values(), 1536)
        document = store.change(
            document.uri, document.version + 1, [insert(document, offset, typed)]
        )
        offset += 1
        after = gather(document, offset, store.values(), 1536)

        first, second = render_chat_prompt(before), render_chat_prompt(after)
        shared = first[: first.rindex(CURSOR)]  # all but the constant tail
        assert second.startswith(shared + typed + CURSOR)
        assert len(first) - len(shared) < 120
        fim_first = render_fim(before, "qwen2.5-coder").text
        fim_second = render_fim(after, "qwen2.5-coder").text
        cut = fim_first.index("<|fim_suffix|>")
        assert fim_second.startswith(fim_first[:cut] + typed + "<|fim_suffix|>")


def test_the_prefix_window_moves_in_steps_while_lines_are_added():
    store = DocumentStore()
    document = store.open("file:///w/big.py", "python", 1, big_python_file())
    offset = document.offset_at(Position(3000, 0))
    starts = set()
    for _ in range(2 * WINDOW_STEP):
        document = store.change(
            document.uri, document.version + 1, [insert(document, offset, "x = 1\n")]
        )
        offset += len("x = 1\n")
        context = gather(document, offset, [], 1536)
        starts.add(offset - len(context.prefix))
    assert len(starts) <= 3, "one re-evaluation of the prefix per WINDOW_STEP lines at most"


def test_the_chat_prompt_asks_for_the_code_at_the_cursor_only():
    context = context_at("def add(a, b):\n    return ‸\n", "python")
    prompt = render_chat_prompt(context)
    assert "only the code that goes at <CURSOR>" in prompt
    assert "no code fences" in prompt
    assert "main.py" in prompt
    assert prompt.index("Code after the cursor") < prompt.index("Code before the cursor")
    assert "    return <CURSOR>\n```\n" in prompt
    assert prompt.rstrip().endswith("Complete only the rest of the cursor's line.")
    multi = render_chat_prompt(context_at("def add(a, b):‸\n", "python"))
    assert multi.rstrip().endswith("a few lines at most.")


# ---------------------------------------------------------------- FIM


def fim_context(**changes) -> CompletionContext:
    fields = dict(
        file_name="src/app.py",
        language="python",
        prefix="def add(a, b):\n    return ",
        suffix="\n\nprint(add(1, 2))\n",
        line_prefix="    return ",
        line_suffix="",
        scope="def add(a, b):",
        imports="import os",
        related="lib.py:\ndef helper(x):",
        mode="single_line",
        indent="    ",
    )
    fields.update(changes)
    return CompletionContext(**fields)


HEADER = "# Path: src/app.py\n# import os\n# lib.py:\n# def helper(x):\n"


@pytest.mark.parametrize(
    ("template", "pieces"),
    [
        (
            "qwen2.5-coder",
            [("<|fim_prefix|>", True), ("P", False), ("<|fim_suffix|>", True), ("S", False)]
            + [("<|fim_middle|>", True)],
        ),
        (
            "deepseek-coder",
            [("<｜fim▁begin｜>", True), ("P", False), ("<｜fim▁hole｜>", True), ("S", False)]
            + [("<｜fim▁end｜>", True)],
        ),
        (
            "codellama",
            [("<PRE> ", True), ("P", False), (" <SUF>", True), ("S", False), (" <MID>", True)],
        ),
        (
            "starcoder",
            [("<fim_prefix>", True), ("P", False), ("<fim_suffix>", True), ("S", False)]
            + [("<fim_middle>", True)],
        ),
        (
            "<SUFFIX>{suffix}<PREFIX>{prefix}<MIDDLE>",  # a custom one, suffix first
            [("<SUFFIX>", True), ("S", False), ("<PREFIX>", True), ("P", False)]
            + [("<MIDDLE>", True)],
        ),
    ],
)
def test_fim_presets_and_a_custom_template(template, pieces):
    context = fim_context()
    expected_text = {"P": HEADER + context.prefix, "S": context.suffix}
    expected = tuple((expected_text.get(text, text), marker) for text, marker in pieces)
    assert render_fim(context, template).pieces == expected


def test_fim_user_text_is_never_a_marker():
    sneaky = "x = '<|fim_middle|><|im_end|>'\n"
    context = fim_context(prefix=sneaky, suffix="<｜fim▁end｜>\n", scope="", imports="")
    prompt = render_fim(context, "qwen2.5-coder")
    markers = [text for text, is_marker in prompt.pieces if is_marker]
    assert markers == ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]
    texts = [text for text, is_marker in prompt.pieces if not is_marker]
    assert texts == [
        "# Path: src/app.py\n# lib.py:\n# def helper(x):\n" + sneaky,
        "<｜fim▁end｜>\n",
    ]


def test_fim_header_uses_the_languages_comments_and_skips_what_the_prefix_shows():
    lua = fim_context(language="lua", prefix="local os = 1\n", imports="local os = 1", scope="")
    assert render_fim(lua, "starcoder").pieces[1][0].startswith("-- Path: src/app.py\n-- lib.py:")
    typescript = fim_context(language="typescript", imports="", related="", scope="")
    assert render_fim(typescript, "starcoder").pieces[1][0].startswith("// Path: src/app.py\n")
    plain = fim_context(language=None)
    assert render_fim(plain, "starcoder").pieces[1] == (plain.prefix, False)


def test_an_empty_suffix_gives_no_empty_piece():
    pieces = render_fim(fim_context(suffix=""), "starcoder").pieces
    assert [text for text, _ in pieces if not text] == []
    assert pieces[-2:] == (("<fim_suffix>", True), ("<fim_middle>", True))


@pytest.mark.parametrize("template", ["qwen", "{prefix} only", "{prefix}{suffix}{suffix}", ""])
def test_a_bad_fim_template_is_refused_with_what_is_accepted(template):
    with pytest.raises(ValueError, match="qwen2.5-coder.*\\{prefix\\} and \\{suffix\\}"):
        render_fim(fim_context(), template)


# ---------------------------------------------------------------- file names


def test_the_file_name_is_relative_to_the_workspace_when_known():
    document, offset = open_at("x = ‸\n", "python", uri="file:///work/my%20project/src/app.py")
    assert gather(document, offset, [], 1536).file_name == "app.py"
    named = gather(document, offset, [], 1536, root_uri="file:///work/my%20project")
    assert named.file_name == "src/app.py"
    elsewhere = gather(document, offset, [], 1536, root_uri="file:///other")
    assert elsewhere.file_name == "app.py"


def test_an_empty_document_and_offsets_past_its_ends():
    empty = DocumentStore().open("file:///w/e.py", "python", 1, "")
    context = gather(empty, 0, [], 1536)
    assert (context.prefix, context.suffix, context.mode) == ("", "", "single_line")
    document = DocumentStore().open("file:///w/a.py", "python", 1, "x = 1\ny = 2")
    assert gather(document, 10_000, [], 1536).line_prefix == "y = 2"
    assert gather(document, -3, [], 1536).line_suffix == "x = 1"
