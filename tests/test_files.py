"""Writing the user's files: whole or not at all, and never over what is not a file of ours."""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from trialfinder import files
from trialfinder.errors import BadInput, TrialFinderError
from trialfinder.files import store_files, write_output
from trialfinder.store import Store


@pytest.fixture
def umask_022() -> Iterator[None]:
    """A known umask for the test (the process's own is put back)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def no_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything gets as far as writing: refusals come before any write
    (so a regression cannot replace a real device of this machine)."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"write attempted: {args!r}")

    monkeypatch.setattr(files, "_replace", forbidden)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _refusal(path: Path | str, **kwargs: object) -> str:
    with pytest.raises(BadInput) as caught:
        write_output(path, "<html>", **kwargs)  # type: ignore[arg-type]
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- what is written -------------------------------------------------------------------------


def test_new_file_follows_the_umask(tmp_path: Path, umask_022: None) -> None:
    """A new shared file is 0666 less the umask, written whole, no temporary file left."""
    target = tmp_path / "map.html"
    assert write_output(target, "é\n") == target
    assert target.read_bytes() == "é\n".encode()
    assert _mode(target) == 0o644
    assert _names(tmp_path) == ["map.html"]


def test_private_file_is_for_its_owner_alone(tmp_path: Path, umask_022: None) -> None:
    """A file that names the patient's place is created 0600."""
    target = tmp_path / "referral-NCT02260505-lyon-69.html"
    write_output(target, "x", private=True)
    assert _mode(target) == 0o600


def test_a_tighter_umask_still_applies(tmp_path: Path) -> None:
    """The umask is the kernel's to apply: 077 makes a shared map 0600 too."""
    old = os.umask(0o077)
    try:
        write_output(tmp_path / "m.html", "x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "m.html") == 0o600


@pytest.mark.parametrize("private", [False, True])
def test_a_replaced_file_keeps_its_mode(tmp_path: Path, private: bool) -> None:
    """Replacing a file keeps the mode its owner gave it, private or not."""
    target = tmp_path / "m.html"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o640)
    write_output(target, "new", private=private)
    assert target.read_text(encoding="utf-8") == "new"
    assert _mode(target) == 0o640
    assert _names(tmp_path) == ["m.html"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk: one-line error (exit 1), the old file whole, no temporary file left."""
    target = tmp_path / "m.html"
    target.write_text("old", encoding="utf-8")

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(TrialFinderError) as caught:
        write_output(target, "new")
    assert caught.value.exit_code == 1
    assert str(caught.value) == f"Cannot write {target}: No space left on device"
    assert target.read_text(encoding="utf-8") == "old"
    assert _names(tmp_path) == ["m.html"]


def test_a_refused_permission_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder the user may not write (simulated: the suite runs as root in CI) is exit 2."""
    real_open = os.open

    def denied(path: object, flags: int, mode: int = 0o777, **kw: object) -> int:
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(BadInput, match=r": Permission denied$"):
        write_output(tmp_path / "m.html", "x")
    assert _names(tmp_path) == []


# --- symbolic links ----------------------------------------------------------------------------


def test_a_symlink_is_written_through(tmp_path: Path) -> None:
    """The link stays a link; its target is replaced, keeping the target's mode."""
    target = tmp_path / "real" / "m.html"
    target.parent.mkdir()
    target.write_text("old", encoding="utf-8")
    target.chmod(0o600)
    link = tmp_path / "link.html"
    link.symlink_to(target)
    assert write_output(link, "new") == link
    assert link.is_symlink() and link.readlink() == target
    assert target.read_text(encoding="utf-8") == "new"
    assert _mode(target) == 0o600
    assert _names(target.parent) == ["m.html"]


def test_a_chain_of_symlinks_reaches_the_file(tmp_path: Path) -> None:
    """link → link → file: the file is replaced, both links stay."""
    target = tmp_path / "m.html"
    target.write_text("old", encoding="utf-8")
    (tmp_path / "one").symlink_to(target)
    (tmp_path / "two").symlink_to(tmp_path / "one")
    write_output(tmp_path / "two", "new")
    assert target.read_text(encoding="utf-8") == "new"
    assert (tmp_path / "one").is_symlink() and (tmp_path / "two").is_symlink()


def test_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    """A link to a missing file: the file is created where the link points."""
    link = tmp_path / "link.html"
    link.symlink_to("made.html")
    write_output(link, "new")
    assert link.is_symlink()
    assert (tmp_path / "made.html").read_text(encoding="utf-8") == "new"


def test_a_symlink_loop_is_refused(tmp_path: Path, no_write: None) -> None:
    """a → b → a: refused in one line."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert _refusal(tmp_path / "a") == (
        f"Will not write {tmp_path / 'a'}: its symbolic links lead round in a loop"
    )


# --- what is refused ---------------------------------------------------------------------------


def test_a_folder_is_refused(tmp_path: Path, no_write: None) -> None:
    """A folder is not replaced (nor written into)."""
    assert _refusal(tmp_path) == f"Will not write {tmp_path}: it is a folder, not a file"


def test_a_fifo_is_refused(tmp_path: Path, no_write: None) -> None:
    """A named pipe stays a named pipe."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert _refusal(fifo) == f"Will not write {fifo}: it is a named pipe (FIFO), not a file"
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_socket_is_refused(tmp_path: Path, no_write: None) -> None:
    """A listening socket's name stays a socket."""
    name = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(name))
        assert _refusal(name) == f"Will not write {name}: it is a socket, not a file"
    assert stat.S_ISSOCK(name.lstat().st_mode)


@pytest.mark.parametrize("device", ["/dev/null", "/dev/full"])
def test_a_device_is_refused(device: str, no_write: None) -> None:
    """/dev/null and /dev/full (as root they used to become HTML files) are refused."""
    assert _refusal(device) == f"Will not write {device}: it is a character device, not a file"
    assert stat.S_ISCHR(Path(device).stat().st_mode)


def test_a_symlink_to_a_device_is_refused(tmp_path: Path, no_write: None) -> None:
    """Following a link does not reach a device either."""
    link = tmp_path / "out.html"
    link.symlink_to("/dev/null")
    assert _refusal(link).endswith("it is a character device, not a file")


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal", ".lock"])
def test_the_store_and_its_companions_are_refused(
    tmp_path: Path, suffix: str, no_write: None
) -> None:
    """The store, its WAL, shared memory, journal and lock file: refused whether they exist
    now or not (SQLite and sync create them later)."""
    db = tmp_path / "store.sqlite"
    with Store(db):
        pass
    assert _refusal(f"{db}{suffix}", stores=[db]) == (
        f"Will not write {db}{suffix}: it is the trialfinder store, or a file the store keeps "
        "beside it"
    )


def test_the_store_under_another_name_is_refused(tmp_path: Path, no_write: None) -> None:
    """Through a symlink, a relative path or a hard link, the store is still the store."""
    db = tmp_path / "store.sqlite"
    with Store(db):
        pass
    (tmp_path / "link").symlink_to(db)
    os.link(db, tmp_path / "hard")
    for name in (tmp_path / "link", tmp_path / "hard", tmp_path / "." / "store.sqlite-wal"):
        assert "it is the trialfinder store" in _refusal(name, stores=[db])


def test_a_store_reached_through_a_symlinked_db_path_is_refused(
    tmp_path: Path, no_write: None
) -> None:
    """--db given as a link: the files beside its target are protected too."""
    real = tmp_path / "data" / "store.sqlite"
    real.parent.mkdir()
    with Store(real):
        pass
    (tmp_path / "db-link").symlink_to(real)
    assert "it is the trialfinder store" in _refusal(f"{real}-shm", stores=[tmp_path / "db-link"])


def test_any_sqlite_database_is_refused(tmp_path: Path, no_write: None) -> None:
    """Another store (or any SQLite file) is not replaced by a map."""
    other = tmp_path / "other.sqlite"
    with Store(other):
        pass
    assert _refusal(other) == f"Will not write {other}: it is an SQLite database"


def test_a_missing_folder_is_refused_unless_asked(tmp_path: Path, no_write: None) -> None:
    """An explicit output in a folder that does not exist is refused, naming the folder."""
    target = tmp_path / "Dcuments" / "m.html"
    assert _refusal(target) == (
        f"Will not write {target}: the folder {target.parent} does not exist (create it first)"
    )
    assert not target.parent.exists()


def test_the_default_folder_is_created(tmp_path: Path) -> None:
    """create_folder (the maps/ default) makes the missing folders."""
    target = tmp_path / "maps" / "deep" / "m.html"
    write_output(target, "x", create_folder=True)
    assert target.read_text(encoding="utf-8") == "x"


@pytest.mark.parametrize("create_folder", [False, True])
def test_a_file_in_the_way_of_the_folder_is_refused(
    tmp_path: Path, create_folder: bool, no_write: None
) -> None:
    """maps/ is a file: refused in one line, the file untouched."""
    (tmp_path / "maps").write_text("mine", encoding="utf-8")
    message = _refusal(tmp_path / "maps" / "m.html", create_folder=create_folder)
    assert message.startswith(f"Will not write {tmp_path / 'maps' / 'm.html'}: ")
    assert (tmp_path / "maps").read_text(encoding="utf-8") == "mine"


def test_store_files_lists_every_companion(tmp_path: Path) -> None:
    """store_files names the database, its SQLite companions and the sync's lock."""
    db = tmp_path / "s.sqlite"
    assert store_files(db) == {f"{db}{s}" for s in ("", "-wal", "-shm", "-journal", ".lock")}
    assert store_files(None) == set() and store_files(":memory:") == set()
