"""Crawl benchmark: pages/s through the real Scrapy path against a bare Scrapy fetch.

    .venv/bin/python bench/crawl.py [--small]      # 2,000 article pages (--small: 200)

Steps (everything in a temporary directory, removed at the end):

1. generate a news site: ``robots.txt`` (allow all, names the sitemap), a sitemap index with
   sitemaps of 500 URLs each (``lastmod``), paginated listing pages of 50 links, and N article
   pages of realistic markup: head with meta/OpenGraph/JSON-LD, inline CSS and JS, header, nav,
   cookie banner, breadcrumbs, ``<article>`` with h1, byline, ``<time datetime>``, 5-8
   paragraphs of generated text in ru/kk/en/fr (from word lists, no real articles), tags,
   related links, footer. Served by ``flows.static_site.StaticSite`` on 127.0.0.1 (a Python
   threading server in this process: it takes CPU from the crawler on a 2-core machine);
2. (a) the real path: ``crawlers.collect.collect_source`` with a ``Source`` whose ``sitemaps``
   name the sitemap index (``start_delay`` 0.05), i.e. ``python -m crawlers.scrapy_run JOB OUT``
   in a subprocess: ``SitemapNewsSpider`` + ``BatchWriter`` (trafilatura + htmldate extraction,
   zlib of the raw HTML, one JSON line per page);
3. (b) a bare Scrapy fetch, same settings (``crawl_settings``: robots obeyed, AutoThrottle,
   2 requests per domain) without the item pipeline: a minimal ``SitemapSpider`` subclass that
   yields ``{'url', 'len'}`` per page;
4. (c)/(d) the same two with politeness off (``CONCURRENT_REQUESTS_PER_DOMAIN=16``,
   ``CONCURRENT_REQUESTS=16``, AutoThrottle off): not how the pipeline runs, only to show what
   extraction costs once the politeness bound is gone. (c) is still the real spiders and the
   real ``BatchWriter``, with ``crawl_settings`` patched in the child process.

Rates: "wall" is pages / subprocess wall time (includes interpreter start, imports, robots and
sitemaps); "steady" is pages / (last page time - first page time). Peak memory: ru_maxrss of
each crawler process (RUSAGE_CHILDREN for (a), the child's own RUSAGE_SELF for the others) and
of this process (generator + HTTP server).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

USER_AGENT = "cstowatch/0.1 (+https://github.com/cstowatch/cstowatch; media research bot)"
UNTHROTTLED = {
    "AUTOTHROTTLE_ENABLED": False,
    "CONCURRENT_REQUESTS": 16,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
    "DOWNLOAD_DELAY": 0,
}

# --------------------------------------------------------------------------- site generator

WORDS = {
    "ru": {
        "noun": "ОДКБ безопасность Казахстан Россия союзники учения генсек договор саммит граница "
                "миротворцы министр делегация соглашение сотрудничество стороны регион эксперты "
                "заявление правительство парламент переговоры вопрос решение партнёры",
        "verb": "заявил обсудили подписали провели сообщил отметил подчеркнул предложили "
                "поддержали рассмотрели осудили назвал",
        "adj": "коллективной региональной новой совместной стратегической военной важной "
               "двусторонней экономической официальной",
        "fill": "в на по о с для что как также при этом однако после накануне",
        "title": "Саммит ОДКБ в Астане: стороны обсудили безопасность региона",
    },
    "kk": {
        "noun": "ҰҚШҰ қауіпсіздік Қазақстан Ресей одақтастар жаттығу бас хатшы келісім саммит "
                "шекара бітімгерлер министр делегация ынтымақтастық тараптар аймақ сарапшылар "
                "мәлімдеме үкімет парламент келіссөздер",
        "verb": "мәлімдеді талқылады қол қойды өткізді хабарлады атап өтті ұсынды қолдады",
        "adj": "ұжымдық аймақтық жаңа бірлескен стратегиялық әскери маңызды екіжақты",
        "fill": "және мен бойынша туралы үшін сондай-ақ алайда кейін бұл",
        "title": "Астанадағы ҰҚШҰ саммиті: тараптар аймақ қауіпсіздігін талқылады",
    },
    "en": {
        "noun": "CSTO security Kazakhstan Russia allies exercises secretary general treaty summit "
                "border peacekeepers minister delegation agreement cooperation parties region "
                "experts statement government parliament talks question decision partners",
        "verb": "said discussed signed held reported noted stressed proposed backed reviewed "
                "condemned called",
        "adj": "collective regional new joint strategic military important bilateral economic "
               "official",
        "fill": "the of in on for and that with as also after while however",
        "title": "CSTO summit in Astana: parties discuss regional security",
    },
    "fr": {
        "noun": "OTSC sécurité Kazakhstan Russie alliés exercices secrétaire général traité "
                "sommet frontière casques ministre délégation accord coopération parties région "
                "experts déclaration gouvernement parlement négociations question décision",
        "verb": "a déclaré ont discuté ont signé ont tenu a indiqué a souligné ont proposé "
                "ont soutenu ont examiné a condamné",
        "adj": "collective régionale nouvelle commune stratégique militaire importante "
               "bilatérale économique officielle",
        "fill": "le la les de des du et que avec pour dans sur aussi après cependant",
        "title": "Sommet de l'OTSC à Astana : les parties discutent de la sécurité régionale",
    },
}
NAV = {
    "ru": ["Главная", "Политика", "Экономика", "В мире", "Общество", "Спорт", "Мнения"],
    "kk": ["Басты бет", "Саясат", "Экономика", "Әлем", "Қоғам", "Спорт", "Пікір"],
    "en": ["Home", "Politics", "Economy", "World", "Society", "Sport", "Opinion"],
    "fr": ["Accueil", "Politique", "Économie", "Monde", "Société", "Sport", "Opinions"],
}
LANG_MIX = ["ru"] * 4 + ["kk"] * 2 + ["en"] * 3 + ["fr"]

CSS = "\n".join(
    f".c{i}{{margin:{i % 7}px;padding:{i % 5}px;color:#{(i * 2654435761) % 0xFFFFFF:06x};"
    f"font-size:{12 + i % 6}px;line-height:1.{i % 9}}}"
    for i in range(220)
)
JS = "\n".join(
    f"window.__cfg{i}={{id:{i},slot:'ad-{i}',lazy:{str(i % 2 == 0).lower()},"
    f"sizes:[[300,250],[728,90]],targeting:{{section:'politics',pos:{i}}}}};"
    for i in range(120)
)


def _split(s: str) -> list[str]:
    return s.split()


class TextGen:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.words = {lang: {k: (_split(v) if k != "title" else v) for k, v in d.items()}
                      for lang, d in WORDS.items()}

    def sentence(self, lang: str) -> str:
        w, r = self.words[lang], self.rng
        parts = []
        for _ in range(r.randint(9, 22)):
            kind = r.choices(("noun", "verb", "adj", "fill"), (4, 1.5, 2, 3))[0]
            parts.append(r.choice(w[kind]))
        if r.random() < 0.3:
            parts.append(f"{r.randint(2, 2026)}")
        s = " ".join(parts)
        return s[0].upper() + s[1:] + r.choice((".", ".", ".", "?", "!"))

    def paragraph(self, lang: str) -> str:
        return " ".join(self.sentence(lang) for _ in range(self.rng.randint(3, 6)))


def article_html(i: int, lang: str, day: date, gen: TextGen, n_pages: int) -> str:
    r = gen.rng
    title = f"{WORDS[lang]['title']} ({i})"
    paras = "\n".join(f"      <p>{gen.paragraph(lang)}</p>" for _ in range(r.randint(5, 8)))
    hh, mm = r.randint(6, 22), r.randint(0, 59)
    stamp = f"{day.isoformat()}T{hh:02d}:{mm:02d}:00+05:00"
    nav = "".join(f'<li><a href="/section/{k}/">{name}</a></li>' for k, name in
                  enumerate(NAV[lang]))
    related = "".join(
        f'<li><a href="/news/{(i + k * 37) % n_pages:05d}.html">{gen.sentence(lang)[:70]}</a></li>'
        for k in range(1, 7)
    )
    tags = ", ".join(r.sample(WORDS[lang]["noun"].split(), 4))
    desc = gen.sentence(lang)
    ld = json.dumps({"@context": "https://schema.org", "@type": "NewsArticle", "headline": title,
                     "datePublished": stamp, "inLanguage": lang,
                     "author": {"@type": "Person", "name": "Staff correspondent"}},
                    ensure_ascii=False)
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
  <meta charset="utf-8">
  <title>{title} | Bench News</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="description" content="{desc}">
  <meta property="og:type" content="article">
  <meta property="og:title" content="{title}">
  <meta property="og:description" content="{desc}">
  <meta property="article:published_time" content="{stamp}">
  <link rel="canonical" href="__BASE__/news/{i:05d}.html">
  <script type="application/ld+json">{ld}</script>
  <style>{CSS}</style>
  <script>{JS}</script>
</head>
<body class="page-article">
  <div class="cookie-banner" id="cookies">This site uses cookies for statistics.
    <button>OK</button></div>
  <header class="site-header">
    <a class="logo" href="/">Bench News</a>
    <form class="search" action="/search"><input name="q"><button>Search</button></form>
    <nav class="main-nav"><ul>{nav}</ul></nav>
  </header>
  <div class="ad ad-top" id="ad-top"><script>window.__ad && __ad('top');</script></div>
  <main>
    <ol class="breadcrumbs"><li><a href="/">{NAV[lang][0]}</a></li>
      <li><a href="/section/1/">{NAV[lang][1]}</a></li></ol>
    <article class="story">
      <h1 class="story-title">{title}</h1>
      <div class="byline">Staff correspondent ·
        <time datetime="{stamp}">{day.strftime('%d.%m.%Y')} {hh:02d}:{mm:02d}</time></div>
      <figure><img src="/img/{i}.jpg" alt="{tags}"><figcaption>{gen.sentence(lang)}</figcaption>
      </figure>
{paras}
      <div class="tags">{tags}</div>
    </article>
    <aside class="related"><h2>{NAV[lang][6]}</h2><ul>{related}</ul></aside>
  </main>
  <footer class="site-footer">
    <ul><li><a href="/about">About</a></li><li><a href="/contacts">Contacts</a></li>
      <li><a href="/privacy">Privacy</a></li></ul>
    <p>© 2026 Bench News. All rights reserved. Reproduction only with a link to the source.</p>
  </footer>
  <script>(function(){{var s=document.createElement('script');s.async=1;
    s.src='/static/app.js';document.body.appendChild(s);}})();</script>
</body>
</html>
"""


def build_site(root: Path, n_pages: int, seed: int = 11) -> dict:
    rng = random.Random(seed)
    gen = TextGen(rng)
    (root / "news").mkdir(parents=True)
    first_day = date(2026, 11, 28) - timedelta(days=n_pages // 40)
    entries = []
    sizes = []
    for i in range(n_pages):
        lang = rng.choice(LANG_MIX)
        day = first_day + timedelta(days=i // 40)
        html = article_html(i, lang, day, gen, n_pages)
        (root / "news" / f"{i:05d}.html").write_text(html, encoding="utf-8")
        sizes.append(len(html.encode()))
        entries.append((f"__BASE__/news/{i:05d}.html", day))
    # sitemaps of 500 URLs behind an index
    chunk = 500
    names = []
    for k in range(0, n_pages, chunk):
        name = f"sitemap-{k // chunk + 1}.xml"
        names.append(name)
        urls = "".join(f"<url><loc>{loc}</loc><lastmod>{day.isoformat()}</lastmod></url>\n"
                       for loc, day in entries[k : k + chunk])
        (root / name).write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            f"{urls}</urlset>\n", encoding="utf-8")
    index = "".join(f"<sitemap><loc>__BASE__/{n}</loc></sitemap>\n" for n in names)
    (root / "sitemap_index.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        f"{index}</sitemapindex>\n", encoding="utf-8")
    (root / "robots.txt").write_text(
        "User-agent: *\nDisallow: /search\nDisallow: /admin/\nAllow: /\n\n"
        "Sitemap: __BASE__/sitemap_index.xml\n", encoding="utf-8")
    # listing pages: 50 links each, newest first, with a next link
    per = 50
    pages = (n_pages + per - 1) // per
    for p in range(pages):
        items = "".join(
            f'<article class="teaser"><a href="/news/{i:05d}.html">'
            f"{WORDS['en']['title']} ({i})</a></article>\n"
            for i in range(n_pages - 1 - p * per, max(-1, n_pages - 1 - (p + 1) * per), -1))
        nxt = f'<a class="next" href="/news/page-{p + 2}.html">Next</a>' if p + 1 < pages else ""
        name = "index.html" if p == 0 else f"page-{p + 1}.html"
        (root / "news" / name).write_text(
            f"<!DOCTYPE html><html><head><title>News, page {p + 1}</title></head><body>"
            f"<main>{items}</main>{nxt}</body></html>", encoding="utf-8")
    (root / "index.html").write_text(
        '<!DOCTYPE html><html><body><a href="/news/">News</a></body></html>', encoding="utf-8")
    return {"pages": n_pages, "mean_kb": sum(sizes) / len(sizes) / 1024,
            "total_mb": sum(sizes) / 2**20, "sitemaps": len(names), "listings": pages}


# --------------------------------------------------------------------------- crawler children


def make_job(base: str) -> dict:
    from crawlers.sources import Source

    source = Source(id="bench-news", name="Bench News", country="KZ",
                    languages=["ru", "kk", "en", "fr"], domains=["127.0.0.1"],
                    sitemaps=[f"{base}/sitemap_index.xml"], affiliation="independent")
    return {"source": source.model_dump(mode="json"), "article_urls": [], "known": [],
            "user_agent": USER_AGENT, "since": None, "until": None, "start_delay": 0.05}


def child_bare(job: dict, out: str, overrides: dict) -> dict:
    """A minimal spider: same discovery (sitemaps), same settings, no extraction."""
    import scrapy  # noqa: F401
    from scrapy.crawler import CrawlerProcess
    from scrapy.spiders import SitemapSpider

    from crawlers.scrapy_run import crawl_settings

    times: list[float] = []

    class BareSpider(SitemapSpider):
        name = "bare"
        sitemap_urls = job["source"]["sitemaps"]

        def parse(self, response):  # type: ignore[no-untyped-def]
            times.append(time.time())
            yield {"url": response.url, "len": len(response.body)}

    settings = crawl_settings(job, out)
    settings.pop("ITEM_PIPELINES")
    settings.update(overrides)
    process = CrawlerProcess(settings, install_root_handler=True)
    crawler = process.create_crawler(BareSpider)
    process.crawl(crawler)
    process.start()
    stats = crawler.stats.get_stats()
    return {"pages": int(stats.get("item_scraped_count", 0)),
            "first": min(times) if times else None, "last": max(times) if times else None}


def child_real(job: dict, out: str, overrides: dict) -> dict:
    """The real spiders and BatchWriter (crawlers.scrapy_run.main), settings patched."""
    import crawlers.scrapy_run as sr

    original = sr.crawl_settings
    sr.crawl_settings = lambda j, o: {**original(j, o), **overrides}
    sr.main([job["_path"], out])
    return {}


def child_main(mode: str, job_path: str, out: str) -> None:
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    job["_path"] = job_path
    kind, polite = mode.split("-")
    overrides = {} if polite == "polite" else UNTHROTTLED
    result = (child_bare if kind == "bare" else child_real)(job, out, overrides)
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("BENCH-RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- parent


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def read_batch(out: Path) -> dict:
    pages, statuses, stamps, failures = 0, {}, [], 0
    with out.open(encoding="utf-8") as handle:
        for line in handle:
            rec = json.loads(line)
            if rec["kind"] == "article":
                pages += 1
                statuses[rec.get("status")] = statuses.get(rec.get("status"), 0) + 1
                stamps.append(datetime.fromisoformat(rec["fetched_at"]).timestamp())
            elif rec["kind"] == "failure":
                failures += 1
    return {"pages": pages, "statuses": statuses, "failures": failures,
            "first": min(stamps) if stamps else None, "last": max(stamps) if stamps else None}


def run_child(mode: str, job: dict, work: Path) -> dict:
    job_path, out = work / f"{mode}.job.json", work / f"{mode}.jsonl"
    job_path.write_text(json.dumps(job), encoding="utf-8")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(job_path), str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} exited {proc.returncode}: {proc.stderr[-2000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH-RESULT "))
    result = json.loads(line.split(" ", 1)[1])
    if mode.startswith("real"):
        result.update(read_batch(out))
    result["wall"] = wall
    return result


def run_real_polite(base: str, work: Path) -> dict:
    """(a): exactly what the pipeline does: collect_source -> python -m crawlers.scrapy_run."""
    from crawlers.collect import collect_source
    from crawlers.sources import Source

    source = Source(id="bench-news", name="Bench News", country="KZ",
                    languages=["ru", "kk", "en", "fr"], domains=["127.0.0.1"],
                    sitemaps=[f"{base}/sitemap_index.xml"], affiliation="independent")
    out = work / "real-polite.jsonl"
    started = time.perf_counter()
    counts = collect_source(source, out, feed_states={}, known=set(), user_agent=USER_AGENT,
                            now=datetime.now(UTC), start_delay=0.05)
    wall = time.perf_counter() - started
    result = read_batch(out)
    result["wall"] = wall
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result["counts"] = counts
    return result


def fmt_rate(r: dict) -> tuple[float, float]:
    wall = r["pages"] / r["wall"] if r["wall"] else 0.0
    span = (r["last"] - r["first"]) if r.get("first") is not None else 0.0
    steady = (r["pages"] - 1) / span if span > 0 else 0.0
    return wall, steady


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="200 pages instead of 2,000")
    parser.add_argument("-n", type=int, default=None, help="number of article pages")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    n = args.n or (200 if args.small else 2000)

    from flows.static_site import StaticSite

    work = Path(tempfile.mkdtemp(prefix="bench-crawl-"))
    try:
        started = time.perf_counter()
        site_info = build_site(work / "site", n)
        gen_s = time.perf_counter() - started
        print(f"generated {n:,} pages ({site_info['mean_kb']:.1f} KiB mean, "
              f"{site_info['total_mb']:.1f} MiB) in {gen_s:.1f} s", flush=True)
        results: dict[str, dict] = {}
        loads: dict[str, tuple[str, str]] = {}
        with StaticSite(work / "site") as site:
            job = make_job(site.base)
            for mode in ("real-polite", "bare-polite", "real-unthrottled", "bare-unthrottled"):
                before = load()
                print(f"{mode} (load {before}) ...", flush=True)
                if mode == "real-polite":
                    results[mode] = run_real_polite(site.base, work)
                else:
                    results[mode] = run_child(mode, job, work)
                loads[mode] = (before, load())
                r = results[mode]
                wall, steady = fmt_rate(r)
                print(f"  {r['pages']} pages in {r['wall']:.1f} s: {wall:.1f} pages/s wall, "
                      f"{steady:.1f} pages/s steady, maxrss {r['maxrss_mb']:.0f} MB"
                      + (f", statuses {r['statuses']}, failures {r['failures']}"
                         if "statuses" in r else ""), flush=True)
            hits = len(site.hits)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    rates = {m: fmt_rate(r) for m, r in results.items()}
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    ra, rb = rates["real-polite"], rates["bare-polite"]
    rc, rd = rates["real-unthrottled"], rates["bare-unthrottled"]
    print(f"\n{hits:,} requests served in total; load average at end: {load()}")
    print(f"\n| measure ({n:,} pages, {site_info['mean_kb']:.0f} KiB mean, {os.cpu_count()} "
          "cores; rates wall / steady) | result | load avg before → after |")
    print("| --- | --- | --- |")
    rows = [
        ("(a) real path: `collect_source` → `crawlers.scrapy_run` (sitemap spider + "
         "extraction), polite settings", results["real-polite"], ra),
        ("(b) bare Scrapy fetch (`{url, len}`), same polite settings", results["bare-polite"], rb),
        ("(c) POLITENESS OFF (16/domain, no AutoThrottle): real spiders + extraction",
         results["real-unthrottled"], rc),
        ("(d) POLITENESS OFF: bare fetch", results["bare-unthrottled"], rd),
    ]
    for name, r, (wall, steady) in rows:
        mode = next(m for m, v in results.items() if v is r)
        print(f"| {name} | {r['pages']:,} pages in {r['wall']:.1f} s: **{wall:.1f}** / "
              f"{steady:.1f} pages/s; peak RSS {r['maxrss_mb']:.0f} MB | "
              f"{loads[mode][0]} → {loads[mode][1]} |")
    print(f"| ratio (a)/(b), polite (the pipeline's case) | **{ra[0] / rb[0]:.2f}** wall / "
          f"{ra[1] / rb[1]:.2f} steady | |")
    print(f"| ratio (c)/(d), politeness off (extraction cost) | **{rc[0] / rd[0]:.2f}** wall / "
          f"{rc[1] / rd[1]:.2f} steady | |")
    print(f"| extraction cost per page, politeness off (1/(c) − 1/(d), steady) | "
          f"{1000 * (1 / rc[1] - 1 / rd[1]):.1f} ms | |")
    statuses = results["real-polite"]["statuses"]
    print(f"| (a) page statuses | {', '.join(f'{k} {v:,}' for k, v in statuses.items())}; "
          f"failures {results['real-polite']['failures']} | |")
    print(f"| peak RSS: largest crawler child (RUSAGE_CHILDREN) / this process (SELF: "
          f"generator + HTTP server) | {children_mb:,.0f} MB / {self_mb:,.0f} MB | |")


if __name__ == "__main__":
    main()
