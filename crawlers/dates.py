"""Publication dates: one policy for every way a date reaches cstowatch. No I/O here.

A publication date is either an **instant** (an aware ``datetime`` in UTC) when the source gave
a time, or a **day** (a ``date``) when it gave only a calendar day. A day is never turned into a
made-up midnight: "5 March" from an outlet in Almaty is not 00:00 UTC.

Every path goes through :func:`normalise_published`: RSS/Atom dates (the raw string feedparser
saw), JSON Feed's ``date_published``, htmldate's and trafilatura's finds on the page, sitemap
``lastmod`` values. The rules:

- a time with an offset is converted to UTC; a time without one is read in the outlet's time
  zone (``timezone`` in ``sources.yaml``), UTC when it has none;
- a date without a time stays a date;
- a date later than the fetch by more than a day (the widest time-zone mislabel) is the
  publisher's mistake and is dropped;
- a *guess* (htmldate's extensive search of free text and footers) is dropped when it is only a
  year: htmldate turns "(c) 2026" in a footer into 2026-01-01, so a guessed 1 January is taken
  for a year and not for a day;
- anything before 1990 is a parsing accident (no outlet we watch has archives that old online).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feedparser.datetimes import _parse_date as _feedparser_date

Published = datetime | date
"""An aware UTC instant, or a calendar day when the source gave no time."""

EARLIEST = date(1990, 1, 1)
FUTURE_SLACK = timedelta(days=1)
# A date with no time of day: 2026-03-05, 20260305, 05.03.2026, 5 Mar 2026, Thu, 05 Mar 2026.
_HAS_TIME = re.compile(r"\d{1,2}:\d{2}|T\d{2}(?:\d{2})?\b")
_ISO_DAY = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})\s*$")


class DateError(ValueError):
    """A time zone name in ``sources.yaml`` that the system's tz database does not know."""


def zone(name: str | None) -> ZoneInfo | None:
    """The outlet's time zone, or None for UTC."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DateError(
            f"unknown time zone {name!r} (use an IANA name such as Asia/Almaty)"
        ) from exc


def normalise_published(
    value: object,
    *,
    fetched_at: datetime,
    tz: ZoneInfo | None = None,
    guess: bool = False,
) -> Published | None:
    """``value`` (a string in any common form, a datetime, a date or a ``time.struct_time``
    that is already UTC) as an instant or a day, or None when it is no usable date."""
    found = _parse(value, tz or UTC)
    if found is None:
        return None
    day = found if not isinstance(found, datetime) else found.date()
    if day < EARLIEST:
        return None
    if isinstance(found, datetime):
        if found > fetched_at + FUTURE_SLACK:
            return None
        return found
    if found > (fetched_at + FUTURE_SLACK).date():
        return None
    if guess and (found.month, found.day) == (1, 1):
        return None  # a year, not a day (htmldate's reading of "(c) 2026")
    return found


def day_of(value: Published, tz: ZoneInfo | None = None) -> date:
    """The calendar day of ``value`` in the outlet's zone (a day is its own day)."""
    if isinstance(value, datetime):
        return value.astimezone(tz or UTC).date()
    return value


def as_json(value: Published | None) -> str | None:
    """The batch form: ``2026-03-05T05:00:00+00:00`` for an instant, ``2026-03-05`` for a day."""
    return value.isoformat() if value is not None else None


def from_json(value: object) -> Published | None:
    """Read back :func:`as_json` (and any ISO 8601 string an older batch holds)."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value
    text = str(value)
    if _ISO_DAY.match(text):
        return date.fromisoformat(text.strip())
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def split(value: Published | None) -> tuple[datetime | None, date | None]:
    """(instant, day) for the two warehouse columns ``published_at`` and ``published_date``."""
    if isinstance(value, datetime):
        return value.astimezone(UTC), None
    return None, value


def _parse(value: object, tz: tzinfo) -> Published | None:
    if value is None or value == "":
        return None
    if isinstance(value, time.struct_time):
        try:
            return datetime(*value[:6]).replace(tzinfo=UTC)
        except (TypeError, ValueError, OverflowError):
            return None
    if isinstance(value, datetime):
        local = value if value.tzinfo else value.replace(tzinfo=tz)
        return local.astimezone(UTC)
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not text or len(text) > 100:
        return None
    day = _ISO_DAY.match(text)
    if day:
        try:
            return date(int(day[1]), int(day[2]), int(day[3]))
        except ValueError:
            return None
    if not _HAS_TIME.search(text):
        struct = _feedparser_date(text)
        if struct is None:
            return None
        return date(struct.tm_year, struct.tm_mon, struct.tm_mday)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        struct = _feedparser_date(text)  # RFC 822, W3C-DTF and the other feed date forms
        if struct is None:
            return None
        if _has_offset(text):
            return datetime(*struct[:6]).replace(tzinfo=UTC)
        # feedparser reads a time without a zone as UTC: read it in the outlet's zone instead
        naive = datetime(*struct[:6])
        return naive.replace(tzinfo=tz).astimezone(UTC)
    local = parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
    return local.astimezone(UTC)


_OFFSET = re.compile(r"(?:[+-]\d{2}:?\d{2}|\b(?:Z|UT|UTC|GMT|[ECMP][SD]T|[A-IK-Z])\s*$)")


def _has_offset(text: str) -> bool:
    tail = text.strip()[-8:]
    return bool(_OFFSET.search(tail))
