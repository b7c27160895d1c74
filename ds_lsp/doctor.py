"""`ds-lsp doctor`: check the set-up, and print the fix for each failure."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ds_lsp.config import Settings


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_settings(problems: list[str]) -> Check:
    if not problems:
        return Check("settings", True, "no problems")
    return Check(
        "settings",
        False,
        "; ".join(problems),
        "correct or remove those values (ds-lsp is using defaults for them)",
    )


def check_llama_import() -> Check:
    try:
        import llama_cpp
    except Exception as exc:  # ImportError, or a broken native library (OSError)
        return Check(
            "llama-cpp-python",
            False,
            f"does not import: {exc}",
            "reinstall it: pip install --force-reinstall --no-cache-dir llama-cpp-python "
            "(builds from source; needs a C compiler and cmake), or use --backend openai",
        )
    return Check("llama-cpp-python", True, f"version {llama_cpp.__version__}")


def check_grammars() -> Check:
    from ds_lsp.context.treesitter import check_grammars as load_all

    results = load_all()
    broken = {lang: err for lang, err in results.items() if err}
    if broken:
        names = ", ".join(f"{lang} ({err})" for lang, err in broken.items())
        return Check(
            "tree-sitter grammars",
            False,
            f"these do not load: {names}",
            "reinstall ds-lsp's grammar wheels: pip install --force-reinstall "
            + " ".join(f"tree-sitter-{lang}" for lang in broken),
        )
    return Check("tree-sitter grammars", True, ", ".join(results))


def check_model_file(settings: Settings) -> Check:
    from ds_lsp import models

    path = Path(settings.model_path or models.default_model_path()).expanduser()
    if path.is_file():
        return Check("model", True, f"{path} ({path.stat().st_size / 1e9:.1f} GB)")
    fix = (
        "run `ds-lsp models pull` (the default 1.5B model, about 1.1 GB)"
        if not settings.model_path
        else "point DS_LSP_MODEL_PATH / --model-path at an existing GGUF, "
        "or run `ds-lsp models pull`"
    )
    return Check("model", False, f"no GGUF at {path}", fix)


async def check_backend(settings: Settings) -> Check:
    """Reach the model: load the GGUF in process, or ask the server for its models."""
    from ds_lsp.backends import make_backend
    from ds_lsp.backends.base import ModelError
    from ds_lsp.prompt_style import chosen_style

    if settings.backend == "openai":
        fix = (
            "start the model server, or point DS_LSP_BASE_URL / --base-url (and DS_LSP_MODEL) "
            "at the one you run; the README lists the commands per server"
        )
    else:
        fix = "download the model again (`ds-lsp models pull`) or pick another GGUF"
    try:
        backend = make_backend(settings)
    except ModelError as exc:
        return Check("backend", False, str(exc), fix)
    try:
        detail = await backend.check()
        style = chosen_style(
            await backend.prompt_style(), settings.completion_prompt, settings.fim_template
        )
        detail += f"; ghost text: {style.style} prompt ({style.reason})"
        return Check("backend", True, detail)
    except ModelError as exc:
        return Check("backend", False, str(exc), fix)
    finally:
        await backend.aclose()


async def run_doctor(settings: Settings, problems: list[str], out=None) -> int:
    """Print one line per check and the fix under each failure. Exit 1 if any failed."""
    out = out or sys.stdout
    checks: list[Check] = [
        check_settings(problems),
        check_grammars(),
    ]
    if settings.backend == "llama_cpp":
        checks.append(check_llama_import())
        model = check_model_file(settings)
        checks.append(model)
        if model.ok and checks[-2].ok:
            checks.append(await check_backend(settings))
    else:
        checks.append(await check_backend(settings))

    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"[{mark}] {check.name}: {check.detail}", file=out)
        if not check.ok and check.fix:
            print(f"       fix: {check.fix}", file=out)
    failed = [c for c in checks if not c.ok]
    print("all good" if not failed else f"{len(failed)} problem(s) found", file=out)
    return 1 if failed else 0
