"""The map in a real browser (headless Chromium, no network): markers drawn, no script error,
no element created from a hostile record even with every popup and tooltip open."""

from __future__ import annotations

import dataclasses
import re
import subprocess

import pytest

from map_fixtures import HOSTILE, lyon, sixteen_site_trial
from trialfinder import mapping

pytestmark = pytest.mark.browser

# Put first in <head>: records script errors and alert() calls on the <html> element.
HOOK_HEAD = """<script>
(function () {
  var root = document.documentElement;
  function note(name, text) {
    root.setAttribute(name, (root.getAttribute(name) || '') + text + '|');
  }
  window.addEventListener('error', function (e) { note('data-tf-errors', e.message || 'error'); });
  window.alert = function (m) { note('data-tf-alerts', String(m)); };
})();
</script>"""

# Put last: opens every popup and tooltip, then counts what they created.
HOOK_END = """<script>
window.addEventListener('load', function () {
  var root = document.documentElement, popups = 0, texts = [];
  tfMap.eachLayer(function (layer) {
    if (layer.getPopup && layer.getPopup()) {
      layer.openPopup();
      texts.push(layer.getPopup().getElement().textContent);
      popups++;
    }
    if (layer.getTooltip && layer.getTooltip()) { layer.openTooltip(); }
  });
  root.setAttribute('data-tf-popups', popups);
  root.setAttribute('data-tf-foreign', document.querySelectorAll(
    'img:not(.leaflet-tile), [onerror], script[src]').length);
  root.setAttribute('data-tf-hostile-shown', texts.some(function (t) {
    return t.indexOf(%s) >= 0; }) ? 'yes' : 'no');
  root.setAttribute('data-tf-tooltips', document.querySelectorAll('.leaflet-tooltip').length);
  root.setAttribute('data-tf-done', 'yes');
});
</script>"""


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> str:
    return chromium_path


def chromium_args(browser: str, profile) -> list[str]:
    return [
        browser, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}",
        # Offline for sure: every host name fails to resolve, tiles included.
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ]


def render_dom(browser: str, page: str, tmp_path) -> str:
    import json

    hooked = page.replace("<head>", "<head>" + HOOK_HEAD, 1).replace(
        "</html>", HOOK_END % json.dumps(HOSTILE) + "</html>"
    )
    path = tmp_path / "map.html"
    path.write_text(hooked, encoding="utf-8")
    args = chromium_args(browser, tmp_path / "profile")
    done = subprocess.run(
        [*args, "--virtual-time-budget=5000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def attribute(dom: str, name: str) -> str | None:
    match = re.search(rf'<html[^>]*\s{name}="([^"]*)"', dom)
    return match.group(1) if match else None


def test_markers_drawn_and_no_script_error(browser, tmp_path):
    """All 15 placed sites, the patient, the rings of the two equally near sites nearest to
    Lyon and one route are drawn; no error, no alert."""
    page = mapping.build_map(sixteen_site_trial(), place=lyon())
    dom = render_dom(browser, page, tmp_path)
    assert attribute(dom, "data-tf-done") == "yes"
    assert attribute(dom, "data-tf-errors") is None
    assert attribute(dom, "data-tf-alerts") is None
    assert len(re.findall(r'<path class="tf-site ', dom)) == 15
    assert len(re.findall(r'<path class="tf-site tf-recruiting', dom)) == 8
    assert len(re.findall(r'<path class="tf-patient ', dom)) == 1
    assert len(re.findall(r'<path class="tf-nearest-ring[ "]', dom)) == 2
    assert len(re.findall(r'<path class="tf-route[ "]', dom)) == 1
    assert attribute(dom, "data-tf-popups") == "15"
    assert 'class="tf-box tf-legend leaflet-control"' in dom


def test_hostile_names_stay_text_in_the_browser(browser, tmp_path):
    """With every popup and tooltip open, the hostile name is text: no <img>, no alert."""
    dijon = dataclasses.replace(lyon(), name=HOSTILE, latitude=47.32, longitude=5.04)
    page = mapping.build_map(sixteen_site_trial(), place=dijon)
    dom = render_dom(browser, page, tmp_path)
    assert attribute(dom, "data-tf-done") == "yes"
    assert attribute(dom, "data-tf-errors") is None
    assert attribute(dom, "data-tf-alerts") is None
    assert attribute(dom, "data-tf-foreign") == "0"
    assert attribute(dom, "data-tf-hostile-shown") == "yes"
    assert int(attribute(dom, "data-tf-tooltips") or 0) >= 15
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom
