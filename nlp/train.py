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
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from nlp import realnews
from nlp.charngrams import CharNgramHead, cross_val_logits, mix
from nlp.encoder import Encoder, get_encoder
from nlp.metrics import fit_temperature, stance_report
from nlp.stance import StanceModel, lexicon_features, relevance_features

LABELS = ("pro_russian", "neutral", "pro_kazakh")
DATA_DIR = Path(__file__).resolve().parent / "data"
TRAIN_PATH = DATA_DIR / "stance_train.jsonl"
DEV_PATH = DATA_DIR / "stance_dev.jsonl"
C_GRID = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
CHAR_C_GRID = (4.0, 16.0, 64.0, 256.0)
# The e5 head keeps at least 0.6 of the mix. Cross-validation on train alone picks 0.3-0.4,
# because train (like dev) rewards shared wording, and such a mix loses 0.07 macro-F1 when a
# language is left out of training, where 0.6 loses 0.02 within noise and keeps the gain on
# articles by other writers (bench/generalization.py, README "What we tried").
E5_WEIGHTS = (0.6, 0.7, 0.8, 0.9, 1.0)
# Sample weight of our written passages beside real ones, and the share of real relevant
# passages the relevance gate must keep: both chosen on the real dev split
# (bench/realnews.py, README "Stance on real news").
WRITTEN_WEIGHT = 0.3
GATE_RECALL = 0.97


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


def _macro_f1(logits: np.ndarray, y: np.ndarray) -> float:
    return float(stance_report(np.exp(logits), y, ["all"] * len(y), LABELS)["macro_f1"])


def _fit_char_mix(
    texts: list[str],
    y: np.ndarray,
    e5_logits: np.ndarray,
    folds: StratifiedKFold,
    log: Callable[[str], None],
) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """The char n-gram head and its mixing weight, both chosen by cross-validation on the
    training split (the same folds as the e5 head). Returns the out-of-fold mixed logits (for
    the temperature), the arrays to save and the model-card entries."""
    best_c, best_f1, char_logits = CHAR_C_GRID[0], -1.0, np.zeros_like(e5_logits)
    for c in CHAR_C_GRID:
        logits = cross_val_logits(texts, y, c, folds)
        f1 = _macro_f1(logits, y)
        log(f"  char n-grams C={c:<5} cross-validated macro-F1 {f1:.3f}")
        if f1 > best_f1:
            best_c, best_f1, char_logits = c, f1, logits
    # on ties the e5 head keeps the larger share: it transfers across languages, the
    # character n-grams do not
    scores = {a: _macro_f1(mix(e5_logits, char_logits, a), y) for a in E5_WEIGHTS}
    e5_weight = max(E5_WEIGHTS, key=lambda a: (round(scores[a], 4), a))
    log(
        f"  mix: e5 weight {e5_weight} cross-validated macro-F1 {scores[e5_weight]:.3f} "
        f"(e5 alone {scores[1.0]:.3f})"
    )
    head = CharNgramHead.fit(texts, y, best_c)
    card = {
        "e5_weight": e5_weight,
        "char_head": f"char_wb 2-5-gram TF-IDF logistic regression, C={best_c}, "
        f"{len(head.vectorizer.vocabulary_)} n-grams",
        "cv_macro_f1_char": round(best_f1, 4),
    }
    return mix(e5_logits, char_logits, e5_weight), head.arrays(), card


def train(
    train_path: Path | str = TRAIN_PATH,
    out_dir: Path | str = Path("data/models/stance"),
    *,
    encoder: Encoder | None = None,
    seed: int = 0,
    char_ngrams: bool = True,
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
    best_c, best_f1, best_logits = C_GRID[0], -1.0, np.zeros((len(y), len(LABELS)))
    for c in C_GRID:
        head = LogisticRegression(C=c, max_iter=3000)
        logits = cross_val_predict(head, x, y, cv=folds, method="decision_function")
        f1 = _macro_f1(logits, y)
        log(f"  C={c:<5} cross-validated macro-F1 {f1:.3f}")
        if f1 > best_f1:
            best_c, best_f1, best_logits = c, f1, logits
    head = LogisticRegression(C=best_c, max_iter=3000).fit(x, y)
    mixed, char_arrays, char_card = best_logits, dict[str, np.ndarray](), dict[str, Any]()
    if char_ngrams:
        rel_texts = [t for t, keep in zip(texts, relevant, strict=True) if keep]
        mixed, char_arrays, char_card = _fit_char_mix(rel_texts, y, best_logits, folds, log)
    temperature = fit_temperature(mixed, y)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {
        "W": head.coef_.astype(np.float32),
        "b": head.intercept_.astype(np.float32),
        "rel_w": gate.coef_[0].astype(np.float32),
        "rel_b": np.float32(gate.intercept_[0]),
        "centroids": centroids.astype(np.float32),
        **char_arrays,
    }
    np.savez_compressed(out / "head.npz", **arrays)
    langs = Counter(r.get("lang", "?") for r in rows if r.get("relevant", True))
    config = {
        "labels": list(LABELS),
        "backend": "embedding-head",
        "temperature": temperature,
        "e5_weight": char_card.get("e5_weight", 1.0),
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
            "cv_macro_f1_e5": round(best_f1, 4),
            **char_card,
            "cv_macro_f1": round(_macro_f1(mixed, y), 4),
            "temperature": round(temperature, 4),
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    log(
        f"saved head to {out} (C={best_c}, e5 weight {config['e5_weight']}, "
        f"T={temperature:.3f}, CV macro-F1 {config['card']['cv_macro_f1']:.3f})"  # type: ignore[index]
    )
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
    report.update(relevance_metrics(rel_true, rel_pred))
    report["model_id"] = model.model_id
    report["data"] = str(data_path)
    return report


# --------------------------------------------------------------------------- real news
# The real-news recipe trains on stored e5 embeddings (nlp/data/realnews), so it needs no texts.
# Folds group passages by outlet: an outlet's house style must not sit on both sides of a fold,
# or cross-validation rewards remembering outlets (the dev split is grouped the same way).


def outlet_folds(groups: list[str], n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import GroupKFold

    idx = np.arange(len(groups))
    return list(GroupKFold(n_splits=n_splits).split(idx, groups=groups))


Extra = tuple[np.ndarray, np.ndarray, float]  # (x, y, sample weight): our written passages


def fit_head(
    x: np.ndarray,
    y: np.ndarray,
    c: float,
    *,
    extra: Extra | None = None,
    balanced: bool = False,
) -> LogisticRegression:
    """Logistic regression on ``x``, plus the ``extra`` rows at their weight when given."""
    weight = None
    if extra is not None:
        weight = np.concatenate([np.ones(len(y)), np.full(len(extra[1]), extra[2])])
        x, y = np.vstack([x, extra[0]]), np.concatenate([y, extra[1]])
    head = LogisticRegression(C=c, max_iter=3000, class_weight="balanced" if balanced else None)
    return head.fit(x, y, sample_weight=weight)


def cv_logits(
    x: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    c: float,
    *,
    extra: Extra | None = None,
    balanced: bool = False,
) -> np.ndarray:
    """Out-of-fold logits; the ``extra`` rows join every training fold and are never scored."""
    out = np.zeros((len(y), len(LABELS)))
    for fit_idx, test_idx in folds:
        head = fit_head(x[fit_idx], y[fit_idx], c, extra=extra, balanced=balanced)
        out[test_idx] = head.decision_function(x[test_idx])
    return out


def choose_c(
    x: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    extra: Extra | None = None,
    balanced: bool = False,
    grid: tuple[float, ...] = C_GRID,
) -> tuple[float, np.ndarray, float]:
    """(C, its out-of-fold logits, their macro-F1): the best C of ``grid`` on grouped folds."""
    best = (grid[0], np.zeros((len(y), len(LABELS))), -1.0)
    for c in grid:
        logits = cv_logits(x, y, folds, c, extra=extra, balanced=balanced)
        f1 = _macro_f1(logits, y)
        if f1 > best[2]:
            best = (c, logits, f1)
    return best


def gate_threshold(scores: np.ndarray, relevant: np.ndarray, recall: float) -> float:
    """The highest threshold that keeps at least ``recall`` of the relevant passages."""
    on_topic = np.sort(scores[relevant])
    k = int(np.floor((1.0 - recall) * len(on_topic)))
    return float(on_topic[min(k, len(on_topic) - 1)]) if len(on_topic) else 0.5


def fit_gate(
    emb: np.ndarray,
    lex: np.ndarray,
    relevant: np.ndarray,
    groups: list[str],
    *,
    recall: float,
    with_embedding: bool = True,
) -> tuple[LogisticRegression, np.ndarray, float]:
    """The relevance gate (class-balanced LR on :func:`relevance_features`), its prototypes, and
    the threshold that keeps ``recall`` of the real relevant rows out of fold. ``groups`` are the
    rows' outlets (the folds); written passages carry groups starting ``written-`` and are left
    out of the threshold."""
    centroids = np.stack([_centroid(emb[relevant]), _centroid(emb[~relevant])])
    feats = relevance_features(emb, None, centroids, lex=lex, with_embedding=with_embedding)
    oof = np.zeros(len(relevant))
    for fit_idx, test_idx in outlet_folds(groups):
        gate = LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000)
        oof[test_idx] = gate.fit(feats[fit_idx], relevant[fit_idx]).predict_proba(feats[test_idx])[
            :, 1
        ]
    real = np.array([not g.startswith("written-") for g in groups])
    threshold = gate_threshold(oof[real], relevant[real], recall)
    gate = LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000).fit(feats, relevant)
    return gate, centroids, threshold


def relevance_metrics(truth: np.ndarray, kept: np.ndarray) -> dict[str, float]:
    """How a gate's decisions (``kept``) match the relevance labels (``truth``)."""
    return {
        "relevance_accuracy": float((kept == truth).mean()),
        "relevance_recall": float(kept[truth].mean()) if truth.any() else 0.0,
        "relevance_precision": float(truth[kept].mean()) if kept.any() else 0.0,
        "offtopic_rejected": float((~kept[~truth]).mean()) if (~truth).any() else 0.0,
    }


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def train_real(
    realnews_dir: Path = realnews.DEFAULT_DIR,
    out_dir: Path | str = Path("data/models/stance"),
    *,
    written_path: Path | str | None = TRAIN_PATH,
    written_weight: float = WRITTEN_WEIGHT,
    gate_recall: float = GATE_RECALL,
    balanced: bool = True,
    encoder: Encoder | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Stance head and relevance gate from the real-news train split's stored embeddings, plus
    (at ``written_weight``) our written passages. Dev is never read."""
    rows, emb, lex = realnews.load(realnews_dir)
    train = np.array([r["split"] == "train" for r in rows])
    rows = [r for r, keep in zip(rows, train, strict=True) if keep]
    emb, lex = emb[train], lex[train]
    relevant = np.array([bool(r["relevant"]) for r in rows])
    outlets = [r["outlet"] for r in rows]
    y = np.array([LABELS.index(r["label"]) for r in rows if r["relevant"]])
    encoder = encoder or get_encoder()

    w_emb = np.zeros((0, emb.shape[1]), dtype=np.float32)
    w_lex = np.zeros((0, lex.shape[1]), dtype=np.float32)
    w_rel = np.zeros(0, dtype=bool)
    w_y = np.zeros(0, dtype=int)
    if written_path is not None and written_weight > 0:
        w_rows = load_jsonl(written_path)
        log(f"embedding {len(w_rows)} written passages (weight {written_weight})")
        w_texts = [r["text"] for r in w_rows]
        w_emb, w_lex = encoder.embed(w_texts), lexicon_features(w_texts)
        w_rel = np.array([bool(r.get("relevant", True)) for r in w_rows])
        w_y = np.array([LABELS.index(r["label"]) for r in w_rows if r.get("relevant", True)])

    # stance head: C by outlet-grouped CV on the real train split
    x = emb[relevant]
    folds = outlet_folds([o for o, keep in zip(outlets, relevant, strict=True) if keep])
    extra = (w_emb[w_rel], w_y, written_weight) if len(w_y) else None
    c, oof, cv_f1 = choose_c(x, y, folds, extra=extra, balanced=balanced)
    log(f"  stance head C={c}: outlet-grouped CV macro-F1 {cv_f1:.3f} on {len(y)} real passages")
    head = fit_head(x, y, c, extra=extra, balanced=balanced)
    temperature = fit_temperature(oof, y)

    # relevance gate: real and written passages; its bias is shifted so that 0.5 keeps
    # `gate_recall` of real relevant passages out of fold, and the article threshold downstream
    # keeps its meaning
    gate, centroids, threshold = fit_gate(
        np.vstack([emb, w_emb]),
        np.vstack([lex, w_lex]),
        np.concatenate([relevant, w_rel]),
        outlets + [f"written-{i % 5}" for i in range(len(w_rel))],
        recall=gate_recall,
    )
    log(f"  relevance gate: out-of-fold threshold {threshold:.3f} for recall {gate_recall}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out / "head.npz",
        W=head.coef_.astype(np.float32),
        b=head.intercept_.astype(np.float32),
        rel_w=gate.coef_[0].astype(np.float32),
        rel_b=np.float32(gate.intercept_[0] - _logit(threshold)),
        centroids=centroids.astype(np.float32),
    )
    manifest = Path(realnews_dir) / realnews.MANIFEST_NAME
    langs = Counter(r["lang"] for r in rows if r["relevant"])
    config = {
        "labels": list(LABELS),
        "backend": "embedding-head",
        "temperature": temperature,
        "gate_features": "embedding+prototypes+lexicon",
        "relevance_threshold": 0.5,
        "article_relevance_threshold": 0.4,
        "card": {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "encoder": encoder.model_id,
            "recipe": "real news (stored e5 embeddings) + written passages, logistic regression",
            "training_data": "realnews/manifest.jsonl (split=train)",
            "training_data_sha256": file_sha256(manifest),
            "written_data": Path(written_path).name if extra and written_path else None,
            "written_data_sha256": file_sha256(written_path) if extra and written_path else None,
            "written_weight": written_weight if extra else 0.0,
            "n_train": int(len(y)),
            "n_train_written": int(len(w_y)),
            "n_offtopic": int((~relevant).sum() + (~w_rel).sum()),
            "train_languages": dict(sorted(langs.items())),
            "head": f"logistic regression, C={c}" + (", class-balanced" if balanced else ""),
            "cv": "5-fold, grouped by outlet",
            "cv_macro_f1": round(cv_f1, 4),
            "temperature": round(temperature, 4),
            "gate_recall_target": gate_recall,
            "gate_oof_threshold": round(threshold, 4),
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    log(f"saved head to {out} (C={c}, T={temperature:.3f}, CV macro-F1 {cv_f1:.3f})")
    return out


def evaluate_real(model: StanceModel, realnews_dir: Path = realnews.DEFAULT_DIR) -> dict:
    """Stance metrics on the real dev split's relevant rows, from stored embeddings; relevance
    recall and precision on all its rows."""
    rows, emb, lex = realnews.load(realnews_dir)
    dev = np.array([r["split"] == "dev" for r in rows])
    rows = [r for r, keep in zip(rows, dev, strict=True) if keep]
    probs, rel = model.score_embeddings(emb[dev], lex[dev])
    truth = np.array([bool(r["relevant"]) for r in rows])
    keep = rel >= model.relevance_threshold
    y = np.array([model.labels.index(r["label"]) for r in rows if r["relevant"]])
    report = stance_report(
        probs[truth], y, [r["lang"] for r in rows if r["relevant"]], model.labels
    )
    report.update(relevance_metrics(truth, keep))
    report["model_id"] = model.model_id
    report["data"] = "real-news dev split"
    return report
