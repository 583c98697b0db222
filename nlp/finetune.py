"""Experimental: fine-tune the e5 encoder body with a linear stance head (CPU, few epochs).

The production model keeps the encoder frozen (:mod:`nlp.train`). This module exists to
measure what fine-tuning buys; ``bench/finetune_compare.py`` drives it. Recipe (LP-FT):

1. linear probe: logistic regression on the frozen, L2-normalised e5 embeddings of the
   relevant training passages (the head of :mod:`nlp.train`, fixed C);
2. fine-tune: the transformer layers (optionally only the top ``train_layers``) and the head,
   initialised from the probe, with cross-entropy; the 96M-parameter word-embedding matrix
   stays frozen. AdamW, linear warm-up then decay, gradient clipping, fixed seed;
3. temperature: fitted on a held-out calibration slice of the *training* file (stratified by
   language and label), never on dev;
4. the relevance gate is refitted on the fine-tuned embeddings exactly as in :mod:`nlp.train`.

The output is a pair of dirs that the unchanged :class:`nlp.stance.StanceModel` loads:
``<out>/encoder`` (an HF BertModel + tokenizer + manifest, ~470 MB fp32) and ``<out>/model``
(config.json + head.npz)::

    load_model(str(out / "model"), str(out / "encoder"))

Keep them out of the repo (default root: ``~/.cache/cstowatch/finetuned``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import AutoModel, AutoTokenizer

from nlp.encoder import MAX_TOKENS, mean_pool, padded_batches
from nlp.metrics import fit_temperature
from nlp.prepare import MANIFEST, default_encoder_dir, prepare_encoder, read_manifest
from nlp.stance import relevance_features
from nlp.train import LABELS, TRAIN_PATH, _centroid, file_sha256, load_jsonl

DEFAULT_ROOT = Path.home() / ".cache" / "cstowatch" / "finetuned"
PREFIX = "query: "  # as nlp.encoder.Encoder.embed


@dataclass
class FinetuneConfig:
    epochs: int = 3
    lr: float = 3e-5  # transformer body
    head_lr: float = 3e-4  # linear head (starts from the probe)
    batch_size: int = 16
    max_length: int = MAX_TOKENS  # the same limit as scoring (nlp.encoder)
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of the steps
    clip: float = 1.0
    seed: int = 0
    train_layers: int | None = None  # None: all layers; N: only the top N (and the head)
    probe_c: float = 32.0  # C of the probe (nlp.train's CV choice on this training file)
    calib_fraction: float = 0.15  # held out of train for the temperature; 0: T = 1
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)


@dataclass
class FinetuneResult:
    model: Any  # the fine-tuned BertModel (eval mode)
    tokenizer: Any
    W: np.ndarray
    b: np.ndarray
    temperature: float
    n_train: int
    n_calib: int
    trainable_params: int
    seconds_probe: float
    seconds_train: float
    epoch_seconds: list[float]
    epoch_loss: list[float]
    config: FinetuneConfig


def calibration_split(
    rows: list[dict], fraction: float, seed: int = 0
) -> tuple[list[dict], list[dict]]:
    """Stratified (language x label) split of the relevant rows: (fit, calibration)."""
    if fraction <= 0:
        return list(rows), []
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r.get("lang", "?"), r["label"]), []).append(r)
    fit, calib = [], []
    for key in sorted(groups):
        members = groups[key][:]
        rng.shuffle(members)
        k = round(len(members) * fraction)
        calib += members[:k]
        fit += members[k:]
    return fit, calib


def _pool(
    model: Any, inputs: torch.Tensor, mask: torch.Tensor, from_hidden: bool = False
) -> torch.Tensor:
    """Run the model and mean-pool its output (the e5 convention)."""
    key = "inputs_embeds" if from_hidden else "input_ids"
    return mean_pool(model(**{key: inputs}, attention_mask=mask).last_hidden_state, mask)


def _epoch_order(lengths: list[int], batch_size: int, gen: torch.Generator) -> list[int]:
    """Shuffle, sort by length inside windows of 8 batches, shuffle the batches: random
    batches with little padding (cheaper steps on CPU)."""
    perm = torch.randperm(len(lengths), generator=gen).tolist()
    window = batch_size * 8
    batches: list[list[int]] = []
    for start in range(0, len(perm), window):
        chunk = sorted(perm[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    shuffled = torch.randperm(len(batches), generator=gen).tolist()
    return [i for k in shuffled for i in batches[k]]


class _Passthrough(torch.nn.Module):
    """Stands in for BertEmbeddings when the input is already a hidden state."""

    def forward(self, inputs_embeds=None, **_):  # type: ignore[no-untyped-def]
        return inputs_embeds


@contextmanager
def _layers_only(model: Any, start: int, stop: int, from_hidden: bool):  # type: ignore[no-untyped-def]
    """Temporarily make ``model`` run only layers [start, stop) (from hidden states if
    ``from_hidden``). The layer modules are shared, so training them trains ``model``."""
    layers, embeddings = model.encoder.layer, model.embeddings
    model.encoder.layer = torch.nn.ModuleList(list(layers)[start:stop])
    if from_hidden:
        model.embeddings = _Passthrough()
    try:
        yield model
    finally:
        model.encoder.layer, model.embeddings = layers, embeddings


def _cache_hidden(
    model: Any, ids: list[list[int]], split: int, pad: int, batch_size: int = 32
) -> list[torch.Tensor]:
    """Per-passage output of the frozen bottom ``split`` layers (eval mode, unpadded)."""
    out: list[torch.Tensor] = [torch.empty(0)] * len(ids)
    order = [int(i) for i in np.argsort([len(x) for x in ids], kind="stable")]
    model.eval()
    with torch.inference_mode(), _layers_only(model, 0, split, from_hidden=False):
        for idx, input_ids, mask in padded_batches(ids, order, batch_size, pad):
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            for row, i in enumerate(idx):
                out[i] = hidden[row, : len(ids[i])].clone()
    return out


def optimiser_step(  # type: ignore[no-untyped-def]
    loss: torch.Tensor, optim, sched, params: list[torch.nn.Parameter], clip: float
) -> float:
    """One step: backpropagate ``loss``, clip the gradient norm of ``params``, step the optimiser
    and its schedule. Returns the loss."""
    optim.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, clip)
    optim.step()
    sched.step()
    return float(loss.item())


def calibrated_head(
    head: torch.nn.Linear,
    embed_calibration: Callable[[], np.ndarray],
    y_calibration: np.ndarray,
    log: Callable[[str], None],
) -> tuple[np.ndarray, np.ndarray, float]:
    """A trained linear head as (W, b) arrays and its temperature, fitted on the held-out
    calibration passages as the model will embed them at inference (1 without any)."""
    W = head.weight.detach().numpy().astype(np.float32)
    b = head.bias.detach().numpy().astype(np.float32)
    if not len(y_calibration):
        return W, b, 1.0
    temperature = fit_temperature(embed_calibration() @ W.T + b, y_calibration)
    log(f"temperature {temperature:.3f} on {len(y_calibration)} held-out training passages")
    return W, b, temperature


def embed_with(
    model: Any,
    tokenizer,  # type: ignore[no-untyped-def]
    texts: list[str],
    max_length: int = MAX_TOKENS,
    batch_size: int = 32,
) -> np.ndarray:
    """Same convention as Encoder.embed ("query: ", mean pool, L2), for any BertModel."""
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    if not texts:
        return out
    ids = tokenizer([PREFIX + t for t in texts], truncation=True, max_length=max_length)[
        "input_ids"
    ]
    order = [int(i) for i in np.argsort([len(x) for x in ids], kind="stable")]
    model.eval()
    with torch.inference_mode():
        for idx, input_ids, mask in padded_batches(
            ids, order, batch_size, tokenizer.pad_token_id or 0
        ):
            out[idx] = _pool(model, input_ids, mask).float().numpy()
    return out


def _freeze(model: Any, train_layers: int | None) -> int:
    for p in model.parameters():
        p.requires_grad = True
    model.embeddings.word_embeddings.weight.requires_grad = False  # 250k x 384: 96M params
    if train_layers is not None:
        for p in model.embeddings.parameters():
            p.requires_grad = False
        layers = model.encoder.layer
        for layer in layers[: max(0, len(layers) - train_layers)]:
            for p in layer.parameters():
                p.requires_grad = False
    if getattr(model, "pooler", None) is not None:  # unused by mean pooling
        for p in model.pooler.parameters():
            p.requires_grad = False
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def finetune(
    rows: list[dict],
    config: FinetuneConfig | None = None,
    *,
    encoder_dir: Path | str | None = None,
    base_embeddings: np.ndarray | None = None,
    log: Callable[[str], None] = print,
) -> FinetuneResult:
    """Fine-tune on the relevant rows of ``rows`` (off-topic rows are ignored here).

    ``base_embeddings`` (optional, aligned with ``rows``): the frozen encoder's embeddings,
    reused for the probe instead of embedding the passages again."""
    cfg = config or FinetuneConfig()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    path = Path(encoder_dir) if encoder_dir else prepare_encoder(default_encoder_dir())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)

    relevant = [r for r in rows if r.get("relevant", True)]
    fit_rows, calib_rows = calibration_split(relevant, cfg.calib_fraction, cfg.seed)
    texts = [r["text"] for r in fit_rows]
    y = np.array([LABELS.index(r["label"]) for r in fit_rows])

    # 1. linear probe on the frozen encoder (same features as nlp.train, max_length as here)
    t0 = time.perf_counter()
    if base_embeddings is not None:
        position = {id(r): i for i, r in enumerate(rows)}
        probe_x = base_embeddings[[position[id(r)] for r in fit_rows]]
    else:
        probe_x = embed_with(model, tokenizer, texts, max_length=cfg.max_length)
    probe = LogisticRegression(C=cfg.probe_c, max_iter=3000).fit(probe_x, y)
    seconds_probe = time.perf_counter() - t0
    log(f"probe: C={cfg.probe_c} on {len(y)} passages, {seconds_probe:.0f}s")

    # 2. fine-tune body + head
    trainable = _freeze(model, cfg.train_layers)
    head = torch.nn.Linear(model.config.hidden_size, len(LABELS))
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(probe.coef_.astype(np.float32)))
        head.bias.copy_(torch.from_numpy(probe.intercept_.astype(np.float32)))
    body = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in body if p.ndim >= 2]
    no_decay = [p for p in body if p.ndim < 2]
    optim = torch.optim.AdamW(
        [
            {"params": decay, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0},
            {"params": list(head.parameters()), "lr": cfg.head_lr, "weight_decay": 0.0},
        ]
    )
    ids = tokenizer([PREFIX + t for t in texts], truncation=True, max_length=cfg.max_length)[
        "input_ids"
    ]
    steps_per_epoch = -(-len(ids) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warm = max(1, int(total * cfg.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    labels_t = torch.from_numpy(y)
    pad = tokenizer.pad_token_id or 0
    gen = torch.Generator().manual_seed(cfg.seed)
    lengths = [len(x) for x in ids]
    n_layers = len(model.encoder.layer)
    split = n_layers - cfg.train_layers if cfg.train_layers is not None else 0
    cached: list[torch.Tensor] | None = None
    t_train = time.perf_counter()
    if split > 0:  # the bottom layers are frozen: run them once, train the top on their output
        cached = _cache_hidden(model, ids, split, pad)
        log(
            f"cached layer-{split} states of {len(ids)} passages, "
            f"{time.perf_counter() - t_train:.0f}s"
        )
    epoch_seconds, epoch_loss = [], []
    log(
        f"fine-tune: {trainable / 1e6:.1f}M trainable params, {len(ids)} passages, "
        f"{cfg.epochs} epochs x {steps_per_epoch} steps, batch {cfg.batch_size}, "
        f"max_length {cfg.max_length}, layers {cfg.train_layers or 'all'}, "
        f"{cfg.threads} thread(s)"
    )
    for epoch in range(cfg.epochs):
        model.train()
        head.train()
        order = _epoch_order(lengths, cfg.batch_size, gen)
        t_epoch, losses = time.perf_counter(), []
        for step, (idx, input_ids, mask) in enumerate(
            padded_batches(ids, order, cfg.batch_size, pad), start=1
        ):
            if cached is None:
                pooled = _pool(model, input_ids, mask)
            else:
                hidden = torch.zeros((len(idx), input_ids.shape[1], model.config.hidden_size))
                for row, i in enumerate(idx):
                    hidden[row, : lengths[i]] = cached[i]
                with _layers_only(model, split, n_layers, from_hidden=True):
                    pooled = _pool(model, hidden, mask, from_hidden=True)
            loss = torch.nn.functional.cross_entropy(head(pooled), labels_t[idx])
            losses.append(
                optimiser_step(loss, optim, sched, body + list(head.parameters()), cfg.clip)
            )
            if step % 16 == 0:
                elapsed = time.perf_counter() - t_epoch
                log(
                    f"  epoch {epoch + 1} step {step}/{steps_per_epoch} "
                    f"loss {np.mean(losses[-16:]):.3f} ({elapsed / step:.2f}s/step)"
                )
        epoch_seconds.append(time.perf_counter() - t_epoch)
        epoch_loss.append(float(np.mean(losses)))
        log(f"epoch {epoch + 1}: loss {epoch_loss[-1]:.3f}, {epoch_seconds[-1]:.0f}s")
    seconds_train = time.perf_counter() - t_train
    model.eval()

    W, b, temperature = calibrated_head(
        head,
        lambda: embed_with(model, tokenizer, [r["text"] for r in calib_rows]),
        np.array([LABELS.index(r["label"]) for r in calib_rows]),
        log,
    )
    return FinetuneResult(
        model=model,
        tokenizer=tokenizer,
        W=W,
        b=b,
        temperature=temperature,
        n_train=len(y),
        n_calib=len(calib_rows),
        trainable_params=trainable,
        seconds_probe=seconds_probe,
        seconds_train=seconds_train,
        epoch_seconds=epoch_seconds,
        epoch_loss=epoch_loss,
        config=cfg,
    )


def save(
    result: FinetuneResult,
    rows: list[dict],
    out_dir: Path | str,
    *,
    train_path: Path | str = TRAIN_PATH,
    temperature: float | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Path, Path]:
    """Write ``out/encoder`` and ``out/model`` (StanceModel-loadable; relevance gate refitted
    on the fine-tuned embeddings of all ``rows``). Returns (model_dir, encoder_dir)."""
    out = Path(out_dir)
    enc_dir, model_dir = out / "encoder", out / "model"
    if enc_dir.exists():
        shutil.rmtree(enc_dir)
    enc_dir.mkdir(parents=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    result.model.save_pretrained(enc_dir)
    result.tokenizer.save_pretrained(enc_dir)
    weights = hashlib.sha256((enc_dir / "model.safetensors").read_bytes()).hexdigest()
    base = read_manifest(default_encoder_dir()) or {}
    (enc_dir / MANIFEST).write_text(
        json.dumps(
            {
                "model_id": f"e5-small-ft@{weights[:12]}",
                "weights_sha256": weights,
                "base_model_id": base.get("model_id"),
                "finetune": asdict(result.config),
            },
            indent=2,
        )
    )

    texts = [r["text"] for r in rows]
    emb = embed_with(result.model, result.tokenizer, texts)
    relevant = np.array([bool(r.get("relevant", True)) for r in rows])
    centroids = np.stack([_centroid(emb[relevant]), _centroid(emb[~relevant])])
    gate = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    gate.fit(relevance_features(emb, texts, centroids), relevant.astype(int))
    np.savez(
        model_dir / "head.npz",
        W=result.W,
        b=result.b,
        rel_w=gate.coef_[0].astype(np.float32),
        rel_b=np.float32(gate.intercept_[0]),
        centroids=centroids.astype(np.float32),
    )
    t = result.temperature if temperature is None else temperature
    config = {
        "labels": list(LABELS),
        "backend": "embedding-head",
        "temperature": t,
        "relevance_threshold": 0.5,
        "article_relevance_threshold": 0.4,
        "card": {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "encoder": f"e5-small-ft@{weights[:12]}",
            "encoder_dir": str(enc_dir),
            "training_data": Path(train_path).name,
            "training_data_sha256": file_sha256(train_path),
            "n_train": result.n_train,
            "n_calibration": result.n_calib,
            "head": "linear, LP-FT (probe-initialised, fine-tuned with the encoder body)",
            "finetune": asdict(result.config),
            "seconds_train": round(result.seconds_train, 1),
            "temperature": round(t, 4),
        },
    }
    (model_dir / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    log(f"saved fine-tuned encoder to {enc_dir} and head to {model_dir}")
    return model_dir, enc_dir


def main() -> None:  # pragma: no cover - manual use
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_ROOT / "e5-small-ft")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-layers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = load_jsonl(TRAIN_PATH)
    cfg = FinetuneConfig(epochs=args.epochs, train_layers=args.train_layers, seed=args.seed)
    save(finetune(rows, cfg), rows, args.out)


if __name__ == "__main__":  # pragma: no cover
    main()
