"""The DeepSeek-R1-Distill GGUFs: which one to get, where they live, getting them.

`ds-lsp models pull [SIZE] [--quant Q]` downloads one from Hugging Face into
`models_dir()`; `ds-lsp models list` shows the GGUFs on this machine and which
size its RAM can run. No LSP code here.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_SIZE = "1.5b"
DEFAULT_QUANT = "Q4_K_M"
QUANTS = ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0")


@dataclass(frozen=True)
class _Distill:
    repo: str  # a Hugging Face repo holding one GGUF file per quant
    stem: str  # the file name is f"{stem}-{quant}.gguf"
    ollama_tag: str
    gigabytes: dict[str, float]  # quant -> download size in GB (10^9 bytes), as the Hub shows it


# bartowski's GGUF repos: llama.cpp quants with an importance matrix, one file per quant.
CATALOGUE: dict[str, _Distill] = {
    "1.5b": _Distill(
        "bartowski/DeepSeek-R1-Distill-Qwen-1.5B-GGUF",
        "DeepSeek-R1-Distill-Qwen-1.5B",
        "deepseek-r1:1.5b",
        {"Q4_K_M": 1.12, "Q5_K_M": 1.29, "Q6_K": 1.46, "Q8_0": 1.89},
    ),
    "7b": _Distill(
        "bartowski/DeepSeek-R1-Distill-Qwen-7B-GGUF",
        "DeepSeek-R1-Distill-Qwen-7B",
        "deepseek-r1:7b",
        {"Q4_K_M": 4.68, "Q5_K_M": 5.44, "Q6_K": 6.25, "Q8_0": 8.10},
    ),
    "8b": _Distill(
        "bartowski/DeepSeek-R1-Distill-Llama-8B-GGUF",
        "DeepSeek-R1-Distill-Llama-8B",
        "deepseek-r1:8b",
        {"Q4_K_M": 4.92, "Q5_K_M": 5.73, "Q6_K": 6.60, "Q8_0": 8.54},
    ),
    "14b": _Distill(
        "bartowski/DeepSeek-R1-Distill-Qwen-14B-GGUF",
        "DeepSeek-R1-Distill-Qwen-14B",
        "deepseek-r1:14b",
        {"Q4_K_M": 8.99, "Q5_K_M": 10.5, "Q6_K": 12.1, "Q8_0": 15.7},
    ),
    "32b": _Distill(
        "bartowski/DeepSeek-R1-Distill-Qwen-32B-GGUF",
        "DeepSeek-R1-Distill-Qwen-32B",
        "deepseek-r1:32b",
        {"Q4_K_M": 19.9, "Q5_K_M": 23.3, "Q6_K": 26.9, "Q8_0": 34.8},
    ),
    # The larger 70B quants are split into several files in that repo; Q4_K_M is one file.
    "70b": _Distill(
        "bartowski/DeepSeek-R1-Distill-Llama-70B-GGUF",
        "DeepSeek-R1-Distill-Llama-70B",
        "deepseek-r1:70b",
        {"Q4_K_M": 42.5},
    ),
}


@dataclass(frozen=True)
class ModelSpec:
    """One GGUF file of the catalogue."""

    size: str  # "1.5b"
    quant: str  # "Q4_K_M"
    repo: str  # "bartowski/DeepSeek-R1-Distill-Qwen-1.5B-GGUF"
    filename: str  # "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf"
    approx_bytes: int
    ollama_tag: str  # "deepseek-r1:1.5b": the same model through Ollama


@dataclass(frozen=True)
class LocalModel:
    path: Path
    size_bytes: int


class DownloadError(Exception):
    """A model could not be downloaded. The message says why and how else to get it."""


# --- where models live ---------------------------------------------------------


def models_dir() -> Path:
    """$DS_LSP_MODELS_DIR, else $XDG_DATA_HOME/ds-lsp/models (~/.local/share/ds-lsp/models)."""
    if os.environ.get("DS_LSP_MODELS_DIR"):
        return Path(os.environ["DS_LSP_MODELS_DIR"]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home).expanduser() / "ds-lsp" / "models"


def default_model_path() -> Path:
    """The product's default model: the 1.5B distill at Q4_K_M, in models_dir()."""
    return models_dir() / resolve(DEFAULT_SIZE, DEFAULT_QUANT).filename


# --- choosing a model ------------------------------------------------------------

# (total RAM below this many GiB, size). The OS reports a little less than what
# is installed (firmware and kernel keep some: a "24 GB" machine shows about
# 23 GiB), so each threshold sits below the installed size it stands for.
_RAM_TABLE = ((12, "1.5b"), (22, "7b"), (44, "14b"), (88, "32b"))


def total_ram_bytes() -> int | None:
    """This machine's RAM, or None where the OS doesn't say (Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def recommend_size(ram_bytes: int | None = None) -> str:
    """The largest distill this machine's RAM runs comfortably at Q4_K_M.

    DeepSeek's guidance is that 16 GB of RAM runs the 7B/8B distills. The model
    file must fit in RAM next to its context (KV cache), the OS and the editor:

        total RAM reported   size   Q4_K_M file   typical machine
        under 12 GiB         1.5b    1.1 GB        8 GB
        12 to 22 GiB         7b      4.7 GB        16 GB
        22 to 44 GiB         14b     9.0 GB        24 or 32 GB
        44 to 88 GiB         32b    19.9 GB        64 GB
        88 GiB and more      70b    42.5 GB        96 or 128 GB

    `ram_bytes` None: this machine's RAM; if that is unknown, the default 1.5b.
    """
    if ram_bytes is None:
        ram_bytes = total_ram_bytes()
        if ram_bytes is None:
            return DEFAULT_SIZE
    for below_gib, size in _RAM_TABLE:
        if ram_bytes < below_gib * 2**30:
            return size
    return "70b"


def resolve(size: str | None, quant: str = DEFAULT_QUANT) -> ModelSpec:
    """The catalogue entry for a size ("1.5b" ... "70b", "auto", None: 1.5b) and quant.

    Raises ValueError, naming what is accepted, for a size or quant it doesn't offer.
    """
    name = DEFAULT_SIZE if size is None else size.strip().lower()
    if name == "auto":
        name = recommend_size()
    if name not in CATALOGUE:
        raise ValueError(
            f"unknown model size {size!r}: use one of {', '.join(CATALOGUE)}, "
            "or auto (the largest this machine's RAM runs)"
        )
    distill = CATALOGUE[name]
    wanted = quant.strip().upper()
    if wanted not in distill.gigabytes:
        offered = ", ".join(distill.gigabytes)
        if wanted in QUANTS:
            raise ValueError(f"{name} is offered as {offered} only, not {quant}")
        raise ValueError(
            f"unknown quant {quant!r}: use one of {offered} ({DEFAULT_QUANT} is the default)"
        )
    return ModelSpec(
        size=name,
        quant=wanted,
        repo=distill.repo,
        filename=f"{distill.stem}-{wanted}.gguf",
        approx_bytes=int(distill.gigabytes[wanted] * 1e9),
        ollama_tag=distill.ollama_tag,
    )


# --- downloading -------------------------------------------------------------------


def _say_on_stderr(message: str) -> None:
    print(f"ds-lsp: {message}", file=sys.stderr)


def _gb(size_bytes: int) -> str:
    """Sizes as the Hub shows them: GB of 10^9 bytes (MB below one GB)."""
    if size_bytes < 1e9:
        return f"{size_bytes / 1e6:.0f} MB"
    return f"{size_bytes / 1e9:.1f} GB"


def pull(
    spec: ModelSpec,
    dest_dir: Path | str | None = None,
    *,
    say: Callable[[str], object] = _say_on_stderr,
) -> Path:
    """Download `spec` into dest_dir (default models_dir()) and return its path.

    huggingface_hub does the download (and its own progress bar), honours
    HF_ENDPOINT, HF_HUB_OFFLINE and HF_TOKEN, and writes to a temporary file
    that it moves into place only when complete, so a failed download never
    leaves a partial file at the destination. A file already there is kept.
    Raises DownloadError, whose message says how to get the model by hand.
    """
    dest_dir = Path(dest_dir).expanduser() if dest_dir is not None else models_dir()
    dest = dest_dir / spec.filename
    if dest.is_file():
        say(f"{spec.filename} is already in {dest_dir}")
        return dest

    # Imported here, not at the top: the server never needs it.
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    url = hf_hub_url(spec.repo, spec.filename)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        # One HEAD first, which huggingface_hub does not retry: without a
        # connection hf_hub_download retries for over 20 s before it gives up.
        # It also gives the size, to check the free space before many GB.
        size = get_hf_file_metadata(url).size or spec.approx_bytes
        free = shutil.disk_usage(dest_dir).free
        if free < size:
            raise DownloadError(
                _how_else(
                    spec,
                    url,
                    dest,
                    f"it needs {_gb(size)} and {dest_dir} has {_gb(free)} free; free some space "
                    "or set DS_LSP_MODELS_DIR to a folder on a bigger disk",
                )
            )
        say(f"downloading {spec.filename} ({_gb(size)}) from {spec.repo} into {dest_dir}")
        return Path(hf_hub_download(spec.repo, spec.filename, local_dir=dest_dir))
    except DownloadError:
        raise
    except Exception as error:
        why = _why(error, spec, url, dest_dir)
        if why is None:
            raise  # not a download problem: a bug, let it show
        raise DownloadError(_how_else(spec, url, dest, why)) from error


def _why(error: Exception, spec: ModelSpec, url: str, dest_dir: Path) -> str | None:
    """What went wrong, in words, or None if `error` is not about downloading."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        FileMetadataError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )
    from huggingface_hub.utils import httpx as hub_http  # httpx2 in huggingface_hub 2.x

    host = urlsplit(url).netloc
    if isinstance(error, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set, so no download was tried"
    if isinstance(error, LocalEntryNotFoundError):  # hf_hub_download's "could not reach the Hub"
        return f"no connection to {host}"
    if isinstance(error, RepositoryNotFoundError):
        return f"{host} has no repository {spec.repo} that it lets us read"
    if isinstance(error, EntryNotFoundError):
        return f"{spec.repo} on {host} has no file {spec.filename}"
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        if status in (401, 403):
            return f"{host} refused access (HTTP {status}); if you need a login, set HF_TOKEN"
        if status == 404:
            return f"{host} has no {spec.repo}/{spec.filename} (HTTP 404)"
        return f"{host} answered HTTP {status}"
    if isinstance(error, FileMetadataError):
        return f"{host} does not answer like a Hugging Face Hub (check HF_ENDPOINT)"
    if isinstance(error, hub_http.TimeoutException):
        return f"{host} did not answer in time"
    if isinstance(error, hub_http.HTTPError):
        return f"no connection to {host}"
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return f"the disk holding {dest_dir} is full"
    if isinstance(error, OSError):
        return f"cannot write to {dest_dir}: {error.strerror or error}"
    return None


def _how_else(spec: ModelSpec, url: str, dest: Path, why: str) -> str:
    tag = spec.ollama_tag
    return (
        f"could not download {spec.filename} ({why}).\n"
        f"Download it by hand from {url} and save it as {dest}, "
        "or set DS_LSP_MODEL_PATH to a GGUF you have.\n"
        f"Or use Ollama: `ollama pull {tag}`, "
        f"then `ds-lsp --backend openai --preset ollama --model {tag}`."
    )


# --- what is on this machine ----------------------------------------------------------


def _hf_cache_ggufs() -> list[Path]:
    """GGUFs that huggingface_hub's own cache holds (e.g. from `hf download`)."""
    from huggingface_hub import constants

    return sorted(Path(constants.HF_HUB_CACHE).glob("models--*/snapshots/*/**/*.gguf"))


def list_local(dirs: Iterable[Path | str] | None = None) -> list[LocalModel]:
    """GGUFs in models_dir(), in `dirs`, then in the Hugging Face cache; each file once."""
    places = [models_dir(), *(Path(d).expanduser() for d in dirs or ())]
    candidates = [path for place in places for path in sorted(place.glob("*.gguf"))]
    candidates += _hf_cache_ggufs()
    found: list[LocalModel] = []
    seen: set[Path] = set()
    for path in candidates:
        try:
            real = path.resolve()
            size = path.stat().st_size  # the cache's symlinks are followed to the blob
        except OSError:
            continue  # a dangling symlink
        if real in seen or not real.is_file():
            continue
        seen.add(real)
        found.append(LocalModel(path=path, size_bytes=size))
    return found


def _same_file(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()


def ram_line(ram_bytes: int | None = None) -> str:
    """One line: which size this machine's RAM runs, and the command to get it."""
    ram_bytes = total_ram_bytes() if ram_bytes is None else ram_bytes
    if ram_bytes is None:
        return f"Could not read this machine's RAM; {DEFAULT_SIZE} runs almost anywhere."
    size = recommend_size(ram_bytes)
    return (
        f"This machine has {round(ram_bytes / 2**30)} GB of RAM: {size} fits "
        "(ds-lsp models pull auto)."
    )


def format_list(
    found: list[LocalModel],
    default: Path | str | None = None,
    ram_bytes: int | None = None,
) -> str:
    """The `ds-lsp models list` text: each GGUF with its size, the default
    marked with `*` (`default`: the configured model_path, else the default
    model), then the RAM recommendation."""
    configured = default is not None
    default_path = Path(default).expanduser() if configured else default_model_path()
    lines: list[str] = []
    if found:
        lines.append("GGUF models on this machine (* = the one ds-lsp uses):")
        for model in found:
            mark = "*" if _same_file(model.path, default_path) else " "
            lines.append(f"  {mark} {_gb(model.size_bytes):>8}  {model.path}")
    else:
        lines.append(f"No GGUF models found in {models_dir()}.")
    if not any(_same_file(model.path, default_path) for model in found):
        if configured:
            lines.append(f"The configured model {default_path} does not exist.")
        else:
            lines.append(
                f"The default model ({default_path.name}) is not downloaded yet: ds-lsp models pull"
            )
    lines.append(ram_line(ram_bytes))
    return "\n".join(lines)
