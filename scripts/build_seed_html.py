"""Build tests/fixtures/seed/NCT02260505-listing.html, an HTML rendering of the seed listing.

No HTML copy of the seed page exists: this file is BUILT from the seed's visible text
(tests/fixtures/seed/000_6aeb1dc53d5a47c7.txt), not recorded. Its markup (headings,
paragraphs, an ordered list, a div per site, a nav holding the page chrome, a script and a
style) is a plausible page, made to test that the listing parser reads HTML and text alike.
This script reads the seed on its own (it does not use trialfinder's parser).

    python scripts/build_seed_html.py
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "fixtures" / "seed" / "000_6aeb1dc53d5a47c7.txt"
OUT = ROOT / "tests" / "fixtures" / "seed" / "NCT02260505-listing.html"


def blocks(lines: list[str]) -> list[list[str]]:
    """Blank-line separated blocks of stripped lines."""
    out: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            out[-1].append(line.strip())
        elif out[-1]:
            out.append([])
    return [b for b in out if b]


def index(lines: list[str], prefix: str) -> int:
    return next(k for k, ln in enumerate(lines) if ln.strip().startswith(prefix))


def main() -> None:
    lines = SEED.read_text(encoding="utf-8").replace("\u00a0", " ").split("\n")
    updated = lines[index(lines, "Last updated on")].strip()
    brief_at = index(lines, "Brief description of study")
    detailed_at = index(lines, "Detailed Study Description")
    ident_at = index(lines, "Clinical Study Identifier:")
    sites_at = index(lines, "Contact Investigators or Research Sites")
    status_at = index(lines, "Recruitment Status:")
    title = next(ln.strip() for ln in lines[index(lines, "Last updated on") + 1 :] if ln.strip())

    e = escape
    out = [
        "<!DOCTYPE html>",
        "<!-- BUILT, NOT RECORDED: an HTML rendering of the seed listing's visible text",
        "     (tests/fixtures/seed/000_6aeb1dc53d5a47c7.txt) made by scripts/build_seed_html.py.",
        "     The markup is invented; only the visible text comes from the seed. -->",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(title)} | Clinical Trials</title>",
        "<style>.site { margin: 1em 0 } .connect::after { content: ' »' }</style>",
        '<script>window.dataLayer = [{"page": "trial", "note": "Connect » <b>not text</b>"}];'
        "</script>",
        "</head>",
        "<body>",
        '<nav class="tabs"><a href="#brief">Brief Description</a> <a href="#elig">Eligibility</a>'
        ' <a href="#contact">Contact Research Team</a></nav>',
        "<main>",
        f'<p class="updated">{e(updated)}</p>',
        f"<h1>{e(title)}</h1>",
        '<section id="brief">',
        "<h2>Brief description of study</h2>",
    ]
    out += [f"<p>{e(' '.join(b))}</p>" for b in blocks(lines[brief_at + 1 : detailed_at])]
    out += ["</section>", '<section id="detailed">', "<h2>Detailed Study Description</h2>"]
    for block in blocks(lines[detailed_at + 1 : ident_at]):
        items = [re.sub(r"^\d+\.\s*", "", ln) for ln in block if re.match(r"^\d+\.", ln)]
        if items and len(items) == len(block):
            out.append("<ol>")
            out += [f"  <li>{e(item)}</li>" for item in items]
            out.append("</ol>")
        else:
            out.append(f"<p>{e(' '.join(block))}</p>")
    out += [
        "</section>",
        f'<p class="identifier">{e(lines[ident_at].strip())}</p>',
        '<section id="contact">',
        f"<h2>{e(lines[sites_at].strip())}</h2>",
        '<div class="reset"><a href="?">Start Over</a></div>',
    ]
    site_lines = [
        ln.strip()
        for ln in lines[sites_at + 1 : status_at]
        if ln.strip() and ln.strip() != "Start Over"
    ]
    site: list[str] = []
    for line in site_lines:
        if line.startswith("Connect"):
            investigator, facility, place = site
            out += [
                '<div class="site">',
                f'  <div class="investigator"><strong>{e(investigator)}</strong></div>',
                f'  <div class="facility">{e(facility)}</div>',
                f'  <div class="place">{e(place)}</div>',
                '  <div><a class="connect" href="#connect">&nbsp;&nbsp;Connect &raquo;</a></div>',
                "</div>",
            ]
            site = []
        else:
            site.append(line)
    out += [
        "</section>",
        f'<p class="status">{e(lines[status_at].strip())}</p>',
        '<nav class="tabs-bottom"><a href="#brief">Brief Description</a>'
        ' <a href="#elig">Eligibility</a> <a href="#contact">Contact Research Team</a></nav>',
        '<aside class="signup">',
        "<h3>Receive Emails About New Clinical Trials!</h3>",
    ]
    signup = next(ln.strip() for ln in lines if ln.strip().startswith("Sign up for our FREE"))
    out += [
        f"<p>{e(signup)}</p>",
        "</aside>",
        "</main>",
        '<script src="/static/app.js"></script>',
        "</body>",
        "</html>",
    ]
    OUT.write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
