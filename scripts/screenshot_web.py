"""Take the README's screenshots of the web page: a French patient on a phone.

    python scripts/screenshot_web.py [--output docs/web-fr-besancon.png]

Starts `trialfinder serve` on a free port (bundled record, no store), opens the search page
in Debian's headless Chromium through Playwright at phone size (375×812) in French, types
"Besancon", submits, and saves the answer page. Needs the test extra (Playwright) and
/usr/bin/chromium; no browser download.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "web-fr-besancon.png")
    parser.add_argument("--place", default="Besancon")
    parser.add_argument("--full-page", action="store_true",
                        help="the whole page, not the first screen")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        port = 8731
        env = {**os.environ, "TRIALFINDER_DB": str(Path(tmp) / "none.sqlite")}
        server = subprocess.Popen(
            [sys.executable, "-m", "trialfinder", "serve", "--port", str(port)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    urlopen(base + "/", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
                page = browser.new_page(viewport={"width": 375, "height": 812},
                                        device_scale_factor=2, locale="fr-FR",
                                        extra_http_headers={"Accept-Language": "fr-FR,fr"})
                page.goto(base + "/")
                page.fill("input[name=place]", args.place)
                page.press("input[name=place]", "Enter")
                page.wait_for_load_state("networkidle")
                args.output.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.output), full_page=args.full_page)
                browser.close()
        finally:
            server.terminate()
            server.wait(10)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
