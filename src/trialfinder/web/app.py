"""The web application: pages for patients and oncologists, and a JSON API.

Routes (every page in English or French: ``?lang=``, else Accept-Language):

- ``GET /``: the search page (one field; suggestions as you type; works without JavaScript).
- ``POST /nearest`` (the form; the place stays out of URLs and logs), ``GET /nearest?place=``
  (for links): the plain answer, the sites, the map, the data's age, a privacy note.
- ``GET /api/nearest?place=&trial=&limit=``: the JSON of ``nearest --json``.
- ``GET /api/places?q=``: place suggestions from the bundled gazetteer.
- ``GET /trial/NCT…``: the oncologist's page; ``/trial/NCT…/sites.csv``; ``POST
  /trial/NCT…/referral``: the printable referral sheet for a place.

Each handler parses its input, makes library calls and renders; errors from the library
become a page or ``{"error": …}`` with a 4xx status, in the request's language, and never
carry terminal advice. Blocking work (SQLite, the gazetteer, folium) runs in Starlette's
thread pool, inside the request's language.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from trialfinder.contacts import tel_uri
from trialfinder.errors import (
    BadInput,
    OutOfReach,
    StoreError,
    TrialFinderError,
    TrialNotFound,
    UnknownPlace,
)
from trialfinder.i18n import LANGUAGES, _, format_decimal, language, negotiate, supported
from trialfinder.resources import DEFAULT_TRIAL
from trialfinder.web.cache import TrialViews
from trialfinder.web.security import SecurityHeaders

if TYPE_CHECKING:
    import jinja2

    from trialfinder.mapping import Tiles
    from trialfinder.models import Trial
    from trialfinder.queries import NearestAnswer, TrialView

HERE = Path(__file__).resolve().parent
MAP_ASSETS_URL = "/static/map/"
PAGE_SITES = 5
"""Sites listed on the answer page (the map shows them all)."""
API_MAX_LIMIT = 100
MAX_BODY_BYTES = 4096
"""A form bigger than this gets 413: the search form is a place, a trial id and a language."""
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}

log = logging.getLogger("trialfinder.web")


@dataclass(frozen=True, slots=True)
class Settings:
    """What `trialfinder serve` was started with."""

    db_path: Path | None
    """The store (read as it is at each request); None or a missing file: bundled records."""
    trials: tuple[str, ...] = (DEFAULT_TRIAL,)
    """The trials the search page offers; the first is the default."""
    tiles: Tiles | None = None
    """A tile server for the map; None: the bundled country outlines only."""


# --------------------------------------------------------------------------- errors


class PayloadTooLarge(BadInput):
    """The request's body is bigger than `MAX_BODY_BYTES`."""


def http_status(error: TrialFinderError) -> int:
    """The status a library error answers with: 4xx for what the request asked, 503 when
    the store cannot be read."""
    if isinstance(error, PayloadTooLarge):
        return 413
    if isinstance(error, TrialNotFound):
        return 404
    if isinstance(error, UnknownPlace | OutOfReach):
        return 422
    if isinstance(error, BadInput):
        return 400
    if isinstance(error, StoreError):
        return 503
    return 500


@dataclass(slots=True)
class Ask:
    """One request's input, read once: the fields (query string, then form) and language."""

    request: Request
    fields: dict[str, str]
    lang: str
    nonce: str
    posted: bool = False
    form: dict[str, str] = field(default_factory=dict)
    current: TrialView | None = None
    """The asked trial, once found loaded and current (the store is then not looked at
    again for this request)."""

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)

    @property
    def trial_id(self) -> str:
        return self.get("trial").strip()


# --------------------------------------------------------------------------- the app


def create_app(settings: Settings) -> Starlette:
    """The ASGI application for these settings (routes, middleware, templates)."""
    web = Web(settings)
    routes = [
        Route("/", web.endpoint(web.index, "page")),
        Route("/nearest", web.endpoint(web.nearest, "page"), methods=["GET", "POST"]),
        Route("/api/nearest", web.endpoint(web.api_nearest, "api", inline=web.loaded)),
        Route("/api/places", web.endpoint(web.api_places, "api")),
        Route("/trial/{nct_id}", web.endpoint(web.trial, "page")),
        Route("/trial/{nct_id}/sites.csv", web.endpoint(web.sites_csv, "page")),
        Route("/trial/{nct_id}/referral", web.endpoint(web.referral, "page"),
              methods=["GET", "POST"]),
        Route(MAP_ASSETS_URL + "{name}", web.map_asset),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.web = web
    images = (tile_origin(settings.tiles.url),) if settings.tiles else ()
    app.add_middleware(SecurityHeaders, image_sources=images)
    return app


def tile_origin(url: str) -> str:
    """The CSP source a tile URL template needs: "https://{s}.tile.example.org/{z}/…" ->
    "https://*.tile.example.org"."""
    match = re.match(r"^(https?)://([^/?#]+)", url)
    if not match:
        raise BadInput(_("Not a tile URL: {url}").format(url=url))
    host = match.group(2).replace("{s}", "*")
    return f"{match.group(1)}://{host}"


class Web:
    """The handlers, sharing the settings, the trial cache and the templates."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.views = TrialViews(settings.db_path)
        self.templates = _environment()

    def warm(self) -> None:
        """Load the offered trials now (the server calls this before listening: a trial that
        cannot be loaded stops it there)."""
        for nct_id in self.settings.trials:
            self.views.get(nct_id)

    # ------------------------------------------------------------------ plumbing

    def endpoint(
        self, handler: Callable[[Ask], Response], kind: str,
        inline: Callable[[Ask], bool] | None = None,
    ) -> Callable[[Request], Awaitable[Response]]:
        """An async endpoint: reads the input, then runs `handler` in the request's language;
        library errors become a page or JSON error. The handler runs in the thread pool
        (SQLite, folium), or in the event loop itself when `inline(ask)` says it is quick:
        with 20 clients at once, threads fighting for the interpreter lock cost more than
        a sub-millisecond answer."""

        async def run(request: Request) -> Response:
            nonce = request.scope.get("state", {}).get("nonce", "")
            fields = dict(request.query_params.items())
            form: dict[str, str] = {}
            error: TrialFinderError | None = None
            if request.method == "POST":
                try:
                    form = await _read_form(request)
                except TrialFinderError as exc:
                    error = exc
                fields.update(form)
            lang = supported(fields.get("lang")) or negotiate(
                request.headers.get("accept-language")
            )
            ask = Ask(request, fields, lang, nonce, posted=request.method == "POST", form=form)

            def work() -> Response:
                with language(lang):
                    try:
                        try:
                            if error is not None:
                                raise error
                            return handler(ask)
                        except TrialFinderError as exc:
                            if kind == "api":
                                return _json({"error": self.message(exc, ask)},
                                             http_status(exc))
                            return self.error_page(ask, exc)
                    except Exception as exc:  # never a traceback to the patient
                        return self.failure(ask, kind, exc)

            if inline is not None and error is None and inline(ask):
                return work()
            return await run_in_threadpool(work)

        return run

    def message(self, error: TrialFinderError, ask: Ask) -> str:
        """The error in words for a patient: the library's message, except where it gives
        advice for the command line."""
        if isinstance(error, PayloadTooLarge):
            return _("That is too much text for a place.")
        if isinstance(error, TrialNotFound):
            return _("This server has no record of the trial {nct_id}.").format(
                nct_id=error.nct_id or ask.trial_id or self.settings.trials[0]
            )
        if isinstance(error, OutOfReach):
            return _out_of_reach_words(error)
        if isinstance(error, StoreError):
            return _("The trial records cannot be read right now. Please try again later.")
        from trialfinder.text import one_line

        return one_line(str(error))


    def error_page(self, ask: Ask, error: TrialFinderError) -> Response:
        status = http_status(error)
        message = self.message(error, ask)
        path = ask.request.url.path
        if isinstance(error, UnknownPlace | OutOfReach) and path == "/nearest":
            # Back to the form, the place kept in it, with what went wrong and what to try.
            return self.search_page(ask, status, error=message,
                                    suggestions=getattr(error, "suggestions", ()))
        return self.plain_error(ask, status, message)

    def plain_error(self, ask: Ask, status: int, message: str) -> Response:
        title = _("Page not found") if status == 404 else _("Something is wrong")
        path = ask.request.url.path
        back = self.link(path.rsplit("/", 1)[0], ask) if path.endswith("/referral") else None
        return self.page(ask, "error.html", status, message=message, title=title,
                         back=back or self.link("/", ask))

    def failure(self, ask: Ask, kind: str, exc: Exception) -> Response:
        """What went wrong while answering, or while showing an error: a library error as a
        plain page; anything else is a bug, logged by type and place in the code (not its
        message, which may hold the place), and a 500 that says only that."""
        if isinstance(exc, TrialFinderError):
            status, message = http_status(exc), self.message(exc, ask)
        else:
            log.error("unexpected %s in %s %s\n%s", type(exc).__name__, ask.request.method,
                      ask.request.url.path, "".join(traceback.format_tb(exc.__traceback__)))
            status = 500
            message = _("Something went wrong on this server. Please try again.")
        if kind == "api":
            return _json({"error": message}, status)
        try:
            return self.plain_error(ask, status, message)
        except Exception:  # the page itself cannot be made: one line, as the API does
            return Response(message + "\n", status, media_type="text/plain; charset=utf-8")

    def page(self, ask: Ask, template: str, status: int = 200, **context: Any) -> Response:
        html = self.templates.get_template(template).render(
            lang=ask.lang, nonce=ask.nonce, switch=self.language_switch(ask),
            home=self.link("/", ask), **context,
        )
        return HTMLResponse(html, status_code=status)

    def link(self, path: str, ask: Ask, **fields: str) -> str:
        """A URL within the site, keeping the trial (when not the default) and language."""
        keep = {"trial": ask.trial_id} if ask.trial_id else {}
        keep.update(fields)
        if "lang" in ask.fields or ask.lang != "en":
            keep.setdefault("lang", ask.lang)
        query = urlencode({k: v for k, v in keep.items() if v})
        return path + ("?" + query if query else "")

    def language_switch(self, ask: Ask) -> list[dict[str, Any]]:
        """One entry per other language: a link to this page in that language, or, for an
        answer to a form, a button that sends the same form again (the place never goes
        into a URL that did not have it)."""
        out = []
        for code in LANGUAGES:
            if code == ask.lang:
                continue
            entry: dict[str, Any] = {"code": code, "name": LANGUAGE_NAMES[code]}
            if ask.posted:
                entry["action"] = ask.request.url.path
                entry["fields"] = [(k, v) for k, v in ask.form.items() if k != "lang"]
            else:
                query = [(k, v) for k, v in ask.request.query_params.multi_items()
                         if k != "lang"]
                query.append(("lang", code))
                entry["href"] = ask.request.url.path + "?" + urlencode(query)
            out.append(entry)
        return out

    def loaded(self, ask: Ask) -> bool:
        """Whether the asked trial is loaded and current (its answer needs no I/O)."""
        ask.current = self.views.cached(ask.trial_id or self.settings.trials[0])
        return ask.current is not None

    def view(self, ask: Ask, nct_id: str | None = None) -> TrialView:
        if nct_id is None and ask.current is not None:
            return ask.current
        return self.views.get(nct_id or ask.trial_id or self.settings.trials[0])

    # ------------------------------------------------------------------ pages

    def index(self, ask: Ask) -> Response:
        return self.search_page(ask)

    def search_page(self, ask: Ask, status: int = 200, *, error: str | None = None,
                    suggestions: tuple[str, ...] = ()) -> Response:
        view = self.view(ask)
        offered = list(self.settings.trials)
        if view.trial.nct_id not in offered:
            offered.insert(0, view.trial.nct_id)
        choices = [(nct, self.view(ask, nct).trial) for nct in offered]
        return self.page(
            ask, "index.html", status, trial=view.trial, choices=choices,
            place=ask.get("place") if error else "", error=error, suggestions=suggestions,
            tiles_host=_host(self.settings.tiles.url) if self.settings.tiles else None,
        )

    def nearest(self, ask: Ask) -> Response:
        if "place" not in ask.fields:
            return RedirectResponse(self.link("/", ask), status_code=303)
        if not ask.get("place").strip():
            return self.search_page(ask, 422, error=_("Type a town or a postal code."))
        answer = self.answer(ask, PAGE_SITES)
        data = self.answer_json(answer)
        from trialfinder import mapping

        map_html = mapping.build_map(
            answer.view, place=answer.resolution.place, ranked=answer.ranked,
            tiles=self.settings.tiles or False, script_nonce=ask.nonce,
            assets_url=MAP_ASSETS_URL, terminal=False,
        )
        from trialfinder import words
        from trialfinder.models import Precision
        from trialfinder.render import age_notes

        placed, unplaced = _groups(answer, data["sites"])
        trial = answer.view.trial
        return self.page(
            ask, "nearest.html", data=data, groups=placed, unplaced=unplaced,
            place_title=words.place_title(answer.resolution.place),
            place_precision=words.precision_words(Precision(data["place"]["precision"])),
            age_lines=age_notes(answer.view, terminal=False),
            shown=len(answer.placed), map_html=map_html,
            trial_link=self.link(f"/trial/{trial.nct_id}", ask),
            tiles_host=_host(self.settings.tiles.url) if self.settings.tiles else None,
        )

    def trial(self, ask: Ask) -> Response:
        from trialfinder import render, summary

        view = self.view(ask, ask.request.path_params["nct_id"])
        nct = view.trial.nct_id
        return self.page(
            ask, "trial.html", trial=view.trial, summary=summary.summary_json(view, terminal=False),
            sites=render.sites_json(view, terminal=False)["sites"],
            main_country=_main_country(view.trial),
            age_lines=render.age_notes(view, terminal=False),
            csv_link=self.link(f"/trial/{nct}/sites.csv", ask),
            referral_action=f"/trial/{nct}/referral",
        )

    def sites_csv(self, ask: Ask) -> Response:
        from trialfinder import render

        view = self.view(ask, ask.request.path_params["nct_id"])
        return Response(
            render.sites_csv(view), media_type="text/csv; charset=utf-8",
            headers={"content-disposition":
                     f'attachment; filename="{view.trial.nct_id}-sites.csv"'},
        )

    def referral(self, ask: Ask) -> Response:
        from trialfinder.referral import build_referral, referral_html

        view = self.view(ask, ask.request.path_params["nct_id"])
        if not ask.get("place").strip():
            return self.plain_error(ask, 422, _("Type a town or a postal code."))
        sheet = build_referral(view.trial.nct_id, ask.get("place"), self.settings.db_path,
                               view=view)
        return HTMLResponse(referral_html(sheet, terminal=False))

    # ------------------------------------------------------------------ API

    def api_nearest(self, ask: Ask) -> Response:
        text = ask.get("limit", str(PAGE_SITES)).strip()
        if not text.isdigit() or not 1 <= int(text) <= API_MAX_LIMIT:
            raise BadInput(_("limit must be a whole number from 1 to {most}.").format(
                most=API_MAX_LIMIT))
        if not ask.get("place").strip():
            raise BadInput(_("Give a place: ?place=Lyon, a town or a postal code."))
        return _json(self.answer_json(self.answer(ask, int(text))))

    def api_places(self, ask: Ask) -> Response:
        from trialfinder.gazetteer import Gazetteer

        found = Gazetteer.bundled().suggest(ask.get("q"))
        return _json({"places": [{"label": s.place.label, "value": s.text} for s in found]})

    async def map_asset(self, request: Request) -> Response:
        """Leaflet and the country outlines for the map (from the installed packages)."""
        from trialfinder.mapping import MAP_ASSETS

        name = request.path_params["name"]
        if name not in MAP_ASSETS:
            return Response("Not found\n", 404, media_type="text/plain; charset=utf-8")
        body, etag = _asset(name)
        headers = {"etag": etag, "cache-control": "public, max-age=86400"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=MAP_ASSETS[name], headers=headers)

    # ------------------------------------------------------------------ shared

    def answer(self, ask: Ask, limit: int) -> NearestAnswer:
        from trialfinder import queries

        view = self.view(ask)
        return queries.nearest(ask.get("place"), view.trial.nct_id, None, limit=limit,
                               view=view)

    def answer_json(self, answer: NearestAnswer) -> dict[str, Any]:
        from trialfinder import render

        return render.nearest_json(answer, terminal=False)


# --------------------------------------------------------------------------- helpers


async def _read_form(request: Request) -> dict[str, str]:
    """An URL-encoded form, at most MAX_BODY_BYTES (the body is not read further)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(_("request body too large"))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(_("request body too large"))
    if kind not in ("application/x-www-form-urlencoded", ""):
        raise BadInput(_("Send the form as the page does."))
    text = body.decode("utf-8", errors="replace")
    return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=20))


def _json(data: Any, status: int = 200) -> Response:
    """JSON as the CLI prints it (control characters escaped), on one line."""
    from trialfinder.terminal import json_text

    return Response(json_text(data, indent=None), status, media_type="application/json")


_ASSETS: dict[str, tuple[bytes, str]] = {}


def _asset(name: str) -> tuple[bytes, str]:
    if name not in _ASSETS:
        import hashlib

        from trialfinder.mapping import map_asset

        body = map_asset(name).encode("utf-8")
        _ASSETS[name] = (body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    return _ASSETS[name]


def _host(url: str) -> str:
    return tile_origin(url).split("://", 1)[1]


def _groups(answer: NearestAnswer, sites: list[dict[str, Any]]
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The answer's sites (their JSON) in groups of equally near ones (one rank, one
    distance, and why they are equally near), then the sites with no position."""
    from trialfinder.render import rank_groups, shared_words

    json_of = {id(ranked): site for ranked, site in zip(answer.ranked, sites, strict=True)}
    placed = [{"rank": group[0].rank, "distance_km": group[0].distance_km or 0.0,
               "sites": [json_of[id(r)] for r in group],
               "shared": shared_words(group[0].site, len(group)) if len(group) > 1 else None}
              for group in rank_groups(answer.placed)]
    return placed, [json_of[id(r)] for r in answer.unplaced]


def _finalize(value: Any) -> Any:
    """Every value a template prints: control characters and bidi overrides from a record
    become U+FFFD, as in the terminal (escaping is autoescape's job). Markup stays markup
    (a sentence built with `Markup.format`): the replacement cannot make a tag."""
    from markupsafe import Markup

    from trialfinder.terminal import printable

    if not isinstance(value, str):
        return value
    shown = printable(value)
    return Markup(shown) if isinstance(value, Markup) else shown


def _environment() -> jinja2.Environment:
    import jinja2

    from trialfinder import i18n, summary, words
    from trialfinder.models import person_words

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.globals.update(
        _=i18n._, ngettext=i18n.ngettext, km=lambda value: format_decimal(value, 1), tel=tel_uri,
        where=_where, section_heading=_section_heading,
        sex_words=summary.sex_words, record_age_words=summary.record_age_words,
        arm_type_words=words.arm_type_words, record_source_words=words.record_source_words,
        address_words=words.address_words, person_words=person_words,
    )
    env.filters["field_words"] = words.field_words
    return env


def _section_heading(section: dict[str, Any]) -> str:
    """A criteria section's heading in the reader's language, by its kind."""
    kind = section.get("kind")
    if kind == "inclusion":
        return _("Inclusion criteria")
    if kind == "exclusion":
        return _("Exclusion criteria")
    return str(section.get("heading") or _("Other criteria"))


def _where(site: dict[str, Any]) -> str:
    """ "Lyon, France": `words.address_words` of a site as the JSON gives it."""
    from trialfinder.words import address_words

    return address_words(site.get("city"), site.get("country"))


def _out_of_reach_words(error: OutOfReach) -> str:
    """No site within reach: how far the nearest is, without command-line advice."""
    from trialfinder.words import place_title

    site = error.nearest.site
    return _(
        "No centre of this trial is within {km} km of {place}: the nearest, {facility} "
        "({city}), is {distance} km away."
    ).format(
        km=format_decimal(error.max_km, 0), place=place_title(error.place),
        facility=site.facility or site.city, city=site.city,
        distance=format_decimal(error.nearest.distance_km or 0.0, 0),
    )


def _main_country(trial: Trial) -> str | None:
    """The country most of the trial's sites are in: the region its central contacts' phone
    numbers are read in (they rarely say)."""
    from collections import Counter

    counts = Counter(site.country for site in trial.sites if site.country)
    return counts.most_common(1)[0][0] if counts else None
