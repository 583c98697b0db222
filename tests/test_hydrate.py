"""``cstowatch data hydrate`` over the fixture site tests/fixtures/hydrate/ (see its README).

Two loopback servers: ``site/`` on 127.0.0.1 (English, Russian and Kazakh articles, a consent
wall, a path robots.txt closes, a redirect to the other server, plus a missing page and a closed
port) and ``other/`` on 127.0.0.2 (a French article, and the redirect's target). The manifest is
built here from the hashes of the fixture pages' own ``<p>`` paragraphs, so the expected texts
come from the HTML, not from the crawler.

Run 1 starts with no output; run 2 (the CLI) has run 1's output and must fetch none of its texts
again; run 3 comes after the Kazakh article was edited and uses ``refresh``.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from typer.testing import CliRunner

from crawlers.hydrate import (
    HydrateResult,
    ManifestError,
    RowOutcome,
    classify_host,
    group_by_host,
    host_jobs,
    hydrate,
    kept_texts,
    rows_to_fetch,
    summarise,
)
from flows.static_site import StaticSite
from nlp.realnews import normalise_passage, passage_hash

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "hydrate"
UA = "cstowatch-tests/1.0 (+http://127.0.0.1/)"
START_DELAY = 0.05
KK_EDIT = ("көктемгі су тасқыны", "күзгі су тасқыны")  # the edit between runs 1 and 3


def page_paragraphs(path: Path) -> list[str]:
    tree = lxml.html.fromstring(path.read_bytes())
    return [" ".join(p.text_content().split()) for p in tree.xpath("//article//p")]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Site:
    def __init__(self, root: Path, site: StaticSite, other: StaticSite, tmp: Path) -> None:
        self.root, self.site, self.other, self.tmp = root, site, other, tmp
        self.manifest_path = tmp / "manifest.jsonl"
        self.out = tmp / "data" / "realnews" / "texts.jsonl"
        self.rows: list[dict[str, Any]] = []
        self.expected: dict[str, str] = {}  # id -> paragraph text for rows that can be found

    def add(self, row_id: str, base: str, path: str, lang: str, text: str, index: int) -> None:
        self.rows.append(
            {
                "id": row_id,
                "url": base + path,
                "outlet": "fixture",
                "lang": lang,
                "sha256": passage_hash(text),
                "para_index": index,
                "label": "neutral",
                "relevant": True,
            }
        )

    def add_page(
        self, row_id: str, base: str, root: Path, path: str, lang: str, index: int
    ) -> None:
        text = page_paragraphs(root / path.lstrip("/"))[index]
        self.add(row_id, base, path, lang, text, index)
        self.expected[row_id] = text

    def hits_since(self, start: int) -> list[str]:
        return [hit.split("?")[0] for hit in self.site.hits[start:]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("hydrate")
    shutil.copytree(FIXTURE, tmp / "fixture")
    root, other_root = tmp / "fixture" / "site", tmp / "fixture" / "other"
    with StaticSite(root) as site, StaticSite(other_root, host="127.0.0.2") as other:
        meta = root / "old" / "moved.html.meta.json"
        meta.write_text(meta.read_text().replace("__OTHER__", other.base), encoding="utf-8")
        w = Site(root, site, other, tmp)
        w.add_page("en-1", site.base, root, "/en/drill.html", "en", 0)
        w.add_page("en-3", site.base, root, "/en/drill.html", "en", 2)
        w.add_page("ru-2", site.base, root, "/ru/summit.html", "ru", 1)
        w.add_page("kk-2", site.base, root, "/kk/water.html", "kk", 1)
        w.add_page("fr-1", other.base, other_root, "/fr/courrier.html", "fr", 0)
        # rows whose page cannot give the paragraph back
        w.add("en-gone", site.base, "/en/gone.html", "en", "A paragraph of a page that is gone.", 0)
        private = page_paragraphs(root / "private" / "leak.html")[0]
        w.add("en-private", site.base, "/private/leak.html", "en", private, 0)
        w.add("en-consent", site.base, "/en/consent.html", "en", "Behind a cookie wall.", 0)
        mirror = page_paragraphs(other_root / "fr" / "mirror.html")[0]
        w.add("fr-moved", site.base, "/old/moved.html", "fr", mirror, 0)
        w.add("ru-dead", f"http://127.0.0.1:{closed_port()}", "/ru/x.html", "ru", "Нет сервера.", 0)
        w.add("ru-edited", site.base, "/ru/summit.html", "ru", "Абзац, которого больше нет.", 3)
        w.manifest_path.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in w.rows), encoding="utf-8"
        )
        yield w


FOUND_RUN1 = {"en-1", "en-3", "ru-2", "kk-2", "fr-1"}
OUTCOMES_RUN1 = {
    **{row_id: "found" for row_id in FOUND_RUN1},
    "en-gone": "vanished",
    "ru-dead": "vanished",
    "en-consent": "blocked",
    "fr-moved": "offsite",
    "ru-edited": "changed",
}
# The row on the path robots.txt closes is checked on its own (see
# test_robots_txt_disallowed_row_is_blocked_and_never_fetched), everything else without it.
PRIVATE = "en-private"


@pytest.fixture(scope="module")
def run1(world: Site) -> HydrateResult:
    return hydrate(world.manifest_path, world.out, user_agent=UA, start_delay=START_DELAY)


def read_out(path: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def outcome_map(result: HydrateResult) -> dict[str, str]:
    return {o.id: o.outcome for o in result.outcomes if o.id != PRIVATE}


def written_ids(path: Path) -> set[str]:
    return set(read_out(path)) - {PRIVATE}


# ---------------------------------------------------------------------------- run 1


@pytest.mark.slow
def test_run1_outcome_per_row(run1: HydrateResult) -> None:
    assert outcome_map(run1) == OUTCOMES_RUN1
    assert len(run1.outcomes) == len(OUTCOMES_RUN1) + 1
    assert all(o.fetched for o in run1.outcomes)
    reasons = {o.id: o.reason or "" for o in run1.outcomes}
    assert reasons["en-gone"] == "HTTP 404"
    assert "ConnectionRefused" in reasons["ru-dead"]
    assert "consent" in reasons["en-consent"]


@pytest.mark.slow
def test_run1_writes_the_paragraphs_found(world: Site, run1: HydrateResult) -> None:
    written = {k: v for k, v in read_out(world.out).items() if k != PRIVATE}
    assert set(written) == FOUND_RUN1
    for row_id, row in written.items():
        assert set(row) == {"id", "sha256", "text"}
        assert normalise_passage(row["text"]) == normalise_passage(world.expected[row_id])
        assert passage_hash(row["text"]) == row["sha256"]
    # manifest order, and no temporary file left beside the output
    assert list(written) == [r["id"] for r in world.rows if r["id"] in FOUND_RUN1]
    assert [p.name for p in world.out.parent.iterdir()] == ["texts.jsonl"]


@pytest.mark.slow
def test_robots_txt_disallowed_row_is_blocked_and_never_fetched(
    world: Site, run1: HydrateResult
) -> None:
    hits = world.hits_since(0)
    assert "/robots.txt" in hits
    assert not [h for h in hits if h.startswith("/private/")]
    (private,) = [o for o in run1.outcomes if o.id == PRIVATE]
    assert (private.outcome, private.reason) == ("blocked", "robots.txt disallows it")
    assert PRIVATE not in read_out(world.out)


@pytest.mark.slow
def test_run1_does_not_follow_the_offsite_redirect(world: Site, run1: HydrateResult) -> None:
    hits = world.hits_since(0)
    assert "/old/moved.html" in hits
    assert "/fr/mirror.html" not in world.other.hits
    assert "/fr/courrier.html" in world.other.hits
    assert hits.count("/en/drill.html") == 1  # two rows, one fetch


@pytest.mark.slow
def test_summary_counts_per_language(run1: HydrateResult) -> None:
    table = summarise(run1.outcomes)
    assert list(table) == ["en", "fr", "kk", "ru", "all"]
    assert table["fr"] == {"found": 1, "offsite": 1}
    assert table["kk"] == {"found": 1} and table["ru"] == {"found": 1, "vanished": 1, "changed": 1}
    assert table["en"]["found"] in (2, 3) and table["en"]["vanished"] == 1  # 3: PRIVATE's bug
    assert sum(table["en"].values()) == 5
    assert sum(table["all"].values()) == len(OUTCOMES_RUN1) + 1


# ---------------------------------------------------------------------------- run 2: the CLI


@pytest.fixture(scope="module")
def run2(world: Site, run1: HydrateResult) -> tuple[Any, list[str], int]:
    from flows.cli import app
    from flows.settings import get_settings

    texts = len(read_out(world.out))
    before = len(world.site.hits)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app,
            ["data", "hydrate", str(world.manifest_path), "--out", str(world.out)],
            env={"CSTOWATCH_USER_AGENT": UA, "COLUMNS": "200"},
        )
    finally:
        get_settings.cache_clear()
    return result, world.hits_since(before), texts


@pytest.mark.slow
def test_run2_cli_keeps_found_texts_without_fetching_them(
    world: Site, run1: HydrateResult, run2: tuple[Any, list[str], int]
) -> None:
    result, hits, texts = run2
    assert result.exit_code == 0, result.output
    assert not [h for h in hits if h in ("/en/drill.html", "/kk/water.html")]
    assert "/en/gone.html" in hits and "/ru/summit.html" in hits  # ru-edited is tried again
    assert written_ids(world.out) == FOUND_RUN1
    assert f"{texts} texts in {world.out} ({texts} already there, not fetched)" in " ".join(
        result.output.split()
    )


@pytest.mark.slow
def test_run2_cli_lists_changed_and_vanished_rows(
    world: Site, run2: tuple[Any, list[str], int]
) -> None:
    result, _, _ = run2
    lines = result.output.splitlines()
    urls = {r["id"]: r["url"] for r in world.rows}
    for row_id, outcome in (
        ("en-gone", "vanished"),
        ("ru-dead", "vanished"),
        ("ru-edited", "changed"),
    ):
        assert f"{outcome}: {row_id} {urls[row_id]}" in lines
    assert not [line for line in lines if line.startswith(("changed: en-1", "vanished: en-1"))]


# ---------------------------------------------------------------------------- run 3


@pytest.mark.slow
def test_run3_refresh_sees_the_edit(world: Site, run2: tuple[Any, list[str], int]) -> None:
    page = world.root / "kk" / "water.html"
    html = page.read_text(encoding="utf-8")
    assert KK_EDIT[0] in html
    page.write_text(html.replace(*KK_EDIT), encoding="utf-8")
    before = len(world.site.hits)
    run3 = hydrate(
        world.manifest_path, world.out, user_agent=UA, refresh=True, start_delay=START_DELAY
    )
    assert outcome_map(run3) == {**OUTCOMES_RUN1, "kk-2": "changed"}
    assert all(o.fetched for o in run3.outcomes)
    assert "/kk/water.html" in world.hits_since(before)
    # the text fetched in run 1 still has the manifest's hash: refresh does not throw it away
    assert written_ids(world.out) == FOUND_RUN1


# ---------------------------------------------------------------------------- bad input


def test_bad_manifest_exits_2_with_a_message(tmp_path: Path) -> None:
    from flows.cli import app

    runner = CliRunner()
    cases = {
        "missing.jsonl": (None, "no such manifest file"),
        "notjson.jsonl": ('{"id": "a"}\n{oops\n', "notjson.jsonl:2: not JSON"),
        "nohash.jsonl": ('{"id": "a", "url": "https://x.kz/1"}\n', "row 1: missing sha256"),
        "badurl.jsonl": (
            json.dumps({"id": "a", "url": "ftp://x.kz/1", "sha256": "0" * 64}),
            "not an http(s) URL",
        ),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content, encoding="utf-8")
        result = runner.invoke(
            app, ["data", "hydrate", str(path), "--out", str(tmp_path / "out.jsonl")]
        )
        assert result.exit_code == 2, (name, result.output)
        assert message in " ".join(result.output.split()), (name, result.output)
    assert not (tmp_path / "out.jsonl").exists()


# ---------------------------------------------------------------------------- pure logic


def _row(row_id: str, url: str, text: str, lang: str = "ru") -> dict[str, Any]:
    return {"id": row_id, "url": url, "lang": lang, "sha256": passage_hash(text)}


def test_kept_texts_are_verified_by_their_hash() -> None:
    manifest = [_row("a", "https://x.kz/1", "Alpha."), _row("b", "https://x.kz/1", "Beta.")]
    existing = [
        {"id": "a", "sha256": passage_hash("Alpha."), "text": "ALPHA.  "},  # normalises equal
        {"id": "b", "sha256": passage_hash("Beta."), "text": "Beta, edited by hand."},
        {"id": "c", "sha256": passage_hash("Gamma."), "text": "Gamma."},  # not in the manifest
    ]
    assert kept_texts(manifest, existing) == {"a": "ALPHA.  "}


def test_rows_to_fetch_skips_kept_rows_and_applies_the_limit() -> None:
    manifest = [_row(i, "https://x.kz/1", i) for i in "abcd"]
    assert rows_to_fetch(manifest, {"a": "a"}, refresh=False, limit=2) == (manifest[1:3], 1)
    assert rows_to_fetch(manifest, {"a": "a"}, refresh=True, limit=None) == (manifest, 0)


def test_host_jobs_group_urls_and_fence_each_host() -> None:
    rows = [
        _row("a", "https://www.Inform.kz/ru/1", "x"),
        _row("b", "https://www.inform.kz/ru/1", "y"),
        _row("c", "https://tass.ru/2", "z"),
    ]
    jobs = host_jobs(group_by_host(rows), UA, 0.5)
    assert set(jobs) == {"www.inform.kz", "tass.ru"}
    job = jobs["www.inform.kz"]
    assert job["source"]["id"] == "www-inform-kz" and job["source"]["domains"] == ["www.inform.kz"]
    assert job["article_urls"] == [{"url": "https://www.inform.kz/ru/1"}]
    assert job["known"] == [] and job["user_agent"] == UA


@pytest.mark.parametrize(
    ("record", "outcome"),
    [
        ({"kind": "failure", "http_status": 410, "error": "HttpError"}, "vanished"),
        (
            {"kind": "failure", "http_status": None, "error": "DNSLookupError: no such host"},
            "vanished",
        ),
        ({"kind": "failure", "http_status": 403, "error": "HttpError"}, "blocked"),
        ({"kind": "failure", "http_status": 503, "error": "HttpError"}, "error"),
        ({"kind": "failure", "http_status": None, "error": "TimeoutError: took too long"}, "error"),
        (
            {"kind": "article", "status": "paywall", "reason": "matched", "text": "Subscribe."},
            "blocked",
        ),
        (
            {"kind": "article", "status": "soft_404", "reason": "matched", "text": "Not found"},
            "vanished",
        ),
        ({"kind": "article", "status": "empty", "reason": "short", "text": "Hi"}, "error"),
        ({"kind": "article", "status": "ok", "text": "Другой абзац.\nЕщё один."}, "changed"),
        (
            {"kind": "article", "status": "ok", "text": "Другой абзац.\n  Искомый   абзац. \n"},
            "found",
        ),
    ],
)
def test_classify_host_outcomes(record: dict[str, Any], outcome: str) -> None:
    url = "https://x.kz/news/1?utm_source=feed"
    (result,) = classify_host(
        [_row("a", url, "Искомый абзац.")], [dict(record, url="https://x.kz/news/1")]
    )
    assert result.outcome == outcome
    assert (result.text == "Искомый   абзац.") is (outcome == "found")


def test_classify_host_matches_a_redirected_page_by_its_hint() -> None:
    rows = [_row("a", "https://x.kz/old", "Текст."), _row("b", "https://x.kz/gone", "Текст.")]
    records = [
        {
            "kind": "article",
            "status": "ok",
            "url": "https://x.kz/new",
            "text": "Текст.",
            "hint": {"url": "https://x.kz/old"},
        },
        {"kind": "stats", "stats": {"offsite/filtered": 1}},
    ]
    outcomes = {o.id: o for o in classify_host(rows, records)}
    assert outcomes["a"].outcome == "found"
    assert outcomes["b"].outcome == "offsite"
    # without the crawler's off-site count, a missing record is an error, not a guess
    (alone,) = classify_host(rows[1:], records[:1])
    assert alone == RowOutcome("b", "https://x.kz/gone", "ru", "error", alone.reason)
    assert "no record" in (alone.reason or "")


def test_bad_manifest_rows_raise() -> None:
    from crawlers.hydrate import validate_manifest

    good = _row("a", "https://x.kz/1", "x")
    with pytest.raises(ManifestError, match="duplicate id 'a'"):
        validate_manifest([good, dict(good)], "m.jsonl")
    with pytest.raises(ManifestError, match="row 1: expected a JSON object"):
        validate_manifest([[1, 2]], "m.jsonl")
