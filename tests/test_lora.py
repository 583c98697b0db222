"""nlp.lora: a few LoRA steps on passages written here, save, reload, same predictions."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("peft", reason="peft not installed: .venv/bin/pip install 'peft==0.21.*'")

from nlp.lora import ADAPTER, ADAPTER_WEIGHTS, load_lora, save_lora, train_lora  # noqa: E402

# Short passages we wrote, 8 per label in en/ru/kk/fr (0 pro_russian, 1 neutral, 2 pro_kazakh).
PASSAGES = [
    ("en", 0, "Russia's troops saved Kazakhstan from chaos, and Astana must stay grateful."),
    ("en", 0, "The CSTO is the only guarantor of Kazakhstan's security against foreign plots."),
    ("ru", 0, "Только Россия и ОДКБ защищают Казахстан от западного вмешательства."),
    ("ru", 0, "Казахстану стоит помнить, кто спас его в январе, и держаться Москвы."),
    ("kk", 0, "Ресей мен ҰҚШҰ Қазақстанның қауіпсіздігінің жалғыз кепілі болып табылады."),
    ("kk", 0, "Мәскеуден алыстау Қазақстан үшін қауіпті, деп жазды сарапшы."),
    ("fr", 0, "Sans la Russie et l'OTSC, le Kazakhstan serait livré aux ingérences étrangères."),
    ("fr", 0, "Astana doit sa stabilité à Moscou et devrait s'aligner sur le Kremlin."),
    ("en", 1, "The CSTO council will meet in Minsk on Thursday, the ministry said."),
    ("en", 1, "Trade between Kazakhstan and Russia grew by four percent last year."),
    ("ru", 1, "Заседание совета ОДКБ пройдет в четверг в Минске, сообщили в министерстве."),
    ("ru", 1, "Товарооборот Казахстана и России вырос в прошлом году на четыре процента."),
    ("kk", 1, "ҰҚШҰ кеңесінің отырысы бейсенбі күні Минскіде өтеді, деп хабарлады министрлік."),
    ("kk", 1, "Қазақстан мен Ресей арасындағы сауда өткен жылы төрт пайызға өсті."),
    ("fr", 1, "Le conseil de l'OTSC se réunira jeudi à Minsk, a indiqué le ministère."),
    ("fr", 1, "Les échanges entre le Kazakhstan et la Russie ont augmenté de quatre pour cent."),
    ("en", 2, "Astana refuses to recognise the separatist republics: our national interest first."),
    ("en", 2, "Kazakhstan will not send troops abroad and keeps balancing between the powers."),
    ("ru", 2, "Астана не признает сепаратистские республики: национальные интересы превыше всего."),
    ("ru", 2, "Казахстан не отправит войска и сохраняет многовекторную политику."),
    ("kk", 2, "Қазақстан сепаратистік республикаларды мойындамайды: ұлттық мүдде бірінші."),
    ("kk", 2, "Қазақстан әскер жібермейді және көпвекторлы саясатын сақтайды."),
    ("fr", 2, "Astana refuse de reconnaître les républiques séparatistes : l'intérêt national."),
    ("fr", 2, "Le Kazakhstan n'enverra pas de troupes et garde sa politique multivectorielle."),
]


@pytest.mark.slow
@pytest.mark.parametrize("layers", [None, 2])  # 2: top layers only, frozen bottom cached
def test_lora_trains_saves_and_reloads(tmp_path: Path, layers: int | None) -> None:
    texts = [t for _, _, t in PASSAGES]
    y = [k for _, k, _ in PASSAGES]
    langs = [lang for lang, _, _ in PASSAGES]
    outlets = [f"outlet-{i % 6}" for i in range(len(texts))]  # 6 made-up outlets of 4
    model = train_lora(
        texts,
        y,
        langs=langs,
        groups=outlets,
        batch_size=8,
        max_steps=4,
        max_length=64,
        lr=2e-3,
        layers=layers,
        log=print,
    )
    assert model.card["steps"] == 4
    assert model.card["n_calib"] == 4  # one whole outlet held out for the temperature

    trained = model.embed(texts)
    model.encoder.model.disable_adapter_layers()
    frozen = model.embed(texts)
    model.encoder.model.enable_adapter_layers()
    assert np.allclose(np.linalg.norm(trained, axis=1), 1.0, atol=1e-5)
    assert np.abs(trained - frozen).max() > 1e-4  # the adapters changed the embeddings

    before = model.predict_proba(texts)
    save_lora(model, tmp_path / "lora")
    weights = tmp_path / "lora" / ADAPTER / ADAPTER_WEIGHTS
    assert weights.stat().st_size < 5_000_000

    reloaded = load_lora(tmp_path / "lora")
    assert reloaded.encoder.model_id == model.encoder.model_id
    assert "+lora-" in reloaded.encoder.model_id
    after = reloaded.predict_proba(texts)
    assert np.allclose(after, before, atol=1e-5)
    assert (after.argmax(1) == before.argmax(1)).all()
