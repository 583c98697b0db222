"""The character n-gram stance head that the bundled model mixes with the e5 head.

Character 2-5-grams inside word boundaries (TF-IDF, sublinear term frequency) with a logistic
regression on top. They catch stance-bearing word stems in all four languages regardless of
inflection (суверенитет / суверенитета / егемендік / souveraineté) and need no tokenizer.
The model mixes its logits with the e5 head's: ``a * e5 + (1 - a) * char``, ``a`` chosen by
cross-validation on the training split (see :mod:`nlp.train`).

Saved inside ``head.npz`` as ``char_vocab`` (the n-grams), ``char_idf``, ``char_W``, ``char_b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

ANALYZER = "char_wb"
NGRAM_RANGE = (2, 5)


def _vectorizer(vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer=ANALYZER, ngram_range=NGRAM_RANGE, sublinear_tf=True, vocabulary=vocabulary
    )


@dataclass
class CharNgramHead:
    vectorizer: TfidfVectorizer
    W: np.ndarray  # (classes, features)
    b: np.ndarray  # (classes,)

    @classmethod
    def fit(cls, texts: list[str], y: np.ndarray, c: float) -> CharNgramHead:
        vectorizer = _vectorizer()
        x = vectorizer.fit_transform(texts)
        model = LogisticRegression(C=c, max_iter=3000).fit(x, y)
        return cls(vectorizer, model.coef_.astype(np.float32), model.intercept_.astype(np.float32))

    def logits(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.vectorizer.transform(texts) @ self.W.T) + self.b

    def arrays(self) -> dict[str, np.ndarray]:
        """What goes into head.npz."""
        vocab = sorted(self.vectorizer.vocabulary_.items(), key=lambda kv: kv[1])
        return {
            "char_vocab": np.array([ngram for ngram, _ in vocab]),
            "char_idf": self.vectorizer.idf_.astype(np.float32),
            "char_W": self.W,
            "char_b": self.b,
        }

    @classmethod
    def from_arrays(cls, head: Any) -> CharNgramHead | None:
        """The head stored in an opened head.npz, or None for a model without one."""
        if "char_vocab" not in head:
            return None
        vocab = {str(ngram): i for i, ngram in enumerate(head["char_vocab"])}
        vectorizer = _vectorizer(vocab)
        vectorizer.idf_ = head["char_idf"].astype(np.float64)
        return cls(vectorizer, head["char_W"], head["char_b"])


def mix(e5_logits: np.ndarray, char_logits: np.ndarray, e5_weight: float) -> np.ndarray:
    """The model's logits: the two heads' logits weighted (training and inference share it)."""
    return e5_weight * e5_logits + (1 - e5_weight) * char_logits


def cross_val_logits(texts: list[str], y: np.ndarray, c: float, folds: Any) -> np.ndarray:
    """Out-of-fold logits of the char head (the vectorizer is refitted inside each fold)."""
    out = np.zeros((len(texts), int(y.max()) + 1))
    for fit_idx, held_idx in folds.split(np.zeros(len(y)), y):
        head = CharNgramHead.fit([texts[i] for i in fit_idx], y[fit_idx], c)
        out[held_idx] = head.logits([texts[i] for i in held_idx])
    return out
