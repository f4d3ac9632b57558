"""The trialfinder command line: parse options, call one library function, render.

Library errors (TrialFinderError) and Click usage errors are turned into one line
`Error: …` on stderr and a non-zero exit, here and nowhere else.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from trialfinder.errors import TrialFinderError
from trialfinder.resources import DEFAULT_TRIAL


def _fatal(message: str, code: int) -> NoReturn:
    # One line, whatever the message held: patients and cron logs read it alike.
    text = " ".join(str(message).split()) or "unknown error"
    typer.echo(f"Error: {text}", err=True)
    sys.exit(code)


class _Group(TyperGroup):
    """Runs a command and translates every error into one line on stderr."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        from typer import _click

        standalone = kwargs.pop("standalone_mode", True)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except _click.exceptions.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(0)
        except _click.exceptions.ClickException as exc:
            _fatal(exc.format_message(), exc.exit_code)
        except _click.exceptions.Abort:
            _fatal("aborted", 1)
        except TrialFinderError as exc:
            _fatal(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fatal("interrupted", 130)
        except OSError as exc:
            _fatal(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), 1)
        except Exception as exc:
            if os.environ.get("TRIALFINDER_DEBUG"):
                raise
            _fatal(
                f"unexpected {type(exc).__name__}: {exc} (set TRIALFINDER_DEBUG=1 for details)",
                70,
            )
        if isinstance(result, int) and result:
            sys.exit(result)
        if standalone:
            sys.exit(0)
        return result


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


def _db(db: Path | None) -> Path:
    from trialfinder.resources import default_db_path

    return db if db is not None else default_db_path()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


@app.command()
def nearest(
    place: Annotated[
        str, typer.Argument(help="City, postal code or both, e.g. Lyon, 42000, 'Saint-Denis 93'.")
    ],
    trial: TrialOption = DEFAULT_TRIAL,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many sites.")] = 5,
    all_sites: Annotated[
        bool, typer.Option("--all", help="Include sites that are not recruiting.")
    ] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The nearest sites of a trial to PLACE, ranked by great-circle distance.

    PLACE is resolved with the bundled gazetteer, offline.
    """
    from trialfinder import queries, render

    answer = queries.nearest(place, trial, _db(db), limit=limit, include_all=all_sites)
    if as_json:
        _print_json(render.nearest_json(answer))
    else:
        typer.echo(render.nearest_text(answer))


@app.command()
def sites(
    trial: TrialOption = DEFAULT_TRIAL,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (UTF-8, one row a site).")] = False,
    db: DbOption = None,
) -> None:
    """Every site of a trial: investigator, facility, city, status, position, precision."""
    from trialfinder import queries, render

    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv")
    view = queries.trial_view(trial, _db(db))
    if as_json:
        _print_json(render.sites_json(view))
    elif as_csv:
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=render.SITE_CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for site in view.trial.sites:
            writer.writerow(render.site_csv_row(site, view.trial))
    else:
        typer.echo(render.sites_text(view))


@app.command()
def listing(
    path: Annotated[Path, typer.Argument(help="A listing page saved as HTML or as text.")],
    as_json: JsonOption = False,
) -> None:
    """What a listing page parses to (nothing is stored)."""
    from trialfinder import render
    from trialfinder.errors import BadInput
    from trialfinder.listing import parse_listing
    from trialfinder.queries import TrialView

    try:
        content = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise BadInput(f"Cannot read {path}: {exc.strerror or exc}") from None
    trial = parse_listing(content, source_url=None)
    view = TrialView(trial=trial, stale=False)
    if as_json:
        _print_json(render.sites_json(view))
    else:
        typer.echo(render.sites_text(view))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
