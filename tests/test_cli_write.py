"""`ds-lsp edit --write` on real files: the real command in a subprocess, a fake model.

What the user must find afterwards: links still links, their targets changed; the
BOM and the permission bits kept; special-token text in the code kept; and when
the file cannot be written, one clear line, exit 1, and the file as it was.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_openai_server import FakeOpenAIServer, Reply
from tests.test_cli_edit import SAMPLE, TYPED

BOM = b"\xef\xbb\xbf"
EDITED = SAMPLE.replace("def area(r):\n    return math.pi * r * r\n", TYPED)
ANSWER = Reply(reasoning="Add float hints.", content=f"```python\n{TYPED}```")


def env_for(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_LSP_")}
    env.update(
        DS_LSP_CONFIG=os.devnull,
        DS_LSP_BACKEND="openai",
        DS_LSP_BASE_URL=base_url,
        DS_LSP_MODEL="deepseek-r1:7b",
    )
    return env


def edit_command(path: Path, lines: str = "4-5") -> list[str]:
    return [sys.executable, "-m", "ds_lsp", "edit", str(path), "--lines", lines]


def edit(
    path: Path, server: FakeOpenAIServer, lines: str = "4-5", **popen
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*edit_command(path, lines), "-i", "add type hints", "--write"],
        capture_output=True,
        text=True,
        env=env_for(server.base_url),
        timeout=60,
        **popen,
    )


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("ds-lsp:")]
    assert len(lines) == 1, text
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary files a write left behind."""
    return [p.name for p in folder.iterdir() if p.name.endswith(".ds-lsp")]


# --- links ------------------------------------------------------------------------


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path, fake_openai):
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "real" / "shapes.py"
    target.write_bytes(SAMPLE.encode())
    target.chmod(0o640)
    link = tmp_path / "links" / "shapes.py"
    link.symlink_to(Path("..") / "real" / "shapes.py")
    fake_openai.enqueue(ANSWER)

    done = edit(link, fake_openai)

    assert done.returncode == 0, done.stderr
    assert link.is_symlink()
    assert os.readlink(link) == str(Path("..") / "real" / "shapes.py")
    assert target.read_bytes() == EDITED.encode()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(tmp_path / "real") == [] and leftovers(tmp_path / "links") == []


def test_a_chain_of_links_reaches_the_real_file(tmp_path, fake_openai):
    target = tmp_path / "shapes.py"
    target.write_bytes(SAMPLE.encode())
    (tmp_path / "one.py").symlink_to(target)
    (tmp_path / "two.py").symlink_to(tmp_path / "one.py")
    fake_openai.enqueue(ANSWER)

    done = edit(tmp_path / "two.py", fake_openai)

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "one.py").is_symlink() and (tmp_path / "two.py").is_symlink()
    assert target.read_bytes() == EDITED.encode()


# --- what the file keeps ----------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_utf8_bom_is_kept_and_never_shown_to_the_model(tmp_path, fake_openai, newline):
    path = tmp_path / "bom.py"
    original = "def area(r):\n    return math.pi * r * r\n".replace("\n", newline)
    path.write_bytes(BOM + original.encode())
    fake_openai.enqueue(ANSWER)

    done = edit(path, fake_openai, lines="1-2")

    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == BOM + TYPED.replace("\n", newline).encode()
    assert "\ufeff" not in fake_openai.requests[-1]["messages"][0]["content"]
    assert "\ufeff" not in done.stdout  # the diff shows the real change only
    assert " def area(r):" not in done.stdout and "-def area(r):" in done.stdout


def test_a_file_without_a_bom_gets_none(tmp_path, fake_openai):
    path = tmp_path / "plain.py"
    path.write_bytes(SAMPLE.encode())
    fake_openai.enqueue(ANSWER)

    assert edit(path, fake_openai).returncode == 0
    assert path.read_bytes() == EDITED.encode()


@pytest.mark.parametrize("mode", [0o640, 0o755, 0o600, 0o664])
def test_the_files_permissions_are_kept(tmp_path, fake_openai, mode):
    path = tmp_path / "shapes.py"
    path.write_bytes(SAMPLE.encode())
    path.chmod(mode)
    fake_openai.enqueue(ANSWER)

    done = edit(path, fake_openai, umask=0o077)

    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == EDITED.encode()
    assert stat.S_IMODE(path.stat().st_mode) == mode


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_the_files_owner_is_kept(tmp_path, fake_openai):
    path = tmp_path / "shapes.py"
    path.write_bytes(SAMPLE.encode())
    os.chown(path, 4242, 4343)
    fake_openai.enqueue(ANSWER)

    assert edit(path, fake_openai).returncode == 0
    assert (path.stat().st_uid, path.stat().st_gid) == (4242, 4343)


# --- special-token text in the code (issue 5, defect 1) ---------------------------------

TOKENS_FILE = 'END = "<|im_end|>"\nEOS = "<｜end▁of▁sentence｜>"\nSIZE = 1\n'


@pytest.mark.parametrize("wire_format", ["reasoning_content", "reasoning", "inline"])
def test_special_token_text_in_the_code_is_kept(tmp_path, fake_openai, wire_format):
    path = tmp_path / "tokens.py"
    path.write_bytes(TOKENS_FILE.encode())
    new_code = 'END = "<|im_end|>"\nEOS = "<｜end▁of▁sentence｜>"\nSIZE: int = 1\n'
    # The model leaks a token after its answer, as some servers let it.
    fake_openai.enqueue(
        Reply(
            reasoning="Annotate SIZE.",
            content=f"```python\n{new_code}```<｜end▁of▁sentence｜>",
            format=wire_format,
        )
    )

    done = edit(path, fake_openai, lines="1-3")

    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == new_code.encode()
    assert '-END = "<|im_end|>"' not in done.stdout  # the diff touches SIZE only


def test_an_unchanged_answer_with_a_leaked_token_leaves_the_file(tmp_path, fake_openai):
    path = tmp_path / "tokens.py"
    path.write_bytes(TOKENS_FILE.encode())
    fake_openai.enqueue(
        Reply(reasoning="Nothing to do.", content='END = "<|im_end|>"<｜end▁of▁sentence｜>')
    )

    done = edit(path, fake_openai, lines="1")

    assert done.returncode == 0, done.stderr
    assert "leaves those lines as they were" in one_line(done.stderr)
    assert path.read_bytes() == TOKENS_FILE.encode()


# --- when the file cannot be written ------------------------------------------------


def limit_file_size() -> None:
    """In the child: files may not grow past 64 bytes, so writing the edit fails with
    EFBIG ("File too large"), as on a full disk or quota, even for root."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_a_write_that_fails_says_so_in_one_line_and_changes_nothing(tmp_path, fake_openai):
    path = tmp_path / "shapes.py"
    path.write_bytes(SAMPLE.encode())
    fake_openai.enqueue(ANSWER)

    done = edit(path, fake_openai, preexec_fn=limit_file_size)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    line = one_line(done.stderr)
    assert line == f"ds-lsp: cannot write {path}: File too large; nothing was changed"
    assert path.read_bytes() == SAMPLE.encode()
    assert leftovers(tmp_path) == []


def edit_while(path: Path, server: FakeOpenAIServer, meanwhile, lines: str = "4-5"):
    """Run the edit with a held reply: do `meanwhile()` once the model was asked (while it
    "thinks"), then let it answer. Events, not sleeps: nothing to race against."""
    server.enqueue(Reply(reasoning="Add float hints.", content=f"```python\n{TYPED}```", hold=True))
    child = subprocess.Popen(
        [*edit_command(path, lines), "-i", "add type hints", "--write"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(server.base_url),
    )
    try:
        server.served(0, timeout=60)  # the request has arrived
        meanwhile()
        server.release(0)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)


def test_a_file_removed_while_the_model_works_is_one_line_not_a_traceback(tmp_path, fake_openai):
    path = tmp_path / "shapes.py"
    path.write_bytes(SAMPLE.encode())

    done = edit_while(path, fake_openai, path.unlink)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    line = one_line(done.stderr)
    assert line.startswith(f"ds-lsp: cannot write {path}: ")
    assert line.endswith("; nothing was changed")
    assert not path.exists()
    assert leftovers(tmp_path) == []


def test_a_file_replaced_by_a_folder_meanwhile_is_one_line_not_a_traceback(tmp_path, fake_openai):
    path = tmp_path / "shapes.py"
    path.write_bytes(SAMPLE.encode())

    def replace_by_a_folder():
        path.unlink()
        path.mkdir()

    done = edit_while(path, fake_openai, replace_by_a_folder)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert one_line(done.stderr).startswith(f"ds-lsp: cannot write {path}: ")
    assert path.is_dir() and list(path.iterdir()) == []
