"""The zero-shot NLI backend's plumbing, on tiny randomly initialised NLI models built here.

No real NLI weights are needed (nor the network): the test trains a word-level tokenizer on a
few sentences, builds a 2-layer BERT sequence classifier, saves both, and loads the dir through
``nlp.stance.load_model`` like a user's local mDeBERTa-xnli copy would be.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nlp import nli
from nlp.stance import BUNDLED_MODEL, load_model

TEXTS = [
    "Благодаря России и ОДКБ Казахстан сохранил государственность в январе 2022 года.",
    "Kazakhstan will not recognise the Luhansk and Donetsk republics.",
    "Le Kazakhstan a accueilli un sommet de l'OTSC à Astana.",
    "Қазақстан егемендігі бәрінен жоғары.",
    "The weather in Almaty was sunny and warm on Tuesday, forecasters said.",
]
STANDARD = {0: "entailment", 1: "neutral", 2: "contradiction"}
PERMUTED = {0: "contradiction", 1: "neutral", 2: "entailment"}


def _tokenizer():  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = TEXTS + [h for hs in nli.DEFAULT_HYPOTHESES.values() for h in hs]
    corpus.append(nli.DEFAULT_RELEVANCE_HYPOTHESIS)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=special))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=64,
    )


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return _tokenizer()


def build(
    root: Path,
    tokenizer,  # type: ignore[no-untyped-def]
    *,
    seed: int = 0,
    id2label: dict[int, str] = STANDARD,
    settings: dict | None = None,
    entail_bias: float | None = None,
) -> Path:
    """Save a tiny NLI model in ``root`` and mark it as a cstowatch NLI model."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    model = BertForSequenceClassification(config).eval()
    if entail_bias is not None:  # the class stored at index 2 beats the others for every pair
        with torch.no_grad():
            model.classifier.bias.zero_()
            model.classifier.bias[2] = entail_bias
            model.classifier.weight[:2].zero_()
    root.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    if settings is not None:
        (root / nli.CONFIG_NAME).write_text(json.dumps(settings), encoding="utf-8")
    return root


def test_loads_through_load_model_and_probabilities_are_sane(tmp_path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    settings = {"backend": "nli", "labels": list(nli.DEFAULT_LABELS), "temperature": 0.5}
    model = load_model(str(build(tmp_path / "m", tokenizer, settings=settings)))
    assert isinstance(model, nli.NLIStanceModel)
    assert model.labels == nli.DEFAULT_LABELS
    assert model.entailment_index == 0 and model.contradiction_index == 2
    preds = model.predict(TEXTS)
    assert len(preds) == len(TEXTS)
    for p in preds:
        assert tuple(p.probs) == model.labels
        assert sum(p.probs.values()) == pytest.approx(1.0, abs=1e-6)
        assert p.label == max(p.probs, key=p.probs.__getitem__)
        assert 0.0 <= p.relevance <= 1.0
    info = model.info()
    for key in ("model_id", "encoder_path", "encoder_id", "labels", "relevance_threshold"):
        assert key in info
    assert info["labels"] == list(nli.DEFAULT_LABELS)
    assert model.predict([]) == []


def test_labels_and_hypotheses_come_from_the_config(tmp_path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    settings = {
        "backend": "nli",
        "labels": ["against", "for"],
        "hypotheses": {"against": ["It is against.", "Это против."], "for": "It is for."},
        "relevance_hypothesis": "It is about Kazakhstan.",
        "relevance_threshold": 0.3,
    }
    model = load_model(str(build(tmp_path / "m", tokenizer, settings=settings)))
    assert model.labels == ("against", "for")
    assert model.relevance_threshold == 0.3
    preds = model.predict(TEXTS[:2])
    assert all(set(p.probs) == {"against", "for"} for p in preds)
    # the "against" logit is the mean entailment logit of its two hypotheses
    logits = model.pair_logits(TEXTS[:1], ["It is against.", "Это против.", "It is for."])
    entail = logits[0, :, 0]
    z = np.array([entail[:2].mean(), entail[2]])
    expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert preds[0].probs["against"] == pytest.approx(expected[0], abs=1e-5)


def test_entailment_index_is_looked_up_from_label2id(tmp_path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    settings = {"backend": "nli"}
    # Same weights twice (same seed, index 2 dominates); only the names of the classes differ.
    permuted = nli.NLIStanceModel(
        build(tmp_path / "p", tokenizer, id2label=PERMUTED, settings=settings, entail_bias=30.0)
    )
    standard = nli.NLIStanceModel(
        build(tmp_path / "s", tokenizer, id2label=STANDARD, settings=settings, entail_bias=30.0)
    )
    assert permuted.entailment_index == 2 and permuted.contradiction_index == 0
    assert standard.entailment_index == 0
    rel_p = [p.relevance for p in permuted.predict(TEXTS)]
    rel_s = [p.relevance for p in standard.predict(TEXTS)]
    assert min(rel_p) > 0.999  # entailment (index 2) >> contradiction (index 0)
    assert max(rel_s) < 0.001  # here index 2 is contradiction
    # the stance scores are the index-2 logits of each (text, hypothesis) pair, in label order
    hyps = [nli.DEFAULT_HYPOTHESES[label][0] for label in permuted.labels]
    col2 = permuted.pair_logits(TEXTS, hyps)[:, :, 2].astype(np.float64)
    expected = np.exp(col2 - col2.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    got = np.array([[p.probs[label] for label in permuted.labels] for p in permuted.predict(TEXTS)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [p.label for p in permuted.predict(TEXTS)] == [
        permuted.labels[i] for i in expected.argmax(1)
    ]


def test_batching_matches_one_by_one(tmp_path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    model = nli.NLIStanceModel(
        build(tmp_path / "m", tokenizer, settings={"backend": "nli", "batch_size": 3})
    )
    batched = model.predict(TEXTS)
    single = [model.predict([t])[0] for t in TEXTS]
    for a, b in zip(batched, single, strict=True):
        assert a.label == b.label
        assert a.relevance == pytest.approx(b.relevance, abs=1e-5)
        for label in model.labels:
            assert a.probs[label] == pytest.approx(b.probs[label], abs=1e-5)


def test_model_id_tracks_weights_and_backend_key_in_hf_config(tmp_path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    a = nli.NLIStanceModel(build(tmp_path / "a", tokenizer, seed=1, settings={"backend": "nli"}))
    b = nli.NLIStanceModel(build(tmp_path / "b", tokenizer, seed=2, settings={"backend": "nli"}))
    assert a.model_id != b.model_id
    assert a.info()["encoder_id"] != b.info()["encoder_id"]
    # no cstowatch.json: a "backend": "nli" key in the HF config.json is enough
    bare = build(tmp_path / "bare", tokenizer, seed=1)
    assert not nli.is_nli_model_dir(bare)
    config = json.loads((bare / "config.json").read_text())
    (bare / "config.json").write_text(json.dumps({**config, "backend": "nli"}))
    assert isinstance(load_model(str(bare)), nli.NLIStanceModel)
    # the bundled embedding-head model is not mistaken for an NLI model
    assert not nli.is_nli_model_dir(BUNDLED_MODEL)
    assert not nli.is_nli_model_dir(None)


def test_model_without_entailment_class_is_rejected(tmp_path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    path = build(
        tmp_path / "m", tokenizer, id2label={0: "a", 1: "b", 2: "c"}, settings={"backend": "nli"}
    )
    with pytest.raises(ValueError, match="entailment"):
        nli.NLIStanceModel(path)
