"""ds_lsp.models: the catalogue, the RAM advice, `models pull` and `models list`.

Downloads run in a child process, as `ds-lsp models pull` does: huggingface_hub
reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE once, when first imported. The
Hub is stood in for by tests/fake_hf_hub.py on 127.0.0.1; nothing here uses
the network.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ds_lsp import models
from tests.fake_hf_hub import FakeHub

GiB = 2**30
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPO = "bartowski/DeepSeek-R1-Distill-Qwen-1.5B-GGUF"
DEFAULT_FILE = "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Never look at (or write to) the real models folder or Hugging Face cache."""
    monkeypatch.setenv("DS_LSP_MODELS_DIR", str(tmp_path / "models"))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


# --- catalogue --------------------------------------------------------------------


def test_no_size_means_the_default_model():
    spec = models.resolve(None)
    assert (spec.size, spec.quant) == ("1.5b", "Q4_K_M")
    assert spec.repo == DEFAULT_REPO
    assert spec.filename == DEFAULT_FILE
    assert spec.ollama_tag == "deepseek-r1:1.5b"
    assert 1.0e9 < spec.approx_bytes < 1.3e9


@pytest.mark.parametrize(
    ("size", "quant", "filename"),
    [
        ("7B", "q5_k_m", "DeepSeek-R1-Distill-Qwen-7B-Q5_K_M.gguf"),
        ("8b", "Q8_0", "DeepSeek-R1-Distill-Llama-8B-Q8_0.gguf"),
        (" 14b ", "Q6_K", "DeepSeek-R1-Distill-Qwen-14B-Q6_K.gguf"),
        ("32b", "Q4_K_M", "DeepSeek-R1-Distill-Qwen-32B-Q4_K_M.gguf"),
        ("70b", "Q4_K_M", "DeepSeek-R1-Distill-Llama-70B-Q4_K_M.gguf"),
    ],
)
def test_sizes_and_quants_name_the_file_in_its_repo(size, quant, filename):
    spec = models.resolve(size, quant)
    assert spec.filename == filename
    assert spec.repo == f"bartowski/{filename.rsplit('-', 1)[0]}-GGUF"
    assert spec.ollama_tag == f"deepseek-r1:{size.strip().lower()}"


def meminfo_total_bytes() -> int:
    """This machine's RAM as the kernel reports it, read apart from ds_lsp's own code."""
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        pytest.skip("no /proc/meminfo on this OS")
    kib = next(line.split()[1] for line in text.splitlines() if line.startswith("MemTotal:"))
    return int(kib) * 1024


def size_for(ram_bytes: int) -> str:
    """The table in recommend_size's docstring, restated."""
    for below_gib, size in ((12, "1.5b"), (22, "7b"), (44, "14b"), (88, "32b")):
        if ram_bytes < below_gib * GiB:
            return size
    return "70b"


def test_auto_picks_by_this_machines_ram():
    expected = size_for(meminfo_total_bytes())
    spec = models.resolve("auto")
    assert spec.size == expected
    assert spec.filename == models.resolve(expected).filename


def test_an_unknown_size_lists_the_accepted_ones():
    with pytest.raises(ValueError) as caught:
        models.resolve("3b")
    message = str(caught.value)
    assert "'3b'" in message
    for size in ("1.5b", "7b", "8b", "14b", "32b", "70b", "auto"):
        assert size in message


def test_an_unknown_quant_lists_the_accepted_ones():
    with pytest.raises(ValueError) as caught:
        models.resolve("7b", "Q3_K_S")
    message = str(caught.value)
    assert "'Q3_K_S'" in message
    for quant in ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"):
        assert quant in message


def test_70b_comes_as_q4_k_m_only():
    with pytest.raises(ValueError, match="70b is offered as Q4_K_M only, not Q8_0"):
        models.resolve("70b", "Q8_0")


@pytest.mark.parametrize(
    ("ram_bytes", "size"),
    [
        (8 * GiB, "1.5b"),
        (12 * GiB - 1, "1.5b"),
        (12 * GiB, "7b"),
        (16 * 10**9, "7b"),  # "16 GB": DeepSeek's guidance runs 7B/8B there
        (15.5 * GiB, "7b"),  # what a 16 GB machine reports
        (22 * GiB - 1, "7b"),
        (23.4 * GiB, "14b"),  # what a 24 GB machine reports
        (31.3 * GiB, "14b"),
        (44 * GiB - 1, "14b"),
        (44 * GiB, "32b"),
        (62.8 * GiB, "32b"),
        (88 * GiB, "70b"),
        (125 * GiB, "70b"),
    ],
)
def test_recommend_size_by_ram(ram_bytes, size):
    assert models.recommend_size(int(ram_bytes)) == size


def test_recommend_size_reads_this_machines_ram():
    assert models.total_ram_bytes() == meminfo_total_bytes()
    assert models.recommend_size() == size_for(meminfo_total_bytes())


# --- where models live -----------------------------------------------------------------


def test_models_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DS_LSP_MODELS_DIR", str(tmp_path / "mine"))
    assert models.models_dir() == tmp_path / "mine"
    assert models.default_model_path() == tmp_path / "mine" / DEFAULT_FILE

    monkeypatch.delenv("DS_LSP_MODELS_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert models.models_dir() == tmp_path / "data" / "ds-lsp" / "models"

    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert models.models_dir() == tmp_path / "home" / ".local" / "share" / "ds-lsp" / "models"


# --- pull ---------------------------------------------------------------------------

# What `ds-lsp models pull SIZE --quant Q` does, in a fresh process.
PULL = """
import sys
from ds_lsp import models
try:
    path = models.pull(models.resolve(sys.argv[1], sys.argv[2]))
except models.DownloadError as error:
    print(error, file=sys.stderr)
    sys.exit(1)
print(path)
"""


def run_pull(tmp_path: Path, endpoint: str, size="1.5b", quant="Q4_K_M", **env_extra):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGINGFACE", "DS_LSP_"))
    }
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        HF_ENDPOINT=endpoint,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        NO_PROXY="127.0.0.1,localhost",
        DS_LSP_MODELS_DIR=str(tmp_path / "models"),
        **env_extra,
    )
    return subprocess.run(
        [sys.executable, "-c", PULL, size, quant],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_nothing_left(tmp_path: Path, filename: str = DEFAULT_FILE) -> None:
    """No model file and no partial download anywhere in the models folder."""
    models_dir = tmp_path / "models"
    assert not (models_dir / filename).exists()
    assert list(models_dir.rglob("*.gguf")) + list(models_dir.rglob("*.incomplete")) == []


@pytest.fixture
def hub():
    fake = FakeHub()
    server = fake.serve()
    yield fake
    server.shutdown()
    server.server_close()


def free_port() -> int:
    """A port nothing listens on (bound, then released; never listened on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_pull_downloads_through_huggingface_hub_to_the_models_dir(hub, tmp_path):
    weights = b"GGUF" + bytes(range(256)) * 64
    hub.add(DEFAULT_REPO, DEFAULT_FILE, weights)

    done = run_pull(tmp_path, hub.url, size="1.5b")

    assert done.returncode == 0, done.stderr
    dest = tmp_path / "models" / DEFAULT_FILE
    assert done.stdout.strip() == str(dest)
    assert dest.read_bytes() == weights
    assert list(dest.parent.rglob("*.incomplete")) == []
    assert f"downloading {DEFAULT_FILE}" in done.stderr
    assert ("GET", f"/{DEFAULT_REPO}/resolve/main/{DEFAULT_FILE}") in hub.requests


def test_pull_keeps_a_model_already_there_without_asking_the_hub(hub, tmp_path):
    dest = tmp_path / "models" / DEFAULT_FILE
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"GGUF mine")

    done = run_pull(tmp_path, hub.url)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(dest)
    assert f"{DEFAULT_FILE} is already in {dest.parent}" in done.stderr
    assert dest.read_bytes() == b"GGUF mine"
    assert hub.requests == []


def test_pull_into_a_given_folder_says_when_it_is_already_there(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / DEFAULT_FILE).write_bytes(b"GGUF")
    said: list[str] = []

    path = models.pull(models.resolve(None), folder, say=said.append)

    assert path == folder / DEFAULT_FILE
    assert said == [f"{DEFAULT_FILE} is already in {folder}"]


def test_no_connection_says_how_to_get_the_model_by_hand(tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"

    done = run_pull(tmp_path, endpoint)

    assert done.returncode == 1
    message = done.stderr
    dest = tmp_path / "models" / DEFAULT_FILE
    assert f"could not download {DEFAULT_FILE} (no connection to 127.0.0.1:" in message
    assert f"{endpoint}/{DEFAULT_REPO}/resolve/main/{DEFAULT_FILE}" in message
    assert f"save it as {dest}" in message
    assert "DS_LSP_MODEL_PATH" in message
    assert "`ollama pull deepseek-r1:1.5b`" in message
    assert "ds-lsp --backend openai --preset ollama --model deepseek-r1:1.5b" in message
    assert "Traceback" not in message
    assert_nothing_left(tmp_path)


def test_offline_mode_is_respected_and_named(hub, tmp_path):
    hub.add(DEFAULT_REPO, DEFAULT_FILE, b"GGUF")

    done = run_pull(tmp_path, hub.url, HF_HUB_OFFLINE="1")

    assert done.returncode == 1
    assert "HF_HUB_OFFLINE is set" in done.stderr
    assert "`ollama pull deepseek-r1:1.5b`" in done.stderr
    assert hub.requests == []
    assert_nothing_left(tmp_path)


def test_a_file_missing_from_the_repo(hub, tmp_path):
    hub.add(DEFAULT_REPO, "something-else.gguf", b"GGUF")

    done = run_pull(tmp_path, hub.url)

    assert done.returncode == 1
    assert f"{DEFAULT_REPO} on 127.0.0.1:" in done.stderr
    assert f"has no file {DEFAULT_FILE}" in done.stderr
    assert_nothing_left(tmp_path)


def test_a_missing_repo(hub, tmp_path):
    hub.add(DEFAULT_REPO, DEFAULT_FILE, b"GGUF")

    done = run_pull(tmp_path, hub.url, size="8b")

    assert done.returncode == 1
    assert "has no repository bartowski/DeepSeek-R1-Distill-Llama-8B-GGUF" in done.stderr
    assert "`ollama pull deepseek-r1:8b`" in done.stderr
    assert_nothing_left(tmp_path, "DeepSeek-R1-Distill-Llama-8B-Q4_K_M.gguf")


def test_access_refused(hub, tmp_path):
    hub.add(DEFAULT_REPO, DEFAULT_FILE, b"GGUF", status=401)

    done = run_pull(tmp_path, hub.url)

    assert done.returncode == 1
    assert "refused access (HTTP 401)" in done.stderr
    assert "HF_TOKEN" in done.stderr
    assert_nothing_left(tmp_path)


def test_not_enough_disk_space_stops_before_downloading(hub, tmp_path):
    petabyte = 10**15
    hub.add(DEFAULT_REPO, DEFAULT_FILE, b"GGUF", claimed_size=petabyte)

    done = run_pull(tmp_path, hub.url)

    assert done.returncode == 1
    assert "it needs 1000000.0 GB and" in done.stderr
    assert "free some space or set DS_LSP_MODELS_DIR" in done.stderr
    assert [method for method, _ in hub.requests] == ["HEAD"]
    assert_nothing_left(tmp_path)


# --- list -----------------------------------------------------------------------------


def test_list_finds_ggufs_and_marks_the_default(tmp_path):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / DEFAULT_FILE).write_bytes(b"x" * 3000)
    (models_dir / "notes.txt").write_text("not a model")
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    (other_dir / "mine.gguf").write_bytes(b"y" * 2000)
    # The Hugging Face cache: snapshot files are symlinks to blobs.
    snapshot = tmp_path / "hf" / "hub" / "models--x--y-GGUF" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    blob = tmp_path / "hf" / "hub" / "models--x--y-GGUF" / "blobs" / "sha"
    blob.parent.mkdir()
    blob.write_bytes(b"z" * 1000)
    (snapshot / "y-Q4_K_M.gguf").symlink_to(blob)

    found = models.list_local([other_dir, models_dir])  # models_dir twice: listed once

    assert [(m.path, m.size_bytes) for m in found] == [
        (models_dir / DEFAULT_FILE, 3000),
        (other_dir / "mine.gguf", 2000),
        (snapshot / "y-Q4_K_M.gguf", 1000),
    ]
    text = models.format_list(found, ram_bytes=int(23.4 * GiB))
    lines = text.splitlines()
    assert lines[0] == "GGUF models on this machine (* = the one ds-lsp uses):"
    assert lines[1].startswith("  * ") and lines[1].endswith(str(models_dir / DEFAULT_FILE))
    assert lines[2].startswith("    ") and lines[2].endswith(str(other_dir / "mine.gguf"))
    assert "0 MB" in lines[2]
    assert lines[-1] == "This machine has 23 GB of RAM: 14b fits (ds-lsp models pull auto)."
    assert "not downloaded" not in text


def test_list_marks_a_configured_model_as_the_one_in_use(tmp_path):
    mine = tmp_path / "other" / "mine.gguf"
    mine.parent.mkdir()
    mine.write_bytes(b"GGUF")

    text = models.format_list(models.list_local([mine.parent]), default=mine, ram_bytes=8 * GiB)

    assert f"  *     0 MB  {mine}" in text.splitlines()
    assert text.splitlines()[-1] == (
        "This machine has 8 GB of RAM: 1.5b fits (ds-lsp models pull auto)."
    )


def test_list_with_nothing_downloaded_says_how_to_get_the_default(tmp_path):
    text = models.format_list(models.list_local(), ram_bytes=16 * GiB)

    assert text.splitlines() == [
        f"No GGUF models found in {tmp_path / 'models'}.",
        f"The default model ({DEFAULT_FILE}) is not downloaded yet: ds-lsp models pull",
        "This machine has 16 GB of RAM: 7b fits (ds-lsp models pull auto).",
    ]


def test_list_says_when_the_configured_model_is_missing(tmp_path):
    missing = tmp_path / "gone.gguf"

    text = models.format_list([], default=missing, ram_bytes=16 * GiB)

    assert f"The configured model {missing} does not exist." in text
