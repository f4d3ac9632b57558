"""The library a Python user calls: `import trialfinder` is cheap, the entry points resolve,
and calls accept an open store as well as a path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import trialfinder
from conftest import SHARED_ID, UNKNOWN_ID
from trialfinder.store import Store


def test_importing_the_package_loads_no_submodule() -> None:
    """`import trialfinder` imports nothing of its own until an entry point is used."""
    code = (
        "import sys, trialfinder\n"
        "print(sorted(m for m in sys.modules if m.startswith('trialfinder')))\n"
        "print('typing' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["['trialfinder']", "False"]


def test_every_export_resolves_and_names_no_submodule() -> None:
    """Each name in __all__ is a callable from its module, and none hides a submodule."""
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(trialfinder.__path__)}
    exported = set(trialfinder.__all__) - {"__version__"}
    assert exported == set(trialfinder._EXPORTS)
    assert not exported & submodules
    for name in exported:
        assert callable(getattr(trialfinder, name)), name
    assert set(dir(trialfinder)) >= exported
    with pytest.raises(AttributeError):
        trialfinder.no_such_thing  # noqa: B018


def test_the_package_ships_py_typed() -> None:
    """Type checkers read the package's annotations (PEP 561)."""
    assert (Path(trialfinder.__file__).parent / "py.typed").is_file()


def test_library_calls_take_an_open_store_or_a_path(rules_store: Path) -> None:
    """find_nearest, trial_view, load_trial, trial_summary and referral_sheet answer the same
    from a path and from an open Store, which they leave open."""
    with Store(rules_store) as store:
        by_store = trialfinder.find_nearest("75005", SHARED_ID, store, limit=1)
        by_path = trialfinder.find_nearest("75005", SHARED_ID, rules_store, limit=1)
        assert [(r.site.facility, r.rank) for r in by_store.ranked] == [
            (r.site.facility, r.rank) for r in by_path.ranked]
        assert trialfinder.load_trial(UNKNOWN_ID, store) == trialfinder.load_trial(
            UNKNOWN_ID, rules_store)
        summary = trialfinder.trial_summary(UNKNOWN_ID, store)
        assert summary["standing"] == "unknown"
        assert trialfinder.trial_view(SHARED_ID, store).recruitment.recruiting
        assert "Hôpital Saint-Louis" in trialfinder.referral_sheet(SHARED_ID, "Paris", store)
        assert store.get_trial(SHARED_ID) is not None  # still open


def test_without_a_store_the_bundled_record_answers() -> None:
    """db=None: the bundled IMADGIST record, offline."""
    answer = trialfinder.find_nearest("Lyon", "NCT02260505", None, limit=1)
    assert answer.ranked[0].site.facility == "Centre Léon Bérard"
    assert answer.ranked[0].rank == 1
