"""Writing classifier output: models, passages and stance predictions, one transaction a chunk."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb

from warehouse.db import run_script, sql, transaction
from warehouse.load import validate_prediction


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


def store_scores(
    con: duckdb.DuckDBPyConnection, model_id: str, results: list[dict[str, Any]]
) -> list[str]:
    """Store article and passage predictions; returns the rejected rows' messages.

    ``results`` rows: article_id, lang, passages [{idx, kind, text, label, probs, relevance}],
    and the article-level label, probs, relevance, relevant, evidence, quotes_other_side.
    """
    now = datetime.now(UTC)
    rejected: list[str] = []
    with transaction(con):
        for r in results:
            rows = []
            for p in r["passages"]:
                rows.append(
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
                )
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
            flat = [dict(row, **{f"p_{k}": v for k, v in row["probs"].items()}) for row in rows]
            problems = [m for m in (validate_prediction(f) for f in flat) if m]
            if problems:
                rejected.extend(problems)
                continue
            con.execute(
                "update articles set lang = ? where article_id = ?", [r["lang"], r["article_id"]]
            )
            for p in r["passages"]:
                con.execute(
                    "insert into passages values (?, ?, ?, ?) on conflict do nothing",
                    [r["article_id"], p["idx"], p["kind"], p["text"]],
                )
            for f in flat:
                con.execute(
                    "insert into stance_predictions values "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing",
                    [
                        model_id,
                        f["article_id"],
                        f["passage_idx"],
                        f["label"],
                        f.get("p_pro_russian"),
                        f.get("p_neutral"),
                        f.get("p_pro_kazakh"),
                        f["relevance"],
                        f["relevant"],
                        r["lang"],
                        f["weight"],
                        f["quotes_other_side"],
                        f["evidence"],
                        now,
                    ],
                )
        run_script(con, "refresh_daily_for", {"ids": [r["article_id"] for r in results]})
    return rejected


def refresh_daily(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild the whole materialised daily table (after sources change)."""
    with transaction(con):
        run_script(con, "refresh_daily")
