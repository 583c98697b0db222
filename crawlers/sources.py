"""The ``sources.yaml`` schema: which outlets to watch and where the crawler may go.

An unknown key is an error that names the key and its line, so a typo such as ``feed:`` for
``feeds:`` never silently turns a source off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crawlers.dates import DateError, zone

Affiliation = Literal["state", "independent", "international", "official"]


class SourcesError(ValueError):
    """The sources file cannot be used; the message names the file, line and key."""


class Selectors(BaseModel):
    """CSS selectors for the listing-page spider."""

    model_config = ConfigDict(extra="forbid")

    article_links: str = "article a::attr(href)"
    next_page: str | None = None
    max_pages: int = 20


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    country: str = Field(pattern=r"^[A-Z]{2}$")
    languages: list[str]
    domains: list[str] = Field(min_length=1)
    feeds: list[str] = []
    sitemaps: list[str] = []
    start_urls: list[str] = []
    selectors: Selectors | None = None
    affiliation: Affiliation
    # IANA zone of the outlet's newsroom: times it gives without an offset are read in it, and
    # its articles count on its own calendar days in alerts and the daily tables (UTC if unset)
    timezone: str | None = None
    verified: bool = True
    notes: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        try:
            zone(value)
        except DateError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("domains")
    @classmethod
    def _lower_hosts(cls, value: list[str]) -> list[str]:
        return [host.lower().strip().rstrip(".") for host in value]


_SOURCE_KEYS = set(Source.model_fields)
_SELECTOR_KEYS = set(Selectors.model_fields)


def _check_keys(node: yaml.Node, path: str) -> None:
    if not isinstance(node, yaml.MappingNode):
        raise SourcesError(f"{path}:{node.start_mark.line + 1}: expected a mapping")
    top = {key.value: value for key, value in node.value}
    unknown_top = [key for key, _ in node.value if key.value != "sources"]
    if unknown_top:
        key = unknown_top[0]
        raise SourcesError(f"{path}:{key.start_mark.line + 1}: unknown key '{key.value}'")
    sources = top.get("sources")
    if not isinstance(sources, yaml.SequenceNode):
        raise SourcesError(f"{path}: a top-level 'sources:' list is required")
    for entry in sources.value:
        if not isinstance(entry, yaml.MappingNode):
            raise SourcesError(f"{path}:{entry.start_mark.line + 1}: a source must be a mapping")
        for key, value in entry.value:
            if key.value not in _SOURCE_KEYS:
                raise SourcesError(
                    f"{path}:{key.start_mark.line + 1}: unknown key '{key.value}' in a source"
                )
            if key.value == "selectors" and isinstance(value, yaml.MappingNode):
                for sub, _ in value.value:
                    if sub.value not in _SELECTOR_KEYS:
                        raise SourcesError(
                            f"{path}:{sub.start_mark.line + 1}: unknown key "
                            f"'{sub.value}' in selectors"
                        )


def parse_sources(text: str, path: str = "<sources>") -> list[Source]:
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise SourcesError(f"{path}: not valid YAML: {exc}") from exc
    if node is None:
        raise SourcesError(f"{path}: the file is empty")
    _check_keys(node, path)
    raw = yaml.safe_load(text)["sources"]
    sources: list[Source] = []
    for index, entry in enumerate(raw):
        try:
            sources.append(Source.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise SourcesError(
                f"{path}: source #{index + 1} ({entry.get('id', '?')}): {where}: {first['msg']}"
            ) from exc
    ids = [s.id for s in sources]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SourcesError(f"{path}: duplicate source id(s): {', '.join(dupes)}")
    return sources


def load_sources(path: Path | str) -> list[Source]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SourcesError(f"{path}: no such sources file") from exc
    return parse_sources(text, str(path))
