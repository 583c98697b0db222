"""Language ID on sentences we wrote ourselves (none is copied from an article)."""

from pathlib import Path

import pytest

from nlp.langid import MONITORED, detect, detect_script

SAMPLES: dict[str, list[str]] = {
    "en": [
        "The CSTO secretary general arrived in Astana for talks on the joint exercises.",
        "The government approved new rules for grain exporters, the ministry said on Tuesday.",
        "Yesterday the foreign ministers met in Moscow and discussed the security of the region.",
    ],
    "fr": [
        "Le secrétaire général de l'OTSC est arrivé à Astana pour des pourparlers.",
        "Le gouvernement a approuvé de nouvelles règles pour les exportateurs de céréales.",
        "Hier, les ministres des affaires étrangères se sont réunis à Moscou pour parler de "
        "la sécurité de la région.",
    ],
    "ru": [
        "Генеральный секретарь ОДКБ прибыл в Астану для переговоров об учениях.",
        "Правительство утвердило новые правила для экспортёров зерна, сообщили в министерстве.",
        "Вчера в Москве состоялась встреча министров иностранных дел, на которой обсуждали "
        "безопасность региона.",
    ],
    "kk-cyrl": [
        "ҰҚШҰ бас хатшысы бірлескен жаттығулар туралы келіссөздер үшін Астанаға келді.",
        "Үкімет астық экспорттаушыларға арналған жаңа ережелерді бекітті, деп хабарлады "
        "министрлік.",
        "Кеше Астанада сыртқы істер министрлерінің кездесуі өтті, онда өңір қауіпсіздігі "
        "талқыланды.",
    ],
    "kk-latn": [
        # 2018 alphabet (acute accents, ı for и/й)
        "Qazaqstan Respýblıkasynyń Prezıdenti Qasym-Jomart Toqaev búgin Reseı Prezıdentimen "
        "telefon arqyly sóılesti.",
        "Ujymdyq qaýipsizdik týraly shart uıymynyń birlesken jattyǵýlary qazan aıynda Almaty "
        "oblysynda ótedi.",
        "Qazaqstan men Reseımen arasyndaǵy saýda kólemi bıyl aıtarlyqtaı ósti dep málimdedi "
        "mınıstr.",
        # no q: one Kazakh word and many 2018 letters
        "Bank ınflıaııany baıaýlatý úshin negizgi mólsherlemeni jarty pýnktke kóterdi.",
        # 2021 alphabet (ä ğ ñ ö ü ū ş ı)
        "Qazaqstan Respublikasynyñ Prezidentı Qasym-Jomart Toqaev bügın Resei Prezidentımen "
        "telefon arqyly söılestı.",
        "Ūjymdyq qauıpsızdık turaly şart ūiymynyñ bırlesken jattyğulary qazan aiynda ötedı.",
        # 2017 alphabet (apostrophes)
        "Qazaqstan Respy'blikasynyn' Prezi'denti Qasym-Jomart Toqaev bu'gin Resei' "
        "Prezi'dentimen telefon arqyly so'i'lesti.",
        "Ujymdyq qay'i'psizdik ty'raly s'art ui'ymynyn' birlesken jattyg'y'lary qazan "
        "ai'ynda o’tedi.",
        # informal, no special letters at all
        "Qazaqstan men Resei arasyndagy sauda kolemi biyl aitarlyqtai osti dep malimdedi ministr.",
    ],
    "kk-arab": [
        "قازاقستان مەن رەسەي اراسىنداعى ساۋدا كولەمى ٴبىراز ٴوستى دەپ مالىمدەدى مينيستر.",
        "ۇجىمدىق قاۋىپسىزدىك تۋرالى شارت ۇيىمى ٴبىزدىڭ ەلىمىز ٴۇشىن ماڭىزدى "
        "دەدى ٴسوز سويلەگەن ەلشى.",
        "پرەزيدەنت ٴبىرلەسكەن جاتتىعۋلار تۋرالى ٴوز پىكىرىن ايتتى.",
    ],
    "uk": [
        "Генеральний секретар ОДКБ прибув до Астани для переговорів щодо навчань.",
        "Уряд ухвалив нові правила для експортерів зерна, повідомило міністерство.",
        # lingua alone scores this one 1.0 Kazakh: it has і but no Kazakh letter
        "Банк підвищив облікову ставку на пів пункту, щоб стримати інфляцію.",
        "Вчора в Києві відбулася зустріч міністрів закордонних справ, на якій обговорювали "
        "безпеку регіону.",
    ],
    "be": [
        "Генеральны сакратар АДКБ прыбыў у Астану для перамоў аб вучэннях.",
        "Урад зацвердзіў новыя правілы для экспарцёраў збожжа, паведаміла міністэрства.",
        "Учора ў Мінску адбылася сустрэча міністраў замежных спраў, на якой абмяркоўвалі "
        "бяспеку рэгіёна.",
    ],
    "bg": [
        "Генералният секретар на ОДКБ пристигна в Астана за разговори относно съвместните учения.",
        "Правителството одобри новите правила за износителите на зърно, съобщиха от "
        "министерството.",
        "Вчера в София се състоя среща на външните министри, на която беше обсъдена "
        "сигурността в региона.",
    ],
    "sr": [
        "Генерални секретар ОДКБ стигао је у Астану ради разговора о заједничким вежбама.",
        "Влада је усвојила нова правила за извознике житарица, саопштило је министарство.",
        "Јуче је у Београду одржан састанак министара спољних послова на коме се разговарало о "
        "безбедности региона.",
    ],
    "mk": [
        "Генералниот секретар на ОДКБ пристигна во Астана на разговори за заедничките вежби.",
        "Владата ги усвои новите правила за извозниците на жито, соопштија од министерството.",
        "Вчера во Скопје се одржа средба на министрите за надворешни работи, на која се "
        "разговараше за безбедноста во регионот.",
    ],
    "ky": [
        "ЖККУнун башкы катчысы биргелешкен машыгуулар боюнча сүйлөшүүлөр үчүн Астанага келди.",
        "Кыргызстан менен Орусиянын ортосундагы соода быйыл бир топ өстү деп билдирди министр.",
        "Президент Бишкекте чет өлкөлүк инвесторлор менен жолугушуп, жаңы долбоорлорду талкуулады.",
        # no ң: told from Mongolian by common words
        "Түндүктөгү фермерлер бир нече жумалык жамгырдан кийин түшүмдү кеч жыйноону күтүшүүдө.",
    ],
    "mn": [
        "ХАБГБ-ын ерөнхий нарийн бичгийн дарга хамтарсан сургуулийн талаар ярилцахаар Астанад "
        "ирлээ.",
        "Засгийн газар үр тарианы экспортын шинэ журмыг баталлаа гэж яам мэдээллээ.",
        "Өчигдөр Улаанбаатар хотноо гадаад хэргийн сайд нарын уулзалт болж, бүс нутгийн "
        "аюулгүй байдлын асуудлыг хэлэлцэв.",
    ],
}
CASES = [(text, name.split("-")[0]) for name, texts in SAMPLES.items() for text in texts]

# Text that shares letters or words with Kazakh but is not Kazakh.
NOT_KAZAKH = [
    # Latin-script Turkic neighbours and languages with the same accented letters
    "Kazakistan Cumhurbaşkanı Tokayev, Rusya ile işbirliğini görüştü ve yeni anlaşmalar imzaladı.",
    "Qazaxıstan Prezidenti Tokayev Rusiya ilə əməkdaşlığı müzakirə edib və yeni sazişlər "
    "imzalayıb.",
    "O'zbekiston Prezidenti bugun Qozog'iston rahbari bilan uchrashdi va hamkorlik bo'yicha "
    "kelishuvlar imzolandi.",
    "Prezydent Kazachstanu spotkał się w środę z ministrami, żeby omówić współpracę gospodarczą.",
    "El presidente de Kazajistán se reunió el miércoles con los ministros para hablar de la "
    "cooperación económica según su oficina.",
    "President Tokayev met the Qatari emir in Doha, where talks also touched on Iraq.",
    # Arabic-script neighbours
    "وصل الأمين العام لمنظمة معاهدة الأمن الجماعي إلى أستانا لإجراء محادثات حول التدريبات.",
    "دبیرکل سازمان پیمان امنیت جمعی برای گفتگو درباره رزمایش مشترک به آستانه رسید.",
    "ئۇيغۇر ئاپتونوم رايونىنىڭ رەئىسى بۈگۈن يىغىنغا قاتناشتى ۋە سۆز قىلدى.",
    # Tajik shares ғ and қ with Kazakh
    "Президенти Тоҷикистон имрӯз бо вазирони корҳои хориҷӣ вохӯрд ва дар бораи ҳамкорӣ гуфтугӯ "
    "кард.",
]


@pytest.mark.parametrize(("text", "lang"), CASES)
def test_detects_languages_and_scripts(text: str, lang: str) -> None:
    assert detect(text)[0] == lang


@pytest.mark.parametrize("text", NOT_KAZAKH)
def test_kazakh_neighbours_are_not_kazakh(text: str) -> None:
    assert detect(text)[0] != "kk"


@pytest.mark.parametrize(
    ("text", "script"),
    [
        (SAMPLES["kk-cyrl"][0], "cyrl"),
        (SAMPLES["kk-latn"][0], "latn"),
        (SAMPLES["kk-arab"][0], "arab"),
        ("Στρατιωτική άσκηση στην Αστάνα", "other"),
        ("2026-11-29 12:00 — 15 %", "none"),
        # mostly Cyrillic with a Latin acronym
        ("Заседание Совета коллективной безопасности CSTO прошло в Астане.", "cyrl"),
    ],
)
def test_detect_script(text: str, script: str) -> None:
    assert detect_script(text) == script


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        # mixed: a Russian sentence with English names, an English one with a Kazakh quote
        ("В Астане прошло заседание, сообщает пресс-служба CSTO Press Service и Reuters.", "ru"),
        (
            "Kazakh officials said «Біз бейбітшілікті қолдаймыз» after the meeting in Astana with "
            "the visiting delegation from Brussels.",
            "en",
        ),
        ("Қазақстан Президенті мәлімдеді: «Мы ценим сотрудничество», деді ол брифингте.", "kk"),
        # Kazakh and Kyrgyz letters in names only
        (
            "В Жаңаөзене и Актау прошли встречи с рабочими, сообщили в акимате. Аким области "
            "рассказал о новых рабочих местах и ремонте дорог, а министр труда пообещал проверить "
            "условия на предприятиях. Ранее президент Тоқаев поручил правительству решить вопрос "
            "с жильём для молодых семей. Қазақстан темір жолы объявил о новых рейсах.",
            "ru",
        ),
        # short
        ("Toqaev Putinmen kezdesti", "kk"),
        ("Тоқаев Путинмен кездесті", "kk"),
        ("توقاەۆ پۋتينمەن كەزدەستى", "kk"),
        ("Кыргыз өкмөтү жаңы мыйзамды жактырды", "ky"),
        ("Joint exercises begin", "en"),
    ],
)
def test_mixed_and_short_inputs(text: str, lang: str) -> None:
    assert detect(text)[0] == lang


@pytest.mark.parametrize("text", ["   ", "", "12 345 — 67%", "🙂🙂"])
def test_no_letters_is_other(text: str) -> None:
    assert detect(text) == ("other", 0.0)


def test_confidence_is_a_probability_and_confusers_are_not_monitored() -> None:
    for text, lang in CASES:
        code, confidence = detect(text)
        assert 0.0 <= confidence <= 1.0
        assert (code in MONITORED) == (lang in MONITORED)


def _page(lang_attr: str, title: str, paragraphs: list[str]) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html{lang_attr}><head><meta charset='utf-8'><title>{title}</title>"
        f"</head><body><article><h1>{title}</h1>{body}</article></body></html>"
    )


def test_cli_extract_reports_detected_and_declared_language(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from flows.cli import app

    # A Bulgarian page that declares English, and a Latin-script Kazakh page that declares nothing.
    pages = {
        "bg.html": _page(' lang="en"', "Нови правила за износа на зърно", SAMPLES["bg"] * 2),
        "kk.html": _page("", "Qazaqstan men Reseı kelisimge keldi", SAMPLES["kk-latn"][:4]),
    }
    for name, html in pages.items():
        (tmp_path / name).write_text(html, encoding="utf-8")
    result = CliRunner().invoke(app, ["extract", *(str(tmp_path / n) for n in pages)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [(r["lang"], r["declared_lang"]) for r in rows] == [("bg", "en"), ("kk", None)]
