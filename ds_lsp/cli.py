"""The `ds-lsp` command: serve (default), edit, models, doctor."""

from __future__ import annotations

import argparse
import asyncio
import codecs
import gc
import logging
import sys
from pathlib import Path

from ds_lsp import __version__, config, fs

log = logging.getLogger("ds_lsp")

# Exit codes: 0 done, 1 the job failed (model, answer, download), 2 bad usage.
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad arguments or input: exit 2 with the message."""


class CommandFailed(Exception):
    """The job could not be done: exit 1 with the message."""


def _settings_flags() -> argparse.ArgumentParser:
    """Flags every subcommand accepts. SUPPRESS keeps unset flags out of the namespace,
    so they don't override the config file or the environment."""
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("model settings (also DS_LSP_* variables, config file)")
    add = group.add_argument
    add("--backend", choices=["llama_cpp", "openai"], default=argparse.SUPPRESS)
    add("--model-path", metavar="GGUF", default=argparse.SUPPRESS, help="llama_cpp: the model")
    add(
        "--preset",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="openai: ollama, lmstudio, llamacpp, vllm, sglang or deepseek",
    )
    add("--base-url", metavar="URL", default=argparse.SUPPRESS, help="openai: server URL")
    add("--model", metavar="NAME", default=argparse.SUPPRESS, help="openai: model name")
    add("--config", metavar="TOML", default=argparse.SUPPRESS, help="settings file")
    add("--log-level", choices=["debug", "info", "warning", "error"], default=argparse.SUPPRESS)
    return flags


def build_parser() -> argparse.ArgumentParser:
    common = _settings_flags()
    parser = argparse.ArgumentParser(
        prog="ds-lsp",
        parents=[common],
        description="A language server that makes DeepSeek-R1 distills a code assistant.",
    )
    parser.add_argument("--version", action="version", version=f"ds-lsp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the language server (default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    serve.add_argument("--log-file", metavar="PATH", help="also log here (10 MB, 3 rotated)")

    edit = sub.add_parser("edit", parents=[common], help="rewrite lines of a file as instructed")
    edit.add_argument("file", metavar="FILE")
    edit.add_argument("--lines", required=True, metavar="START-END", help="1-based, inclusive")
    edit.add_argument("--instruction", "-i", required=True, metavar="TEXT")
    edit.add_argument("--write", action="store_true", help="change the file (else: diff only)")

    models = sub.add_parser("models", parents=[common], help="download or list GGUF models")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    pull = models_sub.add_parser("pull", help="download a DeepSeek-R1-Distill GGUF")
    pull.add_argument("size", nargs="?", help="1.5b (default), 7b, 8b, 14b, 32b, 70b or auto")
    pull.add_argument("--quant", default="Q4_K_M", help="Q4_K_M (default), Q5_K_M, Q6_K, Q8_0")
    models_sub.add_parser("list", help="show the GGUFs on this machine")

    sub.add_parser("doctor", parents=[common], help="check the set-up and say how to fix it")
    return parser


def load_settings(args: argparse.Namespace) -> tuple[config.Settings, list[str]]:
    names = set(config.SETTING_NAMES)
    flags = {k: v for k, v in vars(args).items() if k in names}
    path = Path(args.config).expanduser() if getattr(args, "config", None) else None
    return config.load(flags=flags, config_path=path)


def _setup_logging(level: str) -> None:
    """Our own log at the chosen level; libraries (HTTP clients...) only warnings."""
    logging.basicConfig(
        level=logging.WARNING, format="ds-lsp: %(levelname)s: %(message)s", stream=sys.stderr
    )
    log.setLevel(getattr(logging, level.upper()))


def parse_lines(spec: str, line_count: int) -> tuple[int, int]:
    """'3-7' or '5' (1-based, inclusive) -> 0-based inclusive (start, end)."""
    start_text, _, end_text = spec.partition("-")
    try:
        start = int(start_text)
        end = int(end_text) if end_text else start
    except ValueError:
        raise UsageError(f"--lines {spec!r}: expected START-END, like 3-7") from None
    if not 1 <= start <= end:
        raise UsageError(f"--lines {spec!r}: START must be at least 1 and not after END")
    if end > line_count:
        raise UsageError(f"--lines {spec!r}: the file has only {line_count} lines")
    return start - 1, end - 1


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace the file in one step (fs.atomic_write), so a crash never leaves half
    a file. The user named this file: a symlink is written through (its target is
    replaced, the link stays a link)."""
    target = path.resolve(strict=True)
    fs.atomic_write(target, data, root=target.parent)


class _ReasoningPrinter:
    """Streams reasoning to stderr as it arrives (dim on a terminal)."""

    def __init__(self) -> None:
        self.dim = sys.stderr.isatty()
        self.open = False

    def __call__(self, delta) -> None:
        if delta.reasoning:
            if not self.open:
                sys.stderr.write("\x1b[2m" if self.dim else "")
                self.open = True
            sys.stderr.write(delta.reasoning)
            sys.stderr.flush()

    def close(self) -> None:
        if self.open:
            sys.stderr.write(("\x1b[0m" if self.dim else "") + "\n")
            sys.stderr.flush()


async def _edit(args: argparse.Namespace, settings: config.Settings) -> int:
    from ds_lsp import editing, rewrite
    from ds_lsp.backends import make_backend
    from ds_lsp.context.treesitter import language_for_path

    path = Path(args.file)
    try:
        original_bytes = path.read_bytes()
        # A BOM is no part of the code: the model never sees it, the write puts it back.
        bom = codecs.BOM_UTF8 if original_bytes.startswith(codecs.BOM_UTF8) else b""
        text = original_bytes[len(bom) :].decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text; ds-lsp edits UTF-8 files only") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    start, end = parse_lines(args.lines, len(editing.split_lines(text)))
    if not args.instruction.strip():
        raise UsageError("--instruction is empty: say what to change")

    request = rewrite.EditRequest(
        file_name=path.name,
        text=text,
        start_line=start,
        end_line=end,
        instruction=args.instruction,
        language=language_for_path(str(path)),
    )
    printer = _ReasoningPrinter()
    backend = make_backend(settings)
    try:
        result = await rewrite.run_edit(backend.stream, settings, request, on_delta=printer)
    finally:
        printer.close()
        await backend.aclose()

    diff = editing.unified_diff(text, result.new_text, str(path))
    if not diff:
        print("ds-lsp: the answer leaves those lines as they were", file=sys.stderr)
        return 0
    sys.stdout.write(diff)
    sys.stdout.flush()
    if args.write:
        try:
            # The user may have saved the file while the model was thinking.
            if path.read_bytes() != original_bytes:
                raise rewrite.EditFailed(f"{path} changed while the model was working; not written")
            _write_atomically(path, bom + result.new_text.encode("utf-8"))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise CommandFailed(f"cannot write {path}: {reason}; nothing was changed") from None
        print(f"ds-lsp: wrote {path}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace, settings: config.Settings, problems: list[str]) -> int:
    from ds_lsp import transport
    from ds_lsp.features.log import log_to_file
    from ds_lsp.malloc_tuning import keep_big_allocations
    from ds_lsp.server import build_server

    if getattr(args, "log_file", None):
        try:
            log_to_file(args.log_file)
        except OSError as exc:
            raise UsageError(f"--log-file {args.log_file}: {exc.strerror or exc}") from None
    keep_big_allocations()  # smooth typing in huge files (see malloc_tuning)
    server = build_server(settings, problems)
    # What the imports made lives as long as the process: kept out of the garbage
    # collector's full passes, which took 25 ms over it, a stall at random keystrokes.
    gc.freeze()
    if getattr(args, "tcp", None):
        host, _, port = args.tcp.rpartition(":")
        if not port.isdigit():
            raise UsageError(f"--tcp {args.tcp!r}: expected HOST:PORT, like 127.0.0.1:2087")
        transport.start_tcp(server, host or "127.0.0.1", int(port))
    else:
        transport.start_io(server)  # pygls's start_io, hardened against bad input
    return 0


def _models(args: argparse.Namespace, settings: config.Settings) -> int:
    from ds_lsp import models

    if args.models_command == "list":
        extra = [Path(settings.model_path).expanduser().parent] if settings.model_path else []
        print(models.format_list(models.list_local(extra), default=settings.model_path))
        return 0
    try:
        spec = models.resolve(args.size, args.quant)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        path = models.pull(spec)
    except models.DownloadError as exc:
        raise CommandFailed(str(exc)) from None
    print(f"ds-lsp: model ready at {path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "serve"
    settings, problems = load_settings(args)
    # `edit` streams the reasoning to stderr: keep routine log lines out of it
    # unless the user asked for debug output.
    quiet = command == "edit" and settings.log_level != "debug"
    _setup_logging("warning" if quiet else settings.log_level)
    if command != "serve":  # the server reports these to the editor's log instead
        for problem in problems:
            log.warning("%s", problem)

    from ds_lsp.backends.base import ModelError
    from ds_lsp.rewrite import EditFailed

    try:
        if command == "serve":
            return _serve(args, settings, problems)
        if command == "edit":
            return asyncio.run(_edit(args, settings))
        if command == "models":
            return _models(args, settings)
        if command == "doctor":
            from ds_lsp.doctor import run_doctor

            return asyncio.run(run_doctor(settings, problems))
    except UsageError as exc:
        print(f"ds-lsp: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ModelError, EditFailed, CommandFailed) as exc:
        print(f"ds-lsp: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("ds-lsp: interrupted; nothing was changed", file=sys.stderr)
        return 130
    parser.error(f"unknown command {command!r}")  # exits with 2
