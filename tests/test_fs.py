"""Files ds-lsp writes on its own: atomic, inside their root, never through a link."""

from __future__ import annotations

import os
import stat

import pytest

from ds_lsp import fs


def test_a_write_creates_the_folders_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "state" / "chats" / "chat.md"

    fs.atomic_write(target, "## You\r\n\r\n", root=tmp_path)

    assert target.read_bytes() == b"## You\r\n\r\n"  # line breaks as they were
    assert os.listdir(target.parent) == ["chat.md"]
    assert fs.read_text(target, root=tmp_path) == "## You\r\n\r\n"


def test_a_rewrite_keeps_the_files_permissions(tmp_path):
    target = tmp_path / "chat.md"
    target.write_text("old")
    target.chmod(0o600)

    fs.atomic_write(target, "new", root=tmp_path)

    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_missing_file_reads_as_none(tmp_path):
    assert fs.read_text(tmp_path / "nothing.md", root=tmp_path) is None


@pytest.mark.parametrize("link", ["file", "folder"])
def test_a_link_below_the_root_is_never_followed(tmp_path, link):
    secret = tmp_path / "home" / ".bashrc"
    secret.parent.mkdir()
    secret.write_text("export SECRET=1\n")
    root = tmp_path / "repo"
    if link == "file":
        (root / ".ds-lsp").mkdir(parents=True)
        (root / ".ds-lsp" / "chat.md").symlink_to(secret)
    else:
        root.mkdir()
        (root / ".ds-lsp").symlink_to(secret.parent)
    chat = root / ".ds-lsp" / ("chat.md" if link == "file" else ".bashrc")

    with pytest.raises(fs.UnsafePath, match="symbolic link"):
        fs.atomic_write(chat, "overwritten", root=root)
    with pytest.raises(fs.UnsafePath, match="symbolic link"):
        fs.read_text(chat, root=root)
    assert secret.read_text() == "export SECRET=1\n"


def test_the_root_itself_may_be_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "state").symlink_to(tmp_path / "real")

    fs.atomic_write(tmp_path / "state" / "chat.md", "x", root=tmp_path / "state")

    assert (tmp_path / "real" / "chat.md").read_text() == "x"


@pytest.mark.parametrize("path", ["../outside.md", "a/../../outside.md", ""])
def test_a_path_outside_its_root_is_refused(tmp_path, path):
    root = tmp_path / "root"
    root.mkdir()

    with pytest.raises(fs.UnsafePath):
        fs.atomic_write(root / path, "x", root=root)
    assert not (tmp_path / "outside.md").exists()


def test_file_uris_become_paths_and_other_schemes_none():
    assert str(fs.path_of("file:///home/me/a%20b.py")) == "/home/me/a b.py"
    assert str(fs.path_of("file:///c%3A/Users/me/a.py")) == "c:/Users/me/a.py"
    assert fs.path_of("untitled:Untitled-1") is None
