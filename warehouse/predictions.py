"""Writing classifier output: models, passages and stance predictions, one transaction a chunk."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb

from warehouse.db import run_script, sql, transaction
from warehouse.load import frame, registered, validate_prediction


def register_model(con: duckdb.DuckDBPyConnection, info: dict[str, Any], head_sha256: str) -> None:
    card = info.get("card", {})
    con.execute(
        "insert into models values (?, ?, ?, ?, ?, ?, ?) on conflict do nothing",
        [
            info["model_id"],
            info["encoder_id"],
            head_sha256,
            card.get("training_data_sha256"),
            info["labels"],
            json.dumps(card),
            datetime.now(UTC),
        ],
    )


def unclassified(
    con: duckdb.DuckDBPyConnection, model_id: str, limit: int = 1_000_000
) -> list[dict[str, Any]]:
    rows = con.execute(sql("unclassified"), {"model_id": model_id, "limit": limit}).fetchall()
    return [{"article_id": r[0], "title": r[1], "text": r[2]} for r in rows]


PASSAGE_FRAME = {"pos": "int", "article_id": "str", "idx": "int", "kind": "str", "text": "str"}
PREDICTION_FRAME = {
    "pos": "int",
    "article_id": "str",
    "passage_idx": "int",
    "label": "str",
    "p_pro_russian": "float",
    "p_neutral": "float",
    "p_pro_kazakh": "float",
    "relevance": "float",
    "relevant": "bool",
    "lang": "str",
    "weight": "float",
    "quotes_other_side": "bool",
    "evidence": "str",
}


def prediction_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    """One classifier result as stance_predictions rows: its passages, then the article (-1)."""
    rows = [
        {
            "article_id": r["article_id"],
            "passage_idx": p["idx"],
            "label": p["label"],
            "probs": p["probs"],
            "relevance": p["relevance"],
            "relevant": True,
            "weight": p.get("weight"),
            "quotes_other_side": None,
            "evidence": None,
        }
        for p in r["passages"]
    ]
    rows.append(
        {
            "article_id": r["article_id"],
            "passage_idx": -1,
            "label": r["label"],
            "probs": r["probs"] or {},
            "relevance": r["relevance"],
            "relevant": r["relevant"],
            "weight": None,
            "quotes_other_side": r["quotes_other_side"],
            "evidence": json.dumps(r["evidence"], ensure_ascii=False),
        }
    )
    return [
        dict(row, lang=r["lang"], **{f"p_{k}": v for k, v in row["probs"].items()}) for row in rows
    ]


def store_scores(
    con: duckdb.DuckDBPyConnection, model_id: str, results: list[dict[str, Any]]
) -> list[str]:
    """Store article and passage predictions; returns the rejected rows' messages.

    ``results`` rows: article_id, lang, passages [{idx, kind, text, label, probs, relevance}],
    and the article-level label, probs, relevance, relevant, evidence, quotes_other_side.
    A result with a bad row is rejected whole. The good ones are written with one statement per
    table; a prediction or passage already stored (or earlier in the chunk) is kept, and the
    article's language is the last one given.
    """
    rejected: list[str] = []
    langs: dict[str, str | None] = {}
    passages: list[dict[str, Any]] = []
    predictions: list[dict[str, Any]] = []
    for r in results:
        rows = prediction_rows(r)
        problems = [m for m in (validate_prediction(row) for row in rows) if m]
        if problems:
            rejected.extend(problems)
            continue
        langs[r["article_id"]] = r["lang"]
        passages += [
            dict(p, pos=len(passages) + k, article_id=r["article_id"])
            for k, p in enumerate(r["passages"])
        ]
        predictions += [dict(row, pos=len(predictions) + k) for k, row in enumerate(rows)]
    with transaction(con):
        if predictions:
            scored_langs = frame(
                [{"article_id": k, "lang": v} for k, v in langs.items()],
                {"article_id": "str", "lang": "str"},
            )
            with registered(
                con,
                scored_langs=scored_langs,
                scored_passages=frame(passages, PASSAGE_FRAME),
                scored_predictions=frame(predictions, PREDICTION_FRAME),
            ):
                run_script(con, "store_scores", {"model_id": model_id, "now": datetime.now(UTC)})
        run_script(con, "refresh_daily_for", {"ids": [r["article_id"] for r in results]})
    return rejected


def refresh_daily(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild the whole materialised daily table (after sources change)."""
    with transaction(con):
        run_script(con, "refresh_daily")
