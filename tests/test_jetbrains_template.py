"""The LSP4IJ template (editors/jetbrains): what can be checked without IntelliJ,
which cannot run here.

- The JSON files parse, and template.json uses only keys LSP4IJ documents.
- The command in template.json starts this checkout's server, which answers
  initialize with the features the README promises, given exactly what LSP4IJ
  would send from initializationOptions.json and settings.json, and finds
  nothing wrong in them.
- Every setting named in the template is a real ds-lsp setting; the schema
  describes each one, with ds-lsp's own choices, defaults and bounds.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path, PurePath

import pytest

from ds_lsp import config
from ds_lsp.context import treesitter

TEMPLATE = Path(__file__).resolve().parent.parent / "editors" / "jetbrains"

# LSP4IJ's documented template descriptor, as a JSON Schema (vendored, with where
# it came from: tests/fixtures/README.md).
TEMPLATE_SCHEMA = Path(__file__).resolve().parent / "fixtures" / "lsp4ij" / "template.schema.json"
# The files LSP4IJ reads from a template folder (LanguageServerTemplateManager.java,
# createLsTemplate), and the ones the README's import steps rely on.
TEMPLATE_FILES = {
    "template.json",
    "settings.json",
    "settings.schema.json",
    "initializationOptions.json",
    "experimental.json",
    "clientSettings.json",
    "installer.json",
    "workspaceFolderSettings.json",
    "README.md",
}


def load(name: str):
    return json.loads((TEMPLATE / name).read_text(encoding="utf-8"))


def test_the_folder_holds_only_files_lsp4ij_reads():
    files = {path.name for path in TEMPLATE.iterdir()}

    assert {"template.json", "initializationOptions.json", "settings.schema.json"} <= files
    assert "README.md" in files  # the help icon of the "New Language Server" dialog shows it
    assert files <= TEMPLATE_FILES


def test_the_readme_says_how_to_import_and_what_to_expect():
    readme = " ".join((TEMPLATE / "README.md").read_text(encoding="utf-8").split())

    for needed in (
        "Import from custom template",  # the import step, as LSP4IJ's menu says it
        "inline completion support",  # ghost text needs a recent LSP4IJ
        "intentions",  # edits and chat
        "LSP console",  # the log
        "# ds:",  # an instruction in a comment
    ):
        assert needed in readme, needed


def violations(value, schema: dict, where: str = "template.json") -> list[str]:
    """What in `value` breaks `schema`: the JSON Schema keywords the vendored schema
    uses (type, required, properties, additionalProperties, items, minLength,
    minItems), each said with where it is."""
    kinds = {"object": dict, "array": list, "string": str}
    if not isinstance(value, kinds[schema["type"]]):
        return [f"{where} is not a JSON {schema['type']}"]
    found = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        found += [
            f"{where} lacks {key!r}" for key in schema.get("required", []) if key not in value
        ]
        if schema.get("additionalProperties") is False:
            found += [
                f"{where} has {key!r}, which LSP4IJ does not document"
                for key in value
                if key not in properties
            ]
        for key, item in value.items():
            if key in properties:
                found += violations(item, properties[key], f"{where}.{key}")
    elif isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{where} has fewer than {schema['minItems']} items")
        for index, item in enumerate(value):
            found += violations(item, schema["items"], f"{where}[{index}]")
    elif len(value) < schema.get("minLength", 0):
        found.append(f"{where} is empty")
    return found


def test_the_vendored_schema_says_where_it_came_from():
    schema = json.loads(TEMPLATE_SCHEMA.read_text(encoding="utf-8"))
    assert "redhat-developer/lsp4ij" in schema["$comment"]
    assert "docs/UserDefinedLanguageServerTemplate.md" in schema["$comment"]
    readme = (TEMPLATE_SCHEMA.parent.parent / "README.md").read_text(encoding="utf-8")
    assert "lsp4ij/template.schema.json" in readme


def test_template_json_follows_lsp4ijs_documented_schema():
    schema = json.loads(TEMPLATE_SCHEMA.read_text(encoding="utf-8"))

    assert violations(load("template.json"), schema) == []
    # The check can fail: a key LSP4IJ does not document, a missing command.
    broken = {**load("template.json"), "languageMappings": []}
    del broken["programArgs"]["default"]
    assert violations(broken, schema) == [
        "template.json has 'languageMappings', which LSP4IJ does not document",
        "template.json.programArgs lacks 'default'",
    ]


def test_the_template_files_are_ones_lsp4ij_documents_or_reads():
    schema = json.loads(TEMPLATE_SCHEMA.read_text(encoding="utf-8"))
    documented = set(schema["x-documented-files"])
    files = {path.name for path in TEMPLATE.iterdir()} - {"README.md"}

    assert files <= documented, files - documented


def test_file_mappings_send_language_ids_ds_lsp_understands():
    """Each pattern's files get a languageId that ds-lsp maps to the same language
    as their extension; the chat documents go as markdown."""
    for mapping in load("template.json")["fileTypeMappings"]:
        language_id = mapping["languageId"]
        for pattern in mapping["fileType"]["patterns"]:
            if language_id == "markdown":
                assert PurePath(pattern).suffix == ".md"
                continue
            example = pattern.replace("*", "example")
            assert treesitter.language_for_lsp_id(language_id) is not None, language_id
            assert treesitter.language_for_path(example) == treesitter.language_for_lsp_id(
                language_id
            ), pattern


def camel_names(values: dict) -> set[str]:
    return {config.snake_case(key) for key in values}


def test_initialization_options_are_real_settings_left_unset():
    options = load("initializationOptions.json")
    names = camel_names(options[config.LSP_SECTION])

    assert names <= set(config.SETTING_NAMES), names - set(config.SETTING_NAMES)
    # As shipped they set nothing: ds-lsp's own config file and defaults apply.
    source = config.lsp_source(options, "initializationOptions")
    settings, problems = config.merge([source])
    assert problems == []
    assert settings == config.Settings()


def test_the_schema_describes_every_setting_as_ds_lsp_accepts_it():
    schema = load("settings.schema.json")
    section = schema["properties"][config.LSP_SECTION]
    properties = section["properties"]
    by_name = {config.snake_case(key): (key, value) for key, value in properties.items()}
    defaults = config.Settings()

    assert set(by_name) == set(config.SETTING_NAMES), (
        "editors/jetbrains/settings.schema.json and ds_lsp.config differ: "
        f"{set(by_name) ^ set(config.SETTING_NAMES)}"
    )
    assert section["additionalProperties"] is False
    for name, (key, prop) in by_name.items():
        assert key[0].islower() and "_" not in key  # camelCase, as editors write them
        assert prop["description"]
        assert "null" in prop["type"]  # null resets a setting to ds-lsp's own value
        default = getattr(defaults, name)
        if default is not None:
            assert prop["default"] == default, name
        if "enum" in prop:
            assert [c for c in prop["enum"] if c is not None] == config._choices(name)
        # Each bound is one ds-lsp accepts, and just past it one it refuses.
        for bound, step in (("minimum", -1), ("maximum", 1)):
            if bound in prop:
                assert not config.merge([config.Source("s", {name: prop[bound]})])[1], name
                past = prop[bound] + step * (1 if prop["type"][0] == "integer" else 0.01)
                assert config.merge([config.Source("s", {name: past})])[1], name
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):  # refused on the bound
            if bound in prop:
                assert config.merge([config.Source("s", {name: prop[bound]})])[1], name


def test_settings_json_is_valid_against_the_schema_shape():
    settings = load("settings.json")
    schema = load("settings.schema.json")

    assert set(settings) <= set(schema["properties"])
    assert camel_names(settings[config.LSP_SECTION]) <= set(config.SETTING_NAMES)


# -- the command -------------------------------------------------------------------


class StdioClient:
    """Just enough of an LSP client to do what LSP4IJ does at start-up."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self.messages: queue.Queue = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            length = None
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if length is None:
                return  # the server closed its output
            self.messages.put(json.loads(stream.read(length)))

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def request(self, method: str, params) -> int:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        return self.next_id

    def next(self, timeout: float = 20.0) -> dict:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        try:
            self.request("shutdown", None)
            self.send({"method": "exit"})
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()
            self.process.wait()


def test_the_template_command_starts_the_server_with_the_template_settings(tmp_path):
    template = load("template.json")
    command = shlex.split(template["programArgs"]["default"])
    # As for a user who installed ds-lsp in this virtual environment and put it on PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    executable = shutil.which(command[0], path=path)
    if executable is None:
        pytest.skip(f"{command[0]} is not installed here (pip install -e .)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_LSP_")}
    env.update(PATH=path, DS_LSP_CONFIG=os.devnull, XDG_STATE_HOME=str(tmp_path))
    workspace = settings = None
    client = StdioClient([executable, *command[1:]], env)
    try:
        init = client.request(
            "initialize",
            {
                "processId": os.getpid(),
                "clientInfo": {"name": "LSP4IJ-like test client"},
                "rootUri": tmp_path.as_uri(),
                "capabilities": {"workspace": {"configuration": True}},
                "initializationOptions": load("initializationOptions.json"),
            },
        )
        while (message := client.next()).get("id") != init:
            pass
        result = message["result"]
        client.send({"method": "initialized", "params": {}})
        logs = []
        while True:  # until the server logs the settings it runs with
            message = client.next()
            if message.get("method") == "workspace/configuration":
                # LSP4IJ answers with the section of the Configuration tab (settings.json).
                workspace = message["params"]["items"][0]["section"]
                settings = load("settings.json")[workspace]
                client.send({"id": message["id"], "result": [settings]})
            elif message.get("method") == "window/logMessage":
                logs.append(message["params"]["message"])
                if logs[-1].startswith("settings: {"):
                    break
            elif "id" in message and "method" in message:
                client.send({"id": message["id"], "result": None})
    finally:
        client.close()

    assert result["serverInfo"]["name"] == "ds-lsp"
    capabilities = result["capabilities"]
    assert capabilities["inlineCompletionProvider"] is not None  # LSP4IJ 0.20+
    assert capabilities["completionProvider"] is not None  # older LSP4IJ (as this client)
    assert capabilities["codeActionProvider"]  # the intentions
    assert "dsLsp.editSelection" in capabilities["executeCommandProvider"]["commands"]
    assert workspace == config.LSP_SECTION
    assert not [m for m in logs if "not valid" in m or "unknown setting" in m], logs
