"""Writing the files a user keeps (maps, referral sheets): whole or not at all, and only
where a file of ours belongs.

`write_output` is the one way every command writes a file. It writes a temporary file beside
the target and renames it over the target, so an interrupted write leaves the previous file
untouched. Because a rename replaces whatever has the name, it first refuses every target
that is not a regular file or a new name: a folder, a device (``/dev/null``, ``/dev/full``),
a named pipe, a socket, the store and the files SQLite and `sync` keep beside it, or any
other SQLite database. A symbolic link is followed: its target is replaced (and created if
the link dangles), keeping the target's permissions. An explicit output in a folder that
does not exist is refused rather than created: a mistyped folder name would otherwise leave a
stray tree of folders behind, silently (``cp`` and the shell refuse the same way); the
default folders (``maps/``) are created.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from trialfinder.errors import BadInput, TrialFinderError
from trialfinder.i18n import _

PRIVATE_MODE = 0o600
"""A new file that names or shows the patient's place: readable by its owner alone."""
SHARED_MODE = 0o666
"""Any other new file: what the umask leaves of read-write for all (0644 with umask 022)."""
STORE_COMPANIONS = ("", "-wal", "-shm", "-journal", ".lock")
"""The store's own file, SQLite's write-ahead log, shared memory and rollback journal, and
the lock file `trialfinder.sync.store_lock` keeps beside it."""
_SQLITE_MAGIC = b"SQLite format 3\x00"
_DISK_TROUBLE = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG}


def write_output(
    path: str | os.PathLike[str],
    text: str,
    *,
    private: bool = False,
    stores: Iterable[str | os.PathLike[str] | None] = (),
    create_folder: bool = False,
) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return ``path`` as given.

    ``private``: a new file is created 0600 (it names or shows the patient's place), else
    0666 less the umask; a file replaced keeps its own mode (and, when we may, its owner).
    ``stores``: store paths whose files must never be written (their companions too).
    ``create_folder``: create a missing parent folder (default locations only).

    Refusals are `BadInput` (exit 2) with one line naming the path and the reason; a full
    disk or an I/O error is a `TrialFinderError` (exit 1). Nothing is left behind on failure.
    """
    shown = os.fspath(path)
    target, existing = _check_target(shown, stores, create_folder)
    try:
        _replace(target, text.encode("utf-8"), private=private, existing=existing)
    except OSError as exc:
        raise _write_error(shown, exc) from None
    return Path(shown)


def store_files(store: str | os.PathLike[str] | None) -> set[str]:
    """Every name the store at ``store`` may use, as absolute paths (the name given and the
    one its symbolic links lead to): the database, its SQLite companions and its lock."""
    if store is None or os.fspath(store) in ("", ":memory:"):
        return set()
    given = Path(store).expanduser()
    bases = {str(given.absolute()), str(given.resolve())}
    return {base + suffix for base in bases for suffix in STORE_COMPANIONS}


# --- checks ------------------------------------------------------------------------------


def _loop_message() -> str:
    return _("Will not write {path}: its symbolic links lead round in a loop")


def _not_a_folder_message() -> str:
    return _("Will not write {path}: {folder} is not a folder")


def _refuse(message: str, shown: str, **values: object) -> BadInput:
    return BadInput(message.format(path=shown, **values))


def _not_a_file(kind: int) -> str:
    return {
        stat.S_IFDIR: _("Will not write {path}: it is a folder, not a file"),
        stat.S_IFCHR: _("Will not write {path}: it is a character device, not a file"),
        stat.S_IFBLK: _("Will not write {path}: it is a block device, not a file"),
        stat.S_IFIFO: _("Will not write {path}: it is a named pipe (FIFO), not a file"),
        stat.S_IFSOCK: _("Will not write {path}: it is a socket, not a file"),
    }.get(kind, _("Will not write {path}: it is not a regular file"))


def _check_target(
    shown: str, stores: Iterable[str | os.PathLike[str] | None], create_folder: bool
) -> tuple[str, os.stat_result | None]:
    """The real path to write (a symbolic link followed) and its current state (None for a
    new name), or a refusal."""
    if not shown.strip():
        raise BadInput(_("No output file given"))
    try:
        target = str(Path(shown).resolve())  # every symbolic link followed
    except (RuntimeError, OSError):  # Python < 3.13 raises RuntimeError for a loop
        raise _refuse(_loop_message(), shown) from None
    try:
        existing: os.stat_result | None = os.lstat(target)
    except FileNotFoundError:
        existing = None
    except NotADirectoryError:
        raise _refuse(_("Will not write {path}: a folder on its path is a file"), shown
                      ) from None
    except OSError as exc:
        raise _write_error(shown, exc) from None

    protected = set().union(*(store_files(s) for s in stores))
    if existing is not None:
        kind = stat.S_IFMT(existing.st_mode)
        if kind == stat.S_IFLNK:
            raise _refuse(_loop_message(), shown)
        if kind != stat.S_IFREG:
            raise _refuse(_not_a_file(kind), shown)
    if target in protected or (existing is not None and _same_as_any(existing, protected)):
        raise _refuse(_("Will not write {path}: it is the trialfinder store, or a file the "
                        "store keeps beside it"), shown)
    if existing is not None and _is_sqlite(target):
        raise _refuse(_("Will not write {path}: it is an SQLite database"), shown)
    if existing is None:
        _check_folder(shown, Path(target).parent, create_folder)
    return target, existing


def _same_as_any(existing: os.stat_result, names: Iterable[str]) -> bool:
    """Whether the file is one of ``names`` under another name (a hard link)."""
    for name in names:
        try:
            other = Path(name).stat()
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (existing.st_dev, existing.st_ino):
            return True
    return False


def _is_sqlite(target: str) -> bool:
    try:
        with Path(target).open("rb") as file:
            return file.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False  # unreadable: the write itself will say why, if it fails


def _check_folder(shown: str, folder: Path, create: bool) -> None:
    try:
        if folder.is_dir():
            return
        if folder.is_symlink() or folder.exists():
            raise _refuse(_not_a_folder_message(), shown, folder=folder)
        if not create:
            raise _refuse(_("Will not write {path}: the folder {folder} does not exist "
                            "(create it first)"), shown, folder=folder)
        folder.mkdir(parents=True, exist_ok=True)
    except BadInput:
        raise
    except FileExistsError:
        raise _refuse(_not_a_folder_message(), shown, folder=folder) from None
    except OSError as exc:
        raise _write_error(shown, exc) from None


def _write_error(shown: str, exc: OSError) -> TrialFinderError:
    message = _("Cannot write {path}: {reason}").format(path=shown,
                                                        reason=exc.strerror or str(exc))
    return TrialFinderError(message) if exc.errno in _DISK_TROUBLE else BadInput(message)


# --- the write ---------------------------------------------------------------------------


def _replace(target: str, data: bytes, *, private: bool, existing: os.stat_result | None) -> None:
    folder, name = Path(target).parent, Path(target).name
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    # The kernel applies the umask to this mode: that is how "follow the umask" is done
    # without reading the umask (which only changing it can do).
    mode = PRIVATE_MODE if private else SHARED_MODE
    while True:
        temporary = folder / f".{name[:200]}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temporary, flags, mode)
            break
        except FileExistsError:
            continue
    try:
        try:
            if existing is not None:
                _keep_mode_and_owner(fd, existing)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        temporary.replace(target)  # atomic within one folder
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _sync_folder(folder)


def _keep_mode_and_owner(fd: int, existing: os.stat_result) -> None:
    os.fchmod(fd, stat.S_IMODE(existing.st_mode))
    if (existing.st_uid, existing.st_gid) != (os.geteuid(), os.getegid()):
        # Root replacing a user's file gives it back to the user; others cannot, and the
        # file is then theirs (as any editor's save by rename does).
        with contextlib.suppress(OSError):
            os.fchown(fd, existing.st_uid, existing.st_gid)
            os.fchmod(fd, stat.S_IMODE(existing.st_mode))  # chown clears setuid/setgid bits


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
