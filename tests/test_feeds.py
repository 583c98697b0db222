"""Feed parsing over the one-behaviour-per-file fixtures in tests/fixtures/feeds/.

Each fixture's header comment says what it tests and what to expect; EXPECT below is that
expectation in code. Every fixture file must have an entry, so a new fixture cannot go untested.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawlers.feeds import parse_feed

FEEDS = Path(__file__).resolve().parent / "fixtures" / "feeds"
BASE = "https://csto-news.example.kz/ru/rss/feed.xml"
DOMAINS = ["csto-news.example.kz"]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SITE = "https://csto-news.example.kz"


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


RU_TITLES = [
    "ОДКБ провела учения в Таджикистане",
    "Генсек ОДКБ: «Мы открыты к диалогу»",
    "Учёные и военные обсудили ёмкость складов",
]
UTF16_TITLES = [
    "Қазақстан ҰҚШҰ саммитіне дайындалуда",
    "ОДКБ провела учения в Таджикистане",
    "L'OTSC prépare un exercice « Frontière-2027 »",
]
RU_DATES = [_utc(2026, 11, 16, 7), _utc(2026, 11, 17, 8, 30), _utc(2026, 11, 18, 10, 15)]


@dataclass(frozen=True)
class Expect:
    kind: str
    count: int
    titles: list[str] | None = None  # every item's title, in order
    urls: list[str] | None = None
    guids: list[str] | None = None
    published: list[datetime | None] | None = None
    offsite: list[bool] | None = None
    bozo: bool = False
    title: str | None = None  # the feed's own title


EXPECT: dict[str, Expect] = {
    "rss090.xml": Expect(
        "rss090", 2,
        titles=["CSTO secretariat publishes its annual calendar",
                "Border guards of two member states hold a joint briefing"],
        urls=[f"{SITE}/en/2026/11/calendar.html", f"{SITE}/en/2026/11/border-briefing.html"],
        published=[None, None],
    ),
    "rss10_rdf.xml": Expect(
        "rss10", 2,
        titles=["ОДКБ обсудила план совместных учений на 2027 год",
                "Министры обороны встретятся в Астане"],
        published=[_utc(2026, 11, 12, 6, 30), _utc(2026, 11, 13, 4)],
    ),
    "rss20.xml": Expect(
        "rss20", 3,
        titles=["ҰҚШҰ бітімгершілік күштері жаттығуды аяқтады",
                "Астанада қауіпсіздік жөніндегі кеңес өтті",
                "Шекара күзеті бойынша жаңа келісім жобасы"],
        guids=["csto-news-kk-1001", "csto-news-kk-1002", "csto-news-kk-1003"],
        published=[_utc(2026, 11, 10, 8), _utc(2026, 11, 11, 4, 15), _utc(2026, 11, 12, 11, 40)],
        title="ҰҚШҰ жаңалықтары (мысал)",
    ),
    "atom03.xml": Expect(
        "atom03", 2,
        titles=["L'OTSC réunit ses chefs d'état-major à Minsk",
                "Exercices conjoints : le calendrier reste inchangé"],
        urls=[f"{SITE}/fr/2026/11/minsk.html", f"{SITE}/fr/2026/11/calendrier.html"],
        published=[_utc(2026, 11, 9, 10), _utc(2026, 11, 10, 7, 30)],
    ),
    "atom10.xml": Expect(
        "atom10", 2,
        titles=["CSTO cyber centre opens in Yerevan... or does it?",
                "Member states test a shared drone-tracking network"],
        urls=[f"{SITE}/en/2026/11/cyber-centre.html", f"{SITE}/en/2026/11/drones.html"],
        guids=["tag:csto-news.example.kz,2026:en-3001", "tag:csto-news.example.kz,2026:en-3002"],
        published=[_utc(2026, 11, 14, 12), _utc(2026, 11, 15, 6, 45)],
    ),
    "jsonfeed.json": Expect(
        "json", 3,
        titles=["ОДКБ и ШОС провели консультации",
                "Совет министров утвердил бюджет секретариата",
                "Учения «Взаимодействие» перенесены"],
        urls=[f"{SITE}/ru/2026/11/konsultacii.html", f"{SITE}/ru/2026/11/vneshnyaya.html",
              f"{SITE}/ru/2026/11/relative.html"],
        guids=["jf-1", "jf-2", "jf-3"],
        published=[_utc(2026, 11, 16, 5), _utc(2026, 11, 16, 8), _utc(2026, 11, 17, 7)],
        title="Пример новостей ОДКБ (JSON)",
    ),
    "bozo_unclosed_tags.xml": Expect(
        "rss20", 2,
        titles=["Moscow & Astana sign a protocol on air defence", "Third item after the damage"],
        urls=[f"{SITE}/en/2026/11/protocol.html", f"{SITE}/en/2026/11/third.html"],
        bozo=True,
    ),
    "windows1251_declared.xml": Expect(
        "rss20", 4,
        titles=[*RU_TITLES, "Қазақстан ОДКБ саммитіне дайындалуда"],
        published=[*RU_DATES, _utc(2026, 11, 19, 6)],
        title="Новости ОДКБ (windows-1251)",
    ),
    "windows1251_undeclared.xml": Expect(
        "rss20", 3, titles=RU_TITLES, published=RU_DATES,
        title="Новости ОДКБ (без объявления кодировки)",
    ),
    "windows1252_undeclared.xml": Expect(
        "rss20", 2,
        titles=["Réunion à l'état-major : sécurité renforcée",
                "Déjà évoquée, la réforme de l'OTSC revient à l'ordre du jour"],
        bozo=True,  # feedparser notes that it had to guess; the guess is right
    ),
    "koi8r_declared.xml": Expect(
        "rss20", 3, titles=RU_TITLES, published=RU_DATES, title="Новости ОДКБ (KOI8-R)",
    ),
    "utf16_bom.xml": Expect(
        "rss20", 3, titles=UTF16_TITLES,
        urls=[f"{SITE}/kk/2026/11/sammit.html", f"{SITE}/ru/2026/11/ucheniya.html",
              f"{SITE}/fr/2026/11/frontiere.html"],
        title="ҰҚШҰ жаңалықтары (UTF-16)",
    ),
    "utf16_no_bom.xml": Expect(
        "rss20", 3, titles=UTF16_TITLES, title="ҰҚШҰ жаңалықтары (UTF-16, без BOM)",
    ),
    "relative_links.xml": Expect(
        "rss20", 3,
        urls=[f"{SITE}/ru/2026/11/root-relative.html", f"{SITE}/ru/rss/path-relative.html",
              f"{SITE}/ru/2026/11/up-one.html"],
        offsite=[False, False, False],
    ),
    "duplicate_guids.xml": Expect(
        "rss20", 2,
        titles=["Collective security council meets in Dushanbe",
                "Kazakhstan hosts a logistics seminar"],
        urls=[f"{SITE}/en/2026/11/one.html", f"{SITE}/en/2026/11/two.html"],
        guids=["dup-1", "dup-2"],
    ),
    "missing_dates.xml": Expect(
        "rss20", 3, published=[None, None, _utc(2026, 11, 18, 9)],
        guids=["nd-1", "nd-2", "nd-3"],
    ),
    "future_dates.xml": Expect(
        "rss20", 3, published=[None, None, _utc(2026, 11, 21)],
        guids=["fut-1", "fut-2", "fut-3"],
    ),
    "offsite_links.xml": Expect(
        "rss20", 4,
        urls=[f"{SITE}/en/2026/11/summit.html", "https://aggregator.example.org/story/12345",
              "https://m.csto-news.example.kz/en/2026/11/mobile.html",
              "https://csto-news.example.kz.evil.example/en/2026/11/phish.html"],
        offsite=[False, True, False, True],
    ),
    "not_a_feed.html": Expect("", 0, bozo=True),  # HTML is not well-formed XML
    "empty_channel.xml": Expect("rss20", 0, title="Пустой канал"),
}


def _fixtures() -> list[Path]:
    return sorted(p for p in FEEDS.iterdir() if p.suffix in (".xml", ".json", ".html"))


def _parse(name: str, content_type: str | None = None):  # type: ignore[no-untyped-def]
    return parse_feed((FEEDS / name).read_bytes(), BASE, DOMAINS, content_type, now=NOW)


def test_every_fixture_has_an_expectation_and_a_header() -> None:
    names = {p.name for p in _fixtures()}
    assert names == set(EXPECT), "fixtures and EXPECT disagree"
    for path in _fixtures():
        raw = path.read_bytes()
        needles = [b"xpect"] + ["xpect".encode(e) for e in ("utf-16-le", "utf-16-be")]
        assert any(n in raw[:2000] for n in needles), f"{path.name} has no Expect header"


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_fixture(name: str) -> None:
    expect = EXPECT[name]
    parsed = _parse(name)
    assert parsed.kind == expect.kind
    assert parsed.is_feed is bool(expect.kind)
    assert len(parsed.items) == expect.count, [i.url for i in parsed.items]
    assert (parsed.bozo is not None) is expect.bozo, parsed.bozo
    if expect.title is not None:
        assert parsed.title == expect.title
    if expect.titles is not None:
        assert [i.title for i in parsed.items] == expect.titles
    if expect.urls is not None:
        assert [i.url for i in parsed.items] == expect.urls
    if expect.guids is not None:
        assert [i.guid for i in parsed.items] == expect.guids
    if expect.published is not None:
        assert [i.published for i in parsed.items] == expect.published
    expected_offsite = expect.offsite or [False] * expect.count
    assert [i.offsite for i in parsed.items] == expected_offsite
    for item in parsed.items:
        assert item.url.startswith(("https://", "http://")), item.url
        assert item.guid
        assert item.published is None or item.published.tzinfo is not None


def test_no_mojibake_in_any_title() -> None:
    """windows-1252 readings of Cyrillic show up as runs of Latin-1 capitals and symbols."""
    for path in _fixtures():
        for item in _parse(path.name).items:
            assert not any(marker in item.title for marker in ("Ð", "Ñ", "Î", "Ã", "\ufffd")), (
                path.name, item.title,
            )


def test_charset_header_that_lies_is_overruled() -> None:
    """windows-1251 bytes served as charset=utf-8 still decode to Cyrillic."""
    parsed = _parse("windows1251_undeclared.xml", "application/rss+xml; charset=utf-8")
    assert [i.title for i in parsed.items] == RU_TITLES


def test_declared_charset_header_is_used() -> None:
    parsed = _parse("windows1251_undeclared.xml", "text/xml; charset=windows-1251")
    assert [i.title for i in parsed.items] == RU_TITLES


def test_future_dates_depend_on_now() -> None:
    """The same item is dated once "now" has caught up with it."""
    later = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    parsed = parse_feed((FEEDS / "future_dates.xml").read_bytes(), BASE, DOMAINS, now=later)
    assert [i.published for i in parsed.items] == [None, _utc(2026, 11, 23, 12), _utc(2026, 11, 21)]


def test_offsite_depends_on_domains() -> None:
    """With the aggregator among the domains its item is on-site."""
    parsed = parse_feed((FEEDS / "offsite_links.xml").read_bytes(), BASE,
                        [*DOMAINS, "aggregator.example.org"], now=NOW)
    assert [i.offsite for i in parsed.items] == [False, False, False, True]


def test_garbage_bodies_are_not_feeds() -> None:
    for body in (b"", b"\x00\x01\x02" * 100, b"{}", b'{"version": "1"}', b"plain text, no markup"):
        parsed = parse_feed(body, BASE, DOMAINS, now=NOW)
        assert not parsed.is_feed, body
        assert parsed.items == []


def test_encoding_fixtures_are_reproducible(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_encodings", FEEDS / "make_encodings.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.build(tmp_path)
    assert written
    for path in written:
        assert path.read_bytes() == (FEEDS / path.name).read_bytes(), (
            f"{path.name} differs from make_encodings.py's output: rerun the script"
        )
