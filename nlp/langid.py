"""Language identification with lingua, restricted to the languages we monitor and their confusers.

We score en, ru, kk and fr, plus the close Cyrillic confusers lingua knows (uk, be, mn). lingua has
no Kyrgyz or Tajik model; such text comes out as its nearest neighbour with low confidence and is
then reported as "other". Anything below ``MIN_CONFIDENCE`` is "other" too.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

MONITORED = ("en", "ru", "kk", "fr")
_LANGS = {
    Language.ENGLISH: "en",
    Language.RUSSIAN: "ru",
    Language.KAZAKH: "kk",
    Language.FRENCH: "fr",
    Language.UKRAINIAN: "uk",
    Language.BELARUSIAN: "be",
    Language.MONGOLIAN: "mn",
}
MIN_CONFIDENCE = 0.5
# Letters that Kazakh has and Russian lacks: a strong, cheap signal lingua sometimes underweights
# on short Kazakh text full of Russian loanwords.
_KAZAKH_LETTERS = re.compile(r"[әғқңөұүһіӘҒҚҢӨҰҮҺІ]")


@lru_cache(maxsize=1)
def _detector() -> LanguageDetector:
    return LanguageDetectorBuilder.from_languages(*_LANGS).with_preloaded_language_models().build()


def detect(text: str) -> tuple[str, float]:
    """(language code, confidence) for a text; ("other", c) when unsure or unmonitored."""
    sample = text[:2000]
    if not sample.strip():
        return "other", 0.0
    values = _detector().compute_language_confidence_values(sample)
    if not values:
        return "other", 0.0
    best = values[0]
    code, confidence = _LANGS[best.language], best.value
    if code == "ru" and len(_KAZAKH_LETTERS.findall(sample)) >= 3:
        kk = next((v.value for v in values if v.language == Language.KAZAKH), 0.0)
        code, confidence = "kk", max(kk, confidence)
    if confidence < MIN_CONFIDENCE and len(sample) > 40:
        return "other", confidence
    return code, round(float(confidence), 4)


def detect_many(texts: list[str]) -> list[tuple[str, float]]:
    return [detect(t) for t in texts]
