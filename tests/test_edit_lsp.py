"""Edit highlighted code, end to end: a pytest-lsp client that behaves like an
editor (tests/lsp_editor.py: applies edits at the right version and echoes
them), the server, and the fake model server in every reasoning wire format."""

from __future__ import annotations

import asyncio
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.fake_openai_server import FakeOpenAIServer, Reply
from tests.lsp_editor import Editor, cancel
from tests.test_openai_backend import ALL_FORMATS
from tests.test_server import all_logs, server_env

PY = "file:///work/calc.py"
SOURCE = (
    "import math\n"
    "\n"
    "def area(r):\n"
    "    return math.pi * r * r\n"
    "\n"
    "def total(xs):\n"
    "    return sum(xs)\n"
)
TYPED = "def area(r: float) -> float:\n    return math.pi * r * r\n"
REASONING = "The user wants type hints.\nr is a radius, a float.\nThe result is a float too."
SELECTION = types.Range(types.Position(2, 0), types.Position(4, 0))  # `def area` .. its body


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "ds_lsp"],
        server_env=server_env(DS_LSP_LOG_LEVEL="debug"),
    )
)
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


@pytest.fixture
def editor(client) -> Editor:
    return Editor(client)


async def start(client, fake: FakeOpenAIServer, encodings=None, **settings):
    caps = client_capabilities("visual-studio-code")
    if encodings is not None:
        caps.general.position_encodings = encodings
    options = {"backend": "openai", "baseUrl": fake.base_url, "model": "m", **settings}
    return await client.initialize_session(
        types.InitializeParams(capabilities=caps, initialization_options={"dsLsp": options})
    )


def fenced(code: str, language: str = "python") -> str:
    return f"Here is the function with type hints:\n\n```{language}\n{code}```\n"


async def edit(client, uri=PY, selection=SELECTION, instruction="Add type hints", msg_id=None):
    argument = {"uri": uri, "range": client.protocol._converter.unstructure(selection)}
    if instruction is not None:
        argument["instruction"] = instruction
    return await client.protocol.send_request_async(
        types.WORKSPACE_EXECUTE_COMMAND,
        types.ExecuteCommandParams(command="dsLsp.editSelection", arguments=[argument]),
        msg_id=msg_id,
    )


def shown_messages(client) -> str:
    return "\n".join(m.message for m in client.messages)


# ---------------------------------------------------------------- code actions


async def test_actions_on_a_selection_are_the_templates(client, editor, fake_openai):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)

    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(PY),
            range=SELECTION,
            context=types.CodeActionContext(diagnostics=[]),
        )
    )

    titles = [action.title for action in actions]
    for expected in ("Add type hints", "Add a docstring", "Fix bugs", "Simplify"):
        assert f"DeepSeek: {expected}" in titles
    assert "DeepSeek: Add error handling" in titles
    assert {action.kind for action in actions} == {types.CodeActionKind.RefactorRewrite}
    command = actions[titles.index("DeepSeek: Add type hints")].command
    assert command.command == "dsLsp.editSelection"
    assert command.arguments[0]["uri"] == PY
    assert command.arguments[0]["instruction"].startswith("Add type hints")


async def test_with_nothing_selected_the_actions_take_the_enclosing_function(
    client, editor, fake_openai
):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    cursor = types.Position(6, 8)  # inside `total`

    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(PY),
            range=types.Range(cursor, cursor),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )

    target = actions[0].command.arguments[0]["range"]
    assert (target["start"]["line"], target["end"]["line"]) == (5, 6)


async def test_a_ds_comment_is_offered_first_and_followed(client, editor, fake_openai):
    await start(client, fake_openai)
    source = "def area(r):\n    # ds: make it return the diameter\n    return 3.14 * r * r\n"
    editor.open(PY, source)
    selection = types.Range(types.Position(1, 0), types.Position(3, 0))
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(PY),
            range=selection,
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert actions[0].title == "DeepSeek: make it return the diameter"
    assert actions[0].is_preferred
    fake_openai.enqueue(Reply(reasoning="Diameter is 2r.", content=fenced("    return 2 * r\n")))

    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(actions[0].command.command, actions[0].command.arguments)
    )

    assert result["status"] == "applied", result
    assert editor.texts[PY] == "def area(r):\n    return 2 * r\n"
    prompt = fake_openai.requests[0]["messages"][-1]["content"]
    assert "Instruction: make it return the diameter" in prompt
    assert "# ds:" not in prompt.split("The selection to rewrite:")[1].split("Instruction:")[0]


# ---------------------------------------------------------------- applying


@pytest.mark.parametrize("wire_format", ALL_FORMATS)
async def test_the_edit_lands_as_a_versioned_minimal_edit(client, editor, fake_openai, wire_format):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    editor.insert(PY, 0, 0, "")  # version 2: the edit must name the version it saw
    reasoning = "" if wire_format == "none" else REASONING
    fake_openai.enqueue(Reply(reasoning=reasoning, content=fenced(TYPED), format=wire_format))

    result = await edit(client)

    assert result["status"] == "applied", result
    assert editor.texts[PY] == SOURCE.replace("def area(r):", "def area(r: float) -> float:")
    [applied] = editor.applied
    [change] = applied.edit.document_changes
    assert change.text_document.version == 2
    # Minimal: only the signature line changes, and only after `def area(r`.
    assert [(e.range.start.line, e.range.end.line) for e in change.edits] == [(2, 2)]
    assert change.edits[0].range.start.character == len("def area(r")
    assert "<think>" not in editor.texts[PY] and "radius" not in editor.texts[PY]


async def test_reasoning_streams_to_progress_log_and_notifications(client, editor, fake_openai):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    fake_openai.enqueue(Reply(reasoning=REASONING, content=fenced(TYPED), chunk_size=2))

    result = await edit(client)

    assert result["status"] == "applied"
    # dsLsp/reasoning: one id, whole lines, the full reasoning, then done.
    assert {n["id"] for n in editor.reasoning} == {result["id"]}
    assert editor.reasoning_text().strip() == REASONING
    assert editor.reasoning[-1]["done"] is True
    # The log: line by line, not token by token.
    logs = all_logs(client)
    assert "  r is a radius, a float." in logs.split("\n")
    assert "about" in logs and "2048-token budget" in logs
    # The progress: a cancellable "thinking" bar whose messages are reasoning lines.
    [(token, events)] = [(t, e) for t, e in client.progress_reports.items() if "edit" in str(t)]
    assert events[0].title == "DeepSeek is thinking…" and events[0].cancellable
    messages = [getattr(e, "message", None) for e in events[1:-1]]
    assert "The user wants type hints." in messages
    assert events[-1].kind == "end"


async def test_a_document_changed_meanwhile_is_left_alone(client, editor, fake_openai):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    fake_openai.enqueue(Reply(reasoning=REASONING, content=fenced(TYPED), hold=True))

    pending = asyncio.ensure_future(edit(client))
    await asyncio.to_thread(fake_openai.served, 0)
    editor.insert(PY, 7, 0, "# typed while the model thinks\n")
    await _until_server_has(client, PY, editor.texts[PY])
    fake_openai.release(0)
    result = await pending

    assert result["status"] == "stale"
    assert editor.applied == []
    assert editor.texts[PY] == SOURCE + "# typed while the model thinks\n"
    assert "changed while the model was working" in shown_messages(client)


async def test_a_document_closed_while_the_model_works_gets_no_edit(client, editor, fake_openai):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    fake_openai.enqueue(Reply(reasoning=REASONING, content=fenced(TYPED), hold=True))

    pending = asyncio.ensure_future(edit(client))
    await asyncio.to_thread(fake_openai.served, 0)
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(PY))
    )
    fake_openai.release(0)
    result = await pending

    assert result["status"] in ("stale", "failed"), result
    assert "closed" in result["message"]
    assert editor.applied == []
    # The server goes on: the file opened again is edited as usual.
    editor.open(PY, SOURCE)
    fake_openai.enqueue(Reply(reasoning=REASONING, content=fenced(TYPED)))
    assert (await edit(client))["status"] == "applied"


@pytest.mark.parametrize("how", ["cancelRequest", "progress"])
async def test_cancelling_mid_reasoning_leaves_no_edit_and_closes_the_stream(
    client, editor, fake_openai, how
):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    fake_openai.enqueue(
        Reply(reasoning="thinking hard\n" * 200, content=fenced(TYPED), chunk_size=14, delay=0.05)
    )

    pending = asyncio.ensure_future(edit(client, msg_id="edit-1"))
    await editor.wait_for_reasoning()
    result = await cancel(client, pending, how, "edit-1")

    assert result["status"] == "cancelled"
    served = fake_openai.served(0)
    assert await asyncio.to_thread(served.disconnected.wait, 10), "the stream was not closed"
    assert editor.applied == [] and editor.texts[PY] == SOURCE


async def test_a_second_edit_of_the_same_document_is_refused_while_one_runs(
    client, editor, fake_openai
):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    fake_openai.enqueue(Reply(reasoning=REASONING, content=fenced(TYPED), hold=True))
    first = asyncio.ensure_future(edit(client))
    await asyncio.to_thread(fake_openai.served, 0)

    second = await edit(client, instruction="Add a docstring")
    fake_openai.release(0)

    assert second["status"] == "busy"
    assert "still running" in second["message"]
    assert (await first)["status"] == "applied"
    assert len(fake_openai.requests) == 1


async def test_an_editor_that_refuses_the_edit_is_reported(client, editor, fake_openai):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    editor.refuse_with = "the file is read-only"
    fake_openai.enqueue(Reply(reasoning=REASONING, content=fenced(TYPED)))

    result = await edit(client)

    assert result["status"] == "failed"
    assert "the file is read-only" in result["message"]
    assert "the file is read-only" in shown_messages(client)
    assert editor.texts[PY] == SOURCE


# ---------------------------------------------------------------- refusals

REFUSALS = {
    "prose only": (
        "You could add type hints to the parameters and the return value.",
        "only prose",
    ),
    "lazy placeholder": (
        "```python\ndef area(r: float) -> float:\n    # ... rest of the code ...\n```\n",
        "placeholder",
    ),
    "worse parse": ("```python\ndef area(r: float) -> float\n    return (\n```\n", "syntax"),
    "empty answer": ("```python\n```\n", "empty"),
    "deletes most of it": ("```python\npass\n```\n", "delete most of the selection"),
}


@pytest.mark.parametrize("case", REFUSALS)
async def test_an_unusable_answer_is_refused_with_a_message(client, editor, fake_openai, case):
    await start(client, fake_openai)
    source = (
        SOURCE
        + "\ndef volume(r):\n    v = 4 / 3\n    v *= math.pi\n    v *= r ** 3\n    return v\n"
    )
    editor.open(PY, source)
    answer, reason = REFUSALS[case]
    fake_openai.enqueue(Reply(reasoning=REASONING, content=answer))
    selection = (
        types.Range(types.Position(8, 0), types.Position(13, 0))
        if case == "deletes most of it"
        else SELECTION
    )

    result = await edit(client, selection=selection)

    assert result["status"] == "refused", result
    assert reason in result["message"]
    assert reason in shown_messages(client) and "log" in shown_messages(client)
    assert editor.applied == [] and editor.texts[PY] == source


async def test_deleting_most_of_it_is_fine_when_asked(client, editor, fake_openai):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    fake_openai.enqueue(Reply(content="```python\ndef area(r):\n    ...\n```\n"))
    selection = types.Range(types.Position(0, 0), types.Position(7, 0))

    result = await edit(client, selection=selection, instruction="Remove everything but a stub")

    assert result["status"] == "applied", result
    assert editor.texts[PY] == "def area(r):\n    ...\n"


async def test_a_cut_off_answer_is_not_applied(client, editor, fake_openai):
    await start(client, fake_openai, maxTokens=50)
    editor.open(PY, SOURCE)
    fake_openai.enqueue(Reply(reasoning=REASONING, content=fenced(TYPED), finish_reason="length"))

    result = await edit(client)

    assert result["status"] == "failed"
    assert "cut off" in result["message"]
    assert editor.texts[PY] == SOURCE


async def test_no_instruction_and_no_comment_is_refused_before_asking(client, editor, fake_openai):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)

    result = await edit(client, instruction=None)

    assert result["status"] == "refused"
    assert "# ds:" in result["message"]
    assert fake_openai.requests == []


@pytest.mark.parametrize(
    "arguments",
    [[], ["file:///x.py"], [{"uri": PY}], [{"uri": PY, "range": "lines 1-3"}]],
    ids=["none", "not an object", "no range", "bad range"],
)
async def test_malformed_arguments_get_an_error_and_the_server_goes_on(
    client, editor, fake_openai, arguments
):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)

    with pytest.raises(Exception, match=r"\{uri, range, instruction\}"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="dsLsp.editSelection", arguments=arguments)
        )
    fake_openai.enqueue(Reply(content=fenced(TYPED)))
    assert (await edit(client))["status"] == "applied"


async def test_a_document_that_is_not_open_gets_a_clear_message(client, editor, fake_openai):
    await start(client, fake_openai)

    result = await edit(client, uri="file:///work/elsewhere.py")

    assert result["status"] == "failed"
    assert "elsewhere.py is not open" in result["message"]


# ---------------------------------------------------------------- positions


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
async def test_a_selection_ending_after_emoji_and_cjk(client, editor, fake_openai, encoding):
    result = await start(client, fake_openai, encodings=[encoding])
    assert result.capabilities.position_encoding == encoding
    editor.encoding = encoding
    source = 'def greet(name):\n    return f"🎉 你好 {name}"  # 🐍\n\nx = 1\n'
    editor.open(PY, source)
    line = source.split("\n")[1]
    units = len(line.encode("utf-16-le")) // 2 if encoding == "utf-16" else len(line.encode())
    selection = types.Range(types.Position(0, 0), types.Position(1, units))
    new = 'def greet(name: str) -> str:\n    return f"🎉 你好 {name}"  # 🐍\n'
    fake_openai.enqueue(Reply(content=fenced(new)))

    result = await edit(client, selection=selection)

    assert result["status"] == "applied"
    assert editor.texts[PY] == new + "\nx = 1\n"


# ---------------------------------------------------------------- hover


async def hover(client, line: int, character: int = 4):
    return await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(PY), types.Position(line, character))
    )


async def test_hover_shows_the_reasoning_over_the_edited_lines_only(client, editor, fake_openai):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    fake_openai.enqueue(Reply(reasoning=REASONING, content=fenced(TYPED)))
    result = await edit(client)
    assert result["status"] == "applied"

    shown = await hover(client, 3)
    assert shown is not None
    text = shown.contents.value
    assert "Add type hints" in text and "r is a radius, a float." in text
    assert "openai" in text  # the model
    assert await hover(client, 0) is None
    assert await hover(client, 6) is None

    # Lines typed above move the note; deleting its lines removes it.
    editor.insert(PY, 0, 0, "# header\n# more\n")
    await _until_server_has(client, PY, editor.texts[PY])
    assert await hover(client, 3) is None
    assert await hover(client, 5) is not None
    full = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            "dsLsp.showReasoning", [{"uri": PY, "position": {"line": 4, "character": 0}}]
        )
    )
    assert full["reasoning"] == REASONING
    editor.replace(PY, types.Position(4, 0), types.Position(6, 0), "")
    await _until_server_has(client, PY, editor.texts[PY])
    assert await hover(client, 4) is None


async def test_the_hover_truncates_long_reasoning(client, editor, fake_openai):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    long_reasoning = "I consider the radius carefully. " * 200
    fake_openai.enqueue(Reply(reasoning=long_reasoning, content=fenced(TYPED), chunk_size=50))
    assert (await edit(client))["status"] == "applied"

    text = (await hover(client, 2)).contents.value

    assert "full reasoning is in the log" in text
    assert len(text) < 2500


# ---------------------------------------------------------------- preview


async def test_preview_shows_a_block_and_accept_applies_it(client, editor, fake_openai):
    await start(client, fake_openai, editPreview=True)
    editor.open(PY, SOURCE)
    fake_openai.enqueue(Reply(reasoning=REASONING, content=fenced(TYPED)))

    result = await edit(client)

    assert result["status"] == "preview"
    text = editor.texts[PY]
    assert "<<<<<<< DeepSeek" in text and "=======" in text and ">>>>>>> DeepSeek" in text
    assert "def area(r):" in text and "def area(r: float) -> float:" in text
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(PY),
            range=types.Range(types.Position(4, 0), types.Position(4, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    accept = next(a for a in actions if "Accept" in a.title)
    done = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(accept.command.command, accept.command.arguments)
    )

    assert done["status"] == "applied"
    assert editor.texts[PY] == SOURCE.replace("def area(r):", "def area(r: float) -> float:")


async def test_preview_reject_restores_the_original_byte_for_byte(client, editor, fake_openai):
    await start(client, fake_openai, editPreview=True)
    source = SOURCE.replace("\n", "\r\n").replace("return sum(xs)\r\n", "return sum(xs)")
    editor.open(PY, source)
    fake_openai.enqueue(Reply(reasoning=REASONING, content=fenced(TYPED)))
    whole = types.Range(types.Position(5, 0), types.Position(6, 18))  # to the end, no newline
    fake_openai.enqueue(
        Reply(content=fenced("def total(xs: list[float]) -> float:\n    return sum(xs)\n"))
    )
    assert (await edit(client))["status"] == "preview"
    second = await edit(client, selection=_shifted(whole, editor, source))
    assert second["status"] == "preview"

    for result_id in (second["id"], None):
        ids = [result_id] if result_id else _block_ids(editor.texts[PY])
        for block_id in ids:
            done = await client.workspace_execute_command_async(
                types.ExecuteCommandParams("dsLsp.rejectEdit", [{"uri": PY, "id": block_id}])
            )
            assert done["status"] == "rejected"

    assert editor.texts[PY] == source


def _shifted(selection: types.Range, editor: Editor, source: str) -> types.Range:
    """The same lines after the first preview block grew the document."""
    grown = editor.texts[PY].count("\n") - source.count("\n")
    return types.Range(
        types.Position(selection.start.line + grown, 0),
        types.Position(selection.end.line + grown, selection.end.character),
    )


def _block_ids(text: str) -> list[str]:
    return [
        line.split()[2].rstrip(":")
        for line in text.splitlines()
        if line.startswith("<<<<<<< DeepSeek ")
    ]


# ---------------------------------------------------------------- helpers


async def _until_server_has(client, uri: str, text: str, timeout: float = 10.0) -> None:
    """Wait until the server's copy of the document is `text` (didChange is a
    notification: nothing else says when it was handled)."""

    async def poll() -> None:
        while True:
            held = await client.workspace_execute_command_async(
                types.ExecuteCommandParams("dsLsp.inspectDocument", [{"uri": uri}])
            )
            if held and held["text"] == text:
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_with_nothing_selected_the_command_edits_the_enclosing_function(
    client, editor, fake_openai
):
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    fake_openai.enqueue(Reply(content=fenced(TYPED)))
    cursor = types.Position(3, 10)

    result = await edit(client, selection=types.Range(cursor, cursor))

    assert result["status"] == "applied", result
    assert editor.texts[PY] == SOURCE.replace("def area(r):", "def area(r: float) -> float:")


# ---------------------------------------------------------------- what could lose code

RST_DOCSTRING = (
    "def area(r):\n"
    '    """The area of a circle.\n'
    "\n"
    "Title\n"
    "=======\n"
    "More text.\n"
    '"""\n'
    "    return math.pi * r * r\n"
)


async def _accept(client, uri: str, line: int) -> dict:
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri),
            range=types.Range(types.Position(line, 0), types.Position(line, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    accept = next(a for a in actions or [] if "Accept" in a.title)
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(accept.command.command, accept.command.arguments)
    )


async def test_accepting_a_proposal_that_holds_a_separator_line_keeps_all_of_it(
    client, editor, fake_openai
):
    """An RST title underline is the same line as the block's middle marker."""
    await start(client, fake_openai, editPreview=True)
    editor.open(PY, SOURCE)
    fake_openai.enqueue(Reply(content=fenced(RST_DOCSTRING)))
    assert (await edit(client, instruction="Document it"))["status"] == "preview"

    done = await _accept(client, PY, 4)

    assert done["status"] == "applied", done
    assert editor.texts[PY] == SOURCE.replace(
        "def area(r):\n    return math.pi * r * r\n", RST_DOCSTRING
    )


@pytest.mark.parametrize("accept", [True, False])
async def test_a_preview_in_a_document_with_cr_line_ends_can_be_settled(
    client, editor, fake_openai, accept
):
    await start(client, fake_openai, editPreview=True)
    source = SOURCE.replace("\n", "\r")
    editor.open(PY, source)
    fake_openai.enqueue(Reply(content=fenced(TYPED)))
    assert (await edit(client))["status"] == "preview"
    assert "<<<<<<< DeepSeek" in editor.texts[PY]

    if accept:
        done = await _accept(client, PY, 3)
        assert done["status"] == "applied", done
        assert editor.texts[PY] == source.replace("def area(r):", "def area(r: float) -> float:")
    else:
        [block_id] = _block_ids(editor.texts[PY].replace("\r", "\n"))
        done = await client.workspace_execute_command_async(
            types.ExecuteCommandParams("dsLsp.rejectEdit", [{"uri": PY, "id": block_id}])
        )
        assert done["status"] == "rejected", done
        assert editor.texts[PY] == source


async def test_a_document_out_of_sync_gets_no_edit_until_the_editor_sends_its_text(
    client, editor, fake_openai
):
    """A change the server cannot apply (a reversed range) leaves its copy behind the
    editor's: no edit may be computed on it until the editor sends the whole text."""
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    reversed_range = types.Range(types.Position(4, 0), types.Position(3, 0))
    editor.versions[PY] += 1
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=PY, version=2),
            content_changes=[types.TextDocumentContentChangePartial(reversed_range, "x")],
        )
    )
    fake_openai.enqueue(Reply(content=fenced(TYPED)))

    result = await edit(client)

    assert result["status"] == "failed", result
    assert "out of sync" in result["message"] and "reopen" in result["message"]
    assert editor.applied == [] and editor.refused == []
    assert fake_openai.requests == []  # not even the model was asked
    assert "out of sync" in all_logs(client)

    # The editor's whole text brings the server's copy back.
    editor.versions[PY] += 1
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=PY, version=3),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=SOURCE)],
        )
    )
    await _until_server_has(client, PY, SOURCE)
    assert (await edit(client))["status"] == "applied"
    assert editor.texts[PY] == SOURCE.replace("def area(r):", "def area(r: float) -> float:")


class _TypingEditor(Editor):
    """The user types a line at the top just before the editor applies an edit; the
    editor then does what `how` says: "unversioned" (a client without
    documentChanges applies plain changes where the positions fall now) or
    "neovim" (answers `applied` to an edit for an old version, and drops it)."""

    how: str = "unversioned"

    def _apply_edit(self, params: types.ApplyWorkspaceEditParams):
        self.insert(PY, 0, 0, "# typed while the edit was on its way\n")
        [change] = params.edit.document_changes or [None]
        if change is not None and change.text_document.version != self.versions[PY]:
            return types.ApplyWorkspaceEditResult(applied=True)  # and nothing else
        return super()._apply_edit(params)


@pytest.mark.parametrize("how", ["unversioned", "neovim"])
async def test_an_edit_the_editor_did_not_really_apply_is_reported(client, fake_openai, how):
    editor = _TypingEditor(client)
    editor.how = how
    caps = client_capabilities("visual-studio-code")
    info = None
    if how == "unversioned":
        caps.workspace.workspace_edit.document_changes = None
    else:
        caps.workspace.workspace_edit.document_changes = None
        info = types.ClientInfo(name="Neovim", version="0.12.0")
    options = {"backend": "openai", "baseUrl": fake_openai.base_url, "model": "m"}
    await client.initialize_session(
        types.InitializeParams(
            capabilities=caps, client_info=info, initialization_options={"dsLsp": options}
        )
    )
    editor.open(PY, SOURCE)
    fake_openai.enqueue(Reply(reasoning=REASONING, content=fenced(TYPED)))

    result = await edit(client)

    assert result["status"] == "failed", result
    assert "does not hold it" in result["message"]
    assert "does not hold it" in shown_messages(client)
    # No reasoning is left waiting to be shown over lines the edit never wrote.
    assert await hover(client, 3) is None


async def test_the_reasoning_of_a_refused_edit_never_shows_up_later(client, editor, fake_openai):
    """A failed edit's note must not wait for its text forever: if the user later
    types that very text, its reasoning would show over their own lines."""
    await start(client, fake_openai)
    editor.open(PY, SOURCE)
    editor.refuse_with = "read-only buffer"
    fake_openai.enqueue(Reply(reasoning=REASONING, content=fenced(TYPED)))
    assert (await edit(client))["status"] == "failed"

    editor.replace(PY, types.Position(2, 0), types.Position(2, 12), "def area(r: float) -> float:")
    await _until_server_has(client, PY, editor.texts[PY])

    assert await hover(client, 2) is None


async def test_closing_a_document_forgets_its_previews(client, editor, fake_openai):
    await start(client, fake_openai, editPreview=True)
    editor.open(PY, SOURCE)
    fake_openai.enqueue(Reply(content=fenced(TYPED)))
    assert (await edit(client))["status"] == "preview"
    with_block = editor.texts[PY]

    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(PY))
    )
    editor.open(PY, with_block)  # saved with the block in it, and opened again
    await _until_server_has(client, PY, with_block)

    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(PY),
            range=types.Range(types.Position(4, 0), types.Position(4, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert not any("Accept" in a.title for a in actions or [])
