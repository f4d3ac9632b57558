"""Run Python code as a user without privileges, for tests of file permissions.

Root ignores permissions, and CI runs as root: such tests run their command in a subprocess
that drops to uid/gid 65534 ("nobody") when the tests run as root, and skip (with the reason)
when that is impossible (no right to change user, or no Python interpreter that user can run).
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

NOBODY = 65534


def _path_entries() -> str:
    return os.pathsep.join(p for p in sys.path if p and Path(p).is_dir())


@functools.cache
def _interpreter() -> tuple[str | None, str]:
    """A Python that uid 65534 can run with trialfinder importable, or None and why not."""
    candidates = [sys.executable]
    system = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if system is not None:
        candidates.append(system)
    reason = "no Python interpreter that an unprivileged user can run"
    for python in candidates:
        try:
            done = subprocess.run(
                [python, "-c", "import sys, trialfinder.store; print(sys.version_info[:2])"],
                user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True,
                env=_env(), cwd="/", timeout=60,
            )
        except OSError as exc:
            if exc.errno == errno.EPERM:
                return None, "not allowed to switch to an unprivileged user"
            reason = f"cannot run {python} as an unprivileged user: {exc}"
            continue
        if done.returncode == 0 and done.stdout.strip() == str(tuple(sys.version_info[:2])):
            return python, ""
        reason = f"{python} cannot import trialfinder as an unprivileged user"
    return None, reason


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALFINDER_")}
    env.update(PYTHONPATH=_path_entries(), HOME="/nonexistent", PYTHONDONTWRITEBYTECODE="1")
    return env


def run(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code args`` as an unprivileged user (skips the test if impossible)."""
    if os.geteuid() != 0:
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, env=_env(), timeout=timeout)
    python, reason = _interpreter()
    if python is None:
        pytest.skip(f"permission test needs an unprivileged user: {reason}")
    return subprocess.run([python, "-c", code, *args], user=NOBODY, group=NOBODY,
                          extra_groups=[], capture_output=True, text=True, env=_env(),
                          cwd="/", timeout=timeout)


CLI = """
import datetime, sys
from trialfinder import clock
clock.today = lambda: datetime.date(2025, 3, 1)  # as tests/conftest.py
from trialfinder.cli import app
sys.argv = ["trialfinder", *sys.argv[1:]]
app()
"""
"""Code that runs the trialfinder command line with the tests' fixed day."""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`trialfinder ARGS` as an unprivileged user."""
    return run(CLI, *args)


@contextmanager
def shared_folder() -> Iterator[Path]:
    """A fresh folder everybody may enter and read (tmp_path is private to its owner)."""
    folder = Path(tempfile.mkdtemp(prefix="trialfinder-perm-"))
    try:
        folder.chmod(0o755)
        yield folder
    finally:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)
