"""Any OpenAI-compatible chat server as a backend: Ollama, LM Studio, llama.cpp's
server, vLLM, SGLang, the DeepSeek API.

Requests go through the official `openai` client (streaming chat
completions). Each server family delivers R1's reasoning its own way (see
docs on reasoning formats); `stream_reasoning.Normaliser` turns all of them into reasoning and
answer pieces, with `ds_lsp.reasoning.ReasoningSplitter` doing the tag work.

A raw prompt (`ChatRequest.raw`: fill-in-the-middle, or R1's format rendered
by ds-lsp) goes to the streaming `/v1/completions` endpoint instead, and
everything the model says is answer (stray tags and special tokens still go).
Reasoning "off" uses each server family's own way to skip R1's reasoning:
- llama-server, vLLM, SGLang, LM Studio: no per-request switch works for R1
  (llama-server ignores `reasoning_effort: "none"` and
  `enable_thinking: false` for R1 templates, and echoes a chat prefill in the
  content), so the conversation is rendered in R1's format with an empty
  think block prefilled (`r1_format.r1_raw_prompt`) and sent to
  `/v1/completions`;
- Ollama `/v1`: `reasoning_effort: "none"`;
- the DeepSeek API: `thinking: {"type": "disabled"}` (its newer models; R1
  itself still reasons, in its own field);
- any other server: a chat request as usual. Reasoning that comes anyway,
  in a field or in a leading `<think>` block, is never passed on as answer;
  the caller's max_tokens bounds it.
A backend set to `reasoning: off` (a model that does not reason) always
chats: it has no R1 format to render.

HTTP failures become `ModelError`s that say what to try, and never show the
API key or a password in the URL (`name`, logs and messages show the URL
through `redact_url`).

Cancelling (`request.cancel`, closing the stream, cancelling the consuming
task) closes the connection at once in every phase: every wait on the network,
sending the request and waiting for its headers included, is raced against the
cancel, and the losing request is cancelled, which makes httpx close its
connection; the server then stops generating.

A tagless text with reasoning "on" and no reasoning field is ambiguous until
the stream says what it was: reasoning after a `<think>` the server's template
prefilled (a `</think>` comes), or a plain answer (the stream ends with
`stop` and no tag). It is streamed live as reasoning meanwhile, so a
prefilled template's reasoning shows as it comes. If it turns out to be the
answer, the whole text is then sent again as the answer, at the end: a caller
gets the answer whole, and its collected reasoning also holds that text, as it
was shown. The reasoning budget counts only text known to be reasoning, so it
never cuts a plain answer; the price is that a prefilled template's reasoning,
unknown until its `</think>`, is bounded by max_tokens alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import openai

from ds_lsp.backends.base import (
    ChatRequest,
    Delta,
    FinishReason,
    ModelError,
    RawPrompt,
    Speed,
)
from ds_lsp.backends.cancel_race import CANCELLED, race
from ds_lsp.backends.presets import PRESETS, preset_for_url
from ds_lsp.backends.r1_format import r1_raw_prompt
from ds_lsp.backends.stream_reasoning import Normaliser, WrongShape, chunk_parts
from ds_lsp.completion_prompts import PromptStyle
from ds_lsp.prompt_style import style_from_server
from ds_lsp.redact import redact_text, redact_url
from ds_lsp.text import CHARS_PER_TOKEN

log = logging.getLogger(__name__)

# Sent as the key to servers that need none: the openai client insists on one,
# and left to itself it would send OPENAI_API_KEY to whatever server this is.
_NO_KEY = "no-key"
# How much of a server's error message goes into ours.
_SERVER_MESSAGE_LIMIT = 300
# Servers where reasoning "off" sends R1's format, rendered here, to /v1/completions.
_RAW_R1_PRESETS = frozenset({"llamacpp", "vllm", "sglang", "lmstudio"})
# Servers that end the reasoning themselves after a per-request budget, and the
# field it goes in (vLLM: SamplingParams.thinking_token_budget; SGLang:
# thinking_budget). Elsewhere the budget is counted here, from the text.
_BUDGET_FIELDS = {"vllm": "thinking_token_budget", "sglang": "thinking_budget"}
# Servers that may be llama.cpp's: they have /props, and prefill with `n_predict: 0`.
_LLAMA_SERVER_PRESETS = frozenset({"llamacpp", None})
_PROPS_TIMEOUT = 3.0


class OpenAIBackend:
    """A model behind an OpenAI-compatible HTTP server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        preset: str | None = None,
        reasoning: str = "auto",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # "off": a model that does not reason (a coder model): its content is the
        # answer from the first character. "auto" and "on": found out per stream.
        self.reasons = reasoning != "off"
        # The URL as every message and log line shows it: no `user:password@`.
        self.shown_url = redact_url(self.base_url)
        self.model = model
        self.timeout = timeout
        self.preset = preset if preset in PRESETS else preset_for_url(self.base_url)
        self.name = f"openai ({self.shown_url}, {model})"
        self._has_key = bool(api_key)
        self.speed = Speed()  # from llama-server's timings, where it sends them
        self._warned_unencodable = False
        self._prompt_style: PromptStyle | None = None
        # Hidden wherever a server echoes them back into an error we pass on.
        self._secrets = [secret for secret in (api_key, _url_password(self.base_url)) if secret]
        # No automatic retries: a user waiting on an edit wants the error now.
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=api_key or _NO_KEY, timeout=timeout, max_retries=0
        )

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.name})"

    async def aclose(self) -> None:
        await self._client.close()

    async def check(self) -> str:
        """One line for `ds-lsp doctor`: the server answers, and does it list our model?"""
        try:
            listed = [model.id async for model in self._client.models.list()]
        except openai.NotFoundError:
            raise ModelError(
                f"{self.shown_url}/models was not found (HTTP 404); is the URL right? "
                "It usually ends in /v1"
            ) from None
        except openai.OpenAIError as exc:
            raise self._error(exc) from None
        if self.model in listed:
            return f"{self.shown_url} serves {self.model}"
        shown = ", ".join(listed[:8]) + (", ..." if len(listed) > 8 else "") or "none"
        hint = f"; run `ollama pull {self.model}`" if self.preset == "ollama" else ""
        return self._redact(
            f"{self.shown_url} answers, but {self.model} is not among the models it lists "
            f"({shown}){hint}"
        )

    async def prompt_style(self) -> PromptStyle:
        """The inline-completion prompt that fits the served model: llama-server's /props
        tells its chat template; other servers, the model's name."""
        if self._prompt_style is None:
            template = await self._props_chat_template()
            self._prompt_style = style_from_server(self.model, template, self.preset)
            log.info(
                "%s: inline completions fit a %s prompt (%s)",
                self.model,
                self._prompt_style.style,
                self._prompt_style.reason,
            )
        return self._prompt_style

    async def _props_chat_template(self) -> str | None:
        """llama-server's chat template from /props ("" for none); None where the server
        has no /props (not llama.cpp) or does not answer."""
        if self.preset not in _LLAMA_SERVER_PRESETS:
            return None
        root = self.base_url.removesuffix("/v1")
        try:  # the same server, through the same client (its key, its proxy settings)
            props = await self._client.get(
                f"{root}/props", cast_to=object, options={"timeout": _PROPS_TIMEOUT}
            )
        except openai.APITimeoutError:
            return None
        except openai.APIConnectionError as exc:
            # Nothing listening (yet): a style guessed now would be kept after the
            # server comes up, so fail, and ask again with the next request.
            raise self._error(exc) from None
        except (openai.OpenAIError, ValueError):
            return None
        if not isinstance(props, dict) or "chat_template" not in props:
            return None
        template = props.get("chat_template")
        return template if isinstance(template, str) else ""

    async def prefill(self, request: ChatRequest) -> None:
        """llama-server: evaluate the prompt into its cache with `n_predict: 0` (as
        llama.vim does), so the request that follows starts warm. Other servers: nothing."""
        if self.preset not in _LLAMA_SERVER_PRESETS:
            return
        endpoint, arguments = self._arguments(request)
        arguments = {key: value for key, value in arguments.items() if key != "max_tokens"}
        arguments.update(stream=False, extra_body={"n_predict": 0, "cache_prompt": True})
        create = (
            self._client.completions.create
            if endpoint == "completions"
            else self._client.chat.completions.create
        )
        try:
            await create(**arguments)
        except openai.OpenAIError as exc:  # a prefill only warms a cache
            log.debug("prefill: %s", self._redact(str(exc)))

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        if request.cancel is not None and request.cancel.is_set():
            yield Delta(finish=FinishReason.CANCELLED)
            return
        # Raced against every wait on the network, from sending the request to the last chunk.
        cancelled = (
            asyncio.ensure_future(request.cancel.wait()) if request.cancel is not None else None
        )
        chunks: openai.AsyncStream | None = None
        endpoint, arguments = self._arguments(request)
        create = (
            self._client.completions.create
            if endpoint == "completions"
            else self._client.chat.completions.create
        )
        try:
            opened = await race(
                lambda: create(**arguments), cancelled, discard=lambda stream: stream.close()
            )
            if opened is CANCELLED:
                yield Delta(finish=FinishReason.CANCELLED)
                return
            chunks = opened
            # A raw prompt's text is all answer: there is no reasoning to tell apart.
            reasoning_on = endpoint == "chat" and request.reasoning == "on" and self.reasons
            async with contextlib.aclosing(
                self._deltas(chunks, cancelled, request, reasoning_on)
            ) as deltas:
                async for delta in deltas:
                    yield delta
        except (openai.OpenAIError, json.JSONDecodeError, WrongShape) as exc:
            raise self._error(
                exc, streaming=chunks is not None, endpoint=endpoint, model=arguments["model"]
            ) from None
        finally:
            # Runs on aclose() and on task cancellation too: the server stops generating.
            if cancelled is not None:
                cancelled.cancel()
            if chunks is not None:
                await chunks.close()

    async def _deltas(
        self,
        chunks: openai.AsyncStream,
        cancelled: asyncio.Future | None,
        request: ChatRequest,
        reasoning_on: bool,
    ) -> AsyncIterator[Delta]:
        """The stream's chunks (chat or completions) as deltas, the finish delta last."""
        normaliser = Normaliser(reasoning_on=reasoning_on)
        budget = request.reasoning_budget or None  # 0 and None: no budget
        if self.preset in _BUDGET_FIELDS:
            budget = None  # the server keeps it, and closes the reasoning itself
        while True:
            chunk = await race(lambda: anext(chunks, _END), cancelled)
            if chunk is CANCELLED:
                yield Delta(finish=FinishReason.CANCELLED)
                return
            if chunk is _END:
                # No finish_reason: the stream was cut (the openai client cannot
                # tell a [DONE] from a closed body). The text is incomplete, and
                # "raise max_tokens" would be the wrong advice, so it is an error.
                raise ModelError(
                    f"the stream from {self.shown_url} ended before the model finished "
                    "(no finish_reason); the server may have stopped or crashed, see its log"
                )
            self._note_timings(chunk)
            parts = chunk_parts(chunk)
            if parts is None:
                continue  # a usage chunk
            content, reasoning, finish_reason = parts
            pieces = normaliser.feed(content, reasoning)
            if finish_reason is not None:
                pieces += normaliser.finish(finish_reason)
            for delta in _deltas(pieces):
                yield delta
            if finish_reason is not None:
                yield _finish(finish_reason, request.max_tokens)
                return
            if (
                budget
                and not normaliser.answer_started
                and _tokens(normaliser.reasoning_chars) > budget
            ):
                for delta in _deltas(normaliser.finish("length")):
                    yield delta
                yield Delta(
                    finish=FinishReason.LENGTH,
                    detail=f"the reasoning budget of {budget} tokens ran out before the answer",
                )
                return

    def _encodable(self, request: ChatRequest) -> ChatRequest:
        """The request with text that UTF-8 cannot carry (a lone surrogate from the
        editor) replaced by U+FFFD, said once: the JSON body could not be sent at all."""
        texts = [message.content for message in request.messages]
        if request.raw is not None:
            texts += [text for text, _ in request.raw.pieces]
        if not any(_unencodable(text) for text in texts):
            return request
        if not self._warned_unencodable:
            self._warned_unencodable = True
            log.warning("text that is not valid Unicode (a lone surrogate) went as U+FFFD")
        messages = [replace(m, content=_encodable_text(m.content)) for m in request.messages]
        raw = request.raw
        if raw is not None:
            raw = RawPrompt(tuple((_encodable_text(text), mark) for text, mark in raw.pieces))
        return replace(request, messages=messages, raw=raw)

    def _note_timings(self, chunk) -> None:
        """llama-server sends its prompt and generation timings with the last chunk."""
        timings = (getattr(chunk, "model_extra", None) or {}).get("timings")
        if not isinstance(timings, dict):
            return
        try:
            self.speed.note_prompt(int(timings["prompt_n"]), float(timings["prompt_ms"]) / 1e3)
            self.speed.note_generation(
                int(timings["predicted_n"]), float(timings["predicted_ms"]) / 1e3
            )
        except (KeyError, TypeError, ValueError):
            pass  # another server's idea of timings

    def _arguments(self, request: ChatRequest) -> tuple[str, dict]:
        """The endpoint ("chat" or "completions") and what to send it."""
        request = self._encodable(request)
        common: dict[str, Any] = dict(
            model=request.model or self.model,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stream=True,
        )
        if request.stop:
            common["stop"] = list(request.stop)
        raw = request.raw
        if (
            raw is None
            and request.reasoning == "off"
            and self.reasons
            and self.preset in _RAW_R1_PRESETS
        ):
            raw = r1_raw_prompt(request.messages)
        if raw is not None:
            # Sent as text: these servers tokenize it with special tokens on, as they
            # do a chat template's output, so the pieces cannot be kept apart here.
            return "completions", {**common, "prompt": raw.text}
        # As given: R1 wants no system prompt, the caller puts instructions in the user turn.
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        arguments = {**common, "messages": messages}
        field = _BUDGET_FIELDS.get(self.preset or "")
        if request.reasoning == "on" and request.reasoning_budget and field:
            arguments["extra_body"] = {field: request.reasoning_budget}
        elif request.reasoning == "off" and self.preset == "ollama":
            # Ollama's /v1 skips thinking on `reasoning_effort: "none"`.
            arguments["extra_body"] = {"reasoning_effort": "none"}
        elif request.reasoning == "off" and self.preset == "deepseek":
            arguments["extra_body"] = {"thinking": {"type": "disabled"}}
        return "chat", arguments

    # -- errors ----------------------------------------------------------------------

    def _error(
        self,
        exc: Exception,
        streaming: bool = False,
        endpoint: str = "chat",
        model: str | None = None,
    ) -> ModelError:
        """A ModelError saying what happened and what to try; never with a secret."""
        url = self.shown_url
        if isinstance(exc, openai.APITimeoutError):
            message = (
                f"no answer from {url} within {self.timeout:g} s; the model may still be "
                "loading or the machine is busy. Raise `request_timeout` "
                "(DS_LSP_REQUEST_TIMEOUT) if it is just slow"
            )
        elif isinstance(exc, openai.APIConnectionError):
            if streaming:
                message = (
                    f"the connection to {url} broke off mid-stream; the server may have "
                    "crashed or run out of memory, see its log"
                )
            else:
                message = f"no model server at {url} — {self._start_hint()}"
        elif isinstance(exc, openai.APIStatusError):
            message = self._status_message(exc, endpoint, model or self.model)
        elif isinstance(exc, openai.APIError):  # an error event inside the stream
            message = f"the server at {url} reported an error: {_server_text(exc)}"
        elif isinstance(exc, (json.JSONDecodeError, WrongShape)):
            what = "an event that is not JSON" if isinstance(exc, json.JSONDecodeError) else exc
            message = (
                f"the server at {url} sent a malformed stream ({what}); "
                "is it an OpenAI-compatible endpoint (the URL usually ends in /v1)?"
            )
        else:
            message = f"the request to {url} failed: {type(exc).__name__}"
        log.debug("model request failed: %s", type(exc).__name__)
        return ModelError(self._redact(message))

    def _status_message(self, exc: openai.APIStatusError, endpoint: str, model: str) -> str:
        url, status, said = self.shown_url, exc.status_code, _server_text(exc)
        if status in (401, 403):
            if self._has_key:
                return (
                    f"the server at {url} refused the API key (HTTP {status}); check DS_LSP_API_KEY"
                )
            return f"the server at {url} needs an API key (HTTP {status}); set DS_LSP_API_KEY"
        if status == 404:
            if self.preset == "ollama":
                fix = f"run `ollama pull {model}`, or pick one `ollama list` shows"
            else:
                fix = f"pick one of the models listed at {url}/models (`ds-lsp doctor` shows them)"
            message = (
                f"model {model!r} not found at {url} (HTTP 404: {said}); {fix}. "
                "If the model is there, check the URL: it usually ends in /v1"
            )
            if endpoint == "completions":
                message += (
                    ", and that the server offers /v1/completions (inline completions send "
                    "their prompt there)"
                )
            return message
        if status == 429:
            return f"the server at {url} is rate limiting (HTTP 429: {said}); wait and retry"
        if status >= 500:
            return f"the model server at {url} failed (HTTP {status}: {said}); see its log"
        return f"the server at {url} rejected the request (HTTP {status}: {said})"

    def _start_hint(self) -> str:
        if self.preset:
            return PRESETS[self.preset].start_hint
        return "is the server running, and is the URL right?"

    def _redact(self, text: str) -> str:
        """`text` (which may quote the server) with the key, the password and any
        credentials in URLs hidden."""
        return redact_text(text, self._secrets)


# The end of a stream, told apart from a chunk (a `data: null` event is a None chunk).
_END = object()


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _server_text(exc: openai.APIError) -> str:
    """The server's own words about an error, shortened."""
    body = exc.body
    if isinstance(body, dict):
        text = body.get("message") or body.get("error") or json.dumps(body)
    elif body:
        text = body if isinstance(body, str) else json.dumps(body)
    else:
        text = exc.message
    text = " ".join(str(text).split())
    if len(text) > _SERVER_MESSAGE_LIMIT:
        text = text[: _SERVER_MESSAGE_LIMIT - 3] + "..."
    return text or "no message"


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _encodable_text(text: str) -> str:
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _tokens(chars: int) -> int:
    """Tokens in that much text, roughly (ds_lsp.text's one estimate). Servers send one
    to a few tokens per chunk (vLLM and SGLang batch them), so counting chunks would be
    wrong both ways."""
    return math.ceil(chars / CHARS_PER_TOKEN)


def _finish(reason: str, max_tokens: int) -> Delta:
    if reason == "stop":
        return Delta(finish=FinishReason.STOP)
    if reason == "length":
        return Delta(
            finish=FinishReason.LENGTH,
            detail=f"the model reached max_tokens ({max_tokens}) before it finished",
        )
    return Delta(finish=FinishReason.ERROR, detail=f"the server ended the stream with {reason!r}")


def _deltas(pieces: list[tuple[str, str]]) -> list[Delta]:
    return [
        Delta(reasoning=text) if kind == "reasoning" else Delta(content=text)
        for kind, text in pieces
        if text
    ]
