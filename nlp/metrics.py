"""Evaluation metrics: macro-F1, confusion matrix, calibration (ECE, Brier). Pure functions."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE of the top-class confidence, equal-width bins."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def brier(probs: np.ndarray, y: np.ndarray) -> float:
    """Multi-class Brier score: mean squared distance to the one-hot truth."""
    onehot = np.eye(probs.shape[1])[y]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood (grid, then refine)."""

    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 200))
    best = min(grid, key=nll)
    fine = np.linspace(best * 0.9, best * 1.1, 41)
    return float(min(fine, key=nll))


def soft_confusion(probs: np.ndarray, y: np.ndarray, k: int) -> list[list[float]]:
    """Mean predicted probabilities per true class (rows sum to 1): the expected probability
    mass a true item of each class adds to each class. Inverting it corrects soft counts."""
    rows = []
    for i in range(k):
        rows.append(
            probs[y == i].mean(axis=0).round(4).tolist()
            if (y == i).any()
            else [float(i == j) for j in range(k)]
        )
    return rows


def stance_report(
    probs: np.ndarray, y: np.ndarray, langs: list[str], labels: tuple[str, ...]
) -> dict:
    """Macro-F1 overall and per language, confusion matrix, ECE and Brier."""
    pred = probs.argmax(axis=1)
    report: dict = {
        "n": int(len(y)),
        "macro_f1": float(f1_score(y, pred, average="macro", labels=list(range(len(labels))))),
        "accuracy": float((pred == y).mean()) if len(y) else 0.0,
        "ece": expected_calibration_error(probs, y),
        "brier": brier(probs, y),
        "labels": list(labels),
        "confusion": confusion_matrix(y, pred, labels=list(range(len(labels)))).tolist(),
        "soft_confusion": soft_confusion(probs, y, len(labels)),
        "per_language": {},
    }
    for lang in sorted(set(langs)):
        mask = np.array([code == lang for code in langs])
        report["per_language"][lang] = {
            "n": int(mask.sum()),
            "macro_f1": float(
                f1_score(y[mask], pred[mask], average="macro", labels=list(range(len(labels))))
            ),
            "accuracy": float((pred[mask] == y[mask]).mean()),
        }
    return report
