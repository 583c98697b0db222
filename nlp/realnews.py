"""The real-news labelled set: a manifest of facts about real passages, never their sentences.

The repository keeps, for each labelled passage of a real article, its URL, outlet, language,
date, our label, confidence and rationale, the paragraph's position, a SHA-256 of its
normalised text and (in a companion ``.npz``) its e5 embedding in float16. The texts
themselves live only in the git-ignored ``data/`` folder, rebuilt by ``cstowatch data hydrate``.

Everything here is pure: rows in, rows out.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import numpy as np

LABELS = ("pro_russian", "neutral", "pro_kazakh")
DEFAULT_DIR = Path(__file__).resolve().parent / "data" / "realnews"
MANIFEST_NAME = "manifest.jsonl"
EMBEDDINGS_NAME = "embeddings.npz"


def normalise_passage(text: str) -> str:
    """The form a passage is hashed in: NFKC, case-folded, whitespace collapsed.

    Case-folding and whitespace collapsing make the hash survive the small differences between a
    stored copy of a page and a fresh extraction of it (line breaks, non-breaking spaces).
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def passage_hash(text: str) -> str:
    """SHA-256 (hex) of the normalised passage."""
    return hashlib.sha256(normalise_passage(text).encode("utf-8")).hexdigest()


def find_passages(paragraphs: Iterable[str], wanted: set[str]) -> dict[str, str]:
    """Map each wanted hash to the paragraph of ``paragraphs`` that has it."""
    found: dict[str, str] = {}
    for paragraph in paragraphs:
        digest = passage_hash(paragraph)
        if digest in wanted and digest not in found:
            found[digest] = paragraph
    return found


def read_manifest(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from exc
    return rows


# --------------------------------------------------------------------------- building

# What a committed manifest row holds; "text" is deliberately absent.
MANIFEST_FIELDS = (
    "id",
    "url",
    "outlet",
    "outlet_country",
    "outlet_type",
    "lang",
    "script",
    "date",
    "para_index",
    "chars",
    "sha256",
    "relevant",
    "label",
    "confidence",
    "rationale",
    "topic",
    "first_label",  # on rows coded twice: the first coder's code (off_topic for irrelevant)
    "second_label",  # on rows coded twice: the blind second coder's code
    "adjudicated",  # the two coders disagreed and the label was settled on a third reading
    "split",
)
MIN_CHARS, MAX_CHARS = 60, 2000


class ManifestError(ValueError):
    """A manifest, or a labelled row for one, that cannot be used; the message says where."""


def _checked(row: dict, where: str) -> dict:
    text = row.get("text") or ""
    if not MIN_CHARS <= len(text) <= MAX_CHARS:
        raise ManifestError(f"{where}: text has {len(text)} characters")
    relevant = bool(row.get("relevant"))
    label = row.get("label") if relevant else None
    if relevant and label not in LABELS:
        raise ManifestError(f"{where}: label {label!r} is not one of {LABELS}")
    if not row.get("url") or not row.get("outlet") or not row.get("lang"):
        raise ManifestError(f"{where}: url, outlet and lang are required")
    return {**row, "relevant": relevant, "label": label}


def dedupe(rows: list[dict]) -> tuple[list[dict], int]:
    """Drop repeated passages (same normalised text, e.g. a syndicated wire): the first stays."""
    seen: set[str] = set()
    kept = []
    for row in rows:
        digest = passage_hash(row["text"])
        if digest not in seen:
            seen.add(digest)
            kept.append(row)
    return kept, len(rows) - len(kept)


def outlet_of(row: dict) -> str:
    """The outlet as its registered domain (kaz.inform.kz and en.inform.kz are one outlet), so
    that the train/dev split keeps an outlet's editions on one side."""
    from courlan import extract_domain

    return extract_domain(row["url"]) or str(row["outlet"]).lower().removeprefix("www.")


def manifest_row(row: dict, split: str) -> dict:
    """The committed form of a labelled row: facts and numbers, no text."""
    out = {key: row.get(key) for key in MANIFEST_FIELDS}
    out.update(
        first_label=row.get("first_label"),
        second_label=row.get("second_label"),
        adjudicated=bool(row.get("adjudicated", False)),
        id=passage_hash(row["text"])[:16],
        chars=len(row["text"]),
        sha256=passage_hash(row["text"]),
        split=split,
        outlet=outlet_of(row),
        confidence=round(float(row.get("confidence") or 0.0), 2),
    )
    return out


MIN_DEV_RELEVANT = 100


def dev_targets(rows: list[dict], dev_share: float) -> dict[str, float]:
    """Relevant dev rows wanted per language: ``dev_share`` of them, and at least
    ``MIN_DEV_RELEVANT`` where the language has enough (never more than 45%)."""
    relevant: dict[str, int] = {}
    for row in rows:
        relevant[row["lang"]] = relevant.get(row["lang"], 0) + bool(row["relevant"])
    return {
        lang: max(dev_share * n, min(MIN_DEV_RELEVANT + 2, 0.45 * n))
        for lang, n in relevant.items()
    }


def outlet_split(rows: list[dict], dev_share: float = 0.27, seed: int = 0) -> dict[str, str]:
    """Assign whole outlets to ``dev`` until each language has its target of relevant rows
    there (:func:`dev_targets`); off-topic rows follow their outlet.

    Outlets are shuffled with the seed and taken while their main language still needs dev
    rows, so no outlet is on both sides. Returns outlet -> "train" | "dev".
    """
    rng = np.random.default_rng(seed)
    by_outlet: dict[str, list[dict]] = {}
    for row in rows:
        by_outlet.setdefault(outlet_of(row), []).append(row)
    outlets = sorted(by_outlet)
    rng.shuffle(outlets)
    target = dev_targets(rows, dev_share)
    in_dev = dict.fromkeys(target, 0)
    split = {}
    for outlet in outlets:
        counts: dict[str, int] = {}
        for row in by_outlet[outlet]:
            counts[row["lang"]] = counts.get(row["lang"], 0) + bool(row["relevant"])
        main = max(counts, key=counts.__getitem__)
        # an outlet too big for what its language still needs stays in train
        fits = in_dev[main] + counts[main] <= target[main] * 1.05
        if fits and in_dev[main] < target[main]:
            split[outlet] = "dev"
            for lang, n in counts.items():
                in_dev[lang] += n
        else:
            split[outlet] = "train"
    return split


def balance(rows: list[dict], low: float = 0.25, high: float = 0.45) -> tuple[list[dict], int]:
    """Bring every language's label shares within [low, high] by dropping the least confident
    rows of its largest label, one at a time (off-topic rows stay). Dropping from the largest
    label raises every other share, so this ends, at worst with equal counts. Returns the rows
    kept and how many were dropped."""
    dropped: set[int] = set()
    for lang in sorted({r["lang"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["lang"] == lang and r["relevant"]]
        while idx:
            counts = {label: sum(rows[i]["label"] == label for i in idx) for label in LABELS}
            if all(low <= n / len(idx) <= high for n in counts.values()):
                break
            top = max(counts, key=counts.__getitem__)
            if counts[top] == min(counts.values()):
                break
            victim = min(
                (i for i in idx if rows[i]["label"] == top),
                key=lambda i: (float(rows[i].get("confidence") or 0.0), i),
            )
            idx.remove(victim)
            dropped.add(victim)
    return [r for i, r in enumerate(rows) if i not in dropped], len(dropped)


def build_manifest(
    raw: list[dict], dev_share: float = 0.27, seed: int = 0, balanced: bool = False
) -> list[dict]:
    """Labelled rows with texts -> manifest rows (checked, deduplicated, optionally balanced,
    split by outlet)."""
    checked = [_checked(row, f"row {n}") for n, row in enumerate(raw, 1)]
    kept, _ = dedupe(checked)
    if balanced:
        kept, _ = balance(kept)
    split = outlet_split(kept, dev_share, seed)
    return [manifest_row(row, split[outlet_of(row)]) for row in kept]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write JSON lines atomically: a crash mid-write leaves the previous file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as fh:
        tmp = Path(fh.name)
        try:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        except BaseException:
            fh.close()
            tmp.unlink(missing_ok=True)
            raise
    os.replace(tmp, path)


def save_embeddings(path: Path, ids: list[str], embeddings: np.ndarray, lex: np.ndarray) -> None:
    """float16 embeddings and the lexicon features of the relevance gate, keyed by row id."""
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(
        tmp, ids=np.array(ids), embeddings=embeddings.astype(np.float16), lex=lex.astype(np.float16)
    )
    tmp.replace(path)


def load(directory: Path = DEFAULT_DIR) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Manifest rows with their embeddings and lexicon features (float32), in manifest order."""
    rows = read_manifest(directory / MANIFEST_NAME)
    with np.load(directory / EMBEDDINGS_NAME) as data:
        index = {str(i): n for n, i in enumerate(data["ids"])}
        missing = [r["id"] for r in rows if r["id"] not in index]
        if missing:
            raise ManifestError(
                f"{len(missing)} manifest rows have no embedding, e.g. {missing[0]}"
            )
        order = [index[r["id"]] for r in rows]
        return (
            rows,
            data["embeddings"][order].astype(np.float32),
            data["lex"][order].astype(np.float32),
        )


def read_raw(paths: list[Path]) -> list[dict]:
    """Labelled rows with their texts (the labellers' files under the git-ignored data/)."""
    rows = []
    for path in paths:
        rows.extend(read_manifest(path))
    return rows


def build(
    raw_paths: list[Path],
    out_dir: Path = DEFAULT_DIR,
    texts_path: Path = Path("data/realnews/texts.jsonl"),
    *,
    second_paths: list[Path] | None = None,
    adjudicated_paths: list[Path] | None = None,
    exclude_urls: frozenset[str] = frozenset(),
    balanced: bool = False,
    encoder_dir: str | None = None,
    dev_share: float = 0.27,
    log=print,  # type: ignore[no-untyped-def]
) -> list[dict]:
    """Labelled rows with texts -> committed manifest + embeddings, texts kept under data/."""
    from nlp.encoder import get_encoder
    from nlp.stance import lexicon_features

    raw = [r for r in read_raw(raw_paths) if r.get("url") not in exclude_urls]
    if second_paths:
        second = read_raw(second_paths)
        settled = read_raw(adjudicated_paths or [])
        raw = apply_second_coding(raw, second, settled)
    rows = build_manifest(raw, dev_share, balanced=balanced)
    text_of = {passage_hash(r["text"]): r["text"] for r in raw}
    texts = [text_of[r["sha256"]] for r in rows]
    log(f"{len(raw)} labelled rows -> {len(rows)} passages after de-duplication; embedding them")
    embeddings = get_encoder(encoder_dir).embed(texts)
    lex = lexicon_features(texts)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / MANIFEST_NAME, rows)
    save_embeddings(out_dir / EMBEDDINGS_NAME, [r["id"] for r in rows], embeddings, lex)
    write_jsonl(
        texts_path,
        [
            {"id": r["id"], "sha256": r["sha256"], "text": t}
            for r, t in zip(rows, texts, strict=True)
        ],
    )
    return rows


def read_texts(path: Path, rows: list[dict]) -> list[str | None]:
    """Hydrated texts aligned with manifest rows (None where a text is missing or changed)."""
    if not path.exists():
        return [None] * len(rows)
    by_hash = {r["sha256"]: r["text"] for r in read_manifest(path) if r.get("text")}
    return [by_hash.get(r["sha256"]) for r in rows]


# --------------------------------------------------------------------------- second coding

OFF_TOPIC = "off_topic"
CODES = (*LABELS, OFF_TOPIC)


def code_of(row: dict) -> str:
    """One code per row for agreement: the stance label, or off_topic."""
    return row["label"] if row.get("relevant") else OFF_TOPIC


def second_sample(rows: list[dict], share: float = 0.15, seed: int = 1) -> list[dict]:
    """A blind sample for the second coder, stratified by language: id and text only."""
    rng = np.random.default_rng(seed)
    by_lang: dict[str, list[dict]] = {}
    for row in rows:
        by_lang.setdefault(row["lang"], []).append(row)
    sample: list[dict] = []
    for lang in sorted(by_lang):
        group = by_lang[lang]
        take = rng.choice(len(group), size=max(1, round(share * len(group))), replace=False)
        sample.extend(
            {"key": passage_hash(group[i]["text"]), "lang": lang, "text": group[i]["text"]}
            for i in sorted(take)
        )
    return sample


def agreement(first: list[str], second: list[str]) -> dict:
    """Cohen's kappa over the four codes, and over stance where both coders saw a stance."""
    from sklearn.metrics import cohen_kappa_score

    both = [(a, b) for a, b in zip(first, second, strict=True) if OFF_TOPIC not in (a, b)]
    return {
        "n": len(first),
        "agreement": float(np.mean([a == b for a, b in zip(first, second, strict=True)])),
        "kappa": float(cohen_kappa_score(first, second, labels=list(CODES))),
        "n_stance": len(both),
        "kappa_stance": float(
            cohen_kappa_score([a for a, _ in both], [b for _, b in both], labels=list(LABELS))
        ),
    }


def apply_second_coding(
    raw: list[dict], second: list[dict], adjudicated: list[dict] | None = None
) -> list[dict]:
    """Raw rows with the blind second coder's code (``second_label``) and, where the two
    disagreed and a third reading settled it, the settled code as the row's label."""
    second_of = {r["key"]: r["code"] for r in second}
    settled = {r["key"]: r["code"] for r in adjudicated or []}
    out = []
    for row in raw:
        key = passage_hash(row["text"])
        row = dict(row)
        if key in second_of:
            row["first_label"] = code_of(row)
            row["second_label"] = second_of[key]
            if second_of[key] != code_of(row) and key in settled:
                code = settled[key]
                if code not in CODES:
                    raise ManifestError(f"adjudicated code {code!r} is not one of {CODES}")
                row["relevant"] = code != OFF_TOPIC
                row["label"] = None if code == OFF_TOPIC else code
                row["adjudicated"] = True
        out.append(row)
    return out
