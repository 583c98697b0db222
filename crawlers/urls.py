"""URL normalisation, article ids, and the domain fence every fetch passes through."""

from __future__ import annotations

import hashlib
from urllib.parse import urljoin, urlsplit

from courlan import normalize_url


def normalise(url: str, base: str | None = None) -> str:
    """Absolute, normalised URL: lower-case host, no fragment, no tracking parameters."""
    absolute = urljoin(base, url.strip()) if base else url.strip()
    try:
        return normalize_url(absolute, strict=True)
    except (ValueError, AttributeError):
        return absolute


def article_id(url: str) -> str:
    """Stable article id: the first 16 bytes of SHA-256 of the normalised URL, in hex."""
    return hashlib.sha256(normalise(url).encode("utf-8")).hexdigest()[:32]


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower().rstrip(".")


def in_domains(url: str, domains: list[str] | tuple[str, ...]) -> bool:
    """True when the URL is http(s) on one of the domains or their subdomains (any port)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return False
    host = (parts.hostname or "").lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)
