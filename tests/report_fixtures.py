"""A small warehouse with hand-checkable numbers, for the report tests (unit and browser).

Period: the report defaults to the 12 weeks ending on the latest article day, 2026-11-29 (a
Sunday), i.e. 2026-09-07 .. 2026-11-29. The headline compares 2026-11-23 .. 11-29 (last 7 days)
with 2026-10-26 .. 11-22 (previous 28 days).

Relevant articles in the period, probabilities (pro_russian, neutral, pro_kazakh):

    id  outlet   day    lang  probs            week (Monday)
    a1  kz-one   11-24  kk    .1  .2  .7       11-23   (an older model said .9/.05/.05: ignored)
    a2  kz-one   11-27  ru    .3  .5  .2       11-23   "pipeline" in the title
    a3  kz-one   11-10  ru    .2  .6  .2       11-09
    a4  kz-one   11-03  kk    .0  .2  .8       11-02
    b1  ru-one   11-25  ru    .8  .1  .1       11-23
    b2  ru-one   11-29  en    .6  .3  .1       11-23
    b3  ru-one   11-12  ru    .5  .3  .2       11-09   "pipeline" in the title
    b4  ru-one   10-28  ru    .2  .7  .1       10-26
    c1  gb-one   11-26  en    .1  .8  .1       11-23   hostile title, javascript: URL
    c2  gb-one   11-18  en    .2  .5  .3       11-16

Not shown: b5 (2026-08-20, before the period), d1 (off-topic, relevant = false), d2 (duplicate of
a1, dated 2026-11-30: must not move the default end of the period), e1 (not classified yet).
Alerts: one stance alert (Russian outlets, pro-Russian, +35 pp) and one coverage alert (gb-one)
with windows ending 2026-11-29, and one from June 2026 outside the period.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from warehouse.db import connect

UNTIL = date(2026, 11, 29)
SINCE = date(2026, 9, 7)
MODEL = "test-encoder@1+head-new"
OLD_MODEL = "test-encoder@1+head-old"
HOSTILE_TITLE = "<script>alert(1)</script>"
HOSTILE_URL = "javascript:alert(1)"
HOSTILE_PASSAGE = "<img src=x onerror=alert(2)> Kazakhstan and the CSTO"
HOSTILE_OUTLET = '<b onmouseover="alert(4)">Steppe & "Watch"</b>'
SEARCH_TERM = "pipeline"
SEARCH_MATCHES = 2

SOURCES = [
    ("kz-one", "Kaz One", "KZ", ["ru", "kk"], "state", ["kz-one.example"]),
    ("ru-one", "Ru One", "RU", ["ru", "en"], "state", ["ru-one.example"]),
    ("gb-one", "Steppe Watch", "GB", ["en"], "international", ["gb-one.example"]),
]

# id, source, day, lang, probs, title
ARTICLES: list[tuple[str, str, date, str, tuple[float, float, float], str]] = [
    ("a1", "kz-one", date(2026, 11, 24), "kk", (0.1, 0.2, 0.7), "Astana stands firm on the grid"),
    ("a2", "kz-one", date(2026, 11, 27), "ru", (0.3, 0.5, 0.2), "Pipeline talks resume in Astana"),
    ("a3", "kz-one", date(2026, 11, 10), "ru", (0.2, 0.6, 0.2), "Ministers meet in Almaty"),
    ("a4", "kz-one", date(2026, 11, 3), "kk", (0.0, 0.2, 0.8), "A sovereign energy policy"),
    ("b1", "ru-one", date(2026, 11, 25), "ru", (0.8, 0.1, 0.1), "Allies rely on Moscow"),
    ("b2", "ru-one", date(2026, 11, 29), "en", (0.6, 0.3, 0.1), "CSTO drills praised"),
    ("b3", "ru-one", date(2026, 11, 12), "ru", (0.5, 0.3, 0.2), "Caspian pipeline tariffs agreed"),
    ("b4", "ru-one", date(2026, 10, 28), "ru", (0.2, 0.7, 0.1), "Summit agenda published"),
    ("c1", "gb-one", date(2026, 11, 26), "en", (0.1, 0.8, 0.1), HOSTILE_TITLE),
    ("c2", "gb-one", date(2026, 11, 18), "en", (0.2, 0.5, 0.3), "Analysts weigh the alliance"),
    ("b5", "ru-one", date(2026, 8, 20), "ru", (0.9, 0.05, 0.05), "Old news from August"),
]
LABELS = ("pro_russian", "neutral", "pro_kazakh")


def article_id(key: str) -> str:
    return f"{key:0<32}"


def url_of(key: str, source: str) -> str:
    return HOSTILE_URL if key == "c1" else f"https://{source}.example/news/{key}"


def evidence_of(key: str, title: str, probs: tuple[float, float, float]) -> list[dict[str, Any]]:
    """Two passages; the second one supports the article's label most (for a1 and the rest)."""
    label = LABELS[max(range(3), key=lambda k: probs[k])]
    weak = {lab: round(p * 0.5 + 1 / 6, 4) for lab, p in zip(LABELS, probs, strict=True)}
    strong = {lab: (0.95 if lab == label else 0.025) for lab in LABELS}
    body = HOSTILE_PASSAGE if key == "c1" else f"Strongest passage of article {key}."
    return [
        {"idx": 0, "kind": "title", "text": title, "label": label, "probs": weak, "relevance": 0.9},
        {"idx": 2, "kind": "body", "text": body, "label": label, "probs": strong, "relevance": 0.9},
    ]


def _ts(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def build_report_db(path: Path, hostile_outlet: bool = False) -> Path:
    """Create the warehouse at ``path`` (migrations + views) and fill it with the rows above."""
    con = connect(path)
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    try:
        for sid, name, country, langs, affiliation, domains in SOURCES:
            if hostile_outlet and sid == "gb-one":
                name = HOSTILE_OUTLET
            con.execute(
                "insert into sources values (?, ?, ?, ?, ?, ?, ?, null)",
                [sid, name, country, langs, affiliation, domains, now],
            )
        con.execute(
            "insert into models values (?, 'test-encoder', 'old', null, ?, null, ?)",
            [OLD_MODEL, list(LABELS), now - timedelta(days=30)],
        )
        con.execute(
            "insert into models values (?, 'test-encoder', 'new', null, ?, null, ?)",
            [MODEL, list(LABELS), now],
        )

        def article(
            key: str,
            source: str,
            day: date,
            title: str,
            lang: str | None,
            duplicate_of: str | None = None,
        ) -> None:
            con.execute(
                "insert into articles (article_id, source_id, url, title, text, lang, "
                "lang_declared, published_at, fetched_at, content_sha256, story_id, "
                "duplicate_of, extractor, via, word_count) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'test', 'feed', 50)",
                [
                    article_id(key),
                    source,
                    url_of(key, source),
                    title,
                    f"Text of {key}.",
                    lang,
                    lang,
                    _ts(day),
                    _ts(day, 12),
                    f"sha-{key}",
                    f"story-{key}",
                    article_id(duplicate_of) if duplicate_of else None,
                ],
            )

        def predict(
            key: str,
            model: str,
            probs: tuple[float, float, float],
            lang: str | None,
            relevant: bool = True,
            passage_idx: int = -1,
            evidence: list[dict[str, Any]] | None = None,
        ) -> None:
            label = LABELS[max(range(3), key=lambda k: probs[k])] if relevant else None
            con.execute(
                "insert into stance_predictions values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1.0, "
                "false, ?, ?)",
                [
                    model,
                    article_id(key),
                    passage_idx,
                    label,
                    *probs,
                    0.9 if relevant else 0.1,
                    relevant,
                    lang,
                    json.dumps(evidence, ensure_ascii=False) if evidence is not None else None,
                    now,
                ],
            )

        for key, source, day, lang, probs, title in ARTICLES:
            article(key, source, day, title, lang)
            predict(key, MODEL, probs, lang, evidence=evidence_of(key, title, probs))
        # what the report must ignore
        predict("a1", OLD_MODEL, (0.9, 0.05, 0.05), "kk", evidence=[])  # superseded model
        predict("a1", MODEL, (0.95, 0.03, 0.02), "kk", passage_idx=0)  # a passage row
        article("d1", "kz-one", date(2026, 11, 28), "Weather in Astana", "ru")
        predict("d1", MODEL, (0.3, 0.4, 0.3), "ru", relevant=False)
        article(
            "d2", "kz-one", date(2026, 11, 30), "Astana stands firm (copy)", "kk", duplicate_of="a1"
        )
        predict("d2", MODEL, (0.1, 0.2, 0.7), "kk")
        article("e1", "ru-one", date(2026, 11, 20), "Not classified yet", None)

        alert_rows = [
            {
                "alert_id": "alert-stance-ru",
                "kind": "stance",
                "group_type": "country",
                "group_value": "RU",
                "group_label": "Russia outlets",
                "direction": "pro_russian",
                "window_start": date(2026, 11, 23),
                "window_end": UNTIL,
                "baseline_start": date(2026, 10, 26),
                "baseline_end": date(2026, 11, 22),
                "n_window": 2.0,
                "n_baseline": 2.0,
                "shares_before": {"pro_russian": 0.35, "neutral": 0.5, "pro_kazakh": 0.15},
                "shares_after": {"pro_russian": 0.7, "neutral": 0.2, "pro_kazakh": 0.1},
                "ci_before": {lab: [0.1, 0.6] for lab in LABELS},
                "ci_after": {
                    "pro_russian": [0.55, 0.82],
                    "neutral": [0.1, 0.35],
                    "pro_kazakh": [0.03, 0.2],
                },
                "effect_pp": 35.0,
                "p_value": 0.001,
                "q_value": 0.004,
                "severity": "high",
                "dispersion": 0.62,
                "evidence": [
                    {
                        "url": url_of("b1", "ru-one"),
                        "title": "Allies rely on Moscow",
                        "outlet": "Ru One",
                        "date": "2026-11-25",
                        "passage": "Strongest passage of b1.",
                        "label": "pro_russian",
                        "p": 0.8,
                    },
                    {
                        "url": "javascript:alert(3)",
                        "title": "<script>alert(3)</script>",
                        "outlet": "<i>Ru One</i>",
                        "date": "2026-11-29",
                        "passage": "<img src=x onerror=alert(5)>",
                        "label": "pro_russian",
                        "p": 0.6,
                    },
                ],
            },
            {
                "alert_id": "alert-coverage-gb",
                "kind": "coverage",
                "group_type": "outlet",
                "group_value": "gb-one",
                "group_label": "Steppe Watch",
                "direction": "volume_drop",
                "window_start": date(2026, 11, 23),
                "window_end": UNTIL,
                "baseline_start": date(2026, 10, 26),
                "baseline_end": date(2026, 11, 22),
                "n_window": 1.0,
                "n_baseline": 8.0,
                "shares_before": {},
                "shares_after": {},
                "ci_before": None,
                "ci_after": None,
                "effect_pp": 50.0,
                "p_value": None,
                "q_value": None,
                "severity": "medium",
                "evidence": [],
            },
            {
                "alert_id": "alert-june",
                "kind": "stance",
                "group_type": "all",
                "group_value": "all",
                "group_label": "all outlets",
                "direction": "neutral",
                "window_start": date(2026, 5, 26),
                "window_end": date(2026, 6, 1),
                "baseline_start": date(2026, 4, 28),
                "baseline_end": date(2026, 5, 25),
                "n_window": 40.0,
                "n_baseline": 150.0,
                "shares_before": {lab: 1 / 3 for lab in LABELS},
                "shares_after": {lab: 1 / 3 for lab in LABELS},
                "ci_before": None,
                "ci_after": None,
                "effect_pp": 12.0,
                "p_value": 0.01,
                "q_value": 0.02,
                "severity": "low",
                "evidence": [],
            },
        ]
        for a in alert_rows:
            con.execute(
                "insert into alerts values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?, ?, ?, ?, ?, ?)",
                [
                    a["alert_id"],
                    a["kind"],
                    a["group_type"],
                    a["group_value"],
                    a["group_label"],
                    a["direction"],
                    a["window_start"],
                    a["window_end"],
                    a["baseline_start"],
                    a["baseline_end"],
                    a["n_window"],
                    a["n_baseline"],
                    json.dumps(a["shares_before"]),
                    json.dumps(a["shares_after"]),
                    json.dumps(a["ci_before"]) if a["ci_before"] else None,
                    json.dumps(a["ci_after"]) if a["ci_after"] else None,
                    a["effect_pp"],
                    a["p_value"],
                    a["q_value"],
                    a["severity"],
                    json.dumps(a["evidence"]),
                    MODEL,
                    now,
                    a.get("dispersion"),
                ],
            )
    finally:
        con.close()
    return path
