"""What a real editor does around a pytest-lsp client, for edit and chat tests.

`Editor` keeps the text of each open document, as the user sees it. It
applies the server's `workspace/applyEdit` to it the way VS Code and Neovim
do: refused when the edit names another version than the document's, else
applied and echoed back as `didChange` with the next version. It also records
the `dsLsp/reasoning` notifications (pytest-lsp itself keeps
`window/showDocument` requests in `client.shown_documents`).

Positions are converted here with a few lines of its own (UTF-16 code units,
or UTF-8 bytes), not with ds-lsp's code, so the server's positions are checked
against an independent reading.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Union

from lsprotocol import converters, types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import LanguageClient

_CONVERTER = converters.get_converter()
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def offset_of(text: str, position: types.Position, encoding: str = "utf-16") -> int:
    """The character offset of an LSP position (UTF-16 or UTF-8 units)."""
    lines = _LINE.findall(text) or [""]
    if position.line >= len(lines):
        return len(text)
    start = sum(len(line) for line in lines[: position.line])
    line = lines[position.line].rstrip("\r\n")
    units = 0
    for index, char in enumerate(line):
        if units >= position.character:
            return start + index
        units += len(char.encode("utf-16-le")) // 2 if encoding == "utf-16" else len(char.encode())
    return start + len(line)


def position_of(text: str, offset: int, encoding: str = "utf-16") -> types.Position:
    before = text[:offset]
    lines = _LINE.findall(before)
    if lines and lines[-1].endswith(("\n", "\r")) or not lines:
        line, column = len(lines), ""
    else:
        line, column = len(lines) - 1, lines[-1]
    if encoding == "utf-16":
        return types.Position(line, len(column.encode("utf-16-le")) // 2)
    return types.Position(line, len(column.encode()))


@dataclass
class Editor:
    client: LanguageClient
    encoding: str = "utf-16"
    texts: dict[str, str] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    applied: list[types.ApplyWorkspaceEditParams] = field(default_factory=list)
    refused: list[types.ApplyWorkspaceEditParams] = field(default_factory=list)
    reasoning: list[dict] = field(default_factory=list)
    # Set: answer every applyEdit with applied=False and this reason (an editor that
    # refuses, e.g. a read-only buffer).
    refuse_with: str | None = None

    def __post_init__(self) -> None:
        # pygls marks its handlers with attributes, which bound methods cannot take.
        handlers = {
            types.WORKSPACE_APPLY_EDIT: self._apply_edit,
            "dsLsp/reasoning": self._on_reasoning,
        }
        for method, handler in handlers.items():
            self.client.feature(method)(_function(handler))
        # lsprotocol reads any code action that has a `command` as a bare Command,
        # losing its kind: a CodeAction's command is an object, a Command's a string.
        self.client.protocol._converter.register_structure_hook(
            Union[types.Command, types.CodeAction],  # noqa: UP007 (the key lsprotocol uses)
            _command_or_code_action,
        )

    def open(self, uri: str, text: str, language: str = "python") -> None:
        self.texts[uri], self.versions[uri] = text, 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
            )
        )

    def replace(self, uri: str, start: types.Position, end: types.Position, text: str) -> None:
        """The user types (or deletes) text."""
        self._change(uri, [types.TextEdit(types.Range(start, end), text)])

    def insert(self, uri: str, line: int, character: int, text: str) -> None:
        position = types.Position(line, character)
        self.replace(uri, position, position, text)

    def _change(self, uri: str, edits: list[types.TextEdit]) -> None:
        # LSP text edits all refer to the text before any of them: apply from the
        # last to the first, and echo them in that order, so each range stays valid.
        text = self.texts[uri]
        ordered = sorted(
            edits,
            key=lambda e: offset_of(text, e.range.start, self.encoding),
            reverse=True,
        )
        changes = []
        for edit in ordered:
            start = offset_of(text, edit.range.start, self.encoding)
            end = offset_of(text, edit.range.end, self.encoding)
            text = text[:start] + edit.new_text + text[end:]
            changes.append(
                types.TextDocumentContentChangePartial(range=edit.range, text=edit.new_text)
            )
        self.texts[uri] = text
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=changes,
            )
        )

    def _apply_edit(self, params: types.ApplyWorkspaceEditParams):
        if self.refuse_with is not None:
            self.refused.append(params)
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason=self.refuse_with)
        edit = params.edit
        changes = [
            (change.text_document.uri, change.text_document.version, change.edits)
            for change in edit.document_changes or []
        ] + [(uri, None, edits) for uri, edits in (edit.changes or {}).items()]
        for uri, version, _ in changes:
            if uri not in self.texts or (version is not None and version != self.versions[uri]):
                self.refused.append(params)
                return types.ApplyWorkspaceEditResult(
                    applied=False, failure_reason=f"{uri} is not at version {version}"
                )
        for uri, _, edits in changes:
            self._change(uri, list(edits))
        self.applied.append(params)
        return types.ApplyWorkspaceEditResult(applied=True)

    def _on_reasoning(self, params) -> None:
        # pygls gives a custom notification's params as a namedtuple.
        self.reasoning.append(params if isinstance(params, dict) else params._asdict())

    def reasoning_text(self, feed_id: str | None = None) -> str:
        return "".join(n["text"] for n in self.reasoning if feed_id in (None, n["id"]))

    async def wait_for_reasoning(self, timeout: float = 10.0) -> None:
        async def poll() -> None:
            while not self.reasoning:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), timeout)


def _command_or_code_action(value, _type):
    converter = _CONVERTER
    if isinstance(value.get("command"), str):
        return converter.structure(value, types.Command)
    return converter.structure(value, types.CodeAction)


def _function(method):
    def handler(params):
        return method(params)

    return handler


async def cancel(client: LanguageClient, pending: asyncio.Future, how: str, msg_id: str) -> dict:
    """Cancel a running command the way an editor does, `how` being "cancelRequest"
    (by request id) or "progress" (its progress' cancel button); its result."""
    if how == "cancelRequest":
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    else:
        kind = msg_id.split("-")[0]  # "edit-1" -> the progress tokens ds-lsp/edit/...
        [token] = [t for t in client.progress_reports if f"/{kind}/" in str(t)]
        client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    try:
        return await asyncio.wait_for(pending, 10)
    except JsonRpcRequestCancelled:  # the answer to $/cancelRequest, as LSP says
        return {"status": "cancelled"}
