"""Train the stance head and the relevance gate on the labelled training split.

The dev split is never read here; ``evaluate`` scores it afterwards for the model card.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from nlp.encoder import Encoder, get_encoder
from nlp.metrics import fit_temperature, stance_report
from nlp.stance import StanceModel, relevance_features

LABELS = ("pro_russian", "neutral", "pro_kazakh")
DATA_DIR = Path(__file__).resolve().parent / "data"
TRAIN_PATH = DATA_DIR / "stance_train.jsonl"
DEV_PATH = DATA_DIR / "stance_dev.jsonl"
C_GRID = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


def load_jsonl(path: Path | str) -> list[dict]:
    rows = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("relevant", True) and row.get("label") not in LABELS:
                raise ValueError(
                    f"{path}:{number}: label {row.get('label')!r} is not one of {LABELS}"
                )
            rows.append(row)
    return rows


def file_sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _centroid(x: np.ndarray) -> np.ndarray:
    c = x.mean(axis=0)
    return c / (np.linalg.norm(c) or 1.0)


def train(
    train_path: Path | str = TRAIN_PATH,
    out_dir: Path | str = Path("data/models/stance"),
    *,
    encoder: Encoder | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> Path:
    encoder = encoder or get_encoder()
    rows = load_jsonl(train_path)
    texts = [r["text"] for r in rows]
    log(f"embedding {len(texts)} training passages with {encoder.model_id}")
    emb = encoder.embed(texts)
    relevant = np.array([bool(r.get("relevant", True)) for r in rows])

    centroids = np.stack([_centroid(emb[relevant]), _centroid(emb[~relevant])])
    rel_x = relevance_features(emb, texts, centroids)
    gate = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    gate.fit(rel_x, relevant.astype(int))

    x = emb[relevant]
    y = np.array([LABELS.index(r["label"]) for r in rows if r.get("relevant", True)])
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    best_c, best_f1, best_logits = C_GRID[0], -1.0, None
    for c in C_GRID:
        head = LogisticRegression(C=c, max_iter=3000)
        logits = cross_val_predict(head, x, y, cv=folds, method="decision_function")
        f1 = stance_report(np.exp(logits), y, ["all"] * len(y), LABELS)["macro_f1"]
        log(f"  C={c:<5} cross-validated macro-F1 {f1:.3f}")
        if f1 > best_f1:
            best_c, best_f1, best_logits = c, f1, logits
    temperature = fit_temperature(best_logits, y)  # type: ignore[arg-type]
    head = LogisticRegression(C=best_c, max_iter=3000).fit(x, y)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(
        out / "head.npz",
        W=head.coef_.astype(np.float32),
        b=head.intercept_.astype(np.float32),
        rel_w=gate.coef_[0].astype(np.float32),
        rel_b=np.float32(gate.intercept_[0]),
        centroids=centroids.astype(np.float32),
    )
    langs = Counter(r.get("lang", "?") for r in rows if r.get("relevant", True))
    config = {
        "labels": list(LABELS),
        "backend": "embedding-head",
        "temperature": temperature,
        "relevance_threshold": 0.5,
        "article_relevance_threshold": 0.4,
        "card": {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "encoder": encoder.model_id,
            "training_data": str(Path(train_path).name),
            "training_data_sha256": file_sha256(train_path),
            "n_train": int(len(y)),
            "n_offtopic": int((~relevant).sum()),
            "train_languages": dict(sorted(langs.items())),
            "head": f"logistic regression, C={best_c}",
            "cv_macro_f1": round(best_f1, 4),
            "temperature": round(temperature, 4),
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    log(f"saved head to {out} (C={best_c}, T={temperature:.3f}, CV macro-F1 {best_f1:.3f})")
    return out


def evaluate(model: StanceModel, data_path: Path | str = DEV_PATH) -> dict:
    """Stance metrics on the relevant rows, relevance-gate accuracy on all rows."""
    rows = load_jsonl(data_path)
    texts = [r["text"] for r in rows]
    preds = model.predict(texts)
    rel_true = np.array([bool(r.get("relevant", True)) for r in rows])
    rel_pred = np.array([p.relevance >= model.relevance_threshold for p in preds])
    keep = [i for i, r in enumerate(rows) if r.get("relevant", True)]
    probs = np.array([[preds[i].probs[label] for label in model.labels] for i in keep])
    y = np.array([model.labels.index(rows[i]["label"]) for i in keep])
    langs = [rows[i].get("lang", "?") for i in keep]
    report = stance_report(probs, y, langs, model.labels)
    hard = np.array([bool(rows[i].get("hard")) for i in keep])
    if hard.any():
        report["hard_accuracy"] = float((probs.argmax(1)[hard] == y[hard]).mean())
    report["relevance_accuracy"] = float((rel_true == rel_pred).mean())
    report["relevance_recall"] = float(rel_pred[rel_true].mean()) if rel_true.any() else 0.0
    report["offtopic_rejected"] = float((~rel_pred[~rel_true]).mean()) if (~rel_true).any() else 0.0
    report["model_id"] = model.model_id
    report["data"] = str(data_path)
    return report
