"""Inline completions (ghost text), and `textDocument/completion` as a fallback.

The handlers only translate: LSP position -> offset, a `Suggestion` -> an item.
What to ask the model and what to reuse is ds_lsp/inline_engine.py.

`textDocument/inlineCompletion` (LSP 3.18) is registered with its options
object, without which pygls does not advertise it. The plain completion
fallback is registered at initialize, only for clients that do not declare
inline completion (Neovim 0.11, older LSP4IJ) or when `completion_fallback` is
"on": an editor showing both would show every suggestion twice.
"""

from __future__ import annotations

import logging
import re

from lsprotocol import types

from ds_lsp.inline_engine import InlineEngine, Suggestion

log = logging.getLogger(__name__)

_WORD_BEFORE = re.compile(r"[\w$]*$")


STATS_COMMAND = "dsLsp.inlineStats"
# Per-request timings kept for `dsLsp.inlineStats` (benchmarks, bug reports).
_TIMINGS_KEPT = 5000


def setup(server) -> None:
    server.inline_timings = {}
    server.inline = InlineEngine(
        models=server.models,
        settings=lambda: server.settings,
        open_documents=server.documents.values,
        start_task=server.tasks.start,
        root_uri=lambda: _root_uri(server),
    )

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList | None:
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        found = await _suggest(ls, params.text_document.uri, params.position, invoked)
        if found is None:
            return None
        document, suggestion = found
        item = types.InlineCompletionItem(
            insert_text=suggestion.text,
            range=types.Range(params.position, document.position_at(suggestion.end)),
        )
        return types.InlineCompletionList(items=[item])

    @server.command(STATS_COMMAND)
    def inline_stats(ls, *args) -> dict:
        """What the engine did so far, and how long each answered request took."""
        stats = ls.inline.stats.as_dict()
        stats["tasks_held"] = ls.inline.tasks_held()
        usage = getattr(ls.models.current, "usage_totals", None)
        if usage is not None:
            stats["prompt_reuse"] = usage()
        return {"stats": stats, "timings": ls.inline_timings}


def _root_uri(server) -> str | None:
    try:
        return server.workspace.root_uri
    except RuntimeError:  # before initialize: no workspace yet
        return None


def on_initialize(ls, params: types.InitializeParams) -> None:
    if wants_completion_fallback(ls.settings.completion_fallback, params.capabilities):
        ls.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())(completion)


def wants_completion_fallback(setting: str, capabilities: types.ClientCapabilities) -> bool:
    if setting != "auto":
        return setting == "on"
    document = capabilities.text_document
    return document is None or document.inline_completion is None


async def completion(ls, params: types.CompletionParams) -> types.CompletionList | None:
    """One item: the whole suggestion, as a text edit from the start of the word typed so
    far (editors filter completion items by that word)."""
    invoked = (
        params.context is None or params.context.trigger_kind == types.CompletionTriggerKind.Invoked
    )
    found = await _suggest(ls, params.text_document.uri, params.position, invoked)
    if found is None:
        return None
    document, suggestion = found
    offset = document.offset_at(params.position)
    word = _WORD_BEFORE.search(document.text[max(0, offset - 200) : offset]).group()
    start = document.position_at(offset - len(word))
    end = document.position_at(suggestion.end)
    first_line = suggestion.text.split("\n", 1)[0]
    item = types.CompletionItem(
        label=(word + first_line).strip() or suggestion.text.strip()[:60],
        kind=types.CompletionItemKind.Snippet,
        detail="DeepSeek",
        filter_text=word + suggestion.text,
        sort_text="0",
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(types.Range(start, end), word + suggestion.text),
    )
    return types.CompletionList(is_incomplete=True, items=[item])


async def _suggest(ls, uri: str, position: types.Position, invoked: bool):
    """(document, suggestion) for the request, or None. Never a stale one."""
    document = ls.documents.get(uri)
    if document is None:
        return None  # not open (or closed meanwhile): nothing to complete
    offset = document.offset_at(position)
    suggestion: Suggestion | None = await ls.inline.suggest(document, offset, invoked)
    current = ls.documents.get(uri)
    if suggestion is None or current is None or current.version != document.version:
        return None  # the document changed while the model worked: this answer is stale
    log.debug("completion from %s: %r", suggestion.source, suggestion.text)
    msg_id = ls.protocol.msg_id
    if msg_id is not None:
        if len(ls.inline_timings) >= _TIMINGS_KEPT:
            ls.inline_timings.pop(next(iter(ls.inline_timings)))
        ls.inline_timings[msg_id] = {
            "source": suggestion.source,
            "wait_ms": round(suggestion.wait_ms, 2),
            "model_ms": round(suggestion.model_ms, 2),
        }
    return document, suggestion
