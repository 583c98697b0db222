"""Build the static demo news web in demo/site/ from the articles in demo/content/*.jsonl.

    python demo/build.py          # rewrite demo/site/
    python demo/build.py --check  # exit 1 when demo/site/ is out of date

Absolute URLs (sitemaps, robots.txt, feed self-links) use the placeholder __BASE__, which the demo
server replaces with http://127.0.0.1:<port> when it serves a file.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import sys
import tempfile
from datetime import datetime
from email.utils import format_datetime
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CONTENT = ROOT / "content"
SITE = ROOT / "site"
BASE = "__BASE__"

OUTLETS = {
    "severny-vestnik": {"name": "Severny Vestnik", "feed": "rss-per-lang"},
    "dala-habar": {"name": "Dala Habar", "feed": "atom-per-lang"},
    "steppe-ledger": {"name": "Steppe Ledger", "feed": "rss"},
    "eurasia-lens": {"name": "Eurasia Lens", "feed": "sitemap"},
    "courrier-des-steppes": {"name": "Le Courrier des steppes", "feed": "atom"},
    "csto-press": {"name": "CSTO Press Service", "feed": "listing"},
}
PER_PAGE = 8


def load(outlet: str) -> list[dict]:
    path = CONTENT / f"{outlet}.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return sorted(rows, key=lambda r: (r["published"], r["slug"]), reverse=True)


def article_path(outlet: str, row: dict) -> str:
    return f"/{outlet}/{row['published'][:10].replace('-', '/')}/{row['slug']}.html"


def article_html(outlet: str, name: str, row: dict) -> str:
    title = escape(row["title"])
    paragraphs = "\n".join(f"      <p>{escape(p)}</p>" for p in row["paragraphs"])
    when = escape(row["published"])
    return f"""<!doctype html>
<html lang="{escape(row['lang'])}">
<head>
  <meta charset="utf-8">
  <title>{title} | {escape(name)}</title>
  <link rel="canonical" href="{article_path(outlet, row)}">
  <meta property="article:published_time" content="{when}">
  <meta name="author" content="{escape(row.get('author', ''))}">
</head>
<body>
  <header><a href="/{outlet}/">{escape(name)}</a>
    <nav><a href="/{outlet}/">Home</a> <a href="/{outlet}/">{escape(row.get('section', 'news'))}</a></nav>
  </header>
  <main>
    <article>
      <h1>{title}</h1>
      <p class="byline">{escape(row.get('author', ''))} · <time datetime="{when}">{when[:10]}</time></p>
{paragraphs}
    </article>
  </main>
  <footer><p>{escape(name)} is a fictional outlet of the cstowatch demo.</p></footer>
</body>
</html>
"""


def rss(outlet: str, name: str, rows: list[dict], lang: str | None) -> str:
    items = []
    for row in rows:
        link = article_path(outlet, row)
        when = format_datetime(datetime.fromisoformat(row["published"]))
        items.append(
            f"""  <item>
    <title>{escape(row['title'])}</title>
    <link>{link}</link>
    <guid isPermaLink="false">{outlet}-{escape(row['slug'])}</guid>
    <pubDate>{when}</pubDate>
    <description>{escape(row['paragraphs'][0])}</description>
  </item>"""
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0">\n<channel>\n'
        f"  <title>{escape(name)}</title>\n  <link>{BASE}/{outlet}/</link>\n"
        f"  <language>{lang or 'mul'}</language>\n"
        + "\n".join(items)
        + "\n</channel>\n</rss>\n"
    )


def atom(outlet: str, name: str, rows: list[dict], self_path: str) -> str:
    entries = []
    for row in rows:
        entries.append(
            f"""  <entry>
    <title>{escape(row['title'])}</title>
    <link rel="alternate" href="{article_path(outlet, row)}"/>
    <id>tag:demo.cstowatch,2026:{outlet}:{escape(row['slug'])}</id>
    <published>{row['published']}</published>
    <updated>{row['published']}</updated>
    <summary>{escape(row['paragraphs'][0])}</summary>
  </entry>"""
        )
    updated = rows[0]["published"] if rows else "2026-11-29T00:00:00+00:00"
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n'
        f"  <title>{escape(name)}</title>\n  <id>tag:demo.cstowatch,2026:{outlet}</id>\n"
        f'  <link rel="self" href="{BASE}{self_path}"/>\n  <updated>{updated}</updated>\n'
        + "\n".join(entries)
        + "\n</feed>\n"
    )


def sitemap(outlet: str, rows: list[dict]) -> str:
    urls = "\n".join(
        f"  <url><loc>{BASE}{article_path(outlet, row)}</loc>"
        f"<lastmod>{row['published']}</lastmod></url>"
        for row in rows
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' + urls + "\n</urlset>\n"
    )


def listing_pages(outlet: str, name: str, rows: list[dict]) -> dict[str, str]:
    pages = {}
    chunks = [rows[i : i + PER_PAGE] for i in range(0, len(rows), PER_PAGE)] or [[]]
    for number, chunk in enumerate(chunks, start=1):
        links = "\n".join(
            f'      <li><a class="news-link" href="{article_path(outlet, r)}">'
            f"{escape(r['title'])}</a> <span>{r['published'][:10]}</span></li>"
            for r in chunk
        )
        if number == 1:
            # one stale link (soft 404) and one off-site link: recorded, never stored as articles
            links += (
                f'\n      <li><a class="news-link" href="/{outlet}/news/archive-2019.html">'
                "Archive 2019</a></li>"
                '\n      <li><a class="news-link" href="http://partner.example.org/csto">'
                "Partner site</a></li>"
            )
        nxt = (
            f'<a class="next" href="/{outlet}/news/page-{number + 1}.html">Next</a>'
            if number < len(chunks)
            else ""
        )
        path = f"/{outlet}/news/index.html" if number == 1 else f"/{outlet}/news/page-{number}.html"
        pages[path] = (
            f'<!doctype html>\n<html lang="ru"><head><meta charset="utf-8"><title>{escape(name)}'
            f" news, page {number}</title></head>\n<body>\n  <h1>{escape(name)}</h1>\n"
            f'  <ul class="news">\n{links}\n  </ul>\n  {nxt}\n</body></html>\n'
        )
    pages[f"/{outlet}/news/archive-2019.html"] = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Page not found'
        "</title></head>\n<body><h1>Page not found</h1><p>The page you requested does not exist "
        "or was moved.</p></body></html>\n"
    )
    return pages


def build(site: Path) -> int:
    files: dict[str, str] = {}
    total = 0
    robots = ["User-agent: *", "Disallow: /private/"]
    for outlet, meta in OUTLETS.items():
        rows = load(outlet)
        total += len(rows)
        name, kind = meta["name"], meta["feed"]
        for row in rows:
            files[article_path(outlet, row)] = article_html(outlet, name, row)
        index_links = "\n".join(
            f'<li><a href="{article_path(outlet, r)}">{escape(r["title"])}</a></li>'
            for r in rows[:20]
        )
        files[f"/{outlet}/index.html"] = (
            f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{escape(name)}</title>'
            f"</head>\n<body><h1>{escape(name)}</h1><ul>\n{index_links}\n</ul></body></html>\n"
        )
        if kind == "rss-per-lang":
            for lang in sorted({r["lang"] for r in rows}):
                files[f"/{outlet}/rss/{lang}.xml"] = rss(
                    outlet, name, [r for r in rows if r["lang"] == lang], lang
                )
        elif kind == "rss":
            files[f"/{outlet}/feed.xml"] = rss(outlet, name, rows, None)
        elif kind == "atom-per-lang":
            for lang in sorted({r["lang"] for r in rows}):
                path = f"/{outlet}/atom/{lang}.xml"
                files[path] = atom(outlet, name, [r for r in rows if r["lang"] == lang], path)
        elif kind == "atom":
            files[f"/{outlet}/atom.xml"] = atom(outlet, name, rows, f"/{outlet}/atom.xml")
        elif kind == "sitemap":
            files[f"/{outlet}/sitemap.xml"] = sitemap(outlet, rows)
            robots.append(f"Sitemap: {BASE}/{outlet}/sitemap.xml")
        elif kind == "listing":
            files.update(listing_pages(outlet, name, rows))
    files["/robots.txt"] = "\n".join(robots) + "\n"
    files["/private/drafts.html"] = (
        "<!doctype html><html><body><p>Robots.txt forbids this page.</p></body></html>\n"
    )
    for path, text in files.items():
        target = site / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return total


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when demo/site is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        total = build(Path(tmp))
        if args.check:
            fresh = SITE.exists() and _same_tree(Path(tmp), SITE)
            print("demo/site is up to date" if fresh else "demo/site is stale: run demo/build.py")
            return 0 if fresh else 1
        if SITE.exists():
            shutil.rmtree(SITE)
        shutil.copytree(tmp, SITE)
    print(f"built {total} articles into {SITE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
