"""A multilingual lexicon of the topic: the CSTO, its actors, places and events.

Used as one feature of the relevance gate (the other is embedding similarity to topic
prototypes). Patterns are lower-case regular expressions matched on lower-cased text; stems end
early so that Russian and Kazakh inflections match (ОДКБ, ОДКБ-шных; Тоқаев, Тоқаевтың).
"""

from __future__ import annotations

import re
from functools import lru_cache

TERMS: dict[str, list[str]] = {
    "csto": [
        r"\bcsto\b",
        r"\bodkb\b",
        r"\bодкб",
        r"\bұқшұ",
        r"\botsc\b",
        r"collective security treaty",
        r"договор[а-я]* о коллективной безопасности",
        r"organisation du traité de sécurité collective",
        r"ұжымдық қауіпсіздік",
        r"traité de sécurité collective",
    ],
    "actors": [
        r"tokayev",
        r"токаев",
        r"тоқаев",
        r"tokaïev",
        r"tasmagambetov",
        r"тасмагамбетов",
        r"тасмағамбетов",
        r"vassilenko",
        r"василенко",
        r"lavrov",
        r"лавров",
        r"putin",
        r"путин",
        r"poutine",
        r"medvedev",
        r"медведев",
        r"zatulin",
        r"затулин",
        r"zatouline",
        r"keosayan",
        r"кеосаян",
        r"keossaïan",
        r"nazarbayev",
        r"назарбаев",
        r"nazarbaïev",
        r"kremlin",
        r"кремл",
        r"akorda",
        r"акорд",
        r"ақорда",
        r"secretary general",
        r"генсек",
        r"генеральный секретарь",
        r"бас хатшы",
        r"secrétaire général",
    ],
    "places": [
        r"kazakhstan",
        r"казахстан",
        r"қазақстан",
        r"astana",
        r"астан",
        r"almaty",
        r"алматы",
        r"russia",
        r"росси",
        r"ресей",
        r"russie",
        r"moscow",
        r"москв",
        r"мәскеу",
        r"moscou",
        r"baikonur",
        r"байконур",
        r"байқоңыр",
        r"baïkonour",
        r"ukrain",
        r"украин",
        r"украина",
        r"арме",
        r"armenia",
        r"arménie",
        r"donbas",
        r"донбас",
        r"luhansk",
        r"луганск",
        r"donetsk",
        r"донецк",
    ],
    "security": [
        r"peacekeep",
        r"миротвор",
        r"бітімгер",
        r"maintien de la paix",
        r"troops",
        r"войск",
        r"әскер",
        r"troupes",
        r"sanction",
        r"санкци",
        r"exercise",
        r"учени",
        r"жаттығу",
        r"exercices",
        r"sovereign",
        r"суверен",
        r"егемен",
        r"souverain",
        r"alliance",
        r"союз",
        r"одақ",
        r"allié",
        r"allied",
        r"союзн",
        r"одақтас",
        r"eaeu",
        r"еаэс",
        r"eurasian economic union",
        r"multi-vector",
        r"многовектор",
        r"көпвекторлы",
        r"multivectoriel",
        r"january 2022",
        r"январ[а-я]* 2022",
        r"қаңтар",
        r"janvier 2022",
    ],
}


@lru_cache(maxsize=1)
def _compiled() -> dict[str, re.Pattern[str]]:
    return {group: re.compile("|".join(terms)) for group, terms in TERMS.items()}


def hits(text: str) -> dict[str, int]:
    """Number of distinct matches per lexicon group."""
    lowered = text.lower()
    return {group: len(set(pattern.findall(lowered))) for group, pattern in _compiled().items()}


def features(text: str) -> list[float]:
    """[csto, actors, places, security] hit counts, squashed: more hits matter less and less."""
    counts = hits(text)
    return [min(counts[g], 4) / 4.0 for g in TERMS]
