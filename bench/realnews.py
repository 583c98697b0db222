"""Which stance recipe holds on real news? Variants compared on the real-news dev split.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/realnews.py [--json] [--no-text] [--lora]

The real-news set (``nlp/data/realnews``: manifest + stored e5 embeddings) is split by outlet;
every variant is fitted on the train split (C and temperature by outlet-grouped 5-fold CV), and
the dev split is only scored. Variants:

* ``real``: logistic regression on real embeddings;
* ``real-bal``: the same, class-balanced;
* ``real+written@w``: real plus our written passages (``nlp/data/stance_train.jsonl``) at sample
  weight ``w``;
* ``written``: our written passages alone (the recipe before real news);
* ``mlp``: a one-hidden-layer MLP on real embeddings;
* ``bundled``: the model in ``nlp/model`` as it is (needs hydrated texts);
* ``real+char``: ``real`` mixed 0.7/0.3 with the character n-gram head (needs texts);
* ``lora`` (with ``--lora``): a LoRA adapter on the encoder (``nlp.lora``), trained on texts.

Reported: real-dev macro-F1 with a 95% interval (bootstrap over outlets), per language, ECE with
one temperature and with a temperature per language, leave-one-language-out (fit on the other
three languages' train rows, score the left-out language's dev rows), and the written dev split
as a second check. The relevance gate is compared the same way (recall and precision on real
dev at the threshold chosen on train for 0.97 out-of-fold recall).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

from nlp import realnews  # noqa: E402
from nlp.metrics import expected_calibration_error, fit_temperature  # noqa: E402
from nlp.stance import lexicon_features, relevance_features, softmax  # noqa: E402
from nlp.train import (  # noqa: E402
    DEV_PATH,
    LABELS,
    TRAIN_PATH,
    choose_c,
    fit_gate,
    fit_head,
    load_jsonl,
    outlet_folds,
    relevance_metrics,
)

CACHE = Path.home() / ".cache" / "cstowatch" / "bench"
LANGS = ("en", "ru", "kk", "fr")
TEXTS = ROOT / "data" / "realnews" / "texts.jsonl"
CHOSEN_C: dict[str, float] = {}  # per variant, on the full train split; reused by LOLO


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    scores = []
    for k in range(len(LABELS)):
        tp = np.sum((pred == k) & (y == k))
        denom = np.sum(pred == k) + np.sum(y == k)
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def outlet_members(outlets: list[str]) -> list[np.ndarray]:
    """Row indices per outlet: the units the bootstraps resample."""
    groups: dict[str, list[int]] = {}
    for i, o in enumerate(outlets):
        groups.setdefault(o, []).append(i)
    return [np.array(v) for v in groups.values()]


def outlet_bootstrap(
    y: np.ndarray, pred: np.ndarray, outlets: list[str], n: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of macro-F1, resampling whole outlets (passages of an outlet are not
    independent)."""
    rng = np.random.default_rng(seed)
    members = outlet_members(outlets)
    stats = []
    for _ in range(n):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        stats.append(macro_f1(y[idx], pred[idx]))
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def paired_outlet_bootstrap(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, outlets: list[str], n: int = 2000
) -> tuple[float, float, float]:
    """Difference of macro-F1 (a - b) with its 95% outlet-bootstrap interval."""
    rng = np.random.default_rng(1)
    members = outlet_members(outlets)
    diffs = []
    for _ in range(n):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        diffs.append(macro_f1(y[idx], a[idx]) - macro_f1(y[idx], b[idx]))
    return (
        macro_f1(y, a) - macro_f1(y, b),
        float(np.percentile(diffs, 2.5)),
        float(np.percentile(diffs, 97.5)),
    )


def written_embeddings(path: Path) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Our written passages with their embeddings (cached by file hash) and lexicon features."""
    from nlp.encoder import get_encoder

    rows = load_jsonl(path)
    texts = [r["text"] for r in rows]
    encoder = get_encoder()
    key = hashlib.sha256(path.read_bytes() + encoder.model_id.encode()).hexdigest()[:16]
    cached = CACHE / f"written-{key}.npy"
    if cached.exists():
        emb = np.load(cached)
    else:
        log(f"embedding {len(texts)} written passages of {path.name}")
        emb = encoder.embed(texts)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(cached, emb)
    return rows, emb, lexicon_features(texts)


class Data:
    """Real train/dev and written train/dev, as arrays."""

    def __init__(self) -> None:
        rows, emb, lex = realnews.load()
        self.rows, self.emb, self.lex = rows, emb, lex
        self.relevant = np.array([r["relevant"] for r in rows])
        self.dev = np.array([r["split"] == "dev" for r in rows])
        self.langs = np.array([r["lang"] for r in rows])
        self.outlets = np.array([r["outlet"] for r in rows])
        self.y = np.array([LABELS.index(r["label"]) if r["relevant"] else -1 for r in rows])
        self.tr = self.relevant & ~self.dev
        self.dv = self.relevant & self.dev
        w_rows, w_emb, w_lex = written_embeddings(TRAIN_PATH)
        w_rel = np.array([bool(r.get("relevant", True)) for r in w_rows])
        self.w_emb, self.w_lex, self.w_rel = w_emb, w_lex, w_rel
        self.w_y = np.array(
            [LABELS.index(r["label"]) if k else -1 for r, k in zip(w_rows, w_rel, strict=True)]
        )
        self.w_langs = np.array([r.get("lang", "?") for r in w_rows])
        d_rows, d_emb, _ = written_embeddings(DEV_PATH)
        d_rel = np.array([bool(r.get("relevant", True)) for r in d_rows])
        self.wd_emb = d_emb[d_rel]
        self.wd_y = np.array(
            [LABELS.index(r["label"]) for r, k in zip(d_rows, d_rel, strict=True) if k]
        )
        self.wd_langs = np.array(
            [r.get("lang", "?") for r, k in zip(d_rows, d_rel, strict=True) if k]
        )
        self.texts = realnews.read_texts(TEXTS, rows)


def fit_variant(
    d: Data,
    name: str,
    train_mask: np.ndarray,
    written_mask: np.ndarray | None,
    fixed_c: float | None = None,
) -> tuple[object, float]:
    """A fitted stance scorer (embeddings -> logits) and its temperature, for one variant.
    ``fixed_c`` skips the choice of C (leave-one-language-out reuses the full split's C; the
    temperature is then not fitted and comes back as 1)."""
    x, y = d.emb[train_mask], d.y[train_mask]
    folds = outlet_folds(list(d.outlets[train_mask]))
    if name == "mlp":
        oof = np.zeros((len(y), len(LABELS)))
        for fit_idx, test_idx in folds:
            m = MLPClassifier((256,), alpha=1e-2, max_iter=400, early_stopping=True, random_state=0)
            oof[test_idx] = np.log(m.fit(x[fit_idx], y[fit_idx]).predict_proba(x[test_idx]) + 1e-9)
        m = MLPClassifier((256,), alpha=1e-2, max_iter=400, early_stopping=True, random_state=0)
        m.fit(x, y)
        return (lambda e: np.log(m.predict_proba(e) + 1e-9)), fit_temperature(oof, y)
    extra = None
    if name.startswith("real+written@") or name == "written":
        wm = d.w_rel if written_mask is None else d.w_rel & written_mask
        weight = 1.0 if name == "written" else float(name.split("@")[1])
        extra = (d.w_emb[wm], d.w_y[wm], weight)
    if name == "written":
        assert extra is not None
        xs, ys = extra[0], extra[1]
        from sklearn.model_selection import StratifiedKFold

        if fixed_c is not None:
            return fit_head(xs, ys, fixed_c).decision_function, 1.0
        wf = list(StratifiedKFold(5, shuffle=True, random_state=0).split(xs, ys))
        c, oof, _ = choose_c(xs, ys, wf)
        CHOSEN_C[name] = c
        return fit_head(xs, ys, c).decision_function, fit_temperature(oof, ys)
    balanced = name == "real-bal"
    if fixed_c is not None:
        c, oof = fixed_c, None
    else:
        c, oof, _ = choose_c(x, y, folds, extra=extra, balanced=balanced)
        CHOSEN_C[name] = c
    head = fit_head(x, y, c, extra=extra, balanced=balanced)
    log(f"  {name}: C={c}")
    return head.decision_function, (fit_temperature(oof, y) if oof is not None else 1.0)


def per_language_ece(probs: np.ndarray, y: np.ndarray, langs: np.ndarray) -> dict[str, float]:
    return {
        lang: round(expected_calibration_error(probs[langs == lang], y[langs == lang]), 4)
        for lang in LANGS
        if (langs == lang).any()
    }


def score(
    d: Data, logits: np.ndarray, temperature: float, written_logits: np.ndarray | None
) -> dict:
    """Metrics of real-dev logits (and, when given, of the written dev split's)."""
    probs = softmax(logits, temperature)
    y, langs = d.y[d.dv], d.langs[d.dv]
    pred = probs.argmax(1)
    lo, hi = outlet_bootstrap(y, pred, list(d.outlets[d.dv]))
    return {
        "macro_f1": round(macro_f1(y, pred), 4),
        "ci": [round(lo, 4), round(hi, 4)],
        "per_language": {
            lang: round(macro_f1(y[langs == lang], pred[langs == lang]), 4) for lang in LANGS
        },
        "ece": round(expected_calibration_error(probs, y), 4),
        "ece_per_language": per_language_ece(probs, y, langs),
        "written_dev_macro_f1": (
            round(macro_f1(d.wd_y, written_logits.argmax(1)), 4)
            if written_logits is not None
            else None
        ),
        "pred": pred,
        "logits": logits,
    }


def lolo(d: Data, name: str) -> dict[str, float]:
    out = {}
    for lang in LANGS:
        train = d.tr & (d.langs != lang)
        test = d.dv & (d.langs == lang)
        if not test.any() or name in ("bundled", "real+char"):
            continue
        scorer, _ = fit_variant(d, name, train, d.w_langs != lang, CHOSEN_C.get(name))
        out[lang] = round(macro_f1(d.y[test], scorer(d.emb[test]).argmax(1)), 4)
    if out:
        out["mean"] = round(float(np.mean(list(out.values()))), 4)
    return out


def per_language_temperature(d: Data, name: str) -> dict:
    """ECE on real dev with one temperature per language (each fitted on out-of-fold train)."""
    x, y, langs = d.emb[d.tr], d.y[d.tr], d.langs[d.tr]
    folds = outlet_folds(list(d.outlets[d.tr]))
    _, oof, _ = choose_c(x, y, folds)
    temps = {lang: fit_temperature(oof[langs == lang], y[langs == lang]) for lang in LANGS}
    scorer, t_all = fit_variant(d, name, d.tr, None)
    logits, yd, ld = scorer(d.emb[d.dv]), d.y[d.dv], d.langs[d.dv]
    probs = np.vstack([softmax(logits[i : i + 1], temps[ld[i]]) for i in range(len(yd))])
    return {
        "temperatures": {k: round(v, 3) for k, v in temps.items()},
        "one_temperature": round(t_all, 3),
        "ece": round(expected_calibration_error(probs, yd), 4),
        "ece_per_language": per_language_ece(probs, yd, ld),
    }


def gates(d: Data) -> dict:
    """Relevance gate variants on real dev: recall and precision of relevant passages."""
    out = {}
    train = ~d.dev
    groups = list(d.outlets[train]) + [f"written-{i % 5}" for i in range(len(d.w_rel))]
    truth = d.relevant[d.dev]
    for with_emb in (False, True):
        gate, centroids, threshold = fit_gate(
            np.vstack([d.emb[train], d.w_emb]),
            np.vstack([d.lex[train], d.w_lex]),
            np.concatenate([d.relevant[train], d.w_rel]),
            groups,
            recall=0.97,
            with_embedding=with_emb,
        )
        dev_feats = relevance_features(
            d.emb[d.dev], None, centroids, lex=d.lex[d.dev], with_embedding=with_emb
        )
        s = gate.predict_proba(dev_feats)[:, 1]
        entry = {}
        for t in (0.5, threshold):
            m = relevance_metrics(truth, s >= t)
            entry[f"{t:.3f}"] = {
                "recall": round(m["relevance_recall"], 4),
                "precision": round(m["relevance_precision"], 4),
                "offtopic_rejected": round(m["offtopic_rejected"], 4),
            }
        out["embedding+prototypes+lexicon" if with_emb else "prototypes+lexicon"] = entry
    return out


def text_variant(d: Data, name: str) -> dict | None:
    """bundled / real+char: need the hydrated texts of train (char) and dev."""
    from nlp.stance import StanceModel

    if any(d.texts[i] is None for i in np.flatnonzero(d.dv)):
        log(f"  {name}: skipped, dev texts are not hydrated (cstowatch data hydrate)")
        return None
    dev_texts = [d.texts[i] for i in np.flatnonzero(d.dv)]
    if name == "bundled":
        model = StanceModel()
        probs, _ = model.score_embeddings(d.emb[d.dv], d.lex[d.dv], dev_texts)  # type: ignore[arg-type]
        logits = np.log(probs + 1e-9)
        return {"logits": logits, "temperature": 1.0}
    from nlp.charngrams import CharNgramHead, mix

    train_texts = [d.texts[i] for i in np.flatnonzero(d.tr)]
    if any(t is None for t in train_texts):
        return None
    y = d.y[d.tr]
    char = CharNgramHead.fit(train_texts, y, 16.0)  # type: ignore[arg-type]
    scorer, t = fit_variant(d, "real", d.tr, None)
    logits = mix(scorer(d.emb[d.dv]), char.logits(dev_texts), 0.7)  # type: ignore[arg-type]
    return {"logits": logits, "temperature": t}


VARIANTS = (
    "real",
    "real-bal",
    "real+written@0.1",
    "real+written@0.3",
    "real+written@1.0",
    "written",
    "mlp",
)


def run(text: bool = True, with_lolo: bool = True) -> dict:
    """Every variant on the real dev split; the report as a JSON-able dict."""
    started = time.monotonic()
    d = Data()
    n_rel = {lang: int((d.relevant & (d.langs == lang)).sum()) for lang in LANGS}
    log(
        f"real-news set: {len(d.rows)} rows, relevant per language {n_rel}, "
        f"dev relevant {int(d.dv.sum())}, outlets {len(set(d.outlets))}"
    )
    results: dict[str, dict] = {}
    for name in VARIANTS:
        log(f"variant {name}")
        scorer, t = fit_variant(d, name, d.tr, None)
        results[name] = score(d, scorer(d.emb[d.dv]), t, scorer(d.wd_emb))
        if with_lolo:
            results[name]["lolo"] = lolo(d, name)
    if text:
        for name in ("bundled", "real+char"):
            tv = text_variant(d, name)
            if tv is not None:
                results[name] = score(d, tv["logits"], tv["temperature"], None)
    y = d.y[d.dv]
    outlets = list(d.outlets[d.dv])
    for name, r in results.items():
        if name != "real":
            r["vs_real"] = [
                round(v, 4)
                for v in paired_outlet_bootstrap(y, r["pred"], results["real"]["pred"], outlets)
            ]
    return {
        "n_rows": len(d.rows),
        "relevant_per_language": n_rel,
        "dev_relevant": int(d.dv.sum()),
        "outlets": len(set(d.outlets)),
        "variants": {
            k: {kk: vv for kk, vv in v.items() if kk not in ("pred", "logits")}
            for k, v in results.items()
        },
        "per_language_temperature": per_language_temperature(d, "real"),
        "gates": gates(d),
        "seconds": round(time.monotonic() - started, 1),
    }


def table(report: dict) -> str:
    lines = [
        "| variant | real dev macro-F1 [95% CI] | en | ru | kk | fr | ECE | LOLO mean "
        "| written dev | Δ vs real [CI] |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["variants"].items():
        pl = r["per_language"]
        vs = r.get("vs_real")
        lines.append(
            f"| {name} | {r['macro_f1']:.3f} [{r['ci'][0]:.2f}–{r['ci'][1]:.2f}] | "
            + " | ".join(f"{pl.get(lang, float('nan')):.3f}" for lang in LANGS)
            + f" | {r['ece']:.3f} | {r.get('lolo', {}).get('mean', float('nan')):.3f} | "
            f"{r['written_dev_macro_f1'] or float('nan'):.3f} | "
            + (f"{vs[0]:+.3f} [{vs[1]:+.3f}, {vs[2]:+.3f}]" if vs else "—")
            + " |"
        )
    lines += [
        "",
        "per-language temperature: " + json.dumps(report["per_language_temperature"]),
        "gates: " + json.dumps(report["gates"]),
        f"({report['seconds']} s)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-text", action="store_true", help="skip variants that need texts")
    parser.add_argument("--no-lolo", action="store_true")
    args = parser.parse_args()
    report = run(text=not args.no_text, with_lolo=not args.no_lolo)
    print(json.dumps(report, indent=2) if args.json else table(report))


if __name__ == "__main__":
    main()
