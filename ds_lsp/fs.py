"""Files ds-lsp writes and reads on its own: inside a root, never through a link.

Every write is atomic (a temporary file in the same folder, fsynced, then renamed
over the old one, then the folder fsynced), so a crash leaves the old file or the
new one, never half of one. A path must lie inside its root (the workspace, the
state folder, the folder of a file the user named), and no folder or file below
the root may be a symbolic link: a repository can ship `.ds-lsp/chat.md` as a
link to `~/.bashrc`, and following it would overwrite that file or send it to
the model. The root itself is the user's choice and may be a link.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from pygls.uris import to_fs_path, uri_scheme


class UnsafePath(OSError):
    """A path ds-lsp refuses to read or write; str() says why, in one line."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def path_of(uri: str) -> Path | None:
    """The file a `file:` URI names (pygls.uris, right for Windows drives too);
    None for any other scheme (untitled:, vscode-notebook-cell:)."""
    if uri_scheme(uri) != "file":
        return None
    path = to_fs_path(uri)
    return Path(path) if path else None


def _normal(path: Path) -> Path:
    return Path(os.path.normpath(os.path.abspath(path)))


def check_inside(path: Path, root: Path) -> Path:
    """`path`, made absolute, if it lies inside `root` and no existing entry between
    them (`path` included) is a symbolic link; else UnsafePath."""
    path, root = _normal(path), _normal(root)
    if not path.is_relative_to(root) or path == root:
        raise UnsafePath(errno.EACCES, f"{path} is outside {root}")
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            break  # nothing below a missing entry can be a link yet
        if stat.S_ISLNK(info.st_mode):
            raise UnsafePath(errno.ELOOP, f"{current} is a symbolic link: not followed")
    return path


def read_text(path: Path, root: Path) -> str | None:
    """The file's text (UTF-8, line breaks as they are), None when it does not exist;
    UnsafePath when it is outside `root` or reached through a link."""
    path = check_inside(path, root)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # made a link since check_inside looked
            raise UnsafePath(errno.ELOOP, f"{path} is a symbolic link") from None
        raise
    with os.fdopen(descriptor, encoding="utf-8", newline="") as file:
        return file.read()


def make_folders(folder: Path, root: Path) -> None:
    """Create `folder` and the folders above it, up to `root`, refusing links."""
    folder = _normal(folder)
    if folder == _normal(root):
        folder.mkdir(parents=True, exist_ok=True)
        return
    check_inside(folder, root)
    folder.mkdir(parents=True, exist_ok=True)
    check_inside(folder, root)  # nobody slipped a link in meanwhile


def atomic_write(path: Path, data: bytes | str, root: Path) -> None:
    """Replace (or create) the file at `path` with `data` (str: UTF-8, line breaks as
    they are) in one step. Refuses (UnsafePath) a path outside `root` or through a
    link. An existing file keeps its permissions and, where allowed, its owner."""
    path = check_inside(path, root)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    make_folders(path.parent, root)
    try:
        old: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        old = None
    if old is not None and not stat.S_ISREG(old.st_mode):
        raise UnsafePath(errno.EISDIR, f"{path} is not a regular file")
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".ds-lsp"
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if old is not None:
            os.chmod(temporary, stat.S_IMODE(old.st_mode))
            _keep_owner(temporary, old)
        else:
            os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(path.parent)


def _keep_owner(temporary: str, old: os.stat_result) -> None:
    if not hasattr(os, "chown") or (old.st_uid, old.st_gid) == (os.geteuid(), os.getegid()):
        return
    with contextlib.suppress(PermissionError):  # only root may give a file away
        os.chown(temporary, old.st_uid, old.st_gid)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; Windows cannot open a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
