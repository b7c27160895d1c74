"""The VS Code extension's trust rules, without VS Code: a folder's settings
cannot choose what program runs, and the API key goes only to a model URL from
the user's own settings (issue 16, defect 4).

The manifest is read as VS Code reads it. The key rule (editors/vscode/src/keyRule.ts)
runs in plain Node, bundled by the extension's own esbuild (`npm ci` in
editors/vscode); those tests are skipped where Node or node_modules are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ds_lsp.config import snake_case

VSCODE = Path(__file__).resolve().parent.parent / "editors" / "vscode"
MANIFEST = json.loads((VSCODE / "package.json").read_text())
SETTINGS = MANIFEST["contributes"]["configuration"]["properties"]
ESBUILD = VSCODE / "node_modules" / ".bin" / "esbuild"


@pytest.mark.parametrize("name", ["dsLsp.serverCommand", "dsLsp.pythonPath"])
def test_what_runs_is_set_in_user_settings_only(name):
    assert SETTINGS[name]["scope"] == "machine"


@pytest.mark.parametrize("name", ["dsLsp.baseUrl", "dsLsp.modelPath"])
def test_the_model_may_be_chosen_per_workspace(name):
    assert SETTINGS[name]["scope"] == "machine-overridable"


def test_untrusted_workspaces_get_limited_support_without_those_settings():
    untrusted = MANIFEST["capabilities"]["untrustedWorkspaces"]
    assert untrusted["supported"] == "limited"
    assert untrusted["description"]
    assert set(untrusted["restrictedConfigurations"]) >= {
        "dsLsp.serverCommand",
        "dsLsp.pythonPath",
        "dsLsp.baseUrl",
        "dsLsp.modelPath",
    }


# ---------------------------------------------------------------- the key rule in Node

_CASES = {
    # name: (the merged dsLsp section, {key: inspect() result})
    "unset": ({}, {}),
    "user": ({"baseUrl": "https://api.deepseek.com/v1"}, {"baseUrl": {"globalValue": "u"}}),
    "workspace": ({"baseUrl": "http://evil/v1"}, {"baseUrl": {"workspaceValue": "w"}}),
    "folder": ({"baseUrl": "http://evil/v1"}, {"baseUrl": {"workspaceFolderValue": "w"}}),
    "snake_case_alias": ({"base_url": "http://evil/v1"}, {"base_url": {"workspaceValue": "w"}}),
    "kebab_alias": ({"base-url": "http://evil/v1"}, {"base-url": {"workspaceValue": "w"}}),
    "grouped": ({"base": {"url": "http://evil/v1"}}, {"base": {"workspaceValue": {}}}),
    "unrelated_workspace_setting": (
        {"baseUrl": "https://api.deepseek.com/v1", "reasoningBudget": 200},
        {"baseUrl": {"globalValue": "u"}, "reasoningBudget": {"workspaceValue": 200}},
    ),
}
_EXPECTED = {
    "unset": None,
    "user": None,
    "workspace": "baseUrl",
    "folder": "baseUrl",
    "snake_case_alias": "base_url",
    "kebab_alias": "base-url",
    "grouped": "base",
    "unrelated_workspace_setting": None,
}
_KEYS = ["baseUrl", "base_url", "base-url", "BASEUrl", "nGPULayers", "nGpuLayers", "modelPath"]


@pytest.fixture(scope="module")
def key_rule(tmp_path_factory) -> dict:
    node = shutil.which("node")
    if node is None or not ESBUILD.exists():
        why = "needs Node and `npm ci` in editors/vscode (`make vsix`)"
        if os.environ.get("CI"):  # .ci/run builds the VSIX first: here a skip would hide a bug
            pytest.fail(why)
        pytest.skip(why)
    out = tmp_path_factory.mktemp("key-rule")
    bundle = out / "keyRule.cjs"
    subprocess.run(
        [str(ESBUILD), str(VSCODE / "src" / "keyRule.ts"), "--format=cjs", f"--outfile={bundle}"],
        check=True,
        capture_output=True,
    )
    script = f"""
const rule = require({json.dumps(str(bundle))});
const cases = {json.dumps(_CASES)};
const out = {{ cases: {{}}, snake: {{}} }};
for (const [name, [section, inspected]] of Object.entries(cases)) {{
  out.cases[name] = rule.urlSetByWorkspace(section, (key) => inspected[key]) ?? null;
}}
for (const key of {json.dumps(_KEYS)}) out.snake[key] = rule.snakeCase(key);
console.log(JSON.stringify(out));
"""
    result = subprocess.run([node, "-e", script], check=True, capture_output=True, text=True)
    return json.loads(result.stdout)


@pytest.mark.parametrize("case", list(_CASES))
def test_the_key_is_withheld_exactly_when_a_workspace_sets_the_url(key_rule, case):
    assert key_rule["cases"][case] == _EXPECTED[case]


def test_the_extension_spells_settings_as_the_server_reads_them(key_rule):
    assert key_rule["snake"] == {key: snake_case(key) for key in _KEYS}
