"""Protocol fuzzing of a running server: hypothesis strategies for what an
editor (or a broken one) may send, and a session that sends them and checks
the server's answers. Used by tests/test_fuzz_protocol.py (CI-sized) and
bench/fuzz.py (100,000+ messages).

What is checked, after each batch: the server process is alive, a ping sent
last is answered, and every well-framed request with an int or string id got
as many responses as it was sent (duplicate ids included), each either a
`result` or an `error` with an integer code and a string message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.raw_lsp import RawServer, encode, frame, server_env

OPEN_URIS = ["file:///fuzz/a.py", "file:///fuzz/b.ts"]
OPEN_TEXT = 'def f(x):\n    """héllo 😀 世界"""\r\n    return x\rprint(f(1))\n'

REQUESTS = [
    "textDocument/hover",
    "textDocument/inlineCompletion",
    "textDocument/codeAction",
    "textDocument/codeLens",
    "workspace/executeCommand",
    "textDocument/completion",  # not served: MethodNotFound
    "textDocument/definition",
    "fuzz/unknownRequest",
    "$/fuzzUnknown",
]
NOTIFICATIONS = [
    "textDocument/didOpen",
    "textDocument/didChange",
    "textDocument/didClose",
    "textDocument/didSave",
    "workspace/didChangeConfiguration",
    "window/workDoneProgress/cancel",
    "$/setTrace",
    "initialized",
    "fuzz/unknownNotification",
]
COMMANDS = [
    "dsLsp.editSelection",
    "dsLsp.acceptEdit",
    "dsLsp.rejectEdit",
    "dsLsp.addToChat",
    "dsLsp.openChat",
    "dsLsp.newChat",
    "dsLsp.sendChat",
    "dsLsp.applyFromChat",
    "dsLsp.inlineStats",
    "dsLsp.inspectDocument",
    "dsLsp.showReasoning",
    "dsLsp.warmUp",
    "dsLsp.noSuchCommand",
]

# ---------------------------------------------------------------- values

_INTS = st.one_of(
    st.integers(0, 12),
    st.sampled_from([-1, -(2**31), 2**31 - 1, 2**31, 2**53, 2**63, 10**30]),
    st.integers(),
)
_URIS = st.one_of(
    st.sampled_from(OPEN_URIS),
    st.sampled_from(
        ["file:///nope.py", "untitled:Untitled-1", "", "not a uri", "file:///%ZZ", "http://x/"]
    ),
    st.text(max_size=20),
)
_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\ud800", "a\udfffb", "\r\n\r", "😀" * 10, "\x00\x1b", "é\u0301"]),
)
_JSON = st.recursive(
    st.none() | st.booleans() | _INTS | st.floats(allow_nan=False) | _TEXT,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def _position(draw) -> Any:
    return draw(
        st.one_of(
            st.fixed_dictionaries({"line": _INTS, "character": _INTS}),
            _JSON,
        )
    )


@st.composite
def _range(draw) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(_JSON)
    return {"start": draw(_position()), "end": draw(_position())}


def _doc(draw) -> dict:
    return {"uri": draw(_URIS)}


@st.composite
def _params(draw, method: str) -> Any:
    """Params shaped for `method`, then maybe broken: a field dropped or retyped."""
    doc = {"uri": draw(_URIS)}
    if method in ("textDocument/hover", "textDocument/definition", "textDocument/completion"):
        params = {"textDocument": doc, "position": draw(_position())}
    elif method == "textDocument/inlineCompletion":
        params = {
            "textDocument": doc,
            "position": draw(_position()),
            "context": {"triggerKind": draw(st.sampled_from([1, 2, 0, 7]))},
        }
    elif method == "textDocument/codeAction":
        params = {"textDocument": doc, "range": draw(_range()), "context": {"diagnostics": []}}
    elif method == "workspace/executeCommand":
        argument = {
            "uri": draw(_URIS),
            "range": draw(_range()),
            "instruction": draw(_TEXT),
            "id": draw(_TEXT),
        }
        arguments = draw(st.one_of(st.just([argument]), st.lists(_JSON, max_size=3)))
        params = {"command": draw(st.sampled_from(COMMANDS)), "arguments": arguments}
    elif method == "textDocument/didOpen":
        item = {"uri": draw(_URIS), "languageId": "python", "version": draw(_INTS)}
        item["text"] = draw(st.one_of(_TEXT, st.just(OPEN_TEXT)))
        params = {"textDocument": item}
    elif method == "textDocument/didChange":
        change = draw(
            st.one_of(
                st.fixed_dictionaries({"range": _range(), "text": _TEXT}),
                st.fixed_dictionaries({"text": _TEXT}),
            )
        )
        params = {
            "textDocument": {"uri": draw(_URIS), "version": draw(_INTS)},
            "contentChanges": [change],
        }
    elif method == "workspace/didChangeConfiguration":
        params = {"settings": {"dsLsp": draw(_JSON)}}
    elif method == "window/workDoneProgress/cancel":
        params = {"token": draw(_JSON)}
    elif method == "$/setTrace":
        params = {"value": draw(st.sampled_from(["off", "verbose", "loud"]))}
    else:
        params = {"textDocument": doc}
    mutation = draw(st.integers(0, 5))
    if mutation == 0:
        return draw(_JSON)  # wrong type altogether
    if mutation == 1 and isinstance(params, dict) and params:
        params.pop(draw(st.sampled_from(sorted(params))))  # a missing field
    if mutation == 2 and isinstance(params, dict) and params:
        params[draw(st.sampled_from(sorted(params)))] = draw(_JSON)  # a field of the wrong type
    return params


# ---------------------------------------------------------------- messages


@dataclass
class Spec:
    kind: str  # request, notification, cancel, framing, bad_json
    method: str = ""
    params: Any = None
    id_kind: str = "int"  # int, str, dup, weird
    variant: str = ""
    inner: Spec | None = None
    body: bytes = b""


@st.composite
def _request(draw) -> Spec:
    method = draw(st.sampled_from(REQUESTS))
    return Spec(
        "request",
        method,
        draw(_params(method)),
        draw(st.sampled_from(["int", "int", "int", "str", "dup", "weird"])),
    )


@st.composite
def _notification(draw) -> Spec:
    method = draw(st.sampled_from(NOTIFICATIONS))
    return Spec("notification", method, draw(_params(method)))


_FRAMING = [
    "huge_length",  # Content-Length: 2 GB, then a little junk
    "short_length",  # the header says less than the body holds
    "long_length",  # the header says more: junk fills the rest
    "no_length",  # headers without Content-Length
    "bad_length",  # Content-Length: abc / -5 / empty
    "garbage_line",  # a line of bytes that is no header
    "lowercase",  # content-length: (accepted)
    "extra_header",  # Content-Type as well (accepted)
    "split",  # the frame sent in two writes (accepted)
]
_ACCEPTED_FRAMING = {"lowercase", "extra_header", "split"}


@st.composite
def _framing(draw) -> Spec:
    inner = draw(st.one_of(_request(), _notification()))
    return Spec("framing", variant=draw(st.sampled_from(_FRAMING)), inner=inner)


_BAD_BODIES = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b),
    st.sampled_from(
        [
            b"{",
            b"[]",
            b"null",
            b"42",
            b'"jsonrpc"',
            b'{"jsonrpc": "1.0", "id": 1, "method": "x"}',
            b'{"id": 1, "method": "textDocument/hover"}',
            b'{"jsonrpc": "2.0"}',
            b'{"jsonrpc": "2.0", "id": 1}',
            b'{"jsonrpc": "2.0", "method": 5}',
            b"\xff\xfe{}",
            b'{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": '
            b'{"textDocument": {"uri": "file:///u.py", "languageId": "python", '
            b'"version": 1, "text": "\xc3\x28 invalid utf-8"}}}',
            b"[" * 100_000,  # deeper than Python's recursion limit
            b'{"a":' * 5000 + b"1" + b"}" * 5000,
        ]
    ),
)


@st.composite
def _bad_json(draw) -> Spec:
    return Spec("bad_json", body=draw(_BAD_BODIES))


@st.composite
def _cancel(draw) -> Spec:
    return Spec("cancel", id_kind=draw(st.sampled_from(["recent", "unknown", "weird"])))


def messages() -> st.SearchStrategy[Spec]:
    return st.one_of(_request(), _request(), _notification(), _framing(), _bad_json(), _cancel())


# ---------------------------------------------------------------- the session


@dataclass
class Tally:
    messages: int = 0
    requests_checked: int = 0
    crashes: int = 0
    failures: list[str] = field(default_factory=list)


class FuzzSession:
    """One server under fuzz: sends batches of specs, checks the answers."""

    def __init__(self, tmp: Path, base_url: str, raise_on_failure: bool = True) -> None:
        self.tmp = tmp
        self.base_url = base_url
        self.raise_on_failure = raise_on_failure
        self.tally = Tally()
        self.next_id = 0
        self.server: RawServer | None = None
        self.start()

    def start(self) -> None:
        env = server_env(self.tmp, DS_LSP_API_KEY="sk-fuzz-key", DS_LSP_LOG_LEVEL="info")
        self.server = RawServer(env, self.tmp)
        root = (self.tmp / "workspace").as_uri()
        (self.tmp / "workspace").mkdir(exist_ok=True)
        self.server.request(
            "init",
            "initialize",
            {
                "processId": None,
                "rootUri": root,
                "capabilities": {
                    "general": {"positionEncodings": ["utf-16"]},
                    "textDocument": {"inlineCompletion": {}},
                    "workspace": {"applyEdit": True, "configuration": True},
                    "window": {"workDoneProgress": True},
                },
                "initializationOptions": {
                    "dsLsp": {"backend": "openai", "baseUrl": self.base_url, "model": "m"}
                },
            },
        )
        self.server.wait_for("init")
        self.server.notify("initialized", {})
        for uri in OPEN_URIS:
            item = {"uri": uri, "languageId": "python", "version": 1, "text": OPEN_TEXT}
            self.server.notify("textDocument/didOpen", {"textDocument": item})
        self.tally.messages += 2 + len(OPEN_URIS)

    def close(self) -> int:
        return self.server.close() if self.server else 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _encode(self, spec: Spec, sent: dict[Any, int], recent: list[Any]) -> list[bytes]:
        """The bytes for one spec; requests that must be answered go in `sent`."""
        if spec.kind in ("request", "notification"):
            message: dict[str, Any] = {"jsonrpc": "2.0", "method": spec.method}
            if spec.params is not None:
                message["params"] = spec.params
            if spec.kind == "request":
                if spec.id_kind == "dup" and recent:
                    msg_id = recent[-1]
                elif spec.id_kind == "str":
                    msg_id = f"s{self._id()}"
                elif spec.id_kind == "weird":
                    msg_id = [1.5, None, True, {"a": 1}, [2]][self._id() % 5]
                else:
                    msg_id = self._id()
                message["id"] = msg_id
                if isinstance(msg_id, int | str) and not isinstance(msg_id, bool):
                    sent[msg_id] = sent.get(msg_id, 0) + 1
                    recent.append(msg_id)
            return [encode(message)]
        if spec.kind == "cancel":
            target = {"recent": recent[-1] if recent else 0, "unknown": 10**9 + self._id()}
            params = {"id": target.get(spec.id_kind, [1, 2])}
            return [encode({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": params})]
        if spec.kind == "bad_json":
            return [frame(spec.body)]
        # framing: the inner message is answered only when the framing is acceptable
        inner_sent: dict[Any, int] = {}
        [data] = self._encode(spec.inner, inner_sent, [])
        body = data.split(b"\r\n\r\n", 1)[1]
        if spec.variant in _ACCEPTED_FRAMING:
            for key, count in inner_sent.items():
                sent[key] = sent.get(key, 0) + count
        junk = b"x" * 17
        return {
            "huge_length": [b"Content-Length: 2147483648\r\n\r\n" + junk],
            "short_length": [b"Content-Length: %d\r\n\r\n" % (len(body) - 3) + body],
            "long_length": [b"Content-Length: %d\r\n\r\n" % (len(body) + 17) + body + junk],
            "no_length": [b"Content-Type: application/vscode-jsonrpc\r\n\r\n" + body],
            "bad_length": [b"Content-Length: -5\r\nContent-Length: abc\r\n\r\n" + body],
            "garbage_line": [b"\x00\xff\xfe garbage \x7f\r\n"],
            "lowercase": [b"content-length: %d\r\n\r\n" % len(body) + body],
            "extra_header": [
                b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; "
                b"charset=utf-8\r\n\r\n" % len(body) + body
            ],
            "split": [data[:7], data[7:]],
        }[spec.variant]

    def run_batch(self, specs: list[Spec]) -> None:
        sent: dict[Any, int] = {}
        recent: list[Any] = []
        try:
            for spec in specs:
                for chunk in self._encode(spec, sent, recent):
                    self.server.send_bytes(chunk)
                self.tally.messages += 1
            ping = f"ping-{self._id()}"
            self.server.request(ping, "fuzz/ping")
            self.tally.messages += 1
            self.server.wait_for(ping)
            for msg_id, count in sent.items():
                for response in self.server.wait_for(msg_id, count):
                    self._check(response)
                self.tally.requests_checked += count
        except (AssertionError, BrokenPipeError, OSError) as exc:
            self.tally.crashes += self.server.process.poll() is not None
            failure = f"{type(exc).__name__}: {exc}"
            self.tally.failures.append(failure[:2000])
            if self.raise_on_failure:
                raise
            self.server.process.kill()
            self.start()

    @staticmethod
    def _check(response: dict) -> None:
        assert ("result" in response) != ("error" in response), response
        if "error" in response:
            error = response["error"]
            assert isinstance(error.get("code"), int), response
            assert isinstance(error.get("message"), str), response


def dumps_spec(spec: Spec) -> str:
    """A spec as one line, for reports."""
    return json.dumps(spec.__dict__, default=repr)[:500]
