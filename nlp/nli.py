"""Zero-shot stance backend: a local NLI cross-encoder scores each passage against hypotheses.

Any Hugging Face sequence-classification NLI model dir works (e.g. a user's local copy of
``MoritzLaurer/mDeBERTa-v3-base-xnli-multilingual-nli-2mil7``). Mark the dir as a cstowatch
model with a ``cstowatch.json`` next to the HF files (or a ``"backend": "nli"`` key in the HF
``config.json``)::

    {
      "backend": "nli",
      "labels": ["pro_russian", "neutral", "pro_kazakh"],
      "hypotheses": {
        "pro_russian": ["This text supports Russia and the CSTO as Kazakhstan's protector.",
                        "Этот текст поддерживает Россию и ОДКБ как защитника Казахстана."],
        "neutral": "This text reports facts neutrally without taking sides.",
        "pro_kazakh": "This text puts Kazakhstan's sovereignty and national interest first."
      },
      "relevance_hypothesis": "This text is about Kazakhstan, Russia and their security relations.",
      "temperature": 1.0,
      "relevance_threshold": 0.5,
      "article_relevance_threshold": 0.4,
      "batch_size": 16,
      "max_length": 512
    }

Every key is optional. A label's hypotheses may be one string or a list (e.g. one per
language); a list's entailment logits are averaged. Stance probabilities are a softmax, over
the labels, of the entailment logits divided by ``temperature``; relevance is P(entailment) of
the relevance hypothesis against P(contradiction) (against all other classes when the model
has no contradiction class). ``nlp.stance.load_model(dir)`` returns an ``NLIStanceModel`` for
such a dir. Never touches the network (``local_files_only``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from nlp.stance import Prediction, softmax, to_predictions

CONFIG_NAME = "cstowatch.json"
BACKEND = "nli"
DEFAULT_LABELS = ("pro_russian", "neutral", "pro_kazakh")
DEFAULT_HYPOTHESES: dict[str, list[str]] = {
    "pro_russian": ["This text supports Russia and the CSTO as Kazakhstan's protector."],
    "neutral": ["This text reports facts neutrally without taking sides."],
    "pro_kazakh": ["This text puts Kazakhstan's sovereignty and national interest first."],
}
DEFAULT_RELEVANCE_HYPOTHESIS = "This text is about Kazakhstan, Russia and their security relations."
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_settings(model_dir: Path | str) -> dict:
    """cstowatch.json, else the ``backend``/cstowatch keys of the HF config.json."""
    model_dir = Path(model_dir)
    own = _read_json(model_dir / CONFIG_NAME)
    if own:
        return own
    hf = _read_json(model_dir / "config.json")
    nested = hf.get("cstowatch")
    if isinstance(nested, dict):
        return {"backend": hf.get("backend", BACKEND), **nested}
    return {"backend": hf["backend"]} if "backend" in hf else {}


def is_nli_model_dir(model_dir: Path | str | None) -> bool:
    """True when the dir declares ``"backend": "nli"`` (cstowatch.json or config.json)."""
    if not model_dir:
        return False
    return str(read_settings(model_dir).get("backend", "")).lower() == BACKEND


def _as_list(value: str | list[str]) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    if not items or not all(isinstance(x, str) and x.strip() for x in items):
        raise ValueError(f"hypotheses must be non-empty strings, got {value!r}")
    return items


def find_label_index(config, name: str) -> int | None:  # type: ignore[no-untyped-def]
    """Index of the class called ``name`` (case-insensitive; 'entailment' also matches
    'entail'/'entailed'), from ``label2id``, else ``id2label``; None if absent."""
    want = name.lower()
    candidates: dict[str, int] = {}
    for label, idx in (getattr(config, "label2id", None) or {}).items():
        candidates[str(label).lower()] = int(idx)
    for idx, label in (getattr(config, "id2label", None) or {}).items():
        candidates.setdefault(str(label).lower(), int(idx))
    if want in candidates:
        return candidates[want]
    stem = want[:6]  # "entail", "contra"
    for label, idx in candidates.items():
        if label.startswith(stem) and not label.startswith("not"):
            return idx
    return None


def _weights_digest(model_dir: Path) -> str:
    digest = hashlib.sha256()
    found = False
    for name in WEIGHT_FILES:
        path = model_dir / name
        if path.is_file():
            found = True
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    if not found:  # sharded or unusual layout: hash every weight-looking file
        for path in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    digest.update((model_dir / "config.json").read_bytes())
    return digest.hexdigest()


class NLIStanceModel:
    """Same surface as :class:`nlp.stance.StanceModel`: ``predict``, ``labels``, ``model_id``,
    ``info()``, ``relevance_threshold``, ``article_relevance_threshold``, ``dir``."""

    backend = BACKEND

    def __init__(self, model_dir: Path | str) -> None:
        self.dir = Path(model_dir)
        if not (self.dir / "config.json").exists():
            raise FileNotFoundError(f"no NLI model at {self.dir}: config.json is missing")
        self.config = read_settings(self.dir)
        self.labels: tuple[str, ...] = tuple(self.config.get("labels", DEFAULT_LABELS))
        raw = self.config.get("hypotheses") or {
            k: v for k, v in DEFAULT_HYPOTHESES.items() if k in self.labels
        }
        missing = [label for label in self.labels if label not in raw]
        if missing:
            raise ValueError(f"{self.dir}: no hypothesis for label(s) {missing}")
        self.hypotheses: dict[str, list[str]] = {
            label: _as_list(raw[label]) for label in self.labels
        }
        self.relevance_hypotheses = _as_list(
            self.config.get("relevance_hypothesis", DEFAULT_RELEVANCE_HYPOTHESIS)
        )
        self.temperature = float(self.config.get("temperature", 1.0))
        self.relevance_threshold = float(self.config.get("relevance_threshold", 0.5))
        self.article_relevance_threshold = float(
            self.config.get("article_relevance_threshold", 0.4)
        )
        self.batch_size = int(self.config.get("batch_size", 16))

        torch.set_num_threads(os.cpu_count() or 1)
        self.tokenizer = AutoTokenizer.from_pretrained(self.dir, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            self.dir, local_files_only=True
        ).eval()
        hf_config = self.model.config
        entail = find_label_index(hf_config, "entailment")
        if entail is None:
            raise ValueError(
                f"{self.dir}: no 'entailment' class in label2id {hf_config.label2id!r}"
            )
        self.entailment_index = entail
        self.contradiction_index = find_label_index(hf_config, "contradiction")
        limits = [int(self.config.get("max_length", 512))]
        if 0 < getattr(self.tokenizer, "model_max_length", 0) < 100_000:
            limits.append(int(self.tokenizer.model_max_length))
        self.max_length = min(limits)
        self._input_names = set(self.tokenizer.model_input_names)

        self.weights_sha256 = _weights_digest(self.dir)
        scoring = json.dumps(
            {
                "labels": self.labels,
                "hypotheses": self.hypotheses,
                "relevance": self.relevance_hypotheses,
                "temperature": self.temperature,
                "entailment_index": self.entailment_index,
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        self.nli_id = f"{self.dir.name}@{self.weights_sha256[:12]}"
        self.model_id = f"{self.nli_id}+nli-{hashlib.sha256(scoring.encode()).hexdigest()[:12]}"

    # ------------------------------------------------------------------ scoring

    def _hypothesis_list(self) -> list[str]:
        flat = [h for label in self.labels for h in self.hypotheses[label]]
        return flat + self.relevance_hypotheses

    def pair_logits(self, premises: list[str], hypotheses: list[str]) -> np.ndarray:
        """(len(premises), len(hypotheses), n_classes) raw NLI logits, batched by length."""
        pairs = [(p, h) for p in premises for h in hypotheses]
        n_classes = int(self.model.config.num_labels)
        out = np.zeros((len(pairs), n_classes), dtype=np.float32)
        if not pairs:
            return out.reshape(len(premises), len(hypotheses), n_classes)
        enc = self.tokenizer(
            [p for p, _ in pairs],
            [h for _, h in pairs],
            truncation="only_first",
            max_length=self.max_length,
            verbose=False,
        )
        ids = enc["input_ids"]
        extra = [k for k in ("token_type_ids",) if k in enc and k in self._input_names]
        order = np.argsort([len(x) for x in ids], kind="stable")  # similar lengths share a batch
        pad = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                width = max(len(ids[i]) for i in idx)
                batch = {
                    "input_ids": torch.full((len(idx), width), pad, dtype=torch.long),
                    "attention_mask": torch.zeros((len(idx), width), dtype=torch.long),
                }
                for key in extra:
                    batch[key] = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    n = len(ids[i])
                    batch["input_ids"][row, :n] = torch.tensor(ids[i])
                    batch["attention_mask"][row, :n] = 1
                    for key in extra:
                        batch[key][row, :n] = torch.tensor(enc[key][i])
                logits = self.model(**batch).logits
                out[idx] = logits.float().numpy()
        return out.reshape(len(premises), len(hypotheses), n_classes)

    def _scores(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        logits = self.pair_logits(texts, self._hypothesis_list())
        entail = logits[:, :, self.entailment_index]
        label_logits = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        col = 0
        for j, label in enumerate(self.labels):
            k = len(self.hypotheses[label])
            label_logits[:, j] = entail[:, col : col + k].mean(axis=1)
            col += k
        probs = softmax(label_logits, self.temperature)
        rel_logits = logits[:, col:, :].astype(np.float64)  # (n, n_rel, classes)
        if self.contradiction_index is not None and self.contradiction_index != (
            self.entailment_index
        ):
            two = rel_logits[:, :, [self.entailment_index, self.contradiction_index]]
            rel = softmax(two.reshape(-1, 2)).reshape(two.shape)[:, :, 0]
        else:
            flat = rel_logits.reshape(-1, rel_logits.shape[-1])
            rel = softmax(flat)[:, self.entailment_index].reshape(rel_logits.shape[:2])
        return probs, rel.mean(axis=1)

    def predict(self, texts: list[str]) -> list[Prediction]:
        if not texts:
            return []
        return to_predictions(self.labels, *self._scores(texts))

    def info(self) -> dict:
        return {
            "model_id": self.model_id,
            "backend": BACKEND,
            # No sentence encoder: the NLI cross-encoder takes its place in provenance.
            "encoder_path": str(self.dir),
            "encoder_id": self.nli_id,
            "labels": list(self.labels),
            "temperature": self.temperature,
            "relevance_threshold": self.relevance_threshold,
            "article_relevance_threshold": self.article_relevance_threshold,
            "model_dir": str(self.dir),
            "entailment_index": self.entailment_index,
            "hypotheses": self.hypotheses,
            "relevance_hypothesis": self.relevance_hypotheses,
            "card": self.config.get("card", {}),
        }
