"""The real-news labelled set: its building blocks, and data rules on the committed manifest."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nlp import realnews
from nlp.train import LABELS

REPO = Path(__file__).resolve().parent.parent
SHARED_CHECK = REPO.parent / "shared" / "tools" / "heldout_check.py"
MANIFEST = realnews.DEFAULT_DIR / realnews.MANIFEST_NAME
TEXTS = REPO / "data" / "realnews" / "texts.jsonl"


def _row(text: str, outlet: str, lang: str = "en", label: str | None = "neutral") -> dict:
    return {
        "url": f"https://{outlet}/a/{abs(hash(text)) % 10_000}",
        "outlet": outlet,
        "lang": lang,
        "text": text,
        "relevant": label is not None,
        "label": label,
        "confidence": 0.8,
        "rationale": "a test row",
    }


def test_passage_hash_survives_whitespace_case_and_nbsp() -> None:
    a = "The CSTO  summit met in Astana.\n"
    b = "the csto\u00a0summit met in ASTANA."
    assert realnews.passage_hash(a) == realnews.passage_hash(b)
    assert realnews.passage_hash(a) != realnews.passage_hash("The CSTO summit met in Minsk.")
    found = realnews.find_passages(["x" * 10, b], {realnews.passage_hash(a)})
    assert found == {realnews.passage_hash(a): b}


def test_build_manifest_keeps_no_text_dedupes_and_splits_by_outlet() -> None:
    raw = []
    for o in range(12):
        for k in range(5):
            raw.append(
                _row(
                    f"Outlet {o} passage {k} about the CSTO and Kazakhstan, long enough.",
                    f"o{o}.kz",
                )
            )
    raw.append(dict(raw[0], url="https://mirror.example/copy"))  # a syndicated copy
    rows = realnews.build_manifest(raw, dev_share=0.25)
    assert len(rows) == 60
    assert all("text" not in r for r in rows)
    assert set(rows[0]) == set(realnews.MANIFEST_FIELDS)
    sides: dict[str, set[str]] = {}
    for r in rows:
        sides.setdefault(r["outlet"], set()).add(r["split"])
    assert all(len(s) == 1 for s in sides.values())
    dev = sum(r["split"] == "dev" for r in rows)
    # 60 relevant rows: the 100-row dev minimum is out of reach, so dev takes up to 45%
    assert 15 <= dev <= 28


def test_build_manifest_refuses_a_bad_label() -> None:
    bad = _row("A passage about Russia and Kazakhstan, and long enough to keep here.", "x.kz")
    bad["label"] = "pro_moscow"
    with pytest.raises(realnews.ManifestError, match="pro_moscow"):
        realnews.build_manifest([bad])


def test_balance_drops_the_least_confident_rows_of_the_largest_label() -> None:
    rows = []
    for k in range(10):
        rows.append(
            dict(
                _row(f"Neutral report number {k} on CSTO exercises, long enough here.", "n.kz"),
                confidence=0.5 + k / 20,
            )
        )
    for k in range(3):
        rows.append(
            _row(
                f"Pro-Russian passage {k} on the alliance as a guarantor, long enough.",
                "r.ru",
                label="pro_russian",
            )
        )
        rows.append(
            _row(
                f"Pro-Kazakh passage {k} on sovereignty and national interest, long.",
                "k.kz",
                label="pro_kazakh",
            )
        )
    rows.append(
        _row(
            "An off-topic passage about the wheat harvest in Kostanay this year.",
            "o.kz",
            label=None,
        )
    )
    kept, dropped = realnews.balance(rows)
    labels = Counter(r["label"] for r in kept if r["relevant"])
    assert dropped == 6 and labels == {"neutral": 4, "pro_russian": 3, "pro_kazakh": 3}
    neutral_conf = sorted(r["confidence"] for r in kept if r["label"] == "neutral")
    assert neutral_conf[0] == pytest.approx(0.8)  # the six least confident went
    assert sum(not r["relevant"] for r in kept) == 1


def test_second_coding_keeps_both_codes_and_applies_only_settled_disagreements() -> None:
    a = _row("First passage on the CSTO deployment in Almaty in January 2022.", "a.kz")
    b = _row(
        "Second passage: Tokayev will not recognise the Donbas republics.",
        "b.kz",
        label="pro_kazakh",
    )
    c = _row(
        "Third passage about wheat prices in Kostanay this autumn, off the topic.",
        "c.kz",
        label=None,
    )
    key = {n: realnews.passage_hash(r["text"]) for n, r in (("a", a), ("b", b), ("c", c))}
    second = [
        {"key": key["a"], "code": "pro_russian"},  # disagreement, settled below
        {"key": key["b"], "code": "pro_kazakh"},  # agreement
        {"key": key["c"], "code": "neutral"},  # disagreement, left unsettled
    ]
    rows = realnews.apply_second_coding([a, b, c], second, [{"key": key["a"], "code": "off_topic"}])
    assert [r["first_label"] for r in rows] == ["neutral", "pro_kazakh", "off_topic"]
    assert [r["second_label"] for r in rows] == ["pro_russian", "pro_kazakh", "neutral"]
    assert rows[0]["relevant"] is False and rows[0]["label"] is None and rows[0]["adjudicated"]
    assert rows[2]["label"] is None and not rows[2].get("adjudicated")
    agree = realnews.agreement([r["first_label"] for r in rows], [r["second_label"] for r in rows])
    assert agree["n"] == 3 and agree["agreement"] == pytest.approx(1 / 3)
    assert agree["kappa"] < 0.5


# ------------------------------------------------------------------ the committed set

needs_manifest = pytest.mark.skipif(not MANIFEST.exists(), reason="no real-news manifest")


@pytest.fixture(scope="module")
def committed():  # type: ignore[no-untyped-def]
    return realnews.load()


@needs_manifest
def test_manifest_rows_follow_the_data_rules(committed) -> None:  # type: ignore[no-untyped-def]
    rows, emb, lex = committed
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["sha256"] for r in rows}) == len(rows)
    for r in rows:
        assert "text" not in r
        assert set(r) == set(realnews.MANIFEST_FIELDS)
        assert r["split"] in ("train", "dev")
        assert re.fullmatch(r"[0-9a-f]{64}", r["sha256"])
        assert r["url"].startswith(("http://", "https://"))
        assert (r["label"] in LABELS) if r["relevant"] else r["label"] is None
        assert r["rationale"]
    assert emb.shape == (len(rows), 384) and lex.shape[0] == len(rows)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=0.01)


@needs_manifest
def test_train_and_dev_share_no_outlet_and_dev_is_large_enough(committed) -> None:  # type: ignore[no-untyped-def]
    rows, _, _ = committed
    train = {r["outlet"] for r in rows if r["split"] == "train"}
    dev = {r["outlet"] for r in rows if r["split"] == "dev"}
    assert not train & dev
    dev_relevant = Counter(r["lang"] for r in rows if r["split"] == "dev" and r["relevant"])
    for lang in ("en", "ru", "kk", "fr"):
        assert dev_relevant[lang] >= 100, dev_relevant


@needs_manifest
def test_each_language_is_balanced_and_drawn_from_many_outlets(committed) -> None:  # type: ignore[no-untyped-def]
    rows, _, _ = committed
    assert len({r["outlet"] for r in rows}) >= 150
    assert sum(not r["relevant"] for r in rows) >= 250
    for lang in ("en", "ru", "kk", "fr"):
        labels = Counter(r["label"] for r in rows if r["lang"] == lang and r["relevant"])
        total = sum(labels.values())
        # Kazakh: three labellers exhausted what the stored pages hold in Kazakh (312 relevant
        # passages after balancing); the other languages reach the 400 the set was built for
        assert total >= (300 if lang == "kk" else 400), (lang, total)
        for label in LABELS:
            assert 0.25 <= labels[label] / total <= 0.45, (lang, labels)
    latin_kk = sum(r["lang"] == "kk" and r["script"] == "latn" for r in rows)
    assert latin_kk >= 30


@needs_manifest
@pytest.mark.skipif(not SHARED_CHECK.exists(), reason="../shared/tools (the team's) is absent")
def test_no_row_comes_from_a_held_out_article() -> None:
    proc = subprocess.run(
        [sys.executable, str(SHARED_CHECK), str(MANIFEST)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(not TEXTS.exists(), reason="texts not hydrated (cstowatch data hydrate)")
def test_no_article_sentence_is_in_the_repository() -> None:
    """No run of 12 words of a hydrated text appears in a tracked file. (Shorter runs catch
    famous quotes that our written passages cite, such as Nikonov's "great gift".)"""
    shingles = set()
    for line in TEXTS.read_text(encoding="utf-8").splitlines():
        words = json.loads(line)["text"].split()
        shingles.update(" ".join(words[i : i + 12]) for i in range(0, max(len(words) - 11, 1), 3))
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    leaks = []
    for name in tracked:
        path = REPO / name
        if path.suffix in (".npz", ".png", ".npy") or not path.is_file():
            continue
        words = path.read_text(encoding="utf-8", errors="ignore").split()
        for i in range(len(words) - 11):
            if " ".join(words[i : i + 12]) in shingles:
                leaks.append(name)
                break
    assert not leaks, leaks
