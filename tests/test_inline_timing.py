"""Ghost text on time: work begun at didChange, one wait only, stale generations
stopped at once, prefills ahead of the pause, the time cap, and the prompt style
that fits the model. Through a real LSP client (pytest-lsp) and the fake model
server standing in for llama-server (its /props and `n_predict: 0` prefills)."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.fake_openai_server import Reply
from tests.test_completion_lsp import PY, answer, ghost_text, open_doc, start, type_text
from tests.test_server import server_env, wait_for_log

R1_TEMPLATE = "{% for m in messages %}<｜User｜>{{ m.content }}{% endfor %}<｜Assistant｜><think>\n"


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "ds_lsp"],
        server_env=server_env(DS_LSP_LOG_LEVEL="debug"),
    )
)
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def stats(client) -> dict:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="dsLsp.inlineStats", arguments=[])
    )


async def until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition never held")
        await asyncio.sleep(0.02)


async def test_a_keystroke_that_leaves_the_generation_behind_stops_it_at_once(client, fake_openai):
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(Reply(content="a + b", format="none", hold=True))
    pending = asyncio.ensure_future(ghost_text(client, PY, 1, 11))
    await fake_openai.wait_for_request(0)

    type_text(client, PY, 2, 1, 11, "x")  # not what the model is writing

    # The model's stream closes at the keystroke: no new request is needed for that.
    assert await fake_openai.wait_for_disconnect(0)
    assert await pending == [], "the old request gets nothing"


async def test_typing_what_the_model_already_wrote_keeps_its_generation(client, fake_openai):
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(Reply(content="a + b", format="none", chunk_size=1, delay=0.15))
    first = asyncio.ensure_future(ghost_text(client, PY, 1, 11))
    await fake_openai.wait_for_request(0)
    await asyncio.sleep(0.4)  # "a" and more have arrived

    type_text(client, PY, 2, 1, 11, "a")
    items = await ghost_text(client, PY, 1, 12)

    assert [item.insert_text for item in items] == [" + b"]
    assert len(fake_openai.requests) == 1, "the running generation served the next keystroke"
    assert [item.insert_text for item in await first] == []  # stale: its document moved on


async def test_work_begins_at_did_change_and_a_client_that_waits_is_not_made_to_wait_again(
    client, fake_openai
):
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(answer("a"), answer("a + b"))
    await ghost_text(client, PY, 1, 11, invoked=False)  # the editor asks for ghost text here

    type_text(client, PY, 2, 1, 11, " ")  # then a keystroke, and no request yet
    await fake_openai.wait_for_request(1)  # the model is asked all the same

    await asyncio.sleep(0.25)  # the editor waits for quiet itself (Neovim: 200 ms)
    sent = time.perf_counter()
    msg_id = "asked-after-its-own-wait"
    items = await ghost_text(client, PY, 1, 12, invoked=False, msg_id=msg_id)
    took = time.perf_counter() - sent

    assert [item.insert_text for item in items] == ["a + b"]
    timing = (await stats(client))["timings"][msg_id]
    assert timing["wait_ms"] == 0, "no second wait on top of the editor's own"
    assert len(fake_openai.requests) == 2
    assert took < 5  # (sanity; the figure itself is in bench/inline.py)


async def test_the_first_keystroke_at_a_new_spot_prefills_it(client, fake_openai):
    fake_openai.props = {"chat_template": R1_TEMPLATE}  # a llama-server with an R1 model
    await start(client, fake_openai, completionDebounceMs=2000)
    lines = [f"value_{n} = {n}\n" for n in range(200)]
    open_doc(client, PY, "".join(lines))
    await ghost_text(client, PY, 10, 0, invoked=False, msg_id="first")  # the editor asks here
    await until(lambda: len(fake_openai.prefills) == 1)
    assert fake_openai.prefills[0]["n_predict"] == 0
    assert fake_openai.prefills[0]["cache_prompt"] is True

    # More keystrokes at the same spot: its prompt only grows at the end, no new prefill.
    type_text(client, PY, 2, 10, 0, "x")
    type_text(client, PY, 3, 10, 1, "y")
    await asyncio.sleep(0.3)
    assert len(fake_openai.prefills) == 1

    # A keystroke far away: that spot's prompt is cold, it is prefilled at once.
    type_text(client, PY, 4, 150, 0, "z")
    await until(lambda: len(fake_openai.prefills) == 2)
    assert "value_149" in str(fake_openai.prefills[1])
    # The keystrokes generated nothing: the wait for a pause (2 s here) never ended.
    assert len(fake_openai.requests) == 1


async def test_a_generation_waits_for_its_spots_prefill(client, fake_openai):
    """Sent beside the prefill, a generation would evaluate the same cold prompt in
    another llama-server slot, and closing its stream would not stop that."""
    fake_openai.props = {"chat_template": R1_TEMPLATE}
    fake_openai.prefill_seconds = 1.0
    await start(client, fake_openai, completionDebounceMs=50)
    lines = [f"value_{n} = {n}\n" for n in range(200)]
    open_doc(client, PY, "".join(lines))
    fake_openai.enqueue(answer("1"))

    items = await ghost_text(client, PY, 150, 0, invoked=False)

    assert [item.insert_text for item in items] == ["1"]
    assert len(fake_openai.prefills) == 1
    assert fake_openai.prefills_done == 1, "the generation was sent after the prefill ended"
    assert len(fake_openai.requests) == 1


async def test_a_suggestion_that_runs_past_the_time_cap_ends_with_its_first_line(
    client, fake_openai
):
    await start(client, fake_openai, completionTimeBudgetMs=100)
    open_doc(client, PY, "def numbers():\n    ")
    many_lines = "".join(f"yield {n}\n    " for n in range(40))
    fake_openai.enqueue(Reply(content=many_lines, format="none", chunk_size=8, delay=0.05))

    items = await ghost_text(client, PY, 1, 4)

    assert [item.insert_text for item in items] == ["yield 0"]
    await wait_for_log(client, "time cap")


async def test_a_llama_server_without_a_thinking_template_gets_plain_continuation(
    client, fake_openai
):
    fake_openai.props = {"chat_template": "{{ messages }}"}  # no <think>: not an R1 distill
    await start(client, fake_openai)
    open_doc(client, PY, "import os\n\ndef add(a, b):\n    return \n")
    fake_openai.enqueue(answer("a + b"))

    items = await ghost_text(client, PY, 3, 11)

    assert [item.insert_text for item in items] == ["a + b"]
    assert fake_openai.endpoints[-1] == "completions"
    prompt = fake_openai.requests[-1]["prompt"]
    # The space typed last is left out (the model writes it with the next word).
    assert prompt.endswith("def add(a, b):\n    return")
    assert "Complete the code" not in prompt, "no instructions for a model that continues text"
    await wait_for_log(client, "inline completions: continuation prompt")


async def test_the_completion_prompt_setting_wins_over_what_the_server_says(client, fake_openai):
    fake_openai.props = {"chat_template": "{{ messages }}"}
    await start(client, fake_openai, completionPrompt="chat")
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(answer("a + b"))

    await ghost_text(client, PY, 1, 11)

    assert fake_openai.endpoints[-1] == "chat"
    assert "Complete the code" in str(fake_openai.requests[-1]["messages"])


@pytest.mark.parametrize(
    ("answer_text", "shown"),
    [
        ("a + b\n# Path: calc.py", "a + b"),  # prompt furniture after the answer
        ("a + b\n    return a - b", "a + b"),  # the next line already in the file
    ],
)
async def test_no_prompt_furniture_and_no_copy_of_the_code_below(
    client, fake_openai, answer_text, shown
):
    fake_openai.props = {"chat_template": ""}
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    return \n\n\ndef sub(a, b):\n    return a - b\n")
    fake_openai.enqueue(answer(answer_text))

    items = await ghost_text(client, PY, 1, 11)

    assert [item.insert_text for item in items] == [shown]


@pytest.mark.parametrize(
    "answer_text",
    [
        "return total\n\n\ndef main():\n    pass",  # past the end of the function
        "return total\n    print(total)",  # after a return nothing at its depth runs
        "return total\n\n# Path: task_1.py\nfrom typing import List",  # an invented header
    ],
)
async def test_a_block_suggestion_at_the_end_of_a_function_stops_where_the_function_does(
    client, fake_openai, answer_text
):
    fake_openai.props = {"chat_template": ""}  # plain continuation: indented as the file is
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    total = a + b\n    \n")
    fake_openai.enqueue(answer(answer_text))

    items = await ghost_text(client, PY, 2, 4)

    assert [item.insert_text for item in items] == ["return total"]


async def test_in_the_middle_of_code_a_suggestion_is_one_line(client, fake_openai):
    fake_openai.props = {"chat_template": ""}
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    total = a + b\n    \n    return total\n")
    fake_openai.enqueue(answer("total += 1\n    total *= 2\n    return total"))

    items = await ghost_text(client, PY, 2, 4)

    assert [item.insert_text for item in items] == ["total += 1"]
    assert fake_openai.requests[-1]["stop"] == ["\n"], "one line asked for"


async def test_at_the_end_of_a_finished_line_the_next_line_is_suggested(client, fake_openai):
    """Where the model finds the cursor's line finished, the pause still gets ghost
    text: the line after it, not a copy of the code below."""
    fake_openai.props = {"chat_template": ""}  # a base model: plain continuation
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    total = a + b\n    return total\n")
    fake_openai.enqueue(answer("\n    total *= 2\n    return total"))

    items = await ghost_text(client, PY, 1, 17)

    assert [item.insert_text for item in items] == ["\n    total *= 2"]
    assert not fake_openai.requests[-1].get("stop"), "not stopped at the line break"


async def test_a_lone_surrogate_in_the_document_still_gets_ghost_text(client, fake_openai):
    """Text UTF-8 cannot carry (a lone surrogate an editor sent) goes to the model as
    U+FFFD instead of failing the request."""
    await start(client, fake_openai)
    open_doc(client, PY, "# broken \ud800 text\ndef add(a, b):\n    return \n")
    fake_openai.enqueue(answer("a + b"))

    items = await ghost_text(client, PY, 2, 11)

    assert [item.insert_text for item in items] == ["a + b"]
    assert "\ufffd" in str(fake_openai.requests[-1])
    await wait_for_log(client, "lone surrogate")


async def test_fast_typing_leaves_nothing_behind_in_the_engine(client, fake_openai):
    """Every keystroke starts this spot's work and cancels the last one's, most of
    them while still waiting for the pause: none of them may be kept (each would
    keep its document and syntax tree for the rest of the session)."""
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(*[answer("a + b")] * 5)
    await ghost_text(client, PY, 1, 11, invoked=False)  # the editor asks for ghost text
    for column, char in enumerate("a + b  # the sum of the two", start=11):
        type_text(client, PY, column - 9, 1, column, char)
        await asyncio.sleep(0.01)  # faster than any pause

    async def held() -> int:
        return (await stats(client))["stats"]["tasks_held"]

    deadline = time.monotonic() + 10
    while await held() > 1 and time.monotonic() < deadline:  # the last spot's work, at most
        await asyncio.sleep(0.05)
    assert await held() <= 1


async def test_a_document_closed_while_its_ghost_text_is_pending_gets_none(client, fake_openai):
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(Reply(content="a + b", format="none", hold=True))
    pending = asyncio.ensure_future(ghost_text(client, PY, 1, 11))
    await fake_openai.wait_for_request(0)

    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(PY))
    )

    assert await fake_openai.wait_for_disconnect(0), "the model stops at once"
    assert await pending == []
    # Opened again, it gets ghost text as before.
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(answer("a + b"))
    assert [i.insert_text for i in await ghost_text(client, PY, 1, 11)] == ["a + b"]
