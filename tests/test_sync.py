"""Registry sync end to end: a real HTTP server on 127.0.0.1 replays registry answers.

The NCT02260505 answers are BUILT fixtures (see tests/fixtures/ctgov/PROVENANCE.md); the
search page is a recorded one. Failures (network down, 500s, truncated bodies, a process
killed mid-write, a second sync at the same time) must never lose the previous record.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from seed_listing import seed_listing_trial
from trialfinder.cli import app
from trialfinder.errors import StoreBusy
from trialfinder.models import Status
from trialfinder.records import load_trial
from trialfinder.registry import RegistryClient
from trialfinder.resources import data_path
from trialfinder.store import ChangeKind, Store
from trialfinder.sync import store_lock, sync

FIXTURES = Path(__file__).parent / "fixtures" / "ctgov"
NCT = "NCT02260505"
V1 = (FIXTURES / "built_NCT02260505_v1.json").read_text(encoding="utf-8")
V2 = (FIXTURES / "built_NCT02260505_v2.json").read_text(encoding="utf-8")
SEARCH = (FIXTURES / "search_page_2studies_nextPageToken.json").read_text(encoding="utf-8")
LISTINGS = {NCT: seed_listing_trial()}


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    # Threaded: a handler that blocks (a slow registry) must not stall the other requests.
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    yield srv
    srv.clear()
    if srv.is_running():
        srv.stop()


def base_url(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def client(server: HTTPServer | str) -> RegistryClient:
    url = server if isinstance(server, str) else base_url(server)
    return RegistryClient(url, max_retries=1, sleep=lambda _s: None, timeout=(2.0, 5.0))


def serve(server: HTTPServer, body: str, status: int = 200) -> None:
    server.clear()
    server.expect_request(f"/studies/{NCT}").respond_with_data(
        body, status=status, content_type="application/json"
    )


def run(server: HTTPServer, db: Path, *ids: str, **kw: object):  # type: ignore[no-untyped-def]
    with client(server) as c:
        return sync(ids or (NCT,), store_path=db, client=c,
                    listing_records=kw.pop("listing_records", LISTINGS), **kw)  # type: ignore[arg-type]


def test_sync_v1_then_v2_records_the_changes(server: HTTPServer, tmp_path: Path) -> None:
    """First sync stores the trial; the next one records a site closed and a site removed."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    first = run(server, db, now="2024-01-10T08:00:00+00:00")
    assert [t.summary() for t in first.trials] == [f"{NCT} new: 16 sites"]
    assert first.ok and first.exit_code == 0
    trial = load_trial(NCT, db)
    assert trial.source.kind == "registry"
    assert len(trial.sites) == 16 and all(s.listing_match for s in trial.sites)
    with Store(db) as store:
        assert store.get_raw(NCT) == V1  # the text as received

    serve(server, V1)
    again = run(server, db, now="2024-02-10T08:00:00+00:00")
    assert [t.summary() for t in again.trials] == [f"{NCT} unchanged"]

    serve(server, V2)
    second = run(server, db, now="2024-03-16T08:00:00+00:00")
    assert [t.summary() for t in second.trials] == [
        f"{NCT} updated: 1 site status changed, 1 site removed"
    ]
    with Store(db) as store:
        changes = store.changes(NCT, since="2024-03-01")
    assert [c.describe() for c in changes] == [
        "2024-03-16 NCT02260505: Centre Léon Bérard: Recruiting → Active, not recruiting",
        "2024-03-16 NCT02260505: site removed: Hôpital Saint-Antoine (was Recruiting)",
    ]
    updated = load_trial(NCT, db)
    clb = next(s for s in updated.sites if s.facility == "Centre Léon Bérard")
    assert clb.status is Status.ACTIVE_NOT_RECRUITING
    saint_antoine = [s for s in updated.sites if "Saint-Antoine" in s.facility]
    assert [(s.listing_only, s.status) for s in saint_antoine] == [(True, Status.UNKNOWN)]


@pytest.mark.parametrize(
    ("respond", "reason"),
    [
        ("500", "answered 500"),
        ("truncated", "unreadable"),
        ("down", "NCT02260505 failed: "),
    ],
)
def test_failures_keep_the_previous_record(
    server: HTTPServer, tmp_path: Path, respond: str, reason: str
) -> None:
    """Registry erroring, a truncated body or no network: failed, and v1 stays intact."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    run(server, db)
    before = load_trial(NCT, db)
    if respond == "500":
        serve(server, "Internal Server Error", status=500)
    elif respond == "truncated":
        serve(server, V2[: len(V2) // 2])
    else:
        server.stop()
    report = run(server, db)
    (outcome,) = report.trials
    assert outcome.outcome == "failed"
    assert reason in outcome.summary()
    assert "\n" not in outcome.summary()
    assert report.exit_code == 1
    assert load_trial(NCT, db) == before


def test_one_failure_does_not_stop_the_others(server: HTTPServer, tmp_path: Path) -> None:
    """An unknown trial fails; the next one is still stored."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    server.expect_request("/studies/NCT00000001").respond_with_data(
        "Study not found", status=404, content_type="text/plain"
    )
    report = run(server, db, "NCT00000001", NCT)
    assert [t.summary() for t in report.trials] == [
        f"NCT00000001 failed: No study NCT00000001 in ClinicalTrials.gov (at {base_url(server)})",
        f"{NCT} new: 16 sites",
    ]
    with Store(db) as store:
        assert store.trial_ids() == [NCT]
        assert store.last_sync()[3] == "partial"  # type: ignore[index]


@pytest.mark.parametrize(("in_child", "keep_raw"), [(True, False), (False, False),
                                                    (True, True), (False, True)],
                         ids=["child-process", "in-process", "child-raw", "in-process-raw"])
def test_condition_search_stores_every_study(
    server: HTTPServer, tmp_path: Path, in_child: bool, keep_raw: bool
) -> None:
    """--condition stores each study of the search from the page itself (no refetch), read
    in a child process or in this one alike; with keep_raw, each study's text as served."""
    db = tmp_path / "store.sqlite"
    page = json.loads(SEARCH)
    page.pop("nextPageToken", None)  # one page only
    served = json.dumps(page, indent="\t", ensure_ascii=False)
    server.expect_request("/studies").respond_with_data(served, content_type="application/json")
    progress: list[tuple[str, int, int | None]] = []
    with client(server) as c:
        report = sync([], store_path=db, client=c, listing_records={}, condition="cancer",
                      country="France", in_child=in_child, keep_raw=keep_raw,
                      on_progress=lambda o, done, total: progress.append((o.nct_id, done, total)))
    ids = [s["protocolSection"]["identificationModule"]["nctId"] for s in page["studies"]]
    assert [t.nct_id for t in report.trials] == ids
    assert all(t.outcome == "new" for t in report.trials)
    assert [p[:2] for p in progress] == [(ids[0], 1), (ids[1], 2)]
    (request, _response), = server.log
    assert request.args["query.cond"] == "cancer"
    assert request.args["query.locn"] == "France"
    with Store(db) as store:
        assert store.trial_ids() == sorted(ids)
        if keep_raw:
            for nct in ids:
                raw = store.get_raw(nct)
                assert raw is not None  # the study as decoded, re-encoded
                assert json.loads(raw) == next(
                    s for s in page["studies"]
                    if s["protocolSection"]["identificationModule"]["nctId"] == nct)
        else:
            assert store.get_raw(ids[0]) is None
        # The store keeps the search index current through every write of the sync.
        assert store.search_index_ready


class FakeSearch:
    """A registry whose search yields the recorded page's studies, then misbehaves."""

    def __init__(self, then: str) -> None:
        self.studies = json.loads(SEARCH)["studies"]
        self.then = then

    def get_study_text(self, nct_id: str) -> tuple[dict, str]:
        raise AssertionError("a search never refetches")

    def search(self, **kwargs: object) -> Iterator[dict]:
        return FakePages(self._studies(**kwargs))

    def _studies(self, **kwargs: object) -> Iterator[dict]:
        yield self.studies[0]
        if self.then == "exit":
            os._exit(3)  # the child dies as if killed (out of memory …)
        if self.then == "bug":
            raise RuntimeError("boom")
        if self.then == "lock":
            try:
                os.fstat(int(kwargs["condition"]))  # type: ignore[arg-type]
            except OSError:
                yield self.studies[1]  # closed in the child: proves it
        else:
            yield self.studies[1]


class FakePages:
    """Like StudySearch: says when nothing is buffered (a page ends, one study per page)."""

    buffered = 0

    def __init__(self, studies: Iterator[dict]) -> None:
        self._studies = studies

    def __iter__(self) -> FakePages:
        return self

    def __next__(self) -> dict:
        return next(self._studies)


@pytest.mark.parametrize(("then", "error"), [
    ("exit", "search failed: the process reading the registry stopped unexpectedly "
             "(exit code 3)"),
    ("bug", "search failed: reading the registry failed: RuntimeError: boom"),
])
def test_search_child_that_dies_is_reported_and_keeps_what_arrived(
    tmp_path: Path, then: str, error: str
) -> None:
    """A child process that dies or hits a bug: one failed outcome, the studies it sent
    before are stored, and the run ends normally (exit code 1)."""
    db = tmp_path / "store.sqlite"
    report = sync([], store_path=db, client=FakeSearch(then), listing_records={},
                  condition="x", in_child=True)
    first = FakeSearch(then).studies[0]["protocolSection"]["identificationModule"]["nctId"]
    assert [t.summary() for t in report.trials] == [f"{first} new: 1 site", error]
    assert report.exit_code == 1
    with Store(db) as store:
        assert store.trial_ids() == [first]
        assert store.last_sync()[3] == "partial"  # type: ignore[index]


def test_search_child_does_not_hold_the_store_lock(tmp_path: Path) -> None:
    """The child closes its copy of the lock file, so a dead parent never leaves the lock
    held by an orphaned child."""
    from trialfinder.sync import _from_child, _prepared_search

    with store_lock(tmp_path / "store.sqlite") as fd:
        assert fd is not None
        items = list(_from_child(
            lambda: _prepared_search(FakeSearch("lock"), condition=str(fd), country=None,
                                     page_size=10, listing_records={}, now=None, skip=set()),
            fd,
        ))
        os.fstat(fd)  # still open here
    assert [type(i).__name__ for i in items] == ["_SearchTotal", "_Prepared", "_Prepared"]


def test_bundled_listing_is_merged_by_default(server: HTTPServer, tmp_path: Path) -> None:
    """Without listing_records, the bundled listing record of the trial is merged in."""
    if not data_path(f"trials/{NCT}.json").is_file():
        pytest.skip("bundled record not built yet")
    serve(server, V1)
    with client(server) as c:
        sync([NCT], store_path=tmp_path / "s.sqlite", client=c)
    trial = load_trial(NCT, tmp_path / "s.sqlite")
    assert len(trial.sites) == 16 and all(s.listing_match for s in trial.sites)


def test_second_sync_waits_then_gives_up(tmp_path: Path) -> None:
    """While one sync holds the store, another waits lock_timeout seconds, then StoreBusy."""
    db = tmp_path / "store.sqlite"
    with store_lock(db):
        started = time.monotonic()
        with pytest.raises(StoreBusy) as caught:
            sync([NCT], store_path=db, client=client("http://127.0.0.1:9"), lock_timeout=0.4)
        assert time.monotonic() - started >= 0.4
    assert str(caught.value) == (
        f"Another trialfinder sync is running on {db}; try again later"
    )
    assert caught.value.exit_code == 75


SLOW_SYNC = """
import datetime, sys
from trialfinder import clock
from trialfinder.registry import RegistryClient
clock.today = lambda: datetime.date(2025, 3, 1)  # as tests/conftest.py
from trialfinder.sync import sync
db, url = sys.argv[1], sys.argv[2]
with RegistryClient(url, timeout=(5.0, 60.0)) as client:
    report = sync(["NCT02260505"], store_path=db, client=client, listing_records={})
print(report.trials[0].summary())
"""

KILLED_IN_TRANSACTION = """
import os, signal, sys
from trialfinder import store
from trialfinder.registry import RegistryClient
from trialfinder.sync import sync

original = store.Store._insert_sites

def insert_then_die(self, nct, sites):
    original(self, nct, sites)  # old sites deleted, new ones half written: then SIGKILL
    os.kill(os.getpid(), signal.SIGKILL)

store.Store._insert_sites = insert_then_die
with RegistryClient(sys.argv[2]) as client:
    sync(["NCT02260505"], store_path=sys.argv[1], client=client, listing_records={})
"""


def slow_study(started: threading.Event, release: threading.Event):  # type: ignore[no-untyped-def]
    """A registry that sends half the answer, then hangs until released."""

    def handler(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            data = V2.encode()
            yield data[: len(data) // 2]
            started.set()
            release.wait(30)
            yield data[len(data) // 2:]

        return Response(body(), content_type="application/json",
                        headers={"Content-Length": str(len(V2.encode()))})

    return handler


def spawn(script: str, db: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, str(db), url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_sync_exits_75_then_first_finishes(server: HTTPServer, tmp_path: Path) -> None:
    """A cron sync started while another runs exits 75 at once its wait is over; the first
    one completes normally."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    run(server, db, listing_records={})
    started, release = threading.Event(), threading.Event()
    server.clear()
    server.expect_request(f"/studies/{NCT}").respond_with_handler(slow_study(started, release))
    first = spawn(SLOW_SYNC, db, base_url(server))
    try:
        assert started.wait(20), first.stderr.read() if first.stderr else ""
        env = {"TRIALFINDER_REGISTRY_URL": base_url(server)}
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("trialfinder.sync.LOCK_TIMEOUT", 0.5)
            result = CliRunner().invoke(app, ["sync", "--db", str(db)], env=env)
        assert result.exit_code == 75
        assert result.stderr == (
            f"Error: Another trialfinder sync is running on {db}; try again later\n"
        )
        assert result.stdout == ""
    finally:
        release.set()
    out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert out.strip() == f"{NCT} updated: 1 site status changed, 1 site removed"


def test_killed_while_the_registry_answers(server: HTTPServer, tmp_path: Path) -> None:
    """A sync killed while the answer streams in leaves the store as it was, and unlocked."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    run(server, db)
    before = load_trial(NCT, db)
    started, release = threading.Event(), threading.Event()
    server.clear()
    server.expect_request(f"/studies/{NCT}").respond_with_handler(slow_study(started, release))
    child = spawn(SLOW_SYNC, db, base_url(server))
    try:
        assert started.wait(20)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        release.set()
    assert child.returncode == -signal.SIGKILL
    assert load_trial(NCT, db) == before
    serve(server, V1)
    assert run(server, db).trials[0].outcome == "unchanged"  # the lock died with the process


def test_killed_inside_the_transaction(server: HTTPServer, tmp_path: Path) -> None:
    """SIGKILL between the first and the last row of a write: the old record is intact."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    run(server, db, listing_records={})
    before = load_trial(NCT, db)
    serve(server, V2)
    child = spawn(KILLED_IN_TRANSACTION, db, base_url(server))
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert os.path.exists(f"{db}-wal")  # noqa: PTH110 - the WAL the dead process left
    with Store(db) as store:
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert store._db.execute("SELECT count(*) FROM sites").fetchone()[0] == 16
        assert [c.kind for c in store.changes()] == [ChangeKind.TRIAL_ADDED]
    assert load_trial(NCT, db) == before
    report = run(server, db, listing_records={})
    assert report.trials[0].summary() == f"{NCT} updated: 1 site status changed, 1 site removed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_sync_and_changes(server: HTTPServer, tmp_path: Path) -> None:
    """`trialfinder sync` prints one line a trial for cron; `changes` lists the history."""
    db = tmp_path / "store.sqlite"
    serve(server, V1)
    runner = CliRunner()
    url = base_url(server)
    first = runner.invoke(app, ["sync", "--db", str(db), "--registry-url", url])
    assert (first.exit_code, first.stdout, first.stderr) == (0, f"{NCT} new: 16 sites\n", "")
    serve(server, V2)
    second = runner.invoke(app, ["sync", NCT, "--db", str(db), "--registry-url", url, "--json"])
    assert second.exit_code == 0
    summary = json.loads(second.stdout)
    assert summary["ok"] is True
    assert summary["counts"] == {"new": 0, "updated": 1, "unchanged": 0, "failed": 0}
    assert summary["trials"][0]["changes"] == {"site_removed": 1, "site_status_changed": 1}

    changes = runner.invoke(app, ["changes", "--db", str(db), "--trial", NCT.lower()])
    assert changes.exit_code == 0
    lines = changes.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("NCT02260505: trial added (Recruiting)")
    assert lines[1].endswith("Centre Léon Bérard: Recruiting → Active, not recruiting")
    assert lines[2].endswith("site removed: Hôpital Saint-Antoine (was Recruiting)")
    as_json = runner.invoke(app, ["changes", "--db", str(db), "--json", "--since", "2000-01-01"])
    assert [c["kind"] for c in json.loads(as_json.stdout)] == [
        "trial_added", "site_status_changed", "site_removed"]
    future = runner.invoke(app, ["changes", "--db", str(db), "--since", "2999-01-01"])
    assert future.stdout == "No changes recorded.\n"
    bad = runner.invoke(app, ["changes", "--db", str(db), "--since", "yesterday"])
    assert (bad.exit_code, bad.stderr) == (
        2, "Error: 'yesterday' is not a date (expected YYYY-MM-DD)\n")


def test_cli_sync_failure_exits_1_with_one_line(tmp_path: Path) -> None:
    """With the registry unreachable, sync says why in one line and exits 1."""
    db = tmp_path / "store.sqlite"
    url = f"http://127.0.0.1:{free_port()}"
    # A 1 s bound leaves no time for a retry: no real backoff waits in the test.
    result = CliRunner().invoke(app, ["sync", "--db", str(db), "--registry-url", url],
                                env={"TRIALFINDER_REGISTRY_GIVE_UP": "1"})
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"{NCT} failed: ")


def _two_pages(server: HTTPServer, second: object = None) -> list[str]:
    """Page 1: the recorded two-study page (with its token); page 2: one more study, or
    ``second`` (a handler) when given."""
    page = json.loads(SEARCH)
    token = page["nextPageToken"]
    extra = json.loads(V1)
    server.expect_request("/studies", query_string={"query.cond": "cancer",
                                                   "pageSize": "100", "countTotal": "true"}
                          ).respond_with_json(page)
    if second is None:
        server.expect_request("/studies").respond_with_json({"studies": [extra]})
    else:
        server.expect_request("/studies").respond_with_handler(second)  # type: ignore[arg-type]
    return [s["protocolSection"]["identificationModule"]["nctId"] for s in page["studies"]] + [
        extra["protocolSection"]["identificationModule"]["nctId"]] + [token]


def test_cli_search_sync_in_a_child_process(server: HTTPServer, tmp_path: Path) -> None:
    """The real command in its own (single-threaded) process reads the search in a forked
    child: same lines, same store, the search index built."""
    db = tmp_path / "store.sqlite"
    *ids, _token = _two_pages(server)
    done = subprocess.run(
        [sys.executable, "-m", "trialfinder.cli", "sync", "--condition", "cancer", "--db",
         str(db), "--registry-url", base_url(server)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "TRIALFINDER_DEBUG": "1"},
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        f"{ids[0]} new: 1 site", f"{ids[1]} new: 26 sites", f"{ids[2]} new: 16 sites"]
    with Store(db) as store:
        assert store.trial_ids() == sorted(ids)
        assert store.search_index_ready
        assert store.last_sync()[3] == "ok"  # type: ignore[index]


WRITER_THEN_SLOW_PAGE = """
import os, sys
from trialfinder.registry import RegistryClient
from trialfinder.sync import sync
db, url = sys.argv[1], sys.argv[2]
with RegistryClient(url, timeout=(5.0, 60.0), min_interval=0) as client:
    sync([], store_path=db, client=client, listing_records={}, condition="cancer")
"""


def test_killed_writer_leaves_no_reader_behind(server: HTTPServer, tmp_path: Path) -> None:
    """The writer killed while its reader child waits for page 2: what was written stays,
    the child exits as soon as it has something to send, and the store is not locked."""
    db = tmp_path / "store.sqlite"
    started, release = threading.Event(), threading.Event()

    def slow(request: Request) -> Response:
        started.set()
        release.wait(30)
        return Response(json.dumps({"studies": [json.loads(V1)]}), mimetype="application/json")

    *ids, _token = _two_pages(server, slow)
    writer = spawn(WRITER_THEN_SLOW_PAGE, db, base_url(server))
    try:
        assert started.wait(30)
        deadline = time.monotonic() + 10
        written: list[str] = []
        while time.monotonic() < deadline and len(written) < 2:  # page 1 written
            with Store(db) as store:
                written = store.trial_ids()
            time.sleep(0.05)
        assert written == sorted(ids[:2])  # sent before the child waited on page 2
        readers = subprocess.run(["pgrep", "-P", str(writer.pid)], capture_output=True,
                                 text=True).stdout.split()
        assert len(readers) == 1
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    finally:
        release.set()
    reader = int(readers[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(reader):
        time.sleep(0.05)
    assert not _running(reader)
    with Store(db) as store:
        assert store.trial_ids() == sorted(ids[:2])
    with store_lock(db, timeout=0.5):
        pass  # nobody holds it


def _running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may be slow to reap orphans)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.parametrize("keep_raw", [True, False])
def test_cli_keep_raw(server: HTTPServer, tmp_path: Path, keep_raw: bool) -> None:
    """`sync --condition … --keep-raw` keeps each result's JSON as served; without it, none."""
    db = tmp_path / "store.sqlite"
    *ids, _token = _two_pages(server)
    result = CliRunner().invoke(app, ["sync", "--condition", "cancer", "--db", str(db),
                                      "--registry-url", base_url(server),
                                      *(["--keep-raw"] if keep_raw else [])])
    assert (result.exit_code, result.stderr) == (0, "")
    assert len(result.stdout.splitlines()) == 3
    with Store(db) as store:
        raws = [store.get_raw(n) for n in ids]
    if keep_raw:
        assert all(r is not None and json.loads(r)["protocolSection"]["identificationModule"]
                   ["nctId"] == n for r, n in zip(raws, ids, strict=True))
    else:
        assert raws == [None, None, None]


def test_client_still_works_after_a_search_read_in_a_child(server: HTTPServer,
                                                           tmp_path: Path) -> None:
    """The child drops the connections it inherited (after_fork) and opens its own; the
    parent's client, which fetched by id before the fork, keeps working afterwards."""
    db = tmp_path / "store.sqlite"
    *ids, _token = _two_pages(server)
    server.expect_request(f"/studies/{NCT}").respond_with_data(V1,
                                                               content_type="application/json")
    with client(server) as c:
        c.min_interval = 0
        report = sync([NCT], store_path=db, client=c, listing_records={}, condition="cancer",
                      in_child=True)
        # NCT02260505 is also on page 2: fetched by id once, then skipped by the search.
        assert [(t.nct_id, t.outcome) for t in report.trials] == [
            (NCT, "new"), (ids[0], "new"), (ids[1], "new")]
        study, _raw = c.get_study_text(NCT)  # the parent's pooled connection still serves
    assert study["protocolSection"]["identificationModule"]["nctId"] == NCT


def test_after_fork_empties_the_connection_pool() -> None:
    from trialfinder.registry import RegistryClient

    with RegistryClient("http://127.0.0.1:9") as c:
        adapter = c._session.get_adapter("http://127.0.0.1:9/")
        adapter.poolmanager.connection_from_url("http://127.0.0.1:9/")
        assert len(adapter.poolmanager.pools) == 1
        c.after_fork()
        assert len(adapter.poolmanager.pools) == 0


def test_keep_raw_without_a_search_is_a_usage_error(tmp_path: Path) -> None:
    """--keep-raw only changes --condition results: alone, it is refused in one line."""
    result = CliRunner().invoke(app, ["sync", NCT, "--keep-raw", "--db",
                                      str(tmp_path / "s.sqlite")])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == ("Error: --keep-raw is for --condition results (a trial named by "
                             "id always keeps its JSON)\n")
    assert not (tmp_path / "s.sqlite").exists()


def test_empty_condition_is_a_usage_error(tmp_path: Path) -> None:
    """An empty --condition is refused before anything is fetched or stored."""
    result = CliRunner().invoke(app, ["sync", "--condition", "  ", "--db",
                                      str(tmp_path / "s.sqlite"), "--registry-url",
                                      "http://127.0.0.1:9"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "Error: --condition is empty: give the condition to search for\n"
    assert not (tmp_path / "s.sqlite").exists()
