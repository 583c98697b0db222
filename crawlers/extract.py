"""Article extraction: HTML in, title, main text, date, declared language and page status out.

trafilatura finds the title and main text, htmldate the publication date, courlan normalises
the canonical URL. Block pages, consent walls, paywall stubs and soft 404s are recognised and get
their own status so that they never enter the corpus as articles. ``cstowatch extract`` and the
Scrapy pipeline both call ``extract_article``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from zoneinfo import ZoneInfo

import htmldate
import lxml.html
import trafilatura

from crawlers.dates import Published, as_json, normalise_published
from crawlers.urls import host_of, normalise

EXTRACTOR = f"trafilatura-{version('trafilatura')}+htmldate-{version('htmldate')}"
MIN_TEXT_CHARS = 200

_PATTERNS = {
    "soft_404": re.compile(
        r"\b(404|page not found|not found|страница не найдена|бет табылмады|page introuvable"
        r"|n'existe pas|no longer available)\b",
        re.IGNORECASE,
    ),
    "blocked": re.compile(
        r"(access denied|captcha|are you a robot|verify you are human|attention required"
        r"|доступ запрещ|вы робот|подтвердите, что вы не робот|accès refusé)",
        re.IGNORECASE,
    ),
    "consent": re.compile(
        r"(we use cookies|cookie consent|accept (all )?cookies|manage consent|cookies policy"
        r"|мы используем cookie|согласие на обработку|nous utilisons des cookies"
        r"|accepter les cookies)",
        re.IGNORECASE,
    ),
    "paywall": re.compile(
        r"(subscribe to (continue|read)|subscribers only|for subscribers|réservé aux abonnés"
        r"|только для подписчиков|оформите подписку|доступно по подписке|жазылушыларға ғана)",
        re.IGNORECASE,
    ),
}
# How short a page must be before a phrase marks it as a non-article: real articles may mention
# cookies or subscriptions in their footer, wall pages are short.
_SHORT = {"soft_404": 600, "blocked": 1500, "consent": 800, "paywall": 900}


@dataclass
class Extracted:
    url: str
    canonical_url: str
    title: str
    text: str
    published: Published | None  # an instant (UTC) or, when the page gives no time, a day
    # The page's <html lang>, stored as articles.lang_declared. The language of the text is
    # detected later (nlp.langid, at classification), so crawlers need no language model.
    lang: str | None
    status: str  # ok | soft_404 | blocked | consent | paywall | empty | unparsable
    reason: str | None
    extractor: str = EXTRACTOR

    def to_json(self) -> dict:
        row = asdict(self)
        row["published"] = as_json(self.published)
        return row


def page_status(title: str, text: str, http_status: int | None = None) -> tuple[str, str | None]:
    """Classify an extracted page. Returns (status, reason)."""
    if http_status == 404 or http_status == 410:
        return "soft_404", f"HTTP {http_status}"
    probe = f"{title}\n{text[:2000]}"
    for status, pattern in _PATTERNS.items():
        match = pattern.search(probe)
        if match and len(text) < _SHORT[status]:
            return status, f"matched {match.group(0)!r} on a {len(text)}-character page"
    if len(text) < MIN_TEXT_CHARS:
        return "empty", f"main text has only {len(text)} characters"
    return "ok", None


def _canonical(tree: lxml.html.HtmlElement | None, url: str) -> str:
    if tree is not None:
        for href in tree.xpath('//link[@rel="canonical"]/@href')[:1]:
            candidate = normalise(str(href), url)
            # A canonical on another host is not trusted: it could pull us off the source.
            if host_of(candidate) == host_of(url):
                return candidate
    return normalise(url)


def _lang_attr(tree: lxml.html.HtmlElement | None) -> str | None:
    if tree is None:
        return None
    for value in tree.xpath("/html/@lang")[:1]:
        code = str(value).strip().lower().replace("_", "-").split("-")[0]
        return code or None
    return None


def _htmldate(html: str | bytes, extensive: bool) -> str | None:
    # No max_date: given one, htmldate turns a later date into the first of its month; the
    # policy (crawlers.dates) drops dates later than the fetch instead.
    try:
        found = htmldate.find_date(
            html,
            original_date=True,
            outputformat="%Y-%m-%dT%H:%M:%S%z",
            extensive_search=extensive,
        )
    except Exception:  # htmldate raises assorted errors on broken markup
        return None
    if found and found.endswith("T00:00:00"):
        return found[:10]  # htmldate's spelling of a day with no time (and no offset)
    return found


def _published(
    html: str | bytes, fallback: str | None, fetched_at: datetime, tz: ZoneInfo | None
) -> Published | None:
    """The page's publication date under the policy of ``crawlers.dates``: markup first
    (meta tags, JSON-LD, ``<time>``, the URL), then htmldate's and trafilatura's guesses from
    free text, which must be more than a year."""
    found = normalise_published(_htmldate(html, False), fetched_at=fetched_at, tz=tz)
    if found is not None:
        return found
    for guess in (_htmldate(html, True), fallback):
        found = normalise_published(guess, fetched_at=fetched_at, tz=tz, guess=True)
        if found is not None:
            return found
    return None


def _strip_title_line(text: str, title: str) -> str:
    lines = text.split("\n")
    if lines and title and lines[0].strip() == title.strip():
        lines = lines[1:]
    return "\n".join(line for line in lines if line.strip()).strip()


def extract_article(
    html: str | bytes,
    url: str,
    http_status: int | None = None,
    *,
    fetched_at: datetime | None = None,
    tz: ZoneInfo | None = None,
) -> Extracted:
    """Extract one page. Never raises on bad markup: the status says what went wrong.

    ``fetched_at`` (default now) bounds the publication date; ``tz`` is the outlet's time zone,
    for times the page gives without one."""
    fetched_at = fetched_at or datetime.now(UTC)
    try:
        tree = lxml.html.fromstring(html) if html else None
    except (lxml.etree.ParserError, ValueError):
        tree = None
    canonical = _canonical(tree, url)
    try:
        doc = trafilatura.bare_extraction(
            html, url=url, with_metadata=True, include_comments=False, include_tables=False
        )
    except Exception as exc:  # trafilatura can fail deep in lxml on hostile markup
        doc = None
        reason: str | None = f"extractor failed: {exc.__class__.__name__}"
    else:
        reason = None
    if doc is None or isinstance(doc, dict):
        return Extracted(
            url,
            canonical,
            "",
            "",
            None,
            _lang_attr(tree),
            "unparsable",
            reason or "no main text found",
        )
    title = (doc.title or "").strip()
    text = _strip_title_line(doc.text or "", title)
    status, why = page_status(title, text, http_status)
    return Extracted(
        url=url,
        canonical_url=canonical,
        title=title,
        text=text,
        published=_published(html, doc.date, fetched_at, tz),
        lang=_lang_attr(tree),
        status=status,
        reason=why,
    )
