"""From a model's answer to the replaced selection: each answer shape a model produces."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ds_lsp.context.treesitter import SUPPORTED_LANGUAGES
from ds_lsp.editing import (
    UnusableAnswer,
    check_syntax,
    extract_code,
    reindent,
    replace_lines,
    unified_diff,
)

F = "```"  # keeps the answers below readable

ADD = "def add(a, b):\n    return a + b"


def refusal(answer: str, language: str | None = "python") -> str:
    with pytest.raises(UnusableAnswer) as caught:
        extract_code(answer, language)
    return str(caught.value)


# ---------------------------------------------------------------- one fenced block


def test_one_fence_with_a_language():
    assert extract_code(f"{F}python\n{ADD}\n{F}", "python") == ADD


def test_one_fence_without_a_language():
    assert extract_code(f"{F}\n{ADD}\n{F}\n", "python") == ADD


def test_prose_before_and_after_the_fence_is_ignored():
    answer = (
        "Sure! Here is the updated function.\n\n"
        f"{F}python\n{ADD}\n{F}\n\n"
        "It now adds the two numbers instead of subtracting them."
    )
    assert extract_code(answer, "python") == ADD


def test_tag_with_attributes_and_a_longer_fence():
    answer = f'````python title="math.py" {{1,2}}\n{ADD}\n````'
    assert extract_code(answer, "python") == ADD


def test_tilde_fences():
    assert extract_code(f"Done:\n~~~py\n{ADD}\n~~~\n", "python") == ADD


def test_a_shorter_fence_inside_a_longer_one_is_content():
    code = 'DOC = """\n```\nexample\n```\n"""'
    assert extract_code(f"````python\n{code}\n````", "python") == code


def test_fence_indented_in_a_list_item_loses_that_indent():
    answer = (
        f"1. Replace the function:\n\n   {F}python\n   def add(a, b):\n       return a + b\n   {F}"
    )
    assert extract_code(answer, "python") == ADD


@pytest.mark.parametrize(
    "filename_line", ["**src/math.py**", "# math.py", "math.py:", "`src/math.py`"]
)
def test_a_filename_line_before_the_fence_is_ignored(filename_line):
    assert extract_code(f"{filename_line}\n{F}python\n{ADD}\n{F}", "python") == ADD


def test_windows_line_endings_in_the_answer_come_back_as_newlines():
    assert extract_code(f"{F}python\r\n{ADD.replace(chr(10), chr(13) + chr(10))}\r\n{F}") == ADD


def test_blank_lines_around_the_code_are_trimmed_but_its_indentation_is_kept():
    answer = f"{F}python\n\n    return a + b\n\n{F}"
    assert extract_code(answer, "python") == "    return a + b"


# ---------------------------------------------------------------- several fenced blocks


def test_several_fences_the_one_in_the_selections_language_wins():
    answer = (
        f"Install it first:\n{F}bash\npip install numpy\n{F}\n"
        f"Then:\n{F}python\n{ADD}\n{F}\n"
        f'Output:\n{F}json\n{{"sum": 3}}\n{F}'
    )
    assert extract_code(answer, "python") == ADD


@pytest.mark.parametrize(("tag", "language"), [("rs", "rust"), ("golang", "go"), ("c++", "cpp")])
def test_fence_tags_are_matched_through_aliases(tag, language):
    answer = f"{F}bash\nmake\n{F}\n{F}{tag}\nthe code\n{F}"
    assert extract_code(answer, language) == "the code"


def test_selection_language_may_be_an_lsp_id_or_an_alias():
    answer = f"{F}sh\nnpm test\n{F}\n{F}tsx\nconst x = <b />;\n{F}"
    assert extract_code(answer, "typescriptreact") == "const x = <b />;"


def test_a_close_relative_is_taken_when_no_block_has_the_exact_language():
    answer = f"{F}bash\nnpm i\n{F}\n{F}javascript\nconst x: number = 1;\n{F}"
    assert extract_code(answer, "typescript") == "const x: number = 1;"


def test_the_only_untagged_fence_wins_when_the_others_are_other_languages():
    answer = f"Run:\n{F}bash\npip install numpy\n{F}\nand use:\n{F}\n{ADD}\n{F}"
    assert extract_code(answer, "python") == ADD


def test_two_blocks_in_the_selections_language_are_refused():
    answer = f"Before:\n{F}python\nx = 1\n{F}\nAfter:\n{F}python\nx = 2\n{F}"
    assert refusal(answer) == (
        "the answer has 2 python code blocks: refusing to guess which one to apply"
    )


def test_two_blocks_in_close_relatives_are_named_by_their_own_languages():
    answer = f"{F}javascript\na()\n{F}\n{F}tsx\nb()\n{F}"
    with pytest.raises(UnusableAnswer) as refused:
        extract_code(answer, "typescript")
    assert str(refused.value) == (
        "the answer has 2 javascript/tsx code blocks: refusing to guess which one to apply"
    )


def test_several_blocks_none_in_the_language_are_refused():
    answer = f"{F}js\na()\n{F}\n{F}rust\nb()\n{F}\n{F}go\nc()\n{F}"
    assert refusal(answer) == "the answer has 3 code blocks and none is python: refusing to guess"


def test_several_untagged_blocks_are_refused():
    answer = f"{F}\nx = 1\n{F}\n{F}\nx = 2\n{F}"
    assert refusal(answer) == "the answer has 2 code blocks and none is python: refusing to guess"


def test_several_blocks_and_no_language_are_refused():
    answer = f"{F}python\nx = 1\n{F}\n{F}bash\nls\n{F}"
    assert refusal(answer, None) == (
        "the answer has 2 code blocks and no language to choose by: refusing to guess"
    )


# ---------------------------------------------------------------- unclosed fence


def test_an_unclosed_fence_at_the_end_runs_to_the_end():
    answer = f"Here is the fix:\n\n{F}python\n{ADD}\n"
    assert extract_code(answer, "python") == ADD


def test_an_unclosed_fence_with_nothing_after_it_is_empty():
    assert refusal(f"Here is the fix:\n{F}python\n") == "the answer's code block is empty"


# ---------------------------------------------------------------- no fence at all


@pytest.mark.parametrize(
    ("answer", "language"),
    [
        ("return a + b", "python"),
        ("    return a + b\n", "python"),
        ("from math import floor", "python"),
        ("pass", "python"),
        ("else:\n    return 0", "python"),  # a fragment: judged in its document later
        ("return a + b;", "java"),
        ("let total = a + b;\ntotal", "rust"),
        ("return a + b", None),
    ],
)
def test_no_fence_code_is_accepted(answer, language):
    assert extract_code(answer, language) == answer.rstrip()


def test_no_fence_one_line_in_inline_code_is_unwrapped():
    assert extract_code("`return a + b`", "python") == "return a + b"


def test_no_fence_docstring_sentences_inside_code_that_parses_are_accepted():
    code = 'def add(a, b):\n    """\n    Add two numbers.\n    """\n    return a + b'
    assert extract_code(code, "python") == code


@pytest.mark.parametrize(
    "answer",
    [
        "Sure! Here is the updated function.",
        "I could not find anything to change.\n\nThe code already handles empty lists.",
        "Here is the fix:",
        "**Note:** the function `add` is already correct.",
        "This function looks fine as it is",
    ],
)
@pytest.mark.parametrize("language", ["python", "rust", None])
def test_no_fence_prose_is_refused(answer, language):
    assert refusal(answer, language) == "the answer has no code, only prose"


def test_no_fence_prose_mixed_with_code_is_refused():
    answer = f"Here is the updated function:\n{ADD}"
    assert refusal(answer) == (
        "the answer has no code block and mixes prose with code: refusing to guess"
    )


# ---------------------------------------------------------------- lazy placeholders


@pytest.mark.parametrize(
    ("language", "code", "placeholder"),
    [
        (
            "python",
            "def f(x):\n    # ... existing code ...\n    return x",
            "# ... existing code ...",
        ),
        (
            "python",
            "def f(x):\n    y = x\n    # rest of code remains the same",
            "# rest of code remains the same",
        ),
        ("python", "def f(x):\n    # ... (rest of the function)", "# ... (rest of the function)"),
        ("python", "class A:\n    # ...\n    def g(self):\n        pass", "# ..."),
        (
            "python",
            "class A:\n    # Other methods unchanged\n    def g(self):\n        pass",
            "# Other methods unchanged",
        ),
        ("python", "def f(x):\n    …\n", "…"),
        (
            "javascript",
            "function f() {\n  // ... rest of the code unchanged\n}",
            "// ... rest of the code unchanged",
        ),
        ("javascript", "function f() {\n  /* ... */\n}", "/* ... */"),
        ("javascript", "class A {\n  // (unchanged)\n  g() {}\n}", "// (unchanged)"),
        ("javascript", "const V = () => (\n  <div>\n    {/* ... */}\n  </div>\n);", "{/* ... */}"),
        (
            "typescript",
            "function f(): number {\n  // existing code here\n  return 1;\n}",
            "// existing code here",
        ),
        ("rust", "fn f() {\n    // ...\n}", "// ..."),
        ("rust", "impl A {\n    /// ... other methods ...\n}", "/// ... other methods ..."),
        ("rust", "fn f() {\n    ...\n}", "..."),
        (
            "go",
            "func f() {\n\t// ... code omitted for brevity\n}",
            "// ... code omitted for brevity",
        ),
        (
            "c",
            "int f(void) {\n  /* rest of the implementation is unchanged */\n}",
            "/* rest of the implementation is unchanged */",
        ),
    ],
)
def test_lazy_placeholders_are_refused(language, code, placeholder):
    reason = refusal(f"{F}{language}\n{code}\n{F}", language)
    assert (
        reason
        == f"the answer elides code with a placeholder ({placeholder!r}): refusing to apply it"
    )


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", "def f(): ..."),
        ("python", "class Proto(Protocol):\n    def f(self) -> int:\n        ...\n"),
        ("python", "x = data[..., 0]"),
        ("python", 'print("...")\nprint("loading...")'),
        ("python", "# Wait for the server...\nwait()"),
        ("python", "# return the input unchanged\nreturn x"),
        ("python", "# rest of the list is sorted\nitems.sort()"),
        ("python", "# existing users keep their settings\nmigrate()"),
        ("javascript", "function f(...args) {\n  return g(...args);\n}"),
        ("javascript", "const all = [\n  ...first,\n  ...second,\n];"),
        ("javascript", "switch (x) {\n  // Other cases fall through\n  default:\n    f();\n}"),
        ("rust", "for i in 0..n {\n    f(i);\n}"),
        ("c", "#include <stdio.h>\nint f(const char *fmt, ...);"),
    ],
)
def test_legitimate_ellipses_and_comments_are_accepted(language, code):
    assert extract_code(f"{F}{language}\n{code}\n{F}", language) == code.rstrip()


# ---------------------------------------------------------------- empty


@pytest.mark.parametrize("answer", ["", "   \n\t\n", "\r\n"])
def test_an_empty_answer_is_refused(answer):
    assert refusal(answer) == "the answer is empty"


@pytest.mark.parametrize("answer", [f"Here:\n{F}python\n{F}", f"{F}\n   \n\n{F}\nDone."])
def test_an_empty_code_block_is_refused(answer):
    assert refusal(answer) == "the answer's code block is empty"


# ---------------------------------------------------------------- reindent


def test_reindent_restores_the_selections_indentation_keeping_relative_indents():
    original = "    def add(self, a, b):\n        return a - b\n"
    code = "def add(self, a, b):\n    if a is None:\n        return b\n    return a + b"
    assert reindent(code, original) == (
        "    def add(self, a, b):\n"
        "        if a is None:\n"
        "            return b\n"
        "        return a + b"
    )


def test_reindent_does_not_indent_blank_lines():
    original = "        x = 1\n        y = 2\n"
    assert reindent("x = 1\n\ny = 2\n", original) == "        x = 1\n\n        y = 2\n"


def test_reindent_moves_partially_dedented_code_to_the_selections_indent():
    original = "        x = 1\n"
    assert reindent("  x = 1\n  if x:\n      y()", original) == (
        "        x = 1\n        if x:\n            y()"
    )


def test_reindent_leaves_code_that_already_has_the_indentation():
    original = "    x = 1\n"
    code = "    x = 2\n    y = 3"
    assert reindent(code, original) == code


def test_reindent_leaves_code_alone_when_the_selection_is_not_indented():
    assert reindent("x = 1\n  y", "x = 0\n") == "x = 1\n  y"


def test_reindent_follows_tabs_in_the_original():
    original = "\tif err != nil {\n\t\treturn err\n\t}\n"
    code = "if err != nil {\n    log(err)\n    return err\n}"
    assert reindent(code, original) == "\tif err != nil {\n\t\tlog(err)\n\t\treturn err\n\t}"


def test_reindent_follows_spaces_in_the_original():
    original = "  if (x) {\n    f();\n  }\n"
    code = "if (x) {\n\tg();\n}"
    assert reindent(code, original) == "  if (x) {\n    g();\n  }"


# ---------------------------------------------------------------- replace_lines


def test_replace_lines_keeps_crlf_and_the_bytes_around_the_region():
    text = "a = 1\r\ndef f():\r\n    return 1\r\nb = 2\r\n"
    new = replace_lines(text, 1, 2, "def f():\n    return 2")
    assert new == "a = 1\r\ndef f():\r\n    return 2\r\nb = 2\r\n"


def test_replace_lines_converts_the_codes_crlf_to_the_documents_newlines():
    text = "a\nb\nc\n"
    assert replace_lines(text, 1, 1, "x\r\ny\r\n") == "a\nx\ny\nc\n"


def test_replace_lines_at_the_end_of_a_file_without_a_trailing_newline():
    text = "a\nb\nc"
    assert replace_lines(text, 2, 2, "x\ny\n") == "a\nb\nx\ny"
    assert replace_lines(text, 1, 2, "z") == "a\nz"


def test_replace_lines_at_the_end_of_a_file_with_a_trailing_newline():
    text = "a\r\nb\r\n"
    assert replace_lines(text, 1, 1, "z") == "a\r\nz\r\n"


def test_replace_lines_the_empty_line_after_the_final_newline():
    assert replace_lines("a\n", 1, 1, "b") == "a\nb"
    assert replace_lines("", 0, 0, "b\n") == "b"


def test_replace_lines_with_empty_code_deletes_the_lines():
    assert replace_lines("a\nb\nc\n", 1, 1, "") == "a\nc\n"


def test_replace_lines_only_splits_where_lsp_does():
    # U+2028 and form feed are line breaks to str.splitlines but not to LSP.
    text = "a\u2028still line 0\nb\x0cstill line 1\nc\n"
    assert replace_lines(text, 1, 1, "B") == "a\u2028still line 0\nB\nc\n"


def test_replace_lines_refuses_a_range_outside_the_text():
    with pytest.raises(ValueError):
        replace_lines("a\nb\n", 1, 3, "x")
    with pytest.raises(ValueError):
        replace_lines("a\nb\n", 1, 0, "x")


@given(
    lines=st.lists(
        st.tuples(st.text(alphabet="ab \t\u2028", max_size=5), st.sampled_from(["\n", "\r\n"])),
        min_size=1,
        max_size=8,
    ),
    last_newline=st.booleans(),
    data=st.data(),
)
def test_replace_lines_never_touches_bytes_outside_the_region(lines, last_newline, data):
    pieces = [content + ending for content, ending in lines]
    if not last_newline:
        pieces[-1] = lines[-1][0]
    text = "".join(pieces)
    start = data.draw(st.integers(0, len(pieces) - 1))
    end = data.draw(st.integers(start, len(pieces) - 1))
    new = replace_lines(text, start, end, "NEW\nCODE\n")
    before, after = "".join(pieces[:start]), "".join(pieces[end + 1 :])
    assert new.startswith(before)
    assert new.endswith(after)
    middle = new[len(before) : len(new) - len(after)]
    assert middle.rstrip("\r\n").replace("\r\n", "\n") == "NEW\nCODE"
    assert middle.endswith(("\n", "\r\n")) == pieces[end].endswith("\n")


# ---------------------------------------------------------------- check_syntax


def test_check_syntax_refuses_a_worse_parse():
    old = "def add(a, b):\n    return a + b\n"
    new = "def add(a, b:\n    return a +\n"
    with pytest.raises(UnusableAnswer, match=r"^the edit would break the syntax \(\d+ new parse"):
        check_syntax(old, new, "python")


def test_check_syntax_counts_one_new_error_in_the_singular():
    with pytest.raises(UnusableAnswer) as caught:
        check_syntax("fn f() {\n    let x = 1;\n}\n", "fn f() {\n    let x = 1\n}\n", "rust")
    assert str(caught.value) == "the edit would break the syntax (1 new parse error)"


def test_check_syntax_accepts_an_equal_parse_in_an_already_broken_file():
    broken_elsewhere = "def f(:\n    pass\n\n"
    old = broken_elsewhere + "x = 1\n"
    new = broken_elsewhere + "x = 2\n"
    check_syntax(old, new, "python")


def test_check_syntax_accepts_a_fix():
    check_syntax("int f() { return 1 }\n", "int f() { return 1; }\n", "c")


@pytest.mark.parametrize("language", [None, "fortran"])
def test_check_syntax_does_not_judge_languages_without_a_grammar(language):
    assert language not in SUPPORTED_LANGUAGES
    check_syntax("ok\n", "((((\n", language)


# ---------------------------------------------------------------- unified_diff


def test_unified_diff_has_git_style_headers():
    diff = unified_diff("a\nb\n", "a\nc\n", "src/x.py")
    assert diff == "--- a/src/x.py\n+++ b/src/x.py\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"


def test_unified_diff_of_an_absolute_path_reads_like_git():
    diff = unified_diff("a\n", "b\n", "/tmp/x.py")
    assert diff.startswith("--- a/tmp/x.py\n+++ b/tmp/x.py\n")


def test_unified_diff_marks_a_missing_final_newline():
    diff = unified_diff("a\nb", "a\nc", "x.py")
    assert diff.endswith("-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n")


def test_unified_diff_is_empty_when_nothing_changed():
    assert unified_diff("same\n", "same\n", "x.py") == ""


# ---------------------------------------------------------------- the whole way


def test_a_method_answer_lands_indented_in_its_class():
    text = (
        "class Calc:\n"
        "    def add(self, a, b):\n"
        "        return a - b\n"
        "\n"
        "    def neg(self, a):\n"
        "        return -a\n"
    )
    answer = (
        "<p>The bug is the minus sign.</p>\n\n"
        f"{F}python\ndef add(self, a, b):\n    return a + b\n{F}\n"
    )
    original = "".join(text.splitlines(keepends=True)[1:3])
    code = reindent(extract_code(answer, "python"), original)
    new_text = replace_lines(text, 1, 2, code)
    check_syntax(text, new_text, "python")
    assert new_text == text.replace("a - b", "a + b")
