"""Feed parsing: bytes in, feed items out. No network here.

feedparser handles RSS 0.9x/1.0/2.0, Atom 0.3/1.0 and ill-formed ("bozo") feeds; JSON Feed is
parsed here because feedparser does not read it. Encodings are sniffed by feedparser from the XML
declaration, the BOM and the HTTP header; when it gives up on a declared charset we retry with
the common Cyrillic encodings before declaring the feed unreadable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import feedparser

from crawlers.dates import Published, normalise_published
from crawlers.urls import in_domains, normalise

FALLBACK_ENCODINGS = ("utf-8", "windows-1251", "koi8-r", "utf-16")
# feedparser's last resort for bytes that are not what they claim (or claim nothing): it reads
# them as windows-1252 and calls that a success, which turns undeclared Cyrillic into mojibake.
_WESTERN_GUESSES = {"windows-1252", "cp1252", "iso-8859-1", "latin-1"}
_HIGH_RUN = re.compile(rb"[\xc0-\xff]{3,}")


@dataclass(frozen=True)
class FeedItem:
    url: str
    guid: str
    title: str
    summary: str
    published: Published | None  # an instant (UTC) or, when the feed gave no time, a day
    offsite: bool = False


@dataclass
class FeedParse:
    kind: str  # rss20, atom10, json, ... or "" when not a feed
    items: list[FeedItem] = field(default_factory=list)
    bozo: str | None = None  # the parser's complaint when the feed is ill-formed
    title: str = ""

    @property
    def is_feed(self) -> bool:
        return bool(self.kind) or bool(self.items)


def _parse_json_feed(body: bytes) -> dict | None:
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(data, dict) and str(data.get("version", "")).startswith("https://jsonfeed.org"):
        return data
    return None


def _json_items(data: dict, base: str) -> list[tuple[str, str, str, str, object]]:
    rows = []
    for item in data.get("items") or []:
        if not isinstance(item, dict):
            continue
        link = item.get("url") or item.get("external_url") or ""
        guid = str(item.get("id") or link)
        published = item.get("date_published") or item.get("date_modified")
        summary = item.get("summary") or item.get("content_text") or ""
        rows.append((link, guid, item.get("title") or "", summary, published))
    return rows


def _single_byte_cyrillic(body: bytes) -> str | None:
    """windows-1251 or koi8-r when the bytes look like undeclared single-byte Cyrillic.

    Cyrillic words are runs of bytes >= 0xC0 in both encodings, where Latin text has at most an
    accented letter or two in a row. Lower case, the bulk of any text, is 0xE0-0xFF in
    windows-1251 and 0xC0-0xDF in KOI8-R.
    """
    runs = _HIGH_RUN.findall(body)
    if len(runs) < 3:
        return None
    high = b"".join(runs)
    upper_half = sum(1 for byte in high if byte >= 0xE0)
    return "windows-1251" if upper_half * 2 >= len(high) else "koi8-r"


def _feedparser(body: bytes, content_type: str | None) -> feedparser.FeedParserDict:
    headers = {"content-type": content_type} if content_type else {}
    parsed = feedparser.parse(body, response_headers=headers)
    if (
        isinstance(parsed.get("bozo_exception"), feedparser.CharacterEncodingOverride)
        and str(parsed.get("encoding", "")).lower() in _WESTERN_GUESSES
    ):
        cyrillic = _single_byte_cyrillic(body)
        if cyrillic:
            retry = feedparser.parse(body.decode(cyrillic, errors="replace"))
            if retry.entries or not retry.bozo:
                return retry
    if parsed.entries or not parsed.bozo:
        return parsed
    # feedparser could not decode with the declared charset: try the usual suspects.
    for encoding in FALLBACK_ENCODINGS:
        try:
            text = body.decode(encoding)
        except UnicodeDecodeError:
            continue
        retry = feedparser.parse(text)
        if retry.entries:
            return retry
    return parsed


def parse_feed(
    body: bytes,
    base_url: str,
    domains: list[str] | tuple[str, ...],
    content_type: str | None = None,
    now: datetime | None = None,
    tz: ZoneInfo | None = None,
) -> FeedParse:
    """Parse a feed body. Items keep whatever parses; duplicate GUIDs and URLs are dropped.

    Dates pass through ``crawlers.dates.normalise_published`` (``tz``: the outlet's zone, for
    times given without one)."""
    now = now or datetime.now(UTC)
    json_feed = _parse_json_feed(body)
    if json_feed is not None:
        raw = _json_items(json_feed, base_url)
        kind, bozo, title = "json", None, str(json_feed.get("title") or "")
    else:
        parsed = _feedparser(body, content_type)
        kind = parsed.get("version") or ""
        bozo = str(parsed.get("bozo_exception")) if parsed.bozo else None
        title = parsed.feed.get("title", "") if parsed.get("feed") else ""
        raw = []
        for entry in parsed.entries:
            link = entry.get("link") or ""
            if not link:
                link = next(
                    (lnk.get("href", "") for lnk in entry.get("links", []) if lnk.get("href")), ""
                )
            guid = entry.get("id") or link
            # the string as the feed wrote it: feedparser's parsed form turns a day into midnight
            published = entry.get("published") or entry.get("updated")
            raw.append((link, guid, entry.get("title", ""), entry.get("summary", ""), published))

    items: list[FeedItem] = []
    seen_guids: set[str] = set()
    seen_urls: set[str] = set()
    for link, guid, item_title, summary, published in raw:
        if not link:
            continue
        url = normalise(link, base_url)
        guid = guid or url
        if guid in seen_guids or url in seen_urls:
            continue
        seen_guids.add(guid)
        seen_urls.add(url)
        items.append(
            FeedItem(
                url=url,
                guid=guid,
                title=(item_title or "").strip(),
                summary=summary or "",
                published=normalise_published(published, fetched_at=now, tz=tz),
                offsite=not in_domains(url, domains),
            )
        )
    return FeedParse(kind=kind, items=items, bozo=bozo, title=title)
