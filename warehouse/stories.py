"""Story clusters: near-duplicate articles (wire copy republished, light edits) share a story_id.

MinHash over word 3-gram shingles with an LSH index (datasketch). Thresholds: a Jaccard
similarity of about 0.6 between shingle sets catches a republished wire with a new lead and a
changed sentence while keeping two different reports on the same event apart.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from datasketch import MinHash, MinHashLSH

NUM_PERM = 64
SCHEME = "affine32"  # stored signatures depend on it: changing it needs a migration
THRESHOLD = 0.6
CANDIDATE_THRESHOLD = 0.4
_WORD = re.compile(r"\w+", re.UNICODE)


def content_hash(text: str) -> str:
    """SHA-256 of the text with case and whitespace folded: exact-duplicate detection."""
    folded = " ".join(_WORD.findall(text.lower()))
    return hashlib.sha256(folded.encode("utf-8")).hexdigest()


def shingles(text: str, size: int = 3) -> set[bytes]:
    words = _WORD.findall(text.lower())
    if len(words) < size:
        return {" ".join(words).encode("utf-8")} if words else set()
    return {" ".join(words[i : i + size]).encode("utf-8") for i in range(len(words) - size + 1)}


_TEMPLATE = MinHash(num_perm=NUM_PERM, seed=1, scheme=SCHEME)  # permutations cost ~1 ms to build


def signature(text: str) -> np.ndarray:
    minhash = _TEMPLATE.copy()
    minhash.clear()
    minhash.update_batch(list(shingles(text)))
    return minhash.hashvalues.astype(np.uint64)


def _as_minhash(values: np.ndarray | list[int]) -> MinHash:
    return MinHash(
        num_perm=NUM_PERM,
        seed=1,
        scheme=SCHEME,
        hashvalues=np.asarray(values, dtype=np.uint64),
        permutations=_TEMPLATE.permutations,
    )


class StoryIndex:
    """An LSH index of known articles that assigns each new article to a story.

    The LSH bands are tuned for a lower similarity (``CANDIDATE_THRESHOLD``) than we accept, so
    that a pair at the acceptance threshold is almost always a candidate (with 64 permutations
    banded for 0.6, a 0.6-similar pair is only found 38% of the time); each candidate is then
    accepted on its estimated Jaccard similarity.
    """

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=CANDIDATE_THRESHOLD, num_perm=NUM_PERM)
        self.story_of: dict[str, str] = {}
        self.signatures: dict[str, MinHash] = {}

    def add(self, article_id: str, story_id: str, values: np.ndarray | list[int]) -> None:
        if article_id in self.story_of:
            return
        minhash = _as_minhash(values)
        self.lsh.insert(article_id, minhash)
        self.story_of[article_id] = story_id
        self.signatures[article_id] = minhash

    def assign(self, article_id: str, values: np.ndarray | list[int]) -> str:
        """The story of the closest known match, or a new story named after this article."""
        probe = _as_minhash(values)
        matches = sorted(
            m for m in self.lsh.query(probe) if probe.jaccard(self.signatures[m]) >= self.threshold
        )
        story = min((self.story_of[m] for m in matches), default=article_id)
        self.add(article_id, story, values)
        return story
