from pathlib import Path

import pytest

from crawlers.sources import SourcesError, load_sources, parse_sources

REPO = Path(__file__).resolve().parent.parent
GOOD = """
sources:
  - id: outlet-a
    name: Outlet A
    country: KZ
    languages: [ru, kk]
    domains: [Example.KZ]
    feeds: [https://example.kz/rss]
    sitemaps: []
    start_urls: []
    affiliation: state
"""


def test_parses_a_valid_file() -> None:
    (source,) = parse_sources(GOOD)
    assert source.id == "outlet-a"
    assert source.domains == ["example.kz"]  # lower-cased
    assert source.selectors is None


def test_unknown_key_names_key_and_line() -> None:
    text = GOOD.replace("    sitemaps: []", "    sitemap: []")
    with pytest.raises(SourcesError, match=r":9: unknown key 'sitemap'"):
        parse_sources(text, "s.yaml")


def test_unknown_selector_key_is_an_error() -> None:
    text = GOOD + "    selectors:\n      links: 'a'\n"
    with pytest.raises(SourcesError, match=r"unknown key 'links' in selectors"):
        parse_sources(text)


def test_bad_affiliation_and_duplicates_are_errors() -> None:
    with pytest.raises(SourcesError, match="affiliation"):
        parse_sources(GOOD.replace("affiliation: state", "affiliation: friendly"))
    twice = GOOD + GOOD.split("sources:\n", 1)[1]
    with pytest.raises(SourcesError, match="duplicate source id"):
        parse_sources(twice)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourcesError, match="no such sources file"):
        load_sources(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", ["sources.yaml", "demo/sources.yaml"])
def test_bundled_sources_files_validate(path: str) -> None:
    sources = load_sources(REPO / path)
    assert len(sources) >= 6
    assert {s.affiliation for s in sources} >= {"state", "independent", "official"}
