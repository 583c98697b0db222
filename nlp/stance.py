"""The stance classifier: one small class with one public call, ``predict(texts)``.

A saved model is a directory with ``config.json`` (labels, temperature, mixing weight, encoder,
card) and ``head.npz`` (the linear stance head on e5 embeddings, the optional character n-gram
head of :mod:`nlp.charngrams`, and the relevance gate). Labels travel with the model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import numpy as np

from nlp import lexicon
from nlp.charngrams import CharNgramHead, mix
from nlp.encoder import Encoder, get_encoder

BUNDLED_MODEL = Path(str(files("nlp") / "model"))


@dataclass(frozen=True)
class Prediction:
    label: str
    probs: dict[str, float]
    relevance: float

    def to_json(self) -> dict:
        return {"label": self.label, "probs": self.probs, "relevance": self.relevance}


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def lexicon_features(texts: list[str]) -> np.ndarray:
    """(len(texts), groups) lexicon hit counts of :mod:`nlp.lexicon`."""
    return np.array([lexicon.features(t) for t in texts], dtype=np.float32).reshape(len(texts), -1)


def relevance_features(
    embeddings: np.ndarray,
    texts: list[str] | None,
    centroids: np.ndarray,
    *,
    lex: np.ndarray | None = None,
    with_embedding: bool = False,
) -> np.ndarray:
    """Cosine to the on-topic and off-topic prototypes, plus the lexicon hits (from ``texts``,
    or precomputed as ``lex`` for stored embeddings); the gate of a model trained on real news
    also sees the embedding itself (``with_embedding``)."""
    sims = embeddings @ centroids.T  # embeddings and centroids are L2-normalised
    if lex is None:
        lex = lexicon_features(texts or [])
    parts = [sims, sims[:, :1] - sims[:, 1:2], lex]
    if with_embedding:
        parts.insert(0, embeddings)
    return np.hstack(parts).astype(np.float32)


def to_predictions(
    labels: tuple[str, ...], probs: np.ndarray, relevance: np.ndarray
) -> list[Prediction]:
    """Rows of class probabilities and relevance scores as records (renormalised to sum to 1)."""
    out = []
    for row, r in zip(probs, relevance, strict=True):
        p = {label: float(v) for label, v in zip(labels, row, strict=True)}
        total = sum(p.values())
        p = {k: v / total for k, v in p.items()}
        out.append(Prediction(max(p, key=p.__getitem__), p, float(r)))
    return out


class StanceModel:
    def __init__(self, model_dir: Path | str | None = None, encoder: Encoder | None = None) -> None:
        self.dir = Path(model_dir) if model_dir else BUNDLED_MODEL
        config_path = self.dir / "config.json"
        if not config_path.exists():
            raise FileNotFoundError(
                f"no stance model at {self.dir}: run `cstowatch train` to create one"
            )
        self.config = json.loads(config_path.read_text(encoding="utf-8"))
        self.labels: tuple[str, ...] = tuple(self.config["labels"])
        self.temperature = float(self.config.get("temperature", 1.0))
        self.relevance_threshold = float(self.config.get("relevance_threshold", 0.5))
        # Articles are judged on 0.5 x best passage + 0.5 x weighted mean relevance. A factual
        # report's background paragraphs score low on their own, so the article bar sits lower
        # than the passage bar.
        self.article_relevance_threshold = float(
            self.config.get("article_relevance_threshold", 0.4)
        )
        head_bytes = (self.dir / "head.npz").read_bytes()
        with np.load(self.dir / "head.npz") as head:
            self.W, self.b = head["W"], head["b"]
            self.rel_w, self.rel_b = head["rel_w"], float(head["rel_b"])
            self.centroids = head["centroids"]
            self.char_head = CharNgramHead.from_arrays(head)
        self.e5_weight = float(self.config.get("e5_weight", 1.0)) if self.char_head else 1.0
        self.gate_sees_embedding = (
            self.config.get("gate_features") == "embedding+prototypes+lexicon"
        )
        self.encoder = encoder or get_encoder()
        self.model_id = (
            f"{self.encoder.model_id}+head-{hashlib.sha256(head_bytes).hexdigest()[:12]}"
        )

    def _scores(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        embeddings = self.encoder.embed(texts)
        return self.score_embeddings(embeddings, lexicon_features(texts), texts)

    def score_embeddings(
        self, embeddings: np.ndarray, lex: np.ndarray, texts: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(stance probabilities, relevance) from e5 embeddings and lexicon features: how the
        real-news set, which keeps embeddings and no texts, is scored. A model with a character
        n-gram head also needs the texts."""
        logits = embeddings @ self.W.T + self.b
        if self.char_head is not None:
            if texts is None:
                raise ValueError(f"{self.dir} mixes in a character n-gram head: it needs texts")
            logits = mix(logits, self.char_head.logits(texts), self.e5_weight)
        probs = softmax(logits, self.temperature)
        features = relevance_features(
            embeddings, None, self.centroids, lex=lex, with_embedding=self.gate_sees_embedding
        )
        return probs, sigmoid(features @ self.rel_w + self.rel_b)

    def predict(self, texts: list[str]) -> list[Prediction]:
        if not texts:
            return []
        return to_predictions(self.labels, *self._scores(texts))

    def info(self) -> dict:
        return {
            "model_id": self.model_id,
            "encoder_path": str(self.encoder.path),
            "encoder_id": self.encoder.model_id,
            "labels": list(self.labels),
            "temperature": self.temperature,
            "e5_weight": self.e5_weight,
            "relevance_threshold": self.relevance_threshold,
            "article_relevance_threshold": self.article_relevance_threshold,
            "model_dir": str(self.dir),
            "card": self.config.get("card", {}),
        }


@lru_cache(maxsize=4)
def load_model(model_dir: str | None = None, encoder_dir: str | None = None) -> StanceModel:
    """Load once per process (Prefect workers and the CLI call this).

    A dir whose cstowatch.json / config.json says ``"backend": "nli"`` loads the zero-shot
    NLI backend (:class:`nlp.nli.NLIStanceModel`, same surface; ``encoder_dir`` is unused)."""
    if model_dir:
        from nlp import nli  # lazy: nlp.nli imports this module

        if nli.is_nli_model_dir(model_dir):
            return nli.NLIStanceModel(model_dir)  # type: ignore[return-value]
    return StanceModel(model_dir, get_encoder(encoder_dir) if encoder_dir else None)
