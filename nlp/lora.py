"""Experimental: a LoRA adapter on the e5 encoder with a linear stance head (CPU, few epochs).

The production encoder stays frozen; :mod:`nlp.finetune` trains its whole body. This module
trains low-rank adapters instead (``peft``: rank ``r`` updates on the attention query/value
projections, optionally every ``dense`` layer), which makes the trained part a file of a few
hundred kB instead of a 470 MB encoder copy. Recipe (LP-FT, as :mod:`nlp.finetune`):

1. linear probe: logistic regression on the frozen embeddings of the training passages
   (C by outlet-grouped CV when outlets are given);
2. adapters + head (initialised from the probe) trained with cross-entropy, AdamW, warm-up
   then linear decay, gradient clipping, fixed seed. With ``layers=N`` only the top N layers
   get adapters and the frozen bottom is run once per passage (cached): a step costs about
   N/12 of a full one;
3. temperature fitted on a held-out slice of the *training* passages (whole outlets when
   outlets are given, since dev is split by outlet), never on dev.

Saved as ``<dir>/adapter`` (peft: adapter_config.json + adapter_model.safetensors),
``<dir>/head.npz`` and ``<dir>/config.json``; :func:`load_lora` puts the adapter back on the
local base encoder and returns a :class:`LoraStance`, whose ``encoder`` is an
:class:`nlp.encoder.Encoder` (same prefix, pooling, normalisation). No relevance gate: this
is a stance bench, not a drop-in ``nlp/model``. Keep outputs out of the repo (default root
``~/.cache/cstowatch/lora``).

    HF_HUB_OFFLINE=1 .venv/bin/python -m nlp.lora --out DIR   # train on real train, score dev

On 2 CPU threads and ~950 training passages, adapters in all 12 layers (the default) take
about 1.5 s a step, 6 minutes in all; on a machine busy with other jobs it was 10 s a step.
``--layers 4 --max-length 128`` trains a third of that (about 0.5 s a step when idle).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from nlp.encoder import Encoder, padded_batches
from nlp.finetune import (
    PREFIX,
    _cache_hidden,
    _epoch_order,
    _layers_only,
    _pool,
    calibrated_head,
    optimiser_step,
)
from nlp.finetune import calibration_split as _stratified_split
from nlp.metrics import fit_temperature
from nlp.realnews import LABELS
from nlp.stance import softmax
from nlp.train import choose_c, outlet_folds

DEFAULT_ROOT = Path.home() / ".cache" / "cstowatch" / "lora"
ADAPTER = "adapter"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
INFERENCE_MAX_LENGTH = 256  # Encoder.embed's default: the adapter is used like the encoder


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.1  # on the adapters' input
    targets: tuple[str, ...] = ("query", "value")  # add "dense" for the other linear layers
    layers: int | None = None  # None: adapters in all layers; N: only the top N (cached bottom)
    epochs: int = 3
    lr: float = 5e-4  # adapters
    head_lr: float = 3e-4  # head (starts from the probe)
    batch_size: int = 16
    max_length: int = 160  # training; 93% of the real passages fit (median 74 tokens)
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of the steps
    clip: float = 1.0
    seed: int = 0
    probe_c: float | None = None  # None: outlet-grouped CV when groups are given, else 32
    calib_fraction: float = 0.15  # held out of train for the temperature; 0: T = 1
    threads: int = 2
    max_steps: int | None = None  # stop early (tests)


@dataclass
class LoraStance:
    """An e5 encoder carrying a LoRA adapter, plus the linear stance head fitted with it."""

    encoder: Encoder  # .model is the peft model; .embed works as for the frozen encoder
    W: np.ndarray
    b: np.ndarray
    temperature: float
    labels: tuple[str, ...]
    settings: LoraSettings
    card: dict = field(default_factory=dict)

    def embed(
        self,
        texts: list[str],
        prefix: str = PREFIX,
        batch_size: int = 32,
        max_length: int = INFERENCE_MAX_LENGTH,
    ) -> np.ndarray:
        return self.encoder.embed(texts, prefix, batch_size, max_length)

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings @ self.W.T + self.b

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return softmax(self.logits(self.embed(texts)), self.temperature)


def target_pattern(targets: tuple[str, ...], n_layers: int, layers: int | None) -> str:
    """peft ``target_modules`` regex: the named linear layers inside the chosen encoder layers
    (never the pooler, which mean pooling does not use)."""
    first = n_layers - layers if layers else 0
    numbers = "|".join(str(i) for i in range(first, n_layers))
    names = "|".join(re.escape(t) for t in targets)
    return rf"encoder\.layer\.({numbers})\.(.*\.)?({names})"


def holdout_split(
    langs: list[str], y: np.ndarray, groups: list[str] | None, fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """(fit, calibration) indices. With groups, whole groups (outlets) are held out until the
    slice has ``fraction`` of the rows: a temperature fitted on passages from the outlets it
    was trained on comes out too confident for new outlets. Without, stratified by language
    and label (:func:`nlp.finetune.calibration_split`)."""
    if fraction <= 0:
        return list(range(len(y))), []
    if groups is None:
        rows = [{"i": i, "lang": langs[i], "label": str(y[i])} for i in range(len(y))]
        fit_rows, calib_rows = _stratified_split(rows, fraction, seed)
        return sorted(r["i"] for r in fit_rows), sorted(r["i"] for r in calib_rows)
    names = sorted(set(groups))
    random.Random(seed).shuffle(names)
    held: set[str] = set()
    for name in names:
        if sum(g in held for g in groups) >= fraction * len(groups):
            break
        held.add(name)
    calib = [i for i, g in enumerate(groups) if g in held]
    return [i for i, g in enumerate(groups) if g not in held], calib


def _probe(
    x: np.ndarray, y: np.ndarray, groups: list[str] | None, c: float | None
) -> tuple[LogisticRegression, float]:
    if c is None and groups is not None and len(set(groups)) >= 5:
        c, _, _ = choose_c(x, y, outlet_folds(groups))
    c = 32.0 if c is None else c  # nlp.finetune's probe C
    return LogisticRegression(C=c, max_iter=3000).fit(x, y), c


def train_lora(
    texts: list[str],
    y: np.ndarray | list[int],
    *,
    langs: list[str] | None = None,
    groups: list[str] | None = None,
    labels: tuple[str, ...] = LABELS,
    settings: LoraSettings | None = None,
    encoder_dir: Path | str | None = None,
    base_embeddings: np.ndarray | None = None,
    log: Callable[[str], None] = print,
    **overrides: Any,
) -> LoraStance:
    """Adapter + head for relevant passages ``texts`` with label indices ``y`` (into
    ``labels``). ``langs`` stratify the calibration slice, ``groups`` (outlets) choose the
    probe's C and the slice; ``base_embeddings`` (aligned with ``texts``): the frozen
    encoder's embeddings (e.g. the real-news set's stored ones), reused for the probe instead
    of embedding the passages again; ``overrides`` are :class:`LoraSettings` fields."""
    from peft import LoraConfig, get_peft_model

    cfg = replace(settings or LoraSettings(), **overrides)
    y = np.asarray(y, dtype=int)
    langs = langs or ["?"] * len(texts)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    encoder = Encoder(encoder_dir)
    torch.set_num_threads(cfg.threads)  # after Encoder(), which sets cpu_count
    base_id = encoder.model_id

    fit_idx, calib_idx = holdout_split(langs, y, groups, cfg.calib_fraction, cfg.seed)
    fit_texts = [texts[i] for i in fit_idx]
    fit_y = y[fit_idx]
    fit_groups = [groups[i] for i in fit_idx] if groups else None
    absent = [labels[k] for k in range(len(labels)) if not (fit_y == k).any()]
    if absent:  # the probe would have fewer rows than the head
        raise ValueError(f"no training passage labelled {', '.join(absent)}")

    # 1. linear probe on the frozen encoder
    t0 = time.perf_counter()
    if base_embeddings is not None:
        frozen = base_embeddings[fit_idx]
    else:
        frozen = encoder.embed(fit_texts, max_length=cfg.max_length)
    probe, c = _probe(frozen, fit_y, fit_groups, cfg.probe_c)
    seconds_probe = time.perf_counter() - t0
    log(f"probe: C={c} on {len(fit_y)} passages, {seconds_probe:.0f}s")

    # 2. adapters + head
    n_layers = len(encoder.model.encoder.layer)
    peft_config = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=target_pattern(cfg.targets, n_layers, cfg.layers),
        bias="none",
    )
    model = get_peft_model(encoder.model, peft_config)  # injects the adapters in place
    encoder.model = model
    bert = model.base_model.model  # the BertModel, adapters inside
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    head = torch.nn.Linear(encoder.dim, len(labels))
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(probe.coef_.astype(np.float32)))
        head.bias.copy_(torch.from_numpy(probe.intercept_.astype(np.float32)))
    adapters = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(
        [
            {"params": adapters, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
            {"params": list(head.parameters()), "lr": cfg.head_lr, "weight_decay": 0.0},
        ]
    )
    ids = encoder.tokenizer(
        [PREFIX + t for t in fit_texts], truncation=True, max_length=cfg.max_length
    )["input_ids"]
    steps_per_epoch = -(-len(ids) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    warm = max(1, int(total * cfg.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    labels_t = torch.from_numpy(fit_y)
    pad = encoder.tokenizer.pad_token_id or 0
    gen = torch.Generator().manual_seed(cfg.seed)
    lengths = [len(x) for x in ids]
    split = n_layers - cfg.layers if cfg.layers else 0
    t_train = time.perf_counter()
    cached = _cache_hidden(bert, ids, split, pad) if split > 0 else None
    log(
        f"LoRA r={cfg.r} alpha={cfg.alpha} on {'/'.join(cfg.targets)}, layers "
        f"{cfg.layers or 'all'}: {trainable / 1e3:.0f}k trainable params; {len(ids)} passages, "
        f"{cfg.epochs} epochs x {steps_per_epoch} steps, batch {cfg.batch_size}, "
        f"max_length {cfg.max_length}, {cfg.threads} thread(s)"
    )
    epoch_seconds, epoch_loss, step = [], [], 0
    for epoch in range(cfg.epochs):
        if step >= total:
            break
        model.train()
        t_epoch, losses = time.perf_counter(), []
        order = _epoch_order(lengths, cfg.batch_size, gen)
        for idx, input_ids, mask in padded_batches(ids, order, cfg.batch_size, pad):
            if cached is None:
                pooled = _pool(bert, input_ids, mask)
            else:
                hidden = torch.zeros((len(idx), input_ids.shape[1], encoder.dim))
                for row, i in enumerate(idx):
                    hidden[row, : lengths[i]] = cached[i]
                with _layers_only(bert, split, n_layers, from_hidden=True):
                    pooled = _pool(bert, hidden, mask, from_hidden=True)
            loss = torch.nn.functional.cross_entropy(head(pooled), labels_t[idx])
            losses.append(
                optimiser_step(loss, optim, sched, adapters + list(head.parameters()), cfg.clip)
            )
            step += 1
            if step % 16 == 0:
                elapsed = time.perf_counter() - t_epoch
                log(
                    f"  step {step}/{total} loss {np.mean(losses[-16:]):.3f} "
                    f"({elapsed / len(losses):.2f}s/step)"
                )
            if step >= total:
                break
        epoch_seconds.append(time.perf_counter() - t_epoch)
        epoch_loss.append(float(np.mean(losses)))
        log(f"epoch {epoch + 1}: loss {epoch_loss[-1]:.3f}, {epoch_seconds[-1]:.0f}s")
    seconds_train = time.perf_counter() - t_train
    model.eval()

    # 3. temperature on the held-out training slice, embedded as at inference
    W, b, temperature = calibrated_head(
        head, lambda: encoder.embed([texts[i] for i in calib_idx]), y[calib_idx], log
    )
    encoder.model_id = f"{base_id}+lora-unsaved"
    card = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_encoder": base_id,
        "probe_c": c,
        "n_train": len(fit_idx),
        "n_calib": len(calib_idx),
        "calib_by": "outlet" if groups else "language x label",
        "trainable_params": trainable,
        "steps": step,
        "epoch_loss": [round(v, 4) for v in epoch_loss],
        "seconds_probe": round(seconds_probe, 1),
        "seconds_train": round(seconds_train, 1),
    }
    return LoraStance(encoder, W, b, temperature, tuple(labels), cfg, card)


def save_lora(model: LoraStance, out_dir: Path | str, **card: Any) -> Path:
    """Write adapter, head and config to ``out_dir``; ``card`` adds provenance entries."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.encoder.model.save_pretrained(str(out / ADAPTER))
    (out / ADAPTER / "README.md").unlink(missing_ok=True)  # peft's blank model-card template
    np.savez(out / "head.npz", W=model.W, b=model.b)
    base_id = model.card.get("base_encoder", model.encoder.model_id.split("+")[0])
    model.encoder.model_id = f"{base_id}+lora-{adapter_hash(out)}"
    model.card.update(card)
    config = {
        "backend": "lora-embedding-head",
        "labels": list(model.labels),
        "temperature": model.temperature,
        "prefix": PREFIX,
        "max_length": INFERENCE_MAX_LENGTH,
        "base_encoder": base_id,
        "model_id": model.encoder.model_id,
        "settings": asdict(model.settings),
        "card": model.card,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return out


def adapter_hash(directory: Path) -> str:
    return hashlib.sha256((directory / ADAPTER / ADAPTER_WEIGHTS).read_bytes()).hexdigest()[:12]


def load_lora(directory: Path | str, encoder_dir: Path | str | None = None) -> LoraStance:
    """The saved adapter on a fresh copy of the base encoder (never the shared
    :func:`nlp.encoder.get_encoder` instance: peft changes the model it wraps)."""
    from peft import PeftModel

    out = Path(directory)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    encoder = Encoder(encoder_dir)
    if encoder.model_id != config["base_encoder"]:
        raise ValueError(
            f"{out} was trained on encoder {config['base_encoder']}, "
            f"but {encoder.path} is {encoder.model_id}"
        )
    encoder.model = PeftModel.from_pretrained(encoder.model, str(out / ADAPTER)).eval()
    encoder.model_id = f"{config['base_encoder']}+lora-{adapter_hash(out)}"
    settings = dict(config["settings"])
    settings["targets"] = tuple(settings["targets"])
    with np.load(out / "head.npz") as head:
        W, b = head["W"], head["b"]
    return LoraStance(
        encoder,
        W,
        b,
        float(config["temperature"]),
        tuple(config["labels"]),
        LoraSettings(**settings),
        config.get("card", {}),
    )


def main() -> None:  # pragma: no cover - manual use (the bench)
    import argparse
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from nlp import realnews
    from nlp.metrics import stance_report
    from nlp.train import file_sha256

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_ROOT / "e5-small-lora")
    parser.add_argument("--data", type=Path, default=realnews.DEFAULT_DIR)
    parser.add_argument("--texts", type=Path, default=Path("data/realnews/texts.jsonl"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--dense", action="store_true", help="adapters on every dense layer too")
    parser.add_argument("--layers", type=int, default=0, help="adapters in the top N; 0: all")
    parser.add_argument("--max-length", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rows, stored, _ = realnews.load(args.data)
    texts = realnews.read_texts(args.texts, rows)
    keep = [i for i, r in enumerate(rows) if r["relevant"] and r["split"] in ("train", "dev")]
    missing = [rows[i]["id"] for i in keep if texts[i] is None]
    if missing:
        raise SystemExit(f"{len(missing)} rows have no text (run `cstowatch data hydrate`)")
    labels = LABELS
    train = [i for i in keep if rows[i]["split"] == "train"]
    dev = [i for i in keep if rows[i]["split"] == "dev"]

    t0 = time.perf_counter()
    model = train_lora(
        [str(texts[i]) for i in train],
        [labels.index(rows[i]["label"]) for i in train],
        langs=[rows[i]["lang"] for i in train],
        groups=[rows[i]["outlet"] for i in train],
        labels=labels,
        epochs=args.epochs,
        r=args.r,
        lr=args.lr,
        alpha=2 * args.r,
        targets=("query", "value", "dense") if args.dense else ("query", "value"),
        layers=args.layers or None,
        max_length=args.max_length,
        base_embeddings=stored[train],
        seed=args.seed,
        log=lambda m: print(m, flush=True),
    )
    fit_seconds = time.perf_counter() - t0
    manifest = args.data / realnews.MANIFEST_NAME
    save_lora(
        model,
        args.out,
        training_data="realnews/manifest.jsonl (split=train, relevant)",
        training_data_sha256=file_sha256(manifest),
        seconds_fit=round(fit_seconds, 1),
    )
    size = (args.out / ADAPTER / ADAPTER_WEIGHTS).stat().st_size

    y = np.array([labels.index(rows[i]["label"]) for i in dev])
    langs = [rows[i]["lang"] for i in dev]
    probs = model.predict_proba([str(texts[i]) for i in dev])
    report = stance_report(probs, y, langs, labels)
    # the frozen encoder with the same recipe (probe C, calibration slice) on stored embeddings
    frozen = _frozen_baseline(stored, rows, train, dev, labels, model)
    base = stance_report(frozen, y, langs, labels)
    summary = {
        "manifest_rows": len(rows),
        "train_relevant": len(train),
        "dev_relevant": len(dev),
        "lora": report,
        "frozen_probe": base,
        "fit_seconds": round(fit_seconds, 1),
        "adapter_bytes": size,
        "model_id": model.encoder.model_id,
        "card": model.card,
        "out": str(args.out),
    }
    per_row = {  # for paired comparisons (bench/realnews.py bootstraps over outlets)
        "dev_ids": [rows[i]["id"] for i in dev],
        "dev_probs_lora": probs.round(5).tolist(),
        "dev_probs_frozen": frozen.round(5).tolist(),
    }
    (args.out / "dev_report.json").write_text(json.dumps(summary | per_row, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"\nreal news: {len(rows)} manifest rows; {len(train)} relevant train, "
        f"{len(dev)} relevant dev"
    )
    print(f"{'':>6} {'n':>4} {'LoRA':>6} {'frozen':>6}   (dev macro-F1)")
    print(f"{'all':>6} {len(y):>4} {report['macro_f1']:6.3f} {base['macro_f1']:6.3f}")
    for lang in ("en", "ru", "kk", "fr"):
        a = report["per_language"].get(lang, {"n": 0, "macro_f1": float("nan")})
        f = base["per_language"].get(lang, {"macro_f1": float("nan")})
        print(f"{lang:>6} {a['n']:>4} {a['macro_f1']:6.3f} {f['macro_f1']:6.3f}")
    print(f"{'ECE':>6} {'':>4} {report['ece']:6.3f} {base['ece']:6.3f}")
    print(
        f"fit {fit_seconds:.0f}s (train {model.card['seconds_train']:.0f}s), adapter "
        f"{size / 1e6:.2f} MB, T={model.temperature:.2f}, saved to {args.out}"
    )


def _frozen_baseline(
    stored: np.ndarray,
    rows: list[dict],
    train: list[int],
    dev: list[int],
    labels: tuple[str, ...],
    model: LoraStance,
) -> np.ndarray:  # pragma: no cover - part of main
    """Dev probabilities of a probe on the stored frozen embeddings, with the LoRA run's C and
    the same held-out calibration slice (by outlet, same seed)."""
    y = np.array([labels.index(rows[i]["label"]) for i in train])
    groups = [rows[i]["outlet"] for i in train]
    cfg = model.settings
    fit, calib = holdout_split([], y, groups, cfg.calib_fraction, cfg.seed)
    x = stored[train]
    probe = LogisticRegression(C=model.card["probe_c"], max_iter=3000).fit(x[fit], y[fit])
    temperature = fit_temperature(probe.decision_function(x[calib]), y[calib]) if calib else 1.0
    return softmax(probe.decision_function(stored[dev]), temperature)


if __name__ == "__main__":  # pragma: no cover
    main()
