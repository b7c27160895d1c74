"""A local OpenAI-compatible model server that streams scripted replies.

It stands in for Ollama, LM Studio, llama.cpp's server, vLLM, SGLang and the
DeepSeek API: each `Reply` says what to answer and in which of their wire
formats (see /work/shared/notes/reasoning-formats.md), how to chunk it, and
how to misbehave (HTTP errors, broken SSE, hangs, dropped connections).

The server is aiohttp on 127.0.0.1 with a free port, in a background thread
with its own event loop, so in-process async tests and subprocesses (the CLI,
an editor) can all talk to it. As a pytest plugin this module provides the
`fake_openai` fixture: one server per test session, reset before each test.

It serves streaming chat completions (`/v1/chat/completions`) and text
completions (`/v1/completions`, where raw prompts go: `choices[0].text`, no
reasoning field, so a reply's reasoning comes inline as a model would say it);
both follow the same `Reply` script and are recorded alike (`requests`,
`endpoints`).

Tests synchronise with it through events, never sleeps: `wait_for_request`
returns once a request has arrived, a `Reply(hold=True)` sends nothing (not
even headers) until `release()`, and each request's `Served` record notes the
moment the client closed the connection (aiohttp cancels the handler then).

Run it by hand for editor tests:
    python -m tests.fake_openai_server --port 8765 --reply 'print("hi")'
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from aiohttp import web

WireFormat = Literal[
    "reasoning_content",  # DeepSeek API, llama.cpp --reasoning-format deepseek, LM Studio, old vLLM
    "reasoning",  # Ollama /v1, newer vLLM and LM Studio: `reasoning`, content "" meanwhile
    "thinking",  # Ollama's native field name, passed through by some proxies
    "inline",  # "<think>R</think>A" in content
    "inline_prefilled",  # "R</think>A": the template prefilled "<think>"
    "legacy_both",  # llama.cpp deepseek-legacy: tags in content AND reasoning_content
    "router_stray",  # reasoning_content, plus a stray tag (`stray`) in the content
    "none",  # no reasoning at all, content is the answer
]

DEFAULT_MODELS = ("deepseek-r1:1.5b", "deepseek-r1:7b")

# The error bodies real servers send, in OpenAI's shape.
_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Bad request.", "invalid_request_error", None),
    401: ("Incorrect API key provided: {key}.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to use this model.", "invalid_request_error", None),
    404: ("The model `{model}` does not exist.", "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    503: ("The server is overloaded, please try again later.", "server_error", None),
}


@dataclass
class Reply:
    """One scripted answer to a chat completion request."""

    reasoning: str = ""
    content: str = ""
    format: WireFormat = "reasoning_content"
    # Characters of text per SSE chunk; small, so tags get split across chunks.
    chunk_size: int = 3
    # Seconds to wait before each chunk after the first (slow streams).
    delay: float = 0.0
    # Seconds to wait, after the headers, before the first chunk (time to first token).
    first_delay: float = 0.0
    # None: end the stream (with [DONE]) without ever sending a finish_reason.
    finish_reason: str | None = "stop"
    # Not 200: answer with this status and `error_body` (default: OpenAI's error shape).
    status: int = 200
    error_body: Any = None
    # Send a broken event after the first chunk: True, `data: {not json`; a string, that
    # string as the event's data (any garbage: `<html>...`, JSON of the wrong shape).
    malformed: bool | str = False
    # Counted in SSE chunks sent, the first (role) chunk included.
    hang_after: int | None = None  # then send nothing more, keep the connection open
    drop_after: int | None = None  # then close the connection mid-stream
    usage: bool = False  # send a usage chunk after the finish chunk
    # The stray tag of "router_stray", sent in the content of the first chunk.
    stray: str = "<think>\n"
    # False: the reasoning block never closes (cut off); tagged formats leave out "</think>".
    closed: bool = True
    # Accept the request, then send nothing, not even headers, until `release()` (or the
    # client goes away): a server still loading the model or evaluating a long prompt.
    hold: bool = False


@dataclass
class Served:
    """What happened to one request, for tests and benchmarks to inspect."""

    endpoint: str = "chat"  # "chat" (/v1/chat/completions) or "completions" (/v1/completions)
    arrived_at: float = field(default_factory=time.perf_counter)
    # Set when the client closed the connection before the reply was complete.
    disconnected: threading.Event = field(default_factory=threading.Event)
    disconnected_at: float | None = None  # time.perf_counter() when the server saw it
    # Lets a held reply go on; created and set on the server's loop only.
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def note_disconnect(self) -> None:
        if not self.disconnected.is_set():
            self.disconnected_at = time.perf_counter()
            self.disconnected.set()


class FakeOpenAIServer:
    """An OpenAI-compatible server in a background thread. Thread-safe to script."""

    def __init__(self, default_reply: Reply | None = None, models=DEFAULT_MODELS) -> None:
        self.default_reply = default_reply or Reply(
            reasoning="The user wants a greeting.", content="Hello from the fake model."
        )
        self.models: list[str] = list(models)
        self.requests: list[dict] = []  # JSON bodies of the requests, both endpoints
        self.endpoints: list[str] = []  # the endpoint of each: "chat" or "completions"
        self.headers: list[dict[str, str]] = []  # their headers, Authorization left out
        self.auth_headers: list[str | None] = []  # their Authorization headers
        # Prefills (`n_predict: 0`, as llama-server takes them): recorded here, answered
        # with an empty completion at once, never from the scripted replies.
        self.prefills: list[dict] = []
        self.prefill_seconds = 0.0  # how long a prefill takes (a prompt's evaluation)
        self.prefills_done = 0
        # What GET /props answers, as llama-server does; None: 404, as other servers.
        self.props: dict | None = None
        self._replies: collections.deque[Reply] = collections.deque()
        self._served: list[Served] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified as each request arrives
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # -- scripting, from the test's thread ------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order."""
        with self._lock:
            self._replies.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._replies.clear()
            self.requests.clear()
            self.endpoints.clear()
            self.headers.clear()
            self.auth_headers.clear()
            self.prefills.clear()
            self.prefill_seconds = 0.0
            self.prefills_done = 0
            self.props = None
            self._served.clear()
            self.models = list(DEFAULT_MODELS)

    def served(self, request_index: int = 0, timeout: float = 10.0) -> Served:
        """The record of that request (counted since the last reset; -1: the latest),
        once it has arrived. Blocks; raises TimeoutError if it never comes."""
        with self._arrived:
            if not self._arrived.wait_for(
                lambda: len(self._served) > max(request_index, 0), timeout
            ):
                raise TimeoutError(f"request {request_index} did not arrive in {timeout:g} s")
            return self._served[request_index]

    async def wait_for_request(self, request_index: int = 0, timeout: float = 10.0) -> Served:
        """`served()` for async code: returns once the request has arrived."""
        return await asyncio.to_thread(self.served, request_index, timeout)

    def release(self, request_index: int = 0) -> None:
        """Let a `Reply(hold=True)` go on (waits for its request to arrive first)."""
        served = self.served(request_index)
        self._loop.call_soon_threadsafe(served.released.set)

    async def wait_for_disconnect(self, request_index: int = -1, timeout: float = 5.0) -> bool:
        """Whether the client of that request closed the connection before the stream ended."""
        try:
            served = await self.wait_for_request(request_index, timeout)
        except TimeoutError:
            return False
        return await asyncio.to_thread(served.disconnected.wait, timeout)

    # -- lifecycle -------------------------------------------------------------

    def start(self, port: int = 0) -> FakeOpenAIServer:
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._start(port))
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai-server", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _start(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/props", self._props)
        # handler_cancellation: a client that goes away cancels its handler at once,
        # which is how the server notices (and times) a disconnect.
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    # -- handlers, on the server's loop -------------------------------------------

    async def _list_models(self, request: web.Request) -> web.Response:
        created = int(time.time())
        data = [
            {"id": model, "object": "model", "created": created, "owned_by": "fake"}
            for model in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _props(self, request: web.Request) -> web.Response:
        if self.props is None:
            raise web.HTTPNotFound()
        return web.json_response(self.props)

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "chat")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "completions")

    async def _answer(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        body = await request.json()
        if body.get("n_predict") == 0:
            with self._lock:
                self.prefills.append(body)
            await asyncio.sleep(self.prefill_seconds)
            with self._lock:
                self.prefills_done += 1
            empty = Reply(content="", format="none")
            whole = _text_completion if endpoint == "completions" else _completion
            return web.json_response(whole(empty, body.get("model", "")))
        with self._arrived:
            reply = self._replies.popleft() if self._replies else self.default_reply
            self.requests.append(body)
            self.endpoints.append(endpoint)
            self.auth_headers.append(request.headers.get("Authorization"))
            self.headers.append(
                {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
            )
            served = Served(endpoint=endpoint)
            self._served.append(served)
            self._arrived.notify_all()
        model = body.get("model", "")
        try:
            if reply.hold:
                await served.released.wait()
            if reply.status != 200:
                return self._error(reply, request, model)
            if not body.get("stream"):
                whole = _text_completion if endpoint == "completions" else _completion
                return web.json_response(whole(reply, model))
            return await self._stream(reply, request, model, served)
        except asyncio.CancelledError:
            served.note_disconnect()  # the client went away: aiohttp cancelled this handler
            raise

    def _error(self, reply: Reply, request: web.Request, model: str) -> web.Response:
        if reply.error_body is not None:
            if isinstance(reply.error_body, str):
                return web.Response(status=reply.status, text=reply.error_body)
            return web.json_response(reply.error_body, status=reply.status)
        message, kind, code = _ERRORS.get(reply.status, ("Error.", "server_error", None))
        # Echo the key whole, as a careless server might: the client must hide it.
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        message = message.format(key=key, model=model)
        error = {"message": message, "type": kind, "param": None, "code": code}
        return web.json_response({"error": error}, status=reply.status)

    async def _stream(
        self, reply: Reply, request: web.Request, model: str, served: Served
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        created = int(time.time())
        chat = served.endpoint == "chat"
        completion_id = f"{'chatcmpl' if chat else 'cmpl'}-{len(self.requests)}"

        def event(delta: dict | None, finish: str | None = None, usage=None) -> bytes:
            if delta is None:
                choices = []
            elif chat:
                choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            else:  # /v1/completions: the text itself, no delta
                text = delta.get("content") or ""
                choices = [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]
            chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created,
                "model": model,
                "system_fingerprint": "fake",
                "choices": choices,
            }
            if usage is not None:
                chunk["usage"] = usage
            return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()

        deltas = _deltas(reply) if chat else _text_deltas(reply)
        events = [event(delta) for delta in deltas]
        if reply.malformed:
            garbage = "{not json" if reply.malformed is True else reply.malformed
            events.insert(1, f"data: {garbage}\n\n".encode())
        if reply.finish_reason is not None:
            events.append(event({}, reply.finish_reason))
        if reply.usage:
            tokens = math.ceil(len(reply.reasoning + reply.content) / 4)
            usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": tokens + 10}
            events.append(event(None, usage=usage))
        events.append(b"data: [DONE]\n\n")

        # A client that goes away cancels this handler wherever it waits (see _start).
        for sent, data in enumerate(events):
            if sent == reply.hang_after:
                await asyncio.Event().wait()  # until the client goes away
            if sent == reply.drop_after:
                request.transport.close()
                return response
            if not sent and reply.first_delay:
                await asyncio.sleep(reply.first_delay)
            if sent and reply.delay:
                await asyncio.sleep(reply.delay)
            try:
                await response.write(data)
            except ConnectionError:
                served.note_disconnect()
                return response
        await response.write_eof()
        return response


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _deltas(reply: Reply) -> Iterator[dict]:
    """The `delta` of each SSE chunk, the role chunk first, as each server family sends them."""
    size = reply.chunk_size
    close = "</think>" if reply.closed else ""
    yield {"role": "assistant", "content": ""}
    if reply.format == "reasoning_content":
        for piece in _pieces(reply.reasoning, size):
            yield {"content": None, "reasoning_content": piece}
        for piece in _pieces(reply.content, size):
            yield {"content": piece, "reasoning_content": None}
    elif reply.format in ("reasoning", "thinking"):
        for piece in _pieces(reply.reasoning, size):
            yield {"role": "assistant", "content": "", reply.format: piece}
        for piece in _pieces(reply.content, size):
            yield {"role": "assistant", "content": piece}
    elif reply.format in ("inline", "inline_prefilled", "none"):
        text = {
            "inline": f"<think>{reply.reasoning}{close}{reply.content}",
            "inline_prefilled": f"{reply.reasoning}{close}{reply.content}",
            "none": reply.content,
        }[reply.format]
        for piece in _pieces(text, size):
            yield {"content": piece}
    elif reply.format == "legacy_both":
        # The tagged reasoning goes in content while the bare one goes in its field.
        tagged = _pieces(f"<think>{reply.reasoning}{close}", size)
        bare = _pieces(reply.reasoning, size)
        for content, reasoning in itertools.zip_longest(tagged, bare):
            yield {"content": content, "reasoning_content": reasoning}
        for piece in _pieces(reply.content, size):
            yield {"content": piece, "reasoning_content": None}
    elif reply.format == "router_stray":
        yield {"content": reply.stray}
        for piece in _pieces(reply.reasoning, size):
            yield {"content": None, "reasoning_content": piece}
        for piece in _pieces(reply.content, size):
            yield {"content": piece, "reasoning_content": None}
    else:
        raise ValueError(f"unknown wire format {reply.format!r}")


def completion_text(reply: Reply) -> str:
    """What `/v1/completions` says for the reply: the model's raw text, with no reasoning
    field. "none": the content alone; "inline": `<think>R</think>A`; every other
    format: `R</think>A`, as after a prompt that opened the reasoning."""
    close = "</think>" if reply.closed else ""
    if reply.format == "none":
        return reply.content
    if reply.format == "inline":
        return f"<think>{reply.reasoning}{close}{reply.content}"
    return f"{reply.reasoning}{close}{reply.content}"


def _text_deltas(reply: Reply) -> Iterator[dict]:
    """The text of each `/v1/completions` SSE chunk (as a `content` delta, for `_stream`)."""
    for piece in _pieces(completion_text(reply), reply.chunk_size):
        yield {"content": piece}


def _text_completion(reply: Reply, model: str) -> dict:
    """A whole (non-streamed) text_completion for the reply."""
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": completion_text(reply),
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def _completion(reply: Reply, model: str) -> dict:
    """A whole (non-streamed) chat.completion for the reply."""
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    for delta in _deltas(reply):
        for key in ("content", "reasoning_content", "reasoning"):
            if delta.get(key):
                message[key] = message.get(key, "") + delta[key]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


# -- pytest plugin -----------------------------------------------------------------


@pytest.fixture(scope="session")
def _fake_openai_session() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture
def fake_openai(_fake_openai_session: FakeOpenAIServer) -> FakeOpenAIServer:
    """The fake server, with no replies queued and no requests recorded."""
    _fake_openai_session.reset()
    return _fake_openai_session


# -- by hand -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve scripted R1-style replies over HTTP.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--reply", default="Hello from the fake model.", help="the answer")
    parser.add_argument("--reasoning", default="Let me think about this request.")
    parser.add_argument("--format", default="reasoning_content", choices=WireFormat.__args__)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between chunks")
    parser.add_argument("--chunk-size", type=int, default=4)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="ids /v1/models lists")
    args = parser.parse_args()
    reply = Reply(
        reasoning=args.reasoning,
        content=args.reply,
        format=args.format,
        delay=args.delay,
        chunk_size=args.chunk_size,
    )
    server = FakeOpenAIServer(default_reply=reply, models=args.models.split(",")).start(args.port)
    print(f"fake OpenAI-compatible server at {server.base_url} (Ctrl-C stops it)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
