"""Language identification: the script first, then lingua or letter-and-word evidence.

``detect(text) -> (code, confidence)`` returns an ISO 639-1 code. We monitor en, ru, kk and fr
(``MONITORED``); everything else is reported either as a named confuser or as "other", and the
pipeline treats both as other-language. ``detect_script`` names the dominant script.

- Cyrillic: lingua over ru, kk and the confusers it knows (uk, be, bg, sr, mk, mn). lingua has no
  Kyrgyz model, so Kyrgyz ("ky") is told by its letters: ң, ө, ү without any of Kazakh's own
  ә, ғ, қ, ұ, һ, plus common words. Text with Tajik or Uzbek letters (ҷ, ӣ, ӯ, ҳ, ў) is never
  called Kazakh.
- Latin: Kazakh in the 2017 (apostrophe), 2018 (acute) and 2021 (Turkic) alphabets, which lingua
  does not know, is told by token evidence (below); anything else goes to lingua over en and fr.
- Arabic: Kazakh in the Arabic script (tote jazu) is told by its letters (below); any other
  Arabic-script text is "other".
Anything below ``MIN_CONFIDENCE`` is "other" too.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

MONITORED = ("en", "ru", "kk", "fr")
_CYRILLIC = {
    Language.RUSSIAN: "ru",
    Language.KAZAKH: "kk",
    Language.UKRAINIAN: "uk",
    Language.BELARUSIAN: "be",
    Language.BULGARIAN: "bg",
    Language.SERBIAN: "sr",
    Language.MACEDONIAN: "mk",
    Language.MONGOLIAN: "mn",
}
_LATIN = {Language.ENGLISH: "en", Language.FRENCH: "fr"}
_LANGS = _CYRILLIC | _LATIN
MIN_CONFIDENCE = 0.5
_SAMPLE_CHARS = 2000

# --- Cyrillic ---------------------------------------------------------------------------------
# Letters only Kazakh has among our Cyrillic languages. і is left out (Ukrainian and Belarusian
# use it all the time); ң, ө, ү are shared with Kyrgyz (and ө, ү with Mongolian).
_KAZAKH_OWN = re.compile(r"[әғқұһӘҒҚҰҺ]")
# Any Kazakh sentence uses some of these; lingua sometimes says kk for Ukrainian without them.
_KAZAKH_ANY = re.compile(r"[әғқңөұүһӘҒҚҢӨҰҮҺ]")
_KYRGYZ_LETTERS = re.compile(r"[ңөүҢӨҮ]")
# Tajik (ҷ ӣ ӯ ҳ) and Uzbek (ў ҳ) letters: such text may share ғ, қ with Kazakh but is not Kazakh.
_NOT_KAZAKH = re.compile(r"[ҷӣӯҳўҶӢӮҲЎ]")
_KYRGYZ_WORDS = frozenset(
    "жана менен үчүн болуп боюнча тарабынан кыргызстан кыргыз кыргызстандын өлкө өлкөнүн "
    "дагы жок эмес керек бирок ошондой азыркы жылы жөнүндө бир нече кийин эки ушул деди "
    "болот болгон айтты билдирди кабарлады тууралуу аркылуу мамлекеттик өкмөт өкмөтү".split()
)
_CYRILLIC_WORD = re.compile(r"[а-яёәғқңөұүһіїєґўјљњћђџѓќѕ]+")

# --- Latin Kazakh -----------------------------------------------------------------------------
# A token counts 1 when it is a Kazakh word, has a q not followed by u (Kazakh қ; English and
# French write q almost only as "qu"), ends in the Kazakh genitive with ń/ñ/n', or uses a 2017
# apostrophe letter other than o' g'; 0.5 when it only has o' g' (Uzbek writes them too) or a
# letter of the 2018/2021 alphabets (shared with Turkish, Azerbaijani, Spanish, Polish,
# Czech...). Common English, French, Turkish, Azerbaijani and Uzbek words count -1; Kazakh words
# those languages share (biz, olar, dedi) are not on the list. Kazakh when the net share of
# tokens reaches _KK_LATIN_SHARE and some token counts 1 (two in texts of three tokens or more,
# unless three others count 0.5).
_KK_LATIN_WORDS = frozenset(
    "jäne jáne ja'ne jane üşin úshin u'shin ushin bul būl osy bolyp bolıp boıynsha boiynsha "
    "boyynsha boıynşa boyınşa turaly týraly ty'raly tuwraly degen dep sondaı sondai "
    "búgin bügin bu'gin keıin keiin kei'in emes bıyl biyl bi'yl jyly sońǵy soñğy son'g'y "
    "ǵana ğana g'ana taǵy tağy tag'y ózara özara o'zara memlekettik eldiń eldiñ eldin' aıtty "
    "aitty ai'tty sóıledi söiledi so'i'ledi kezdesý kezdesu kezdesti arasyndaǵy arasyndağy "
    "arasyndag'y qazaqstan ortalyq".split()
)
_CONFUSER_WORDS = frozenset(
    # English, French
    "the and of to is was for on with that by at from this are were has have "
    "le la les des et du une est pour dans sur avec qui que au aux "
    # Turkish, Azerbaijani, Uzbek
    "ve ile için olarak olan daha çok gibi değil kadar sonra ama bu və ilə üçün edib edir "
    "va bilan uchun ham esa yil yilda bo'yicha bo'lib emas o'z".split()
)
_Q_NOT_U = re.compile(r"q(?!u)")
_KK_GENITIVE = re.compile(r"(?:n|d|t)(?:y|i|ı)(?:ń|ñ|n')$")
# 2017 alphabet: ә a', ғ g', ң n', ө o', ү u', у y', и/й i', ш s', ч c'. Word-initially we count
# only a' i' y' u' (French elides l' d' j' m' n' s' t' c' qu'; Uzbek writes o' g' too) and
# word-internally only where the apostrophe is not an English contraction ('s 't 're 've 'll 'd 'm).
_KK_2017 = re.compile(r"^[aiyu]'\w|\w[anusciy]'(?!(?:s|t|re|ve|ll|d|m)$)")
_KK_LETTERS = re.compile(r"[áǵńóúýūñäıöüşğ]|[og]'")
_KK_LATIN_SHARE = 0.3
_LATIN_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*'?")
_APOSTROPHES = str.maketrans({c: "'" for c in "’ʼ‘`´ʹ"})

# --- Arabic-script Kazakh ---------------------------------------------------------------------
# What we rely on: Kazakh tote jazu marks front-vowel words with the high hamza ٴ (U+0674, also
# precomposed in ٵ ٶ ٷ ٸ) and writes е, ұ/ү, у/в, ң as ە ۇ ۋ ڭ. Arabic and Persian use none of
# these (Persian's ی ک and Arabic's ة أ إ count against); Uyghur shares ە ۇ ۋ ڭ but not the high
# hamza, and has its own ې ۈ and the vowel carrier ئ; Sorani Kurdish shares ە but has ێ ڵ ڕ.
# ۆ is left out: Uyghur writes ö with it, but Kazakh writes в with it (توقاەۆ, Toqaev).
_AR_HIGH_HAMZA = re.compile("[\u0674-\u0678]")
_AR_KAZAKH = re.compile("[\u0674-\u0678\u06d5\u06c7\u06cb\u06ad]")
_AR_NOT_KAZAKH = re.compile("[\u06d0\u06c8\u0626\u06ce\u06b5\u0695\u06cc\u06a9\u0629\u0623\u0625]")


def _script_of(char: str) -> str:
    code = ord(char)
    if code < 0x0250 or 0x1E00 <= code <= 0x1EFF:
        return "latn"
    if 0x0400 <= code <= 0x052F:
        return "cyrl"
    if 0x0600 <= code <= 0x06FF or 0x0750 <= code <= 0x077F or 0xFB50 <= code <= 0xFEFF:
        return "arab"
    return "other"


def detect_script(text: str) -> str:
    """The script most letters are in: "cyrl", "latn", "arab", "other", or "none" (no letters)."""
    counts = Counter(_script_of(c) for c in text[:_SAMPLE_CHARS] if c.isalpha())
    return counts.most_common(1)[0][0] if counts else "none"


@lru_cache(maxsize=2)
def _detector(kazakh: bool = True) -> LanguageDetector:
    languages = [lang for lang in _LANGS if kazakh or lang != Language.KAZAKH]
    # lingua shares loaded models between detectors: the second one costs nothing.
    return (
        LanguageDetectorBuilder.from_languages(*languages).with_preloaded_language_models().build()
    )


def _lingua(sample: str) -> tuple[str, float]:
    # lingua rules out languages whose alphabet the text does not use, so Latin text is scored
    # over en and fr only and Cyrillic text over the Cyrillic set.
    values = _detector().compute_language_confidence_values(sample)
    if not values:
        return "other", 0.0
    if (
        values[0].language == Language.KAZAKH
        and len(sample) > 40
        and not _KAZAKH_ANY.search(sample)
    ):
        # lingua can score Ukrainian that has і but no Kazakh letter 1.0 Kazakh, 0.0 the rest.
        values = _detector(kazakh=False).compute_language_confidence_values(sample)
    return _LANGS[values[0].language], values[0].value


def _kazakh_latin(sample: str) -> float | None:
    """Net share of Kazakh-looking tokens in Latin text, or None when it is not Kazakh."""
    tokens = _LATIN_WORD.findall(sample.translate(_APOSTROPHES).lower())
    if not tokens:
        return None
    strong = weak = against = 0
    for token in tokens:
        if token in _CONFUSER_WORDS:
            against += 1
        elif (
            token in _KK_LATIN_WORDS
            or _Q_NOT_U.search(token)
            or _KK_GENITIVE.search(token)
            or _KK_2017.search(token)
        ):
            strong += 1
        elif _KK_LETTERS.search(token):
            weak += 1
    share = (strong + 0.5 * weak - against) / len(tokens)
    enough = strong >= min(2, len(tokens)) or (strong >= 1 and weak >= 3)
    if enough and share >= _KK_LATIN_SHARE:
        return share
    return None


def _kazakh_arabic(sample: str) -> float | None:
    """Share of Kazakh-only letters among the distinctive ones, or None when not Kazakh."""
    kazakh = len(_AR_KAZAKH.findall(sample))
    against = len(_AR_NOT_KAZAKH.findall(sample))
    # Without a high hamza (a short headline of back-vowel words or words with ە ك گ, which need
    # none), ask for more Kazakh letters and no foreign one at all.
    if _AR_HIGH_HAMZA.search(sample):
        if kazakh < 2 or against * 4 > kazakh:
            return None
    elif kazakh < 3 or against:
        return None
    return kazakh / (kazakh + against)


def _cyrillic(sample: str) -> tuple[str, float]:
    lowered = sample.lower()
    # Letter evidence must also be a share of the text (Kazakh and Kyrgyz letters run at several
    # per cent; we ask for 2%): a Russian article naming Жаңаөзен or Тоқаев stays Russian.
    letters = sum(_script_of(c) == "cyrl" for c in sample if c.isalpha())
    enough = max(3, letters // 50)
    own = len(_KAZAKH_OWN.findall(sample))
    kyrgyz_letters = len(_KYRGYZ_LETTERS.findall(sample))
    kyrgyz_words = sum(w in _KYRGYZ_WORDS for w in _CYRILLIC_WORD.findall(lowered))
    if own == 0 and kyrgyz_letters >= enough - 1 and ("ң" in lowered or kyrgyz_words >= 2):
        return "ky", min(0.99, 0.6 + 0.1 * kyrgyz_words)
    code, confidence = _lingua(sample)
    if _NOT_KAZAKH.search(sample):
        return ("other", confidence) if code == "kk" else (code, confidence)
    # lingua sometimes underweights Kazakh letters on short text full of Russian loanwords.
    if code != "kk" and own >= enough:
        return "kk", max(confidence, 0.5 + min(own, 20) / 40)
    return code, confidence


def detect(text: str) -> tuple[str, float]:
    """(language code, confidence) for a text; ("other", c) when unsure or in no known set."""
    sample = text[:_SAMPLE_CHARS]
    script = detect_script(sample)
    if script == "none":
        return "other", 0.0
    if script == "cyrl":
        code, confidence = _cyrillic(sample)
    elif script == "latn":
        share = _kazakh_latin(sample)
        if share is not None:
            code, confidence = "kk", min(0.99, 0.5 + share)
        else:
            code, confidence = _lingua(sample)
    elif script == "arab":
        kazakh = _kazakh_arabic(sample)
        code, confidence = ("kk", min(0.99, 0.5 + kazakh / 2)) if kazakh else ("other", 0.5)
    else:
        code, confidence = "other", 0.5
    if confidence < MIN_CONFIDENCE and len(sample) > 40:
        return "other", round(float(confidence), 4)
    return code, round(float(confidence), 4)


def detect_many(texts: list[str]) -> list[tuple[str, float]]:
    return [detect(t) for t in texts]
