"""In-process generation with llama-cpp-python.

Two slots, each a `Llama` context with its own worker thread (a `Llama` is not
thread-safe): "chat" for edits and chat answers, "completion" for inline
completions, so a completion never waits behind a long answer. The second
context maps the same GGUF file, so the weights are in memory once (the page
cache shares them); each context has its own KV cache, so each keeps its own
prompt prefix warm. The completion slot is created on its first request.

Within a slot requests run one after another. Cancelling one stops it within
milliseconds, even in the middle of evaluating a long prompt: llama.cpp's
abort callback is checked between the graph's operations.

The prompt is the GGUF's own chat template, then the start of the answer is
forced, as DeepSeek advises: `<think>\\n` so the model reasons, or an empty
`<think>\\n\\n</think>\\n\\n` to skip the reasoning. Prompts are built the same
way every time, so llama-cpp-python's reuse of the longest common token prefix
with the previous request (its KV cache) makes follow-up requests cheap.

A raw prompt (`ChatRequest.raw`: a fill-in-the-middle template, or R1's format
rendered by ds-lsp) is sent as it is: no chat template, no forced start, and
everything the model says is answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import io
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import llama_cpp
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from ds_lsp.backends.base import ChatRequest, Delta, FinishReason, ModelError, RawPrompt, Speed
from ds_lsp.backends.llama_generation import (
    THINK_CLOSE,
    THINK_OPEN,
    Generation,
    Usage,
    cached_prefix,
)
from ds_lsp.completion_prompts import PromptStyle
from ds_lsp.prompt_style import style_from_gguf

log = logging.getLogger(__name__)

# llama-cpp-python 0.3.x reads ggml's log levels with an outdated table: with
# verbose=False llama.cpp's warnings still reach stderr (the editor's log) and
# its errors are dropped. Route llama.cpp's log into ours instead, at debug
# level, and keep the errors of a failed load for the message to the user.
_native_log = logging.getLogger(f"{__name__}.native")
_GGML_LOG_LEVEL_ERROR = 4
_native_errors: list[str] = []  # llama.cpp's error lines since the last load began


@llama_cpp.llama_log_callback
def _route_native_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    line = text.decode("utf-8", errors="replace").strip()
    if not line:
        return
    if level == _GGML_LOG_LEVEL_ERROR:
        _native_errors.append(line)
    _native_log.debug("%s", line)


llama_cpp.llama_log_set(_route_native_log, ctypes.c_void_p(0))

# Used only when a GGUF carries no chat template: R1's format, reasoning of
# earlier assistant turns dropped as the original template does.
R1_FALLBACK_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
    "{% else %}{{ '<｜Assistant｜>' + message['content'].split('</think>')[-1]"
    " + '<｜end▁of▁sentence｜>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜>' }}{% endif %}"
)


# Tokens per llama_decode batch in the completion slot (see _load).
COMPLETION_BATCH = 64

# Stands in for each message's text while the template renders, so the text
# can be tokenized apart from the template (see `_tokenize_prompt`).
_SENTINEL = "\ue000ds-lsp-message-{}\ue000"


class _Slot:
    """One llama.cpp context and the thread that owns it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.llm: llama_cpp.Llama | None = None
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ds-lsp-{name}")
        self.running: set[threading.Event] = set()  # stop flags of its generations
        # The stop flag of the generation now in the worker; the abort callback
        # reads it, so a cancel also stops a prompt evaluation half-way.
        self.current: threading.Event | None = None

        @llama_cpp.ggml_abort_callback
        def should_abort(_data: ctypes.c_void_p) -> bool:
            current = self.current
            return current is not None and current.is_set()

        self.abort_callback = should_abort  # kept referenced: llama.cpp holds a raw pointer


class LlamaCppBackend:
    """A GGUF model run in this process by llama-cpp-python."""

    def __init__(
        self,
        model_path: str,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        chat_template: str | None = None,
        reasoning: str = "auto",
    ) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ModelError(
                f"no GGUF model at {path}: run `ds-lsp models pull` to download the default "
                "model, or set DS_LSP_MODEL_PATH / --model-path to a GGUF file"
            )
        self.model_path = path
        self.name = f"llama_cpp ({path})"
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_gpu_layers = n_gpu_layers
        # "auto": the model reasons when its chat template knows <think>.
        self.reasoning_setting = reasoning
        self.reasons: bool | None = None  # decided when the model loads
        self.last_usage = Usage()
        self.speed = Speed()  # measured as it runs; sizes the inline-completion context
        self._prompt_style: PromptStyle | None = None  # known once the model loads
        # Per slot: prompt tokens asked for, and how many of them llama.cpp evaluated.
        self._prompt_totals: dict[str, list[int]] = {}
        self._chat_template = chat_template
        self._formatter: Jinja2ChatFormatter | None = None
        self._bos_tokens: list[int] = []
        self._slots = {name: _Slot(name) for name in ("chat", "completion")}
        self._closed = False

    # -- public API ---------------------------------------------------------

    async def load(self, slot: str = "chat") -> None:
        """Load the model now rather than on the first request."""
        await self._in_worker(slot, lambda: self._load(self._slots[slot]))

    async def check(self) -> str:
        """Load the model and describe it (for `ds-lsp doctor`)."""
        llm = await self._in_worker("chat", lambda: self._load(self._slots["chat"]))
        arch = llm.metadata.get("general.architecture", "unknown architecture")
        reasons = "reasons in <think>" if self.reasons else "does not reason"
        return (
            f"loaded {self.model_path.name} ({arch}, context {llm.n_ctx()} tokens, "
            f"{llm.n_threads} threads, {self.n_gpu_layers} GPU layers; {reasons})"
        )

    async def prompt_style(self) -> PromptStyle:
        """The inline-completion prompt that fits this GGUF (see prompt_style.py)."""
        await self.load()
        assert self._prompt_style is not None
        return self._prompt_style

    async def prefill(self, request: ChatRequest) -> None:
        """Evaluate `request`'s prompt into the slot's KV cache and generate nothing, so
        the request that follows it starts from a warm cache. Cancellable mid-way."""
        slot = self._slots[request.slot]
        stop = threading.Event()
        slot.running.add(stop)
        try:
            await self._in_worker(request.slot, lambda: self._prefill(slot, request, stop))
        finally:
            stop.set()  # cancelled: the abort callback stops the evaluation
            slot.running.discard(stop)

    async def render_prompt(self, request: ChatRequest) -> str:
        """The prompt text the model sees for `request` (chat template + forced start; a raw
        prompt as it is, the BOS the vocabulary wants being added when it is tokenized)."""
        await self.load(request.slot)
        if request.raw is not None:
            return request.raw.text
        return self._render(request)

    async def prompt_tokens(self, request: ChatRequest) -> list[int]:
        """The prompt tokens the model sees for `request`."""
        slot = self._slots[request.slot]
        return await self._in_worker(request.slot, lambda: self._tokenize_prompt(slot, request))

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta | BaseException] = asyncio.Queue()
        stop = threading.Event()
        slot = self._slots[request.slot]

        def hand_over(item: Delta | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stop.set()

        slot.running.add(stop)
        watcher = None
        if request.cancel is not None:
            # Reaches the worker at once, even while llama.cpp evaluates the prompt.
            watcher = asyncio.ensure_future(request.cancel.wait())
            watcher.add_done_callback(lambda _: stop.set())
        try:
            self._submit(slot, self._generate, slot, request, stop, hand_over)
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish is not None:
                    return
        finally:
            # Closed early or cancelled: the worker stops within milliseconds.
            stop.set()
            slot.running.discard(stop)
            if watcher is not None:
                watcher.cancel()

    def usage_totals(self) -> dict[str, dict]:
        """Per slot, how much of the prompts came from the KV cache (prefix reuse)."""
        return {
            slot: {
                "prompt_tokens": asked,
                "evaluated": evaluated,
                "reused_ratio": round(1 - evaluated / asked, 3) if asked else None,
            }
            for slot, (asked, evaluated) in self._prompt_totals.items()
        }

    async def aclose(self) -> None:
        """Stop running generations, free the model and end the worker threads."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        for slot in self._slots.values():
            for stop in list(slot.running):
                stop.set()
            await loop.run_in_executor(slot.worker, self._free, slot)
            slot.worker.shutdown(wait=False)

    # -- worker threads -------------------------------------------------------

    def _submit(self, slot: _Slot, function: Callable, *args) -> None:
        if self._closed:
            raise ModelError(f"{self.name} is closed")
        slot.worker.submit(function, *args)

    async def _in_worker(self, slot_name: str, function: Callable):
        if self._closed:
            raise ModelError(f"{self.name} is closed")
        slot = self._slots[slot_name]
        return await asyncio.get_running_loop().run_in_executor(slot.worker, function)

    def _load(self, slot: _Slot) -> llama_cpp.Llama:
        if slot.llm is not None:
            return slot.llm
        _native_errors.clear()
        try:
            # verbose=True: with False, llama-cpp-python points the process's stdout and
            # stderr at /dev/null while it loads, and stdout is the editor's channel:
            # whatever the server says meanwhile is lost (a reply, and the editor hangs).
            # llama.cpp's own log is routed above; its Python prints are swallowed here.
            with contextlib.redirect_stderr(io.StringIO()):
                llm = llama_cpp.Llama(
                    model_path=str(self.model_path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_gpu_layers=self.n_gpu_layers,
                    # Completions are cancelled at almost every keystroke: small batches
                    # keep what was evaluated before the cancel (llama.cpp drops only the
                    # batch it was in), so the prompt's KV cache warms up while the user types.
                    n_batch=COMPLETION_BATCH if slot.name == "completion" else 512,
                    n_ubatch=COMPLETION_BATCH if slot.name == "completion" else 512,
                    use_mmap=True,  # both slots map the same file: the weights are in memory once
                    verbose=True,
                )
            llm.verbose = False  # no per-request prints to stderr from here on
        except (ValueError, RuntimeError, OSError) as exc:
            reason = _native_errors[0] if _native_errors else str(exc)
            raise ModelError(
                f"could not load the GGUF model {self.model_path} ({reason}); the file may be "
                "incomplete or not a GGUF: download it again (`ds-lsp models pull`) or point "
                "DS_LSP_MODEL_PATH / --model-path at another file"
            ) from exc
        if self._formatter is None:
            try:
                self._prepare_template(llm)
            except ModelError:
                llm.close()
                raise
        llama_cpp.llama_set_abort_callback(llm.ctx, slot.abort_callback, ctypes.c_void_p(0))
        slot.llm = llm
        log.info("loaded %s (%s slot)", self.model_path, slot.name)
        return llm

    def _prepare_template(self, llm: llama_cpp.Llama) -> None:
        template = (
            self._chat_template
            or llm.metadata.get("tokenizer.chat_template")
            or R1_FALLBACK_TEMPLATE
        )
        try:
            self._formatter = Jinja2ChatFormatter(
                template=template,
                bos_token=_special_text(llm, llm.token_bos()),
                eos_token=_special_text(llm, llm.token_eos()),
                add_generation_prompt=True,
            )
        except Exception as exc:  # jinja2.TemplateError and friends
            raise ModelError(f"the chat template of {self.model_path} is broken: {exc}") from exc
        if self.reasoning_setting == "auto":
            # Forcing <think> on a model that never learnt it makes it loop on the tag.
            # Its own template tells; without one, whether <think> is a token of its own.
            own_template = self._chat_template or llm.metadata.get("tokenizer.chat_template")
            if own_template:
                self.reasons = "<think>" in own_template or "</think>" in own_template
            else:
                self.reasons = len(llm.tokenize(b"<think>", add_bos=False, special=True)) == 1
        else:
            self.reasons = self.reasoning_setting == "on"
        # [BOS] when the vocabulary wants one in front of every prompt, else [].
        self._bos_tokens = llm.tokenize(b"", add_bos=True, special=True)
        own_template = self._chat_template or llm.metadata.get("tokenizer.chat_template")
        self._prompt_style = style_from_gguf(
            own_template,
            lambda text: (
                len(llm.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=True)) == 1
            ),
        )
        log.info(
            "%s: inline completions fit a %s prompt (%s)",
            self.model_path.name,
            self._prompt_style.style,
            self._prompt_style.reason,
        )

    def _prefill(self, slot: _Slot, request: ChatRequest, stop: threading.Event) -> None:
        if stop.is_set():
            return
        slot.current = stop
        try:
            llm = self._load(slot)
            prompt = self._tokenize_prompt(slot, request)
            cached = cached_prefix(llm, prompt)
            if len(prompt) >= llm.n_ctx() or cached >= len(prompt) - 1:
                return
            started = time.perf_counter()
            # generate() evaluates the prompt (after the cached prefix) before it
            # samples the first token; that token is never fed back.
            tokens = llm.generate(prompt, temp=0.0)
            next(tokens)
            tokens.close()
            self.speed.note_prompt(len(prompt) - cached, time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - a prefill only warms a cache
            if not stop.is_set():
                log.debug("prefill failed: %s", exc)
        finally:
            slot.current = None

    def _free(self, slot: _Slot) -> None:
        if slot.llm is not None:
            slot.llm.close()
            slot.llm = None

    def _render(self, request: ChatRequest, contents: Sequence[str] | None = None) -> str:
        """The prompt text; `contents` replaces the messages' texts (for the sentinels)."""
        assert self._formatter is not None
        texts = contents if contents is not None else [m.content for m in request.messages]
        messages = [
            {"role": m.role, "content": text}
            for m, text in zip(request.messages, texts, strict=True)
        ]
        try:
            prompt = self._formatter(messages=messages).prompt
        except Exception as exc:  # the template's raise_exception(), or a jinja2 error
            raise ModelError(
                f"the chat template of {self.model_path} rejected the conversation: {exc}"
            ) from exc
        if not self.reasons:
            return prompt  # a model that does not reason: no think block to force or skip
        # The later R1 template opens the reasoning itself; add it where it doesn't.
        prompt = prompt.removesuffix(THINK_OPEN).removesuffix(THINK_OPEN.strip())
        if request.reasoning == "off":
            return prompt + THINK_OPEN + THINK_CLOSE  # "<think>\n\n</think>\n\n"
        return prompt + THINK_OPEN

    def _tokenize_prompt(self, slot: _Slot, request: ChatRequest) -> list[int]:
        """The template's markers as special tokens, the messages' text as plain text.

        Text such as "<|im_end|>" in a user's file must reach the model as the
        characters it is, never as a control token (prompt injection).
        """
        llm = self._load(slot)
        if request.raw is not None:
            return self._tokenize_raw(llm, request.raw)
        sentinels = [_SENTINEL.format(i) for i in range(len(request.messages))]
        skeleton = self._render(request, sentinels)
        tokens: list[int] = []
        rest = skeleton
        for sentinel, message in zip(sentinels, request.messages, strict=True):
            before, found, rest_after = rest.partition(sentinel)
            if not found or sentinel in rest_after:
                # A template that rewrites message text: render it plainly, and
                # still read only the template's own markers as special.
                return self._tokenize_plainly(llm, request)
            tokens += llm.tokenize(before.encode("utf-8", "replace"), add_bos=False, special=True)
            text = message.content
            if message.role == "assistant":
                # Earlier answers go back without their reasoning, as R1's template
                # does (which the sentinel kept from seeing the text).
                text = text.split("</think>")[-1]
            tokens += llm.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=False)
            rest = rest_after
        tokens += llm.tokenize(rest.encode("utf-8", "replace"), add_bos=False, special=True)
        if self._bos_tokens and tokens[:1] != self._bos_tokens:
            tokens = self._bos_tokens + tokens
        return tokens

    def _tokenize_raw(self, llm: llama_cpp.Llama, raw: RawPrompt) -> list[int]:
        """A raw prompt's markers as special tokens, its text as plain text, BOS in front
        where the vocabulary wants one (and the prompt has none)."""
        tokens: list[int] = []
        for text, is_marker in raw.pieces:
            tokens += llm.tokenize(
                text.encode("utf-8", "replace"), add_bos=False, special=is_marker
            )
        if self._bos_tokens and tokens[:1] != self._bos_tokens:
            tokens = self._bos_tokens + tokens
        return tokens

    def _tokenize_plainly(self, llm: llama_cpp.Llama, request: ChatRequest) -> list[int]:
        """For a template that rewrites message text: safe only when no message holds
        text that would read as a control token."""
        for message in request.messages:
            text = message.content.encode("utf-8", "replace")
            if llm.tokenize(text, add_bos=False, special=True) != llm.tokenize(
                text, add_bos=False, special=False
            ):
                raise ModelError(
                    f"the chat template of {self.model_path} rewrites message text, and the "
                    "text holds special-token text (such as <|im_end|>) that cannot be kept "
                    "apart from the template's markers; select less or use another template"
                )
        tokens = llm.tokenize(
            self._render(request).encode("utf-8", "replace"), add_bos=False, special=True
        )
        if self._bos_tokens and tokens[:1] != self._bos_tokens:
            tokens = self._bos_tokens + tokens
        return tokens

    def _generate(
        self,
        slot: _Slot,
        request: ChatRequest,
        stop: threading.Event,
        hand_over: Callable[[Delta | BaseException], None],
    ) -> None:
        """Run one request start to finish; every outcome reaches `hand_over`."""
        slot.current = stop
        generation = Generation(request, stop, hand_over, self.speed)
        self.last_usage = generation.usage
        try:
            if generation.cancelled():
                hand_over(Delta(finish=FinishReason.CANCELLED))
                return
            llm = self._load(slot)
            prompt = self._tokenize_prompt(slot, request)
            generation.run(llm, prompt, model_reasons=bool(self.reasons))
        except ModelError as exc:
            hand_over(exc)
        except Exception as exc:  # llama.cpp failed mid-way (decode error, ...)
            if stop.is_set():  # the abort callback broke off a decode: a cancel, not a failure
                hand_over(Delta(finish=FinishReason.CANCELLED))
            else:
                log.exception("generation failed")
                hand_over(ModelError(f"{self.name} failed while generating: {exc}"))
        finally:
            slot.current = None
            usage = generation.usage
            if usage.generated_tokens:  # the prompt was evaluated: count its reuse
                totals = self._prompt_totals.setdefault(slot.name, [0, 0])
                totals[0] += usage.prompt_tokens
                totals[1] += usage.prompt_tokens_evaluated


def _special_text(llm: llama_cpp.Llama, token: int) -> str:
    """The text of a special token such as BOS ("" when the model has none)."""
    return (
        llm.detokenize([token], special=True).decode("utf-8", errors="replace")
        if token >= 0
        else ""
    )
