"""Sentence encoder: e5 convention (prefix, mean pooling over the attention mask, L2 norm).

Loads any local Hugging Face encoder dir; by default the multilingual-e5-small rebuilt from
pip-shipped files by :mod:`nlp.prepare`. Never touches the network (``local_files_only``);
callers set ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys
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
# padded tokens per forward pass: 32 passages of 128 tokens, or 16 of 256 (the attention scores
# of a batch grow with items x length^2: 32 x 256 tokens peaked 300 MB above the model)
BATCH_TOKENS = 4096

def batches_within(lengths: list[int], order: list[int], size: int, max_tokens: int | None):  # type: ignore[no-untyped-def]
    """Split ``order`` into runs of at most ``size`` items whose padded size (items x longest)
    stays within ``max_tokens``; a single item always makes a batch."""
    batch: list[int] = []
    width = 0
    for i in order:
        wider = max(width, lengths[i])
        if batch and (len(batch) >= size or (max_tokens and (len(batch) + 1) * wider > max_tokens)):
            yield batch
            batch, wider = [], lengths[i]
        batch.append(i)
        width = wider
    if batch:
        yield batch


def padded_batches(  # type: ignore[no-untyped-def]
    ids: list[list[int]], order: list[int], size: int, pad: int, max_tokens: int | None = None
):
    """Yield (indices, input_ids, attention_mask) for batches of at most ``size`` taken in
    ``order``, and with ``max_tokens`` at most that many padded tokens each."""
    for idx in batches_within([len(x) for x in ids], order, size, max_tokens):
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


def return_freed_memory() -> None:
    """Make glibc serve every allocation over 128 KB with its own mapping and unmap it on free.

    By default glibc raises that threshold as large blocks are freed, so a forward pass's
    tensors (a few MB each, every batch a different shape) end up in the heap, which fragments
    and never shrinks: scoring 1,500 passages grew the process by 300 MB beyond the model.
    With the threshold fixed, the peak stays about 150 MB above the loaded model."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
        except (OSError, AttributeError):
            pass


class Encoder:
    def __init__(self, path: str | Path | None = None) -> None:
        return_freed_memory()
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
        max_batch_tokens: int = BATCH_TOKENS,
    ) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised. Use "passage: " for documents.

        Batches hold at most ``batch_size`` texts and ``max_batch_tokens`` padded tokens, so
        long passages go in smaller batches and the attention's memory stays bounded."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self._tokenize([prefix + t for t in texts], min(max_length, self.max_positions))
        order = np.argsort([len(x) for x in ids], kind="stable")  # similar lengths share a batch
        pad = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for idx, input_ids, mask in padded_batches(
                ids, list(order), batch_size, pad, max_batch_tokens
            ):
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
