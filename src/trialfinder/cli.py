"""The trialfinder command line: parse options, call one library function, render.

Library errors (TrialFinderError) and Click usage errors are turned into one line
`Error: …` on stderr and a non-zero exit, here and nowhere else.

No `from __future__ import annotations` here: Typer would have to evaluate every command's
annotations as strings at start-up, which costs more than evaluating them at import.
"""

import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from trialfinder.errors import TrialFinderError
from trialfinder.i18n import _, ngettext
from trialfinder.resources import DEFAULT_TRIAL


def _fatal(message: str, code: int) -> NoReturn:
    # One line, whatever the message held: patients and cron logs read it alike.
    from trialfinder.text import one_line

    text = one_line(str(message)) or _("unknown error")
    typer.echo(_("Error: {message}").format(message=text), err=True)
    sys.exit(code)


def _terminal() -> Any:
    """stderr as it is underneath the filter of `_Group.main`: for our own terminal control
    (clearing a progress line, drawing a bar), never for text that comes from a record."""
    from trialfinder.terminal import SafeStream

    return sys.stderr.raw if isinstance(sys.stderr, SafeStream) else sys.stderr


def _control(text: str) -> None:
    """Our own terminal control on stderr (a progress line), written past the filter."""
    stream = _terminal()
    stream.write(text)
    stream.flush()


def _is_click_error(exc: Exception) -> bool:
    """Whether ``exc`` is one of Click's errors (ClickException: a message for the user and
    an exit code are its public contract). Typer names their class publicly only from 0.28
    (`typer.TyperException`); the pin allows 0.26, so the contract is what is checked."""
    return callable(getattr(exc, "format_message", None)) and isinstance(
        getattr(exc, "exit_code", None), int
    )


class _Interrupted(Exception):
    """Ctrl-C inside a command, carried past Typer (which would turn it into a silent 130)."""


class _Group(TyperGroup):
    """Runs a command and translates every error into one line on stderr.

    Everything the command writes to stdout and stderr, errors included, goes through
    `trialfinder.terminal.printable` (`SafeStream`): text from records never drives the
    terminal. Only public Typer/Click API: the ``standalone_mode=False`` route, `typer.Abort`,
    Click errors' ``format_message()``/``exit_code``, and the `TyperGroup` methods meant to
    be overridden (``main``, ``parse_args``, ``invoke``).
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        from trialfinder.terminal import SafeStream

        standalone = kwargs.pop("standalone_mode", True)
        saved = sys.stdout, sys.stderr
        if sys.stdout is not None and not isinstance(sys.stdout, SafeStream):
            sys.stdout = SafeStream(sys.stdout)
        if sys.stderr is not None and not isinstance(sys.stderr, SafeStream):
            sys.stderr = SafeStream(sys.stderr)
        try:
            from trialfinder.i18n import language, language_from_environment

            # The language of everything the command says to a person: the locale
            # environment as gettext reads it; a command's --lang switches it (`_use_lang`).
            with language(language_from_environment()):
                result = self._run(args, kwargs)
            if isinstance(result, int) and result:
                sys.exit(result)
            if standalone:
                sys.exit(0)
            return result
        finally:
            sys.stdout, sys.stderr = saved

    def _run(self, args: Any, kwargs: Any) -> Any:
        try:
            return super().main(*args, **{**kwargs, "standalone_mode": False})
        except TrialFinderError as exc:
            _fatal(str(exc), exc.exit_code)
        except typer.Abort:  # end of input at a prompt
            _fatal(_("aborted"), 1)
        except (_Interrupted, KeyboardInterrupt):
            _fatal(_("interrupted"), 130)
        except OSError as exc:
            _fatal(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), 1)
        except Exception as exc:
            if _is_click_error(exc):  # a usage error: bad option, missing argument, …
                _fatal(exc.format_message(), exc.exit_code)  # type: ignore[attr-defined]
            if os.environ.get("TRIALFINDER_DEBUG"):
                import traceback

                traceback.print_exc()  # through the filter too: a message may quote a record
                sys.exit(70)
            _fatal(_("unexpected {kind}: {error} (set TRIALFINDER_DEBUG=1 for details)").format(
                kind=type(exc).__name__, error=exc), 70)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # `trialfinder` alone prints the help on stdout and succeeds (Click's no_args_is_help
        # raises an error that only its private API names).
        if not args and not ctx.resilient_parsing:
            typer.echo(ctx.get_help())
            ctx.exit(0)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        # Typer turns KeyboardInterrupt into a silent exit 130; carry it to `_run` instead,
        # which says so in one line (and still exits 130).
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted from None


app = typer.Typer(
    cls=_Group,
    name="trialfinder",
    help=(
        "Find the clinical-trial site a patient can actually reach.\n\n"
        "Works offline on bundled data. Your place is looked up on this machine only; "
        "nothing about you leaves it unless a command is given --online."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


TrialOption = Annotated[
    str, typer.Option("--trial", "-t", help="ClinicalTrials.gov identifier.", show_default=True)
]
DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="Local store (default: $TRIALFINDER_DB, else the user data directory). "
        "Without one, the bundled record is used.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ListingSource = Annotated[
    str,
    typer.Argument(metavar="PATH|URL",
                   help="A listing page: a file saved as HTML or as text, or its http(s) address."),
]


def _use_lang(value: str | None) -> str | None:
    """--lang: switch the command's language (set from the environment by `_Group.main`,
    which ends it with the command). Eager, so that errors about other options are in it."""
    if value is None:
        return None
    from trialfinder import i18n

    code = value.strip().lower()
    if code not in i18n.LANGUAGES:
        raise typer.BadParameter(i18n._("{value} is not a language trialfinder speaks; "
                                        "choose one of: {choices}").format(
            value=repr(value), choices=", ".join(i18n.LANGUAGES)))
    return i18n.use(code)


LangOption = Annotated[
    str | None,
    typer.Option("--lang", metavar="fr|en", callback=_use_lang, is_eager=True,
                 help="Language of what is printed for people (default: $LANGUAGE, $LC_ALL, "
                 "$LC_MESSAGES or $LANG, else English). JSON keys and values stay English.",
                 show_default=False),
]
"""Give it to every command that prints for a person: ``lang: LangOption = None``."""


def _db(db: Path | None) -> Path:
    from trialfinder.resources import default_db_path

    return db if db is not None else default_db_path()


def _print_json(data: Any) -> None:
    from trialfinder.terminal import json_text

    typer.echo(json_text(data))


@app.command()
def nearest(
    place: Annotated[
        str,
        typer.Argument(
            metavar="PLACE", help="City, postal code or both, e.g. Lyon, 42000, 'Saint-Denis 93'."
        ),
    ],
    trial: TrialOption = DEFAULT_TRIAL,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many sites.")] = 5,
    all_sites: Annotated[
        bool, typer.Option("--all", help="Include sites that are not recruiting.")
    ] = False,
    max_km: Annotated[
        float | None,
        typer.Option(
            "--max-km",
            min=1,
            max=40100,
            help="Leave out sites farther than this; fail if none is nearer. Default: no "
            "limit in a country where the trial has sites, else 1500 km.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    details: Annotated[
        bool,
        typer.Option(
            "--details",
            help="Also say how each site is placed (precision, what matched) and where each "
            "status comes from.",
        ),
    ] = False,
    db: DbOption = None,
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Also look PLACE up on Nominatim (OpenStreetMap) and the sites' facilities "
            "there (answers cached in the store). Off by default; TRIALFINDER_ONLINE does "
            "not turn it on.",
        ),
    ] = False,
    with_map: Annotated[
        bool,
        typer.Option(
            "--map",
            help="Also write a self-contained HTML map of the answer to "
            "maps/<TRIAL>-<place>.html (under the current directory) and print its path.",
        ),
    ] = False,
    map_output: Annotated[
        Path | None,
        typer.Option(
            "--map-output", help="Write the map to this file instead (implies --map).",
            show_default=False,
        ),
    ] = None,
    lang: LangOption = None,
) -> None:
    """The nearest sites of a trial to PLACE, ranked by great-circle distance: whom to ask
    for, how to reach them, how old the information is.

    Sites that share one position (the record gives the city, not the street) are equally
    near and share a rank; --limit never splits them, so more may be shown. Recruiting sites
    with no known position are listed after the others.

    PLACE is resolved with the bundled gazetteer, offline: nothing about you leaves this
    machine unless you give --online. Sites are placed at the most precise position known
    (record, positions cached by `geocode --online`, gazetteer).
    """
    from trialfinder import queries, render
    from trialfinder.geocode import NominatimClient

    client = NominatimClient() if online else None
    answer = queries.nearest(
        place, trial, _db(db), limit=limit, include_all=all_sites, client=client, max_km=max_km
    )
    map_path = None
    if with_map or map_output is not None:
        from trialfinder.mapping import map_for_answer

        map_path = map_for_answer(answer, map_output, store=_db(db)).path
    if as_json:
        data = render.nearest_json(answer)
        if map_path is not None:
            data["map"] = str(map_path)
        _print_json(data)
    else:
        typer.echo(render.nearest_text(answer, details=details))
        if map_path is not None:
            typer.echo("\n" + _("Map: {path}").format(path=map_path))


@app.command()
def sites(
    trial: TrialOption = DEFAULT_TRIAL,
    as_json: JsonOption = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print CSV (UTF-8, one row a site).")
    ] = False,
    excel: Annotated[
        bool, typer.Option("--excel", help="With --csv: start with a byte-order mark for Excel.")
    ] = False,
    db: DbOption = None,
    lang: LangOption = None,
) -> None:
    """Every site of a trial: investigator, contacts, address, status, position, precision.

    CSV cells that a spreadsheet would run as a formula (=, +, -, @) get a leading '.
    """
    from trialfinder import queries, render

    if as_json and as_csv:
        raise typer.BadParameter(_("choose one of --json and --csv"))
    view = queries.trial_view(trial, _db(db))
    if as_json:
        _print_json(render.sites_json(view))
    elif as_csv:
        typer.echo(render.sites_csv(view, excel=excel), nl=False)
    else:
        typer.echo(render.sites_text(view))


@app.command()
def listing(
    source: ListingSource,
    as_json: JsonOption = False,
    db: DbOption = None,
    lang: LangOption = None,
) -> None:
    """What a listing page reads as: the trial, its sites with names repaired and positions,
    and the page's own status words. Exactly the page's copy that `scrape` stores (placed with
    the store's position cache, when the store exists); nothing is stored here.

    Pages larger than 20 MB ($TRIALFINDER_LISTING_MAX_BYTES) or binary data are refused.
    A URL is fetched (only the page's address is sent), within $TRIALFINDER_LISTING_DEADLINE
    seconds (default 60).
    """
    from trialfinder import render
    from trialfinder.models import to_jsonable
    from trialfinder.queries import TrialView
    from trialfinder.scrape import listing_copy

    trial = listing_copy(source, db=_db(db))
    if as_json:
        _print_json(to_jsonable(trial))
    else:
        typer.echo(render.sites_text(TrialView(trial=trial)))


@app.command("scrape")
def scrape_command(
    source: ListingSource,
    as_json: JsonOption = False,
    db: DbOption = None,
    lang: LangOption = None,
) -> None:
    """Store a listing page's trial in the local store, with its history; safe for cron.

    The page is read as `listing` reads it (names repaired, sites placed offline, the page's
    own status words, its "last updated" date as the record's date). When the store holds
    the registry's record of the trial, the two are merged as `sync` merges them, and the
    trial's status is the more recent one's. One summary line (new / updated / unchanged);
    `changes` shows what the page changed since its last scrape. Exit 1 if a URL cannot be
    fetched, 2 for a page that cannot be used (nothing is stored then), 75 if a sync holds
    the store.
    """
    from trialfinder.scrape import scrape

    result = scrape(source, db=_db(db))
    if as_json:
        _print_json(result.to_jsonable())
    else:
        typer.echo(result.summary())


@app.command("sync")
def sync_command(
    nct_ids: Annotated[
        list[str] | None,
        typer.Argument(help=f"Trials to fetch (default: {DEFAULT_TRIAL} unless --condition or "
                       "--status).", show_default=False),
    ] = None,
    condition: Annotated[
        str | None, typer.Option("--condition", help="Also mirror every study a search for "
                                 "this condition finds.", show_default=False)
    ] = None,
    country: Annotated[
        str | None, typer.Option("--country", help="Limit the search to a place.",
                                 show_default=False)
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Also mirror every study with these registry statuses "
                     "(comma-separated, e.g. RECRUITING,NOT_YET_RECRUITING), with or without "
                     "--condition.", show_default=False),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Ask for the whole search again, not only the "
                           "studies updated since its last successful run (once a week).")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="A line for every trial, unchanged ones "
                           "too.")
    ] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
    registry_url: Annotated[
        str | None,
        typer.Option("--registry-url", help="API base URL (default: $TRIALFINDER_REGISTRY_URL, "
                     "else https://clinicaltrials.gov/api/v2).", show_default=False),
    ] = None,
    lang: LangOption = None,
) -> None:
    """Fetch trials from ClinicalTrials.gov into the local store; safe for cron.

    A search (--condition, --status) asks only for the studies updated since its last
    successful run; --full asks for all of them again. One summary line per run, and a line
    per new, updated or failed trial (--verbose: every trial). Exit 0 if all were stored,
    1 if any failed (the previous record of a failed trial is kept), 75 if another sync
    holds the store.
    """
    from trialfinder.registry import RegistryClient
    from trialfinder.sync import TrialOutcome, sync

    searching = condition is not None or status is not None
    ids = list(nct_ids or ([] if searching else [DEFAULT_TRIAL]))
    on_tty = not as_json and sys.stderr.isatty()

    def progress(outcome: TrialOutcome, done: int, total: int | None) -> None:
        if on_tty:
            _control("\r\x1b[2K")  # clear the progress line
        if not as_json and (verbose or outcome.outcome != "unchanged"):
            typer.echo(outcome.summary())
        if on_tty:
            _control(_("syncing: {done}/{total} done").format(done=done, total=total or "?"))

    def warning(message: str) -> None:
        if not as_json:
            typer.echo(f"warning: {message}")

    with RegistryClient(registry_url) as client:
        report = sync(ids, db=_db(db), client=client, condition=condition, country=country,
                      statuses=status, full=full, on_progress=progress, on_warning=warning)
    if on_tty:
        _control("\r\x1b[2K")
    if as_json:
        _print_json(report.to_jsonable())
    else:
        typer.echo(report.summary())
    failed = [t for t in report.trials if t.outcome == "failed"]
    if failed:
        # The per-trial lines went to stdout for the log; stderr gets the one-line verdict.
        first = failed[0]
        verdict = ngettext("{failed} of {total} trials failed; {nct_id}: {error}",
                           "{failed} of {total} trials failed; first {nct_id}: {error}",
                           len(failed)).format(failed=len(failed), total=len(report.trials),
                                               nct_id=first.nct_id, error=first.error)
        _fatal(verdict, report.exit_code)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@app.command("changes")
def changes_command(
    trial: Annotated[
        str | None, typer.Option("--trial", "-t", help="Only this trial.", show_default=False)
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only changes on or after this date "
                                 "(YYYY-MM-DD).", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
    lang: LangOption = None,
) -> None:
    """What the syncs and scrapes saw change: trial and site statuses, sites added or removed,
    contacts (each source compared with its own previous copy)."""
    from trialfinder.sync import recorded_changes

    found = recorded_changes(_db(db), nct_id=trial, since=since)
    if as_json:
        _print_json([change.to_jsonable() for change in found])
    elif not found:
        typer.echo(_("No changes recorded."))
    else:
        for change in found:
            typer.echo(change.describe())


@app.command("status")
def status_command(
    as_json: JsonOption = False,
    max_age: Annotated[
        float | None,
        typer.Option("--max-age", min=0, metavar="HOURS", help="Exit 1 when the most recent "
                     "successful sync is older than this, or there has never been one (for "
                     "monitoring).", show_default=False),
    ] = None,
    db: DbOption = None,
    lang: LangOption = None,
) -> None:
    """The store and its syncs, for cron monitoring: path and schema, trials and sites, the
    most recent successful sync, the last runs with their arguments and outcomes, and the
    last successful run of each query."""
    from trialfinder.sync import status_text, store_status

    status = store_status(_db(db))
    if as_json:
        _print_json(status.to_jsonable())
    else:
        typer.echo(status_text(status))
    if max_age is not None:
        age = status.age_hours()
        if age is None:
            _fatal(_("no successful sync recorded in this store"), 1)
        if age > max_age:
            _fatal(_("the last successful sync was {age:.1f} hours ago (more than {limit:g})")
                   .format(age=age, limit=max_age), 1)


@app.command()
def geocode(
    trial: TrialOption = DEFAULT_TRIAL,
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Look each facility up on Nominatim (OpenStreetMap), one request a second "
            "(also on with TRIALFINDER_ONLINE=1).",
        ),
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
    refresh: Annotated[
        bool,
        typer.Option("--refresh", help="Place every trial of the store again with the current "
                     "offline rules and gazetteer, and store the positions (offline)."),
    ] = False,
    lang: LangOption = None,
) -> None:
    """Place every site of a trial; report each site's position, precision and source.

    Offline: the record, positions cached earlier, the bundled gazetteer (postal code, else
    city centre). With --online (or TRIALFINDER_ONLINE=1) each facility is searched on
    Nominatim ($TRIALFINDER_NOMINATIM_URL, default the public OpenStreetMap server) and the
    answer cached in the store: not asked again for 90 days (30 for a facility not found).
    Only the trial's public site names are sent, never anything about you.
    """
    from contextlib import ExitStack

    from trialfinder import render
    from trialfinder.geocode import NominatimClient, online_requested
    from trialfinder.queries import geocode_trial

    if refresh:
        _refresh_positions(db, online=online, as_json=as_json)
        return
    online = online_requested(online)
    client = NominatimClient() if online else None
    with ExitStack() as stack:
        bar: Any = None

        def tick(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = stack.enter_context(
                    typer.progressbar(length=total, label=_("Geocoding"), file=_terminal())
                )
            bar.update(1)

        placement = geocode_trial(
            trial, _db(db), client=client, on_site=tick if sys.stderr.isatty() else None
        )
    if as_json:
        _print_json(render.geocode_json(placement, online=online))
    else:
        typer.echo(render.geocode_text(placement, online=online))


def _refresh_positions(db: Path | None, *, online: bool, as_json: bool) -> None:
    from trialfinder.records import refresh_positions

    if online:
        raise typer.BadParameter(_("--refresh places offline; it cannot be combined with "
                                   "--online"))
    done = refresh_positions(_db(db))
    if as_json:
        _print_json({"trials": done.trials, "sites": done.sites, "placed": done.placed,
                     "placed_by": done.version})
    else:
        typer.echo(_("Placed {trials} trials again ({sites} sites, {placed} with a position) "
                     "with {version}.").format(trials=done.trials, sites=done.sites,
                                               placed=done.placed, version=done.version))


@app.command()
def where(
    place: Annotated[
        str,
        typer.Argument(
            metavar="PLACE", help="City, postal code or both, e.g. Lyon, 42000, 'Saint-Denis 93'."
        ),
    ],
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Also look PLACE up on Nominatim (OpenStreetMap). Off by default; "
            "TRIALFINDER_ONLINE does not turn it on.",
        ),
    ] = False,
    as_json: JsonOption = False,
    lang: LangOption = None,
) -> None:
    """How PLACE resolves: name, region, country, postal code, position, precision, other
    candidates and notes. Check an ambiguous name here before trusting an answer.

    Resolved with the bundled gazetteer, offline: PLACE leaves this machine only with
    --online, and is never stored.
    """
    from trialfinder import render
    from trialfinder.geocode import NominatimClient, resolve_place

    resolution = resolve_place(place, client=NominatimClient() if online else None)
    if as_json:
        _print_json(render.where_json(resolution))
    else:
        typer.echo(render.where_text(resolution))


@app.command("map")
def map_command(
    trial: TrialOption = DEFAULT_TRIAL,
    near: Annotated[
        str | None,
        typer.Option(
            "--near",
            help="Your city or postal code (resolved offline): adds your marker, distances and "
            "the nearest recruiting site.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o",
            help="Where to write the map (default: maps/<TRIAL>.html, or "
            "maps/<TRIAL>-<place>.html with --near, under the current directory).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
    lang: LangOption = None,
) -> None:
    """Write a map of a trial's sites as one HTML file that opens anywhere, offline too.

    Sites are coloured by status; each popup gives the facility, investigators, status,
    contacts and how precisely the site is placed. Prints the file's path.
    """
    from trialfinder.mapping import make_map

    result = make_map(trial, _db(db), place_query=near, output=output)
    typer.echo(str(result.path))


@app.command()
def show(
    nct_id: Annotated[
        str, typer.Argument(help="ClinicalTrials.gov identifier.", show_default=True)
    ] = DEFAULT_TRIAL,
    as_json: JsonOption = False,
    db: DbOption = None,
    lang: LangOption = None,
) -> None:
    """A clinician's summary of a trial: phase, status, dates, sponsor, arms, eligibility
    criteria, contacts, registry link, source and how fresh it is."""
    from trialfinder import summary
    from trialfinder.queries import load_view

    view = load_view(nct_id, _db(db))
    if as_json:
        _print_json(summary.summary_json(view))
    else:
        typer.echo(summary.summary_text(view))


@app.command()
def referral(
    nct_id: Annotated[str, typer.Argument(help="ClinicalTrials.gov identifier.")],
    near: Annotated[
        str,
        typer.Option("--near", help="The patient's city or postal code (resolved offline; "
                     "only the resolved place is printed on the sheet).", show_default=False),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write the sheet (default: "
                     "referral-<NCT>-<place>.html in the current directory).",
                     show_default=False),
    ] = None,
    db: DbOption = None,
    lang: LangOption = None,
) -> None:
    """Write a one-page printable referral sheet (self-contained HTML, A4): the trial, its key
    criteria, the three nearest recruiting sites with contacts. Prints the file's path."""
    from trialfinder.referral import build_referral, write_referral

    sheet = build_referral(nct_id, near, _db(db))
    typer.echo(str(write_referral(sheet, output, store=_db(db))))


@app.command()
def search(
    near: Annotated[
        str, typer.Option("--near", help="City or postal code (resolved offline).",
                          show_default=False),
    ],
    condition: Annotated[
        str | None,
        typer.Option("--condition", help="Words or a phrase in the trial's title, acronym, "
                     "conditions, keywords or MeSH terms (whole words; case and accents "
                     "ignored; cancer, neoplasm and tumour count as one word).",
                     show_default=False),
    ] = None,
    radius: Annotated[
        float | None,
        typer.Option("--radius", help="Only sites within this many km.", show_default=False),
    ] = None,
    status: Annotated[
        str, typer.Option("--status", help="recruiting (sites recruiting now) or all.")
    ] = "recruiting",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many trials.")] = 10,
    as_json: JsonOption = False,
    db: DbOption = None,
    lang: LangOption = None,
) -> None:
    """Trials in the local store (filled by `sync`) ranked by their nearest matching site to a
    place, anywhere on Earth; trials whose matching sites have no position come last."""
    from trialfinder.render import search_json, search_text
    from trialfinder.search import search as search_store

    answer = search_store(near, _db(db), condition=condition, radius_km=radius,
                          status=status, limit=limit)
    if as_json:
        _print_json(search_json(answer))
    else:
        typer.echo(search_text(answer))


@app.command()
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (127.0.0.1: this machine only; "
                          "put a reverse proxy in front to publish it).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free port).")
    ] = 8000,
    db: DbOption = None,
    trials: Annotated[
        list[str] | None,
        typer.Option("--trial", "-t", help=f"A trial the page offers (repeatable; the first is "
                     f"the default). Default: {DEFAULT_TRIAL}.", show_default=False),
    ] = None,
    tiles: Annotated[
        str | None,
        typer.Option("--tiles", help="Map tiles from this server, a URL template such as "
                     "https://tiles.example.org/{z}/{x}/{y}.png (default: none, the bundled "
                     "country outlines; the tile server sees the area each map shows).",
                     show_default=False),
    ] = None,
    tiles_attribution: Annotated[
        str | None,
        typer.Option("--tiles-attribution", help="The credit the tile server requires "
                     "(default: OpenStreetMap contributors).", show_default=False),
    ] = None,
) -> None:
    """Serve the web page and JSON API (trialfinder's answers in a browser, in English or
    French) until Ctrl-C or SIGTERM.

    Reads the store as it is at each request, so a nightly `sync` shows without a restart.
    The place a patient types is never logged nor stored: request lines are logged without
    their query string.
    """
    from trialfinder.errors import BadInput
    from trialfinder.ids import normalise_nct_id
    from trialfinder.mapping import Tiles
    from trialfinder.web.app import Settings, tile_origin
    from trialfinder.web.server import serve as run_server

    ids = tuple(dict.fromkeys(normalise_nct_id(t) for t in (trials or [DEFAULT_TRIAL])))
    layer = None
    if tiles is not None:
        if not all(part in tiles for part in ("{z}", "{x}", "{y}")):
            raise BadInput(_("--tiles needs {{z}}, {{x}} and {{y}} in its URL, not {url}")
                           .format(url=tiles))
        tile_origin(tiles)  # an http(s) URL with a host, else BadInput
        layer = Tiles(tiles) if tiles_attribution is None else Tiles(tiles, tiles_attribution)
    settings = Settings(db_path=_db(db), trials=ids, tiles=layer)

    def ready(url: str) -> None:
        typer.echo(f"trialfinder: serving {', '.join(ids)} on {url} (Ctrl-C to stop)",
                   err=True)

    run_server(settings, host, port, on_ready=ready)
    typer.echo("trialfinder: stopped", err=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
