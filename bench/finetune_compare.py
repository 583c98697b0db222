"""Does fine-tuning e5, or a richer frozen head, beat the bundled frozen-encoder head?

    HF_HUB_OFFLINE=1 .venv/bin/python bench/finetune_compare.py [--ft top4:3,all:2] [--save]

Everything is fitted and tuned on ``nlp/data/stance_train.jsonl`` only (5-fold CV, fixed
seed); ``stance_dev.jsonl`` is read once at the end of each variant to report numbers, and
never to choose anything. Stance metrics use the relevant dev passages (as ``cstowatch
evaluate``). Rows:

* ``bundled``: the shipped model (``nlp/model``), through ``nlp.train.evaluate``;
* ``emb LR``: the same recipe re-fitted here (C by CV, temperature on out-of-fold logits), a
  sanity check of the harness;
* ``char TF-IDF LR``: character n-grams (char_wb 2-5, sublinear tf) logistic regression alone;
* ``emb + TF-IDF concat``: one LR on [embedding, s x TF-IDF], (s, C) by CV;
* ``emb + TF-IDF fusion``: a x emb logits + (1 - a) x TF-IDF logits, a by CV on out-of-fold
  logits; ``stack`` is a meta logistic regression on both out-of-fold logit sets;
* ``emb + lexicon``: [embedding, s x nlp.lexicon.features], (s, C) by CV;
* ``frozen LR, 85%``: the linear probe of the fine-tuning recipe (same 85% of train, C=32,
  temperature on the held-out 15%): the control for the fine-tuned rows;
* ``fine-tuned``: nlp.finetune (LP-FT) on that 85%, temperature on the 15%.

Times: "fit" is the head/training cost alone (the frozen variants share one embedding pass,
reported separately), wall and CPU seconds. The machine may be shared: CPU seconds are the
steadier figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from scipy import sparse  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from nlp import lexicon  # noqa: E402
from nlp.metrics import fit_temperature, stance_report  # noqa: E402
from nlp.stance import softmax  # noqa: E402
from nlp.train import C_GRID, DEV_PATH, LABELS, TRAIN_PATH, load_jsonl  # noqa: E402

CACHE = Path.home() / ".cache" / "cstowatch" / "bench"
LANGS = ("en", "ru", "kk", "fr")
SEED = 0


class Timer:
    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def macro_f1(logits: np.ndarray, y: np.ndarray) -> float:
    return stance_report(softmax(logits), y, ["all"] * len(y), LABELS)["macro_f1"]


def result(name: str, probs: np.ndarray, y: np.ndarray, langs: list[str], **extra) -> dict:  # type: ignore[no-untyped-def]
    rep = stance_report(probs, y, langs, LABELS)
    row = {
        "name": name,
        "dev_macro_f1": rep["macro_f1"],
        "dev_accuracy": rep["accuracy"],
        "ece": rep["ece"],
        "brier": rep["brier"],
        "per_language": {k: v["macro_f1"] for k, v in rep["per_language"].items()},
    }
    row.update(extra)
    return row


# ------------------------------------------------------------------ frozen-feature heads


class Features:
    """Train/dev features for the frozen variants; TF-IDF is refitted inside each CV fold."""

    def __init__(self, train: list[dict], dev: list[dict], emb_tr: np.ndarray, emb_dev: np.ndarray):
        self.t_tr = [r["text"] for r in train]
        self.t_dev = [r["text"] for r in dev]
        self.emb_tr, self.emb_dev = emb_tr, emb_dev
        self.y = np.array([LABELS.index(r["label"]) for r in train])
        self.lex_tr = np.array([lexicon.features(t) for t in self.t_tr], dtype=np.float32)
        self.lex_dev = np.array([lexicon.features(t) for t in self.t_dev], dtype=np.float32)
        self.folds = list(
            StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED).split(self.emb_tr, self.y)
        )
        self._tfidf_folds: list[tuple[sparse.csr_matrix, sparse.csr_matrix]] | None = None

    @staticmethod
    def vectorizer() -> TfidfVectorizer:
        return TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 5),
            sublinear_tf=True,
            min_df=2,
            max_features=200_000,
        )

    def tfidf_folds(self) -> list[tuple[sparse.csr_matrix, sparse.csr_matrix]]:
        if self._tfidf_folds is None:
            self._tfidf_folds = []
            for tr, te in self.folds:
                vec = self.vectorizer().fit([self.t_tr[i] for i in tr])
                self._tfidf_folds.append(
                    (
                        vec.transform([self.t_tr[i] for i in tr]),
                        vec.transform([self.t_tr[i] for i in te]),
                    )
                )
        return self._tfidf_folds

    def tfidf_full(self) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        vec = self.vectorizer().fit(self.t_tr)
        return vec.transform(self.t_tr), vec.transform(self.t_dev)

    def oof(self, make: Callable[[np.ndarray, np.ndarray], tuple], c: float) -> np.ndarray:
        """Out-of-fold decision values; ``make(train_idx, test_idx, fold)`` -> (x_tr, x_te)."""
        out = np.zeros((len(self.y), len(LABELS)))
        for k, (tr, te) in enumerate(self.folds):
            x_tr, x_te = make(tr, te, k)
            clf = LogisticRegression(C=c, max_iter=3000).fit(x_tr, self.y[tr])
            out[te] = clf.decision_function(x_te)
        return out


def fit_select(
    feats: Features,
    grid: list[tuple[float, float]],
    make_fold: Callable[[np.ndarray, np.ndarray, int, float], tuple],
    make_full: Callable[[float], tuple],
) -> dict:
    """Pick (scale, C) by CV macro-F1, temperature on the OOF logits, refit on all of train.
    Returns the dev logits (temperature applied separately), cv, chosen params and oof."""
    best = None
    for scale, c in grid:
        oof = feats.oof(lambda tr, te, k, s=scale: make_fold(tr, te, k, s), c)
        f1 = macro_f1(oof, feats.y)
        if best is None or f1 > best[0] + 1e-9:
            best = (f1, scale, c, oof)
    assert best is not None
    f1, scale, c, oof = best
    temperature = fit_temperature(oof, feats.y)
    x_tr, x_dev = make_full(scale)
    clf = LogisticRegression(C=c, max_iter=3000).fit(x_tr, feats.y)
    return {
        "cv": f1,
        "scale": scale,
        "C": c,
        "T": temperature,
        "oof": oof,
        "dev_logits": clf.decision_function(x_dev),
    }


def frozen_variants(feats: Features, y_dev: np.ndarray, langs: list[str], log) -> list[dict]:  # type: ignore[no-untyped-def]
    rows = []

    def add(name: str, fit: dict, t: Timer, params: str) -> None:
        probs = softmax(fit["dev_logits"], fit["T"])
        rows.append(
            result(
                name,
                probs,
                y_dev,
                langs,
                cv_macro_f1=fit["cv"],
                wall=t.wall,
                cpu=t.cpu,
                params=params,
            )
        )
        log(f"  {name}: CV {fit['cv']:.3f}, dev {rows[-1]['dev_macro_f1']:.3f} ({params})")

    e_tr, e_dev = feats.emb_tr, feats.emb_dev
    grid_c = [(1.0, c) for c in C_GRID]
    with Timer() as t:
        emb = fit_select(
            feats, grid_c, lambda tr, te, k, s: (e_tr[tr], e_tr[te]), lambda s: (e_tr, e_dev)
        )
    add("emb LR (re-fit, = bundled recipe)", emb, t, f"C={emb['C']}, T={emb['T']:.2f}")

    with Timer() as t:
        folds = feats.tfidf_folds()
        full_tr, full_dev = feats.tfidf_full()
        tfidf = fit_select(
            feats,
            [(1.0, c) for c in (4.0, 16.0, 64.0, 256.0)],
            lambda tr, te, k, s: folds[k],
            lambda s: (full_tr, full_dev),
        )
    add("char TF-IDF LR", tfidf, t, f"C={tfidf['C']}, T={tfidf['T']:.2f}")

    def cat(dense_tr, sp, s):  # type: ignore[no-untyped-def]
        return sparse.hstack([sparse.csr_matrix(dense_tr), sp * s]).tocsr()

    with Timer() as t:
        concat = fit_select(
            feats,
            [(s, c) for s in (0.5, 1.0, 2.0) for c in (4.0, 16.0, 64.0)],
            lambda tr, te, k, s: (cat(e_tr[tr], folds[k][0], s), cat(e_tr[te], folds[k][1], s)),
            lambda s: (cat(e_tr, full_tr, s), cat(e_dev, full_dev, s)),
        )
    add("emb + TF-IDF concat", concat, t, f"s={concat['scale']}, C={concat['C']}")

    # late fusion on the OOF logits of the two heads chosen above (same folds)
    with Timer() as t:
        best_a, best_f1 = 1.0, -1.0
        for a in np.linspace(0.0, 1.0, 11):
            f1 = macro_f1(a * emb["oof"] + (1 - a) * tfidf["oof"], feats.y)
            if f1 > best_f1 + 1e-9:
                best_a, best_f1 = float(a), f1
        fused_oof = best_a * emb["oof"] + (1 - best_a) * tfidf["oof"]
        fusion = {
            "cv": best_f1,
            "T": fit_temperature(fused_oof, feats.y),
            "dev_logits": best_a * emb["dev_logits"] + (1 - best_a) * tfidf["dev_logits"],
        }
    add("emb + TF-IDF fusion", fusion, t, f"a={best_a:.1f}")

    with Timer() as t:  # stacking: meta LR on both OOF logit sets (its CV on the OOF features)
        meta_x = np.hstack([emb["oof"], tfidf["oof"]])
        meta_dev = np.hstack([emb["dev_logits"], tfidf["dev_logits"]])
        meta = fit_select(
            feats,
            [(1.0, c) for c in (0.1, 1.0, 10.0)],
            lambda tr, te, k, s: (meta_x[tr], meta_x[te]),
            lambda s: (meta_x, meta_dev),
        )
    add("emb + TF-IDF stack (meta LR)", meta, t, f"C={meta['C']}")

    lx_tr, lx_dev = feats.lex_tr, feats.lex_dev
    with Timer() as t:
        lex = fit_select(
            feats,
            [(s, c) for s in (0.25, 0.5, 1.0) for c in (16.0, 32.0, 64.0)],
            lambda tr, te, k, s: (
                np.hstack([e_tr[tr], s * lx_tr[tr]]),
                np.hstack([e_tr[te], s * lx_tr[te]]),
            ),
            lambda s: (np.hstack([e_tr, s * lx_tr]), np.hstack([e_dev, s * lx_dev])),
        )
    add("emb + lexicon", lex, t, f"s={lex['scale']}, C={lex['C']}")
    return rows


# ------------------------------------------------------------------ embeddings (cached)


def embed_cached(encoder, texts: list[str], log) -> np.ndarray:  # type: ignore[no-untyped-def]
    key = hashlib.sha256(("\n\x00".join(texts) + encoder.model_id).encode()).hexdigest()[:16]
    path = CACHE / f"emb-{key}.npy"
    if path.exists():
        log(f"  embeddings from cache {path}")
        return np.load(path)
    out = encoder.embed(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


# ------------------------------------------------------------------ report


def table(rows: list[dict]) -> str:
    head = (
        "| variant | CV F1 (train) | dev macro-F1 | en | ru | kk | fr | ECE | Brier "
        "| fit wall s | fit CPU s | settings |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        cv = f"{r['cv_macro_f1']:.3f}" if r.get("cv_macro_f1") is not None else "—"
        lang = " | ".join(f"{r['per_language'].get(code, float('nan')):.3f}" for code in LANGS)
        wall = f"{r['wall']:.0f}" if r.get("wall") is not None else "—"
        cpu = f"{r['cpu']:.0f}" if r.get("cpu") is not None else "—"
        lines.append(
            f"| {r['name']} | {cv} | **{r['dev_macro_f1']:.3f}** | {lang} | {r['ece']:.3f} "
            f"| {r['brier']:.3f} | {wall} | {cpu} | {r.get('params', '')} |"
        )
    return "\n".join(lines)


def parse_ft(spec: str) -> list[tuple[int | None, int]]:
    """Parse "top4:3,all:2" into [(4, 3), (None, 2)]: (layers, epochs)."""
    runs: list[tuple[int | None, int]] = []
    for part in filter(None, spec.split(",")):
        layers, epochs = part.split(":")
        runs.append((None if layers == "all" else int(layers.removeprefix("top")), int(epochs)))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ft", default="top4:3,all:2", help="fine-tune runs, layers:epochs")
    parser.add_argument("--threads", type=int, default=0, help="0: 1 if the machine is busy")
    parser.add_argument("--skip-frozen", action="store_true", help="no TF-IDF/lexicon heads")
    parser.add_argument("--save", action="store_true", help="save the last fine-tuned model")
    parser.add_argument("--out", type=Path, default=Path("/tmp/finetune_compare.json"))
    args = parser.parse_args()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    import torch

    from nlp.encoder import get_encoder
    from nlp.finetune import DEFAULT_ROOT, FinetuneConfig, calibration_split, embed_with
    from nlp.finetune import finetune as run_finetune
    from nlp.finetune import save as save_finetuned
    from nlp.stance import StanceModel
    from nlp.train import evaluate

    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    threads = args.threads or (1 if load > cores else cores)
    torch.set_num_threads(threads)
    log(f"load average {load:.1f} on {cores} cores: {threads} torch thread(s)")

    all_train = load_jsonl(TRAIN_PATH)
    train = [r for r in all_train if r.get("relevant", True)]
    dev = [r for r in load_jsonl(DEV_PATH) if r.get("relevant", True)]
    y_dev = np.array([LABELS.index(r["label"]) for r in dev])
    langs = [r.get("lang", "?") for r in dev]
    rows: list[dict] = []

    encoder = get_encoder()
    torch.set_num_threads(threads)  # Encoder() resets it to the core count
    log("bundled model on dev (cstowatch evaluate)")
    bundled = evaluate(StanceModel(encoder=encoder), DEV_PATH)
    card = json.loads((ROOT / "nlp" / "model" / "config.json").read_text())["card"]
    rows.append(
        {
            "name": "bundled (frozen e5 + LR)",
            "cv_macro_f1": card.get("cv_macro_f1"),
            "dev_macro_f1": bundled["macro_f1"],
            "ece": bundled["ece"],
            "brier": bundled["brier"],
            "per_language": {k: v["macro_f1"] for k, v in bundled["per_language"].items()},
            "params": card.get("head", ""),
        }
    )

    log("embedding train and dev with the frozen encoder")
    with Timer() as t_emb:
        emb_tr = embed_cached(encoder, [r["text"] for r in train], log)
        emb_dev = embed_cached(encoder, [r["text"] for r in dev], log)
    log(f"  {t_emb.wall:.0f}s wall, {t_emb.cpu:.0f}s CPU (shared by the frozen variants)")
    feats = Features(train, dev, emb_tr, emb_dev)
    if not args.skip_frozen:
        log("frozen-feature heads (5-fold CV on train)")
        rows += frozen_variants(feats, y_dev, langs, log)

    # control for the fine-tuned runs: the frozen probe on the same 85% / 15% split
    cfg0 = FinetuneConfig(threads=threads)
    fit_rows, calib_rows = calibration_split(train, cfg0.calib_fraction, cfg0.seed)
    index = {id(r): i for i, r in enumerate(train)}
    fi = [index[id(r)] for r in fit_rows]
    ci = [index[id(r)] for r in calib_rows]
    with Timer() as t:
        probe = LogisticRegression(C=cfg0.probe_c, max_iter=3000).fit(emb_tr[fi], feats.y[fi])
        temp = fit_temperature(probe.decision_function(emb_tr[ci]), feats.y[ci])
    rows.append(
        result(
            "frozen LR, 85% of train (FT control)",
            softmax(probe.decision_function(emb_dev), temp),
            y_dev,
            langs,
            cv_macro_f1=None,
            wall=t.wall,
            cpu=t.cpu,
            params=f"C={cfg0.probe_c}, T={temp:.2f} on 15% held out",
        )
    )

    dev_texts = [r["text"] for r in dev]
    last = None
    for layers, epochs in parse_ft(args.ft):
        cfg = FinetuneConfig(epochs=epochs, train_layers=layers, threads=threads)
        name = f"fine-tuned e5 ({'top ' + str(layers) if layers else 'all 12'} layers, {epochs} ep)"
        log(name)
        with Timer() as t:
            res = run_finetune(train, cfg, base_embeddings=emb_tr, log=log)
        with Timer() as t_eval:
            x_dev = embed_with(res.model, res.tokenizer, dev_texts)
        probs = softmax(x_dev @ res.W.T + res.b, res.temperature)
        rows.append(
            result(
                name,
                probs,
                y_dev,
                langs,
                cv_macro_f1=None,
                wall=t.wall,
                cpu=t.cpu,
                params=(
                    f"{res.trainable_params / 1e6:.1f}M trainable, lr {cfg.lr:g}, "
                    f"batch {cfg.batch_size}, len {cfg.max_length}, T={res.temperature:.2f}, "
                    f"{np.mean(res.epoch_seconds):.0f}s/epoch"
                ),
                epoch_loss=res.epoch_loss,
                dev_embed_wall=t_eval.wall,
            )
        )
        log(f"  dev macro-F1 {rows[-1]['dev_macro_f1']:.3f}")
        last = res
        if not args.save:
            del res
    if args.save and last is not None:
        save_finetuned(last, all_train, DEFAULT_ROOT / "e5-small-ft", log=log)

    meta = {
        "load_average_start": load,
        "threads": threads,
        "embedding_wall": t_emb.wall,
        "embedding_cpu": t_emb.cpu,
        "load_average_end": os.getloadavg()[0],
    }
    args.out.write_text(json.dumps({"rows": rows, "meta": meta}, indent=2, default=float))
    print(table(rows))
    print(
        f"\nFrozen variants share one embedding pass of {len(train) + len(dev)} passages: "
        f"{t_emb.wall:.0f}s wall / {t_emb.cpu:.0f}s CPU (0 if cached). Torch threads: {threads}; "
        f"load average {load:.1f} -> {meta['load_average_end']:.1f} on {cores} cores. "
        f"JSON: {args.out}"
    )


if __name__ == "__main__":
    main()
