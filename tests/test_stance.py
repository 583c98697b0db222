"""The stance model: API, labels, calibration plumbing, the dev-set quality gate, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nlp.metrics import brier, expected_calibration_error, fit_temperature, stance_report
from nlp.passages import split_passages

REPO = Path(__file__).resolve().parent.parent
FLOOR = json.loads((REPO / "nlp" / "quality_floor.json").read_text())


def test_metrics_on_known_values() -> None:
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]])
    y = np.array([0, 1, 2, 1])
    report = stance_report(probs, y, ["en", "en", "ru", "ru"], ("a", "b", "c"))
    assert report["accuracy"] == 0.75
    assert report["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert report["per_language"]["en"]["accuracy"] == 1.0
    assert brier(np.eye(3), np.arange(3)) == 0.0
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0


def test_temperature_fit_softens_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    logits = rng.normal(size=(400, 3))
    logits[np.arange(400), y] += 1.0
    assert fit_temperature(logits * 5, y) > 2.0  # overconfident: T > 1 undoes it


def test_passages_split_title_lead_body_and_long_windows() -> None:
    long = " ".join(["слово"] * 400) + "."
    passages = split_passages("Заголовок", f"Лид.\n\nВторой абзац.\n{long}")
    assert [p.kind for p in passages[:3]] == ["title", "lead", "body"]
    assert all(len(p.text.split()) <= 150 for p in passages)
    assert [p.idx for p in passages] == list(range(len(passages)))


def test_predict_returns_calibrated_records(stance_model) -> None:  # type: ignore[no-untyped-def]
    texts = [
        "Благодаря России и ОДКБ Казахстан сохранил государственность в январе 2022 года, "
        "и неблагодарность Астаны к союзникам выглядит странно.",
        "Kazakhstan will not recognise the Luhansk and Donetsk 'republics' and will not send "
        "troops: the national interest comes first, the foreign ministry said.",
        "The CSTO joint staff will meet in Astana on 14 October to review the schedule of "
        "exercises in Kazakhstan, the secretariat said.",
    ]
    preds = stance_model.predict(texts)
    assert [p.label for p in preds] == ["pro_russian", "pro_kazakh", "neutral"]
    for p in preds:
        assert set(p.probs) == set(stance_model.labels)
        assert sum(p.probs.values()) == pytest.approx(1.0)
        assert p.relevance > 0.5
    assert stance_model.predict([]) == []
    weather = stance_model.predict(["Tomorrow in Almaty: sunny, up to 24 degrees, light wind."])
    assert weather[0].relevance < 0.5


def test_labels_travel_with_the_model(stance_model) -> None:  # type: ignore[no-untyped-def]
    config = json.loads((stance_model.dir / "config.json").read_text())
    assert tuple(config["labels"]) == stance_model.labels
    assert stance_model.model_id.startswith(stance_model.encoder.model_id + "+head-")


def test_real_news_dev_macro_f1_stays_above_the_floor(stance_model) -> None:  # type: ignore[no-untyped-def]
    """The CI gate on real news, from the manifest's stored embeddings (no texts needed).
    Lowering nlp/quality_floor.json is an explicit, reviewed change."""
    from nlp.train import evaluate_real

    floor = FLOOR["real_dev"]
    report = evaluate_real(stance_model)
    assert report["macro_f1"] >= floor["macro_f1"], report["macro_f1"]
    for lang, minimum in floor["per_language"].items():
        assert report["per_language"][lang]["macro_f1"] >= minimum, (lang, report["per_language"])
    assert report["relevance_recall"] >= floor["relevance_recall"], report["relevance_recall"]


@pytest.mark.slow
def test_written_dev_macro_f1_stays_above_the_floor(stance_model) -> None:  # type: ignore[no-untyped-def]
    """The second check: our written dev split, through the full text path."""
    from nlp.train import DEV_PATH, evaluate

    floor = FLOOR["written_dev"]
    report = evaluate(stance_model, DEV_PATH)
    assert report["macro_f1"] >= floor["macro_f1"], report["macro_f1"]
    for lang, minimum in floor["per_language"].items():
        assert report["per_language"][lang]["macro_f1"] >= minimum, (lang, report["per_language"])


def test_classify_cli_writes_one_record_per_line(tmp_path: Path, stance_model) -> None:  # type: ignore[no-untyped-def]
    from flows.cli import app

    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps(
            {"id": 1, "text": "ОДКБ – гарант безопасности Казахстана, заявил Лавров."},
            ensure_ascii=False,
        )
        + "\n"
        + json.dumps({"id": "b", "text": "Le Kazakhstan défend sa souveraineté.", "lang": "fr"})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["classify", "--input", str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, "b"]
    for r in rows:
        assert set(r) >= {"id", "label", "probs", "lang", "model"}
        assert sum(r["probs"].values()) == pytest.approx(1.0)
        assert r["label"] in r["probs"]
    assert rows[0]["lang"] == "ru" and rows[1]["lang"] == "fr"


def test_classify_cli_streams_and_leaves_nothing_half_written(tmp_path: Path, stance_model) -> None:  # type: ignore[no-untyped-def]
    """The input is read a batch at a time; a bad line after good batches names its line and
    leaves neither the output nor a temporary file behind."""
    from flows.cli import app

    src = tmp_path / "in.jsonl"
    good = json.dumps({"id": 1, "text": "Астана отстаивает свой суверенитет."}, ensure_ascii=False)
    src.write_text(f"{good}\n{good}\nnot json\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["classify", "--input", str(src), "--output", str(out), "--batch", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "in.jsonl:3" in result.output
    assert list(tmp_path.iterdir()) == [src]


def test_model_info_json(stance_model) -> None:  # type: ignore[no-untyped-def]
    from flows.cli import app

    result = CliRunner().invoke(app, ["model", "info", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["model_id"] == stance_model.model_id
    assert info["labels"] == ["pro_russian", "neutral", "pro_kazakh"]
    assert Path(info["encoder_path"]).exists()


def test_classify_cli_uses_the_model_dir_setting(tmp_path: Path, stance_model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """CSTOWATCH_STANCE_MODEL_DIR reaches `cstowatch classify`, not only the flows."""
    import shutil

    import numpy as np

    from flows.cli import app
    from flows.settings import get_settings

    other = tmp_path / "other-model"
    shutil.copytree(stance_model.dir, other)
    with np.load(other / "head.npz") as head:
        arrays = dict(head)
    arrays["b"] = arrays["b"] + np.array([5.0, 0.0, 0.0], dtype=np.float32)  # all pro-Russian
    np.savez_compressed(other / "head.npz", **arrays)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": 1, "text": "Le Kazakhstan défend sa souveraineté."}) + "\n")
    out = tmp_path / "out.jsonl"
    monkeypatch.setenv("CSTOWATCH_STANCE_MODEL_DIR", str(other))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["classify", "--input", str(src), "--output", str(out)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text())
    assert row["model"] != stance_model.model_id
    assert row["label"] == "pro_russian"
