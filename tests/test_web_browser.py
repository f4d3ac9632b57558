"""`trialfinder serve` as a person uses it: pages in a real headless Chromium (Playwright on
the system's Chromium), in French and English, at phone size and on a desktop, with the
keyboard, without JavaScript, and checked by axe-core for WCAG 2.1 AA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
NCT = "NCT02260505"


class Visit:
    """A page in a fresh browser context, recording what a patient must never meet: requests
    to another host, script errors, CSP violations, dialogs."""

    def __init__(self, browser: Any, base: str, *, viewport: dict[str, int] = PHONE,
                 lang: str = "en", javascript: bool = True) -> None:
        self.base = base
        self.context = browser.new_context(
            viewport=viewport, locale="fr-FR" if lang == "fr" else "en-GB",
            java_script_enabled=javascript,
        )
        self.page = self.context.new_page()
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", self._request)
        self.page.on("response", self._response)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._console)
        self.page.on("dialog", self._dialog)

    def _request(self, request: Any) -> None:
        url = request.url
        if not url.startswith((self.base, "data:", "about:", "blob:")):
            self.foreign.append(url)

    def _response(self, response: Any) -> None:
        # A page may answer 404 or 422 on purpose; what it loads must not fail.
        if response.status >= 400 and response.request.resource_type != "document":
            self.errors.append(f"{response.status} {response.url}")

    def _console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def clean(self) -> None:
        assert self.foreign == [], self.foreign
        assert self.errors == [], self.errors
        assert self.dialogs == [], self.dialogs

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(playwright_browser: Any, live_server: Any) -> Iterator[Any]:
    opened: list[Visit] = []

    def open_visit(**kwargs: Any) -> Visit:
        opened.append(Visit(playwright_browser, live_server.url, **kwargs))
        return opened[-1]

    yield open_visit
    for v in opened:
        v.close()


def search(v: Visit, place: str, lang: str) -> Any:
    """Type the place in the field, as a person does, and submit with Enter."""
    page = v.page
    page.goto(f"{v.base}?lang={lang}")
    field = page.get_by_role("combobox")  # a text field with suggestions
    field.fill("")
    field.press_sequentially(place, delay=10)
    with page.expect_navigation():
        field.press("Enter")
    return page


def no_horizontal_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], width


def axe_violations(page: Any) -> list[str]:
    """Serious or critical axe-core violations on the page and in its frames (the map)."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    found = []
    for frame in page.frames:
        frame.evaluate(axe.axe_script)
    result = page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
    )
    for violation in result["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [node["target"] for node in violation["nodes"]][:3]
            found.append(f"{violation['id']} ({violation['impact']}): {targets}")
    return found


# --------------------------------------------------------------------------- a patient


@pytest.mark.parametrize(("place", "lang", "expected", "ask", "age"), [
    ("Villeurbanne", "fr", "Centre Léon Bérard, à Lyon, France : à 3,1 km de Villeurbanne",
     "Demandez : Jean-Yves BLAY", "janvier 2019, il y a environ 6 ans"),
    ("97400", "fr", "km de Saint-Denis (974), 97400, France à vol d'oiseau",
     "Demandez : ", "janvier 2019, il y a environ 6 ans"),
    ("Besancon", "en", "CHRU de Besançon - Hôpital Minjoz, in Besançon, France: less than 1",
     "Ask for: Elsa KALBACHER", "January 2019, about 6 years ago"),
])
def test_a_patient_on_a_phone_types_a_place_and_reads_the_answer(
    visit: Any, place: str, lang: str, expected: str, ask: str, age: str
) -> None:
    """At 375×812, type "Besancon" or "97400", press Enter: the plain answer names the
    centre, how far, whom to ask for and how old the information is, in the page's
    language; the place is not in the URL; nothing is fetched from another host; no
    horizontal scrolling."""
    v = visit(lang=lang)
    page = search(v, place, lang)
    assert page.url == v.base + "nearest"
    assert page.locator("html").get_attribute("lang") == lang
    lead = page.locator(".answer .lead").inner_text().replace("\xa0", " ")
    assert expected in lead
    answer = page.locator(".answer").inner_text().replace("\xa0", " ")
    assert ask in answer and age in answer
    no_horizontal_scroll(page)
    map_frame = page.frame_locator("iframe.map")
    map_frame.locator(".leaflet-container").wait_for()
    assert map_frame.locator("path.tf-site").count() == 16
    v.clean()


def test_suggestions_appear_as_you_type(visit: Any) -> None:
    """Typing "besan" fills the field's suggestions from this server."""
    v = visit()
    page = v.page
    page.goto(v.base)
    page.locator("#place").press_sequentially("besan", delay=30)
    # Options for an earlier prefix ("be") may show first on a slow machine: wait for the
    # answer to "besan" itself (a timeout fails the test).
    page.wait_for_function(
        "() => { const o = document.querySelector('#place-options option');"
        " return o !== null && o.value === 'Besançon'; }")
    values = page.eval_on_selector_all("#place-options option", "o => o.map(x => x.value)")
    assert values[0] == "Besançon" and len(values) <= 8
    v.clean()


def test_the_form_works_without_javascript(visit: Any) -> None:
    """With JavaScript off, the search still answers (the map is the only thing missing)."""
    v = visit(javascript=False)
    page = search(v, "Lyon", "en")
    assert "Centre Léon Bérard" in page.locator(".answer .lead").inner_text()
    v.clean()


def test_language_switch_keeps_the_answer_without_the_place_in_the_url(visit: Any) -> None:
    """The "Français" control on an answer gives the same answer in French, by POST."""
    v = visit()
    page = search(v, "Besancon", "en")
    with page.expect_navigation():
        page.get_by_role("button", name="Français").click()
    assert page.url == v.base + "nearest"
    assert page.locator("html").get_attribute("lang") == "fr"
    assert "157,5 km" in page.locator("ol.sites").inner_text()
    assert page.locator("h1").inner_text() == "Centres les plus proches de Besançon (25), France"
    v.clean()


# --------------------------------------------------------------------------- the keyboard


def test_keyboard_skip_link_visible_focus_and_the_map_is_no_trap(visit: Any) -> None:
    """Tab first reaches a visible skip link; every focused element shows an outline; Tab
    goes into the map and out of it again, to the links after it."""
    v = visit(viewport=DESKTOP)
    page = search(v, "Lyon", "en")
    page.evaluate("window.scrollTo(0, 0); document.activeElement.blur()")
    page.keyboard.press("Tab")
    skip = page.evaluate(
        "(() => { const e = document.activeElement, r = e.getBoundingClientRect();"
        " return [e.className, r.top >= 0 && r.bottom > 0]; })()")
    assert skip == ["skip", True]
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    passed_map = False
    for _ in range(80):
        page.keyboard.press("Tab")
        state = page.evaluate(
            "(() => { const e = document.activeElement;"
            " const s = getComputedStyle(e);"
            " return [e.tagName, e.textContent.slice(0, 40), s.outlineStyle, s.outlineWidth,"
            " !!e.closest('section[aria-labelledby=source-heading]')]; })()")
        tag, _text, outline, width, after_map = state
        if tag != "IFRAME":
            assert outline != "none" and width != "0px", state
        if after_map:
            passed_map = True
            break
    assert passed_map, "Tab never left the map"
    v.clean()


# --------------------------------------------------------------------------- accessibility


@pytest.mark.parametrize("lang", ["en", "fr"])
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_no_serious_accessibility_violation_on_any_page(
    visit: Any, lang: str, viewport: dict[str, int]
) -> None:
    """axe-core (WCAG 2.0/2.1 A and AA, best practices): no serious or critical violation on
    the search page, an answer with its map, an unknown place, the trial page, the referral
    sheet and a 404 — in both languages, at phone and desktop size; and no horizontal
    scrolling."""
    v = visit(viewport=viewport, lang=lang)
    page = v.page
    pages = []
    page.goto(f"{v.base}?lang={lang}")
    assert page.locator("h1").inner_text() == {
        "en": "Find a trial centre near you",
        "fr": "Trouver un centre de l'essai près de chez vous",
    }[lang]
    pages.append(("search", axe_violations(page)))
    no_horizontal_scroll(page)
    search(v, "Besancon", lang)
    page.frame_locator("iframe.map").locator(".leaflet-container").wait_for()
    pages.append(("answer", axe_violations(page)))
    no_horizontal_scroll(page)
    search(v, "Xqzwv", lang)
    pages.append(("unknown place", axe_violations(page)))
    page.goto(f"{v.base}trial/{NCT}?lang={lang}")
    pages.append(("trial", axe_violations(page)))
    no_horizontal_scroll(page)
    page.locator("#referral-place").fill("Besancon")
    with page.expect_navigation():
        page.locator("#referral-place").press("Enter")
    assert "CHRU de Besançon" in page.content()
    pages.append(("referral", axe_violations(page)))
    page.goto(f"{v.base}trial/NCT00000001?lang={lang}")
    pages.append(("404", axe_violations(page)))
    assert [(name, found) for name, found in pages if found] == []
    v.clean()


# --------------------------------------------------------------------------- hostile records


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from conftest import LiveServer
    from test_web import OTHER, hostile_trial, store_with

    db = store_with(Path(tmp_path_factory.mktemp("hostile")) / "s.sqlite", hostile_trial())
    server = LiveServer("--db", str(db), "--trial", OTHER)
    try:
        yield server
    finally:
        server.stop()


def test_hostile_records_run_nothing_in_the_browser(playwright_browser: Any,
                                                    hostile_server: Any) -> None:
    """A record full of markup and scripts: every page (map popups opened) shows it as
    text; no dialog, no script error, no request elsewhere, no CSP violation."""
    v = Visit(playwright_browser, hostile_server.url, viewport=DESKTOP)
    try:
        page = v.page
        page.goto(hostile_server.url)
        with page.expect_navigation():
            page.locator("#place").fill("Dijon")
            page.locator("#place").press("Enter")
        frame = page.frame_locator("iframe.map")
        frame.locator("path.tf-site").first.wait_for()
        for index in range(frame.locator("path.tf-site").count()):
            frame.locator("path.tf-site").nth(index).click(force=True)
        assert "Centre <b>Hostile</b>" in page.locator(".answer .lead").inner_text()
        assert page.locator("main b, main img, main i").count() == 0
        page.goto(hostile_server.url + "trial/NCT09999991")
        assert '<script>alert("x")</script>' in page.locator("main").inner_text()
        v.clean()
    finally:
        v.close()
