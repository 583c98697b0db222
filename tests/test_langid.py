import pytest

from nlp.langid import detect


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("The CSTO secretary general arrived in Astana for talks on the joint exercises.", "en"),
        ("Генеральный секретарь ОДКБ прибыл в Астану для переговоров об учениях.", "ru"),
        ("ҰҚШҰ бас хатшысы бірлескен жаттығулар туралы келіссөздер үшін Астанаға келді.", "kk"),
        ("Le secrétaire général de l'OTSC est arrivé à Astana pour des pourparlers.", "fr"),
        ("Генеральний секретар ОДКБ прибув до Астани для переговорів щодо навчань.", "uk"),
    ],
)
def test_detects_monitored_languages_and_confusers(text: str, lang: str) -> None:
    assert detect(text)[0] == lang


def test_empty_text_is_other() -> None:
    assert detect("   ")[0] == "other"
