"""Training: the e5 head, the character n-gram head and their mix, saved and loaded again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nlp.charngrams import CharNgramHead
from nlp.train import E5_WEIGHTS, LABELS, TRAIN_PATH, load_jsonl


@pytest.fixture(scope="module")
def small_train(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A balanced slice of the training split: 12 passages per label and language, plus
    off-topic rows for the relevance gate."""
    rows = load_jsonl(TRAIN_PATH)
    picked, seen = [], {}
    for row in rows:
        key = (row["lang"], row.get("label") if row.get("relevant", True) else "off")
        if seen.get(key, 0) < (12 if key[1] != "off" else 6):
            seen[key] = seen.get(key, 0) + 1
            picked.append(row)
    path = tmp_path_factory.mktemp("train") / "small.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in picked))
    return path


def test_char_head_round_trips_through_its_arrays(tmp_path: Path) -> None:
    texts = ["ОДКБ защищает союзников", "Қазақстан егемендігі бірінші", "a neutral report",
             "souveraineté du Kazakhstan", "Россия гарантирует безопасность", "talks were held"]
    y = np.array([0, 2, 1, 2, 0, 1])
    head = CharNgramHead.fit(texts, y, c=4.0)
    np.savez_compressed(tmp_path / "h.npz", **head.arrays())
    with np.load(tmp_path / "h.npz") as stored:
        again = CharNgramHead.from_arrays(stored)
    assert again is not None
    new = ["суверенитет Казахстана", "the CSTO summit", "ҰҚШҰ"]
    assert np.allclose(head.logits(new), again.logits(new), atol=1e-5)
    assert head.logits(new).shape == (3, 3)
    with np.load(tmp_path / "h.npz") as stored:
        assert CharNgramHead.from_arrays({k: stored[k] for k in ("W",) if k in stored}) is None


@pytest.mark.parametrize("char_ngrams", [True, False])
def test_train_writes_a_model_that_loads_and_predicts(
    small_train: Path, tmp_path: Path, encoder, char_ngrams: bool, monkeypatch  # type: ignore[no-untyped-def]
) -> None:
    from nlp.stance import StanceModel
    from nlp.train import train

    # one C per head keeps this a test of the plumbing; the grids are the model card's business
    monkeypatch.setattr("nlp.train.C_GRID", (16.0,))
    monkeypatch.setattr("nlp.train.CHAR_C_GRID", (4.0,))

    out = train(small_train, tmp_path / "model", encoder=encoder, char_ngrams=char_ngrams,
                log=lambda _: None)
    config = json.loads((out / "config.json").read_text())
    model = StanceModel(out, encoder=encoder)
    assert (model.char_head is not None) == char_ngrams
    assert model.e5_weight in E5_WEIGHTS
    assert config["card"]["training_data_sha256"]
    assert config["card"]["n_train"] == 12 * 3 * 4
    if char_ngrams:
        assert "char_head" in config["card"] and config["card"]["cv_macro_f1_char"] > 0
    else:
        assert model.e5_weight == 1.0
    preds = model.predict(["ОДКБ — гарант безопасности Казахстана.",
                           "Kazakhstan must decide its own security policy."])
    assert [set(p.probs) for p in preds] == [set(LABELS)] * 2
    assert all(abs(sum(p.probs.values()) - 1) < 1e-6 for p in preds)
    assert model.model_id != StanceModel(encoder=encoder).model_id
