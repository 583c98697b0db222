"""Sentence encoder: e5 convention (prefix, mean pooling over the attention mask, L2 norm).

Loads any local Hugging Face encoder dir; by default the multilingual-e5-small rebuilt from
pip-shipped files by :mod:`nlp.prepare`. Never touches the network (``local_files_only``);
callers set ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from nlp.prepare import default_encoder_dir, prepare_encoder, read_manifest

# The one truncation limit, in encoder tokens, for every passage the model sees: scoring,
# training the head and fine-tuning (a model trained on 128-token cuts and scored on 256-token
# ones sees longer inputs than it learnt from).
MAX_TOKENS = 256

def padded_batches(ids: list[list[int]], order: list[int], size: int, pad: int):  # type: ignore[no-untyped-def]
    """Yield (indices, input_ids, attention_mask) for batches of ``size`` taken in ``order``."""
    for start in range(0, len(order), size):
        idx = order[start : start + size]
        width = max(len(ids[i]) for i in idx)
        input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
            mask[row, : len(ids[i])] = 1
        yield idx, input_ids, mask


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the attention mask, then L2-normalise (the e5 convention)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


class Encoder:
    def __init__(self, path: str | Path | None = None) -> None:
        # No path: the converted e5-small, built on first use (a no-op once it is current).
        self.path = Path(path) if path else prepare_encoder(default_encoder_dir())
        torch.set_num_threads(os.cpu_count() or 1)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True).eval()
        self.dim: int = self.model.config.hidden_size
        self.max_positions: int = self.model.config.max_position_embeddings
        self.model_id = _model_id(self.path)

    def _tokenize(self, texts: list[str], max_length: int | None) -> list[list[int]]:
        enc = self.tokenizer(
            texts,
            truncation=max_length is not None,
            max_length=max_length,
            verbose=False,  # count_tokens may see texts longer than model_max_length
        )
        return enc["input_ids"]

    def count_tokens(self, texts: list[str], prefix: str = "") -> list[int]:
        """Untruncated token counts, including <s> and </s>."""
        return [len(ids) for ids in self._tokenize([prefix + t for t in texts], None)]

    def embed(
        self,
        texts: list[str],
        prefix: str = "query: ",
        batch_size: int = 32,
        max_length: int = MAX_TOKENS,
    ) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised. Use "passage: " for documents."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self._tokenize([prefix + t for t in texts], min(max_length, self.max_positions))
        order = np.argsort([len(x) for x in ids], kind="stable")  # similar lengths share a batch
        pad = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for idx, input_ids, mask in padded_batches(ids, list(order), batch_size, pad):
                hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                out[idx] = mean_pool(hidden, mask).float().numpy()
        return out


def _model_id(path: Path) -> str:
    """Short, stable id for provenance columns: manifest weights hash, else config hash."""
    manifest = read_manifest(path)
    if manifest and "model_id" in manifest:
        return str(manifest["model_id"])
    config = (path / "config.json").read_bytes()
    return f"{path.name}@{hashlib.sha256(config).hexdigest()[:12]}"


@lru_cache(maxsize=4)
def _cached(path: str | None) -> Encoder:
    return Encoder(path)


def get_encoder(path: str | None = None) -> Encoder:
    """Process-wide Encoder per path (None = default e5-small dir)."""
    return _cached(str(Path(path).resolve()) if path else None)
