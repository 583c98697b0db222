"""Classification benchmark: the ``cstowatch classify`` path against the bare encoder.

    .venv/bin/python bench/classify.py [--small]      # 2,000 passages (--small: 256)

Steps:

1. write N passages as JSON lines ``{id, text}``: the texts of ``nlp/data/stance_train.jsonl``
   and ``stance_dev.jsonl``, shuffled (fixed seed) and cycled until N;
2. time the model load separately: ``nlp.stance.load_model()`` (encoder + head, cached per
   process) and the lingua language detector (``nlp.langid``, cached too);
3. call the very function behind ``cstowatch classify`` in this process
   (``flows.cli.classify(input=..., output=..., model=None, batch=256)``), once per 256-passage
   file (the CLI's own --batch, so the same predict() calls as one big file). Both caches are
   warm, so this is the classify path *without* model load: read JSONL, ``StanceModel.predict``
   (encoder + head + relevance gate), ``nlp.langid.detect`` per passage, write JSONL. Each
   chunk is paired with ``get_encoder().embed`` on the same texts, back to back, so that the
   load of other jobs on the shared machine hits both alike;
4. time the raw encoder on all texts at once, ``get_encoder().embed(texts)``: the ceiling
   (one global length sort, so less padding than per 256-chunk; the padding is counted
   exactly from the token lengths);
5. profile one chunk of the classify path with cProfile.

Figures: passages/s of both, their ratio (target >= 0.8) directly and as a load-robust
estimate (paired ratio x padding factor), load times, peak RSS (ru_maxrss).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def passages(n: int) -> list[dict]:
    texts: list[str] = []
    for name in ("stance_train.jsonl", "stance_dev.jsonl"):
        with (ROOT / "nlp" / "data" / name).open(encoding="utf-8") as handle:
            texts += [json.loads(line)["text"] for line in handle if line.strip()]
    random.Random(7).shuffle(texts)
    return [{"id": f"p{i:05d}", "text": texts[i % len(texts)]} for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="256 passages instead of 2,000")
    parser.add_argument("-n", type=int, default=None, help="number of passages")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    n = args.n or (256 if args.small else 2000)
    print(f"load average at start: {load()}", flush=True)

    import torch

    started = time.perf_counter()
    from flows.cli import classify
    from nlp.encoder import get_encoder
    from nlp.langid import _detector
    from nlp.stance import load_model
    import_s = time.perf_counter() - started

    started = time.perf_counter()
    model = load_model(None)
    model_s = time.perf_counter() - started
    started = time.perf_counter()
    _detector()
    langid_s = time.perf_counter() - started
    rss_loaded = rss_mb()
    print(f"imports {import_s:.1f} s, stance model load {model_s:.1f} s, "
          f"lingua load {langid_s:.1f} s, torch threads {torch.get_num_threads()}", flush=True)

    rows = passages(n)
    texts = [r["text"] for r in rows]
    encoder = get_encoder()
    tokens = encoder.count_tokens(texts, "query: ")
    truncated = sum(1 for t in tokens if t > 256)
    mean_tokens = sum(min(t, 256) for t in tokens) / len(tokens)
    encoder.embed(texts[:32])  # warm-up: first torch call allocates / picks kernels


    def padded_tokens(lengths: list[int], bs: int = 32) -> int:
        """Tokens the encoder computes (batch x longest) with Encoder.embed's length sort."""
        ordered = sorted(min(t, 256) for t in lengths)
        return sum(len(ordered[s : s + bs]) * ordered[s : s + bs][-1]
                   for s in range(0, len(ordered), bs))

    chunk = 256  # the CLI's default --batch: predict() and so embed() see 256 passages a call
    spans = [(s, min(n, s + chunk)) for s in range(0, n, chunk)]
    pad_global = padded_tokens(tokens)
    pad_chunked = sum(padded_tokens(tokens[a:b]) for a, b in spans)

    with tempfile.TemporaryDirectory(prefix="bench-classify-") as tmp:
        dst = Path(tmp) / "out.jsonl"
        files = []
        for a, b in spans:
            path = Path(tmp) / f"in-{a:05d}.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[a:b]),
                            encoding="utf-8")
            files.append(path)

        # The machine is shared: wall times swing 2x with other jobs. So the classify path and
        # the encoder run *paired*, on the same 256-passage chunk back to back (order
        # alternating), and the ratio is taken over the pairs. Calling the CLI function per
        # chunk file is what the CLI does per --batch on one big file.
        loads = [load()]
        pairs: list[tuple[float, float]] = []
        print(f"paired runs over {len(spans)} chunks of {chunk} (load {loads[0]}) ...", flush=True)
        for k, ((a, b), path) in enumerate(zip(spans, files, strict=True)):
            order = ("classify", "embed") if k % 2 == 0 else ("embed", "classify")
            took = {}
            for what in order:
                started = time.perf_counter()
                if what == "classify":
                    classify(input=path, output=dst, model=None, batch=chunk)
                else:
                    encoder.embed(texts[a:b])
                took[what] = time.perf_counter() - started
            assert sum(1 for _ in dst.open(encoding="utf-8")) == b - a
            pairs.append((took["classify"], took["embed"]))
            print(f"  chunk {k + 1}/{len(spans)}: classify {took['classify']:.1f} s, "
                  f"embed {took['embed']:.1f} s (load {load()})", flush=True)
        classify_s = sum(c for c, _ in pairs)
        embed_chunked_s = sum(e for _, e in pairs)
        rss_classify = rss_mb()

        loads.append(load())
        print(f"raw encoder on all {n:,} passages at once (load {loads[-1]}) ...", flush=True)
        started = time.perf_counter()
        encoder.embed(texts)
        embed_s = time.perf_counter() - started
        loads.append(load())

        # the parts outside the encoder, timed alone
        from nlp import lexicon
        from nlp.langid import detect

        started = time.perf_counter()
        for t in texts:
            detect(t)
        langid_total_s = time.perf_counter() - started
        started = time.perf_counter()
        for t in texts:
            lexicon.features(t)
        lexicon_total_s = time.perf_counter() - started

        profile_text = ""
        if not args.no_profile:  # one chunk: where does the time of the classify path go?
            prof = cProfile.Profile()
            prof.enable()
            classify(input=files[0], output=dst, model=None, batch=chunk)
            prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
            profile_text = buf.getvalue()
    rss_peak = rss_mb()

    if profile_text:
        print(f"\ncProfile of the classify path on {spans[0][1]} passages (tottime, top 12):")
        print("\n".join(line for line in profile_text.splitlines() if line.strip())[:5000])

    paired = embed_chunked_s / classify_s
    ratios = sorted(e / c for c, e in pairs)
    pad_factor = pad_global / pad_chunked
    rate_c, rate_e = n / classify_s, n / embed_s
    print(f"\nload average: {' → '.join(loads)}; at end: {load()}")
    print(f"\n| measure ({n:,} passages, mean {mean_tokens:.0f} tokens, {truncated} truncated "
          f"at 256; {os.cpu_count()} cores; load avg {loads[0]} → {loads[-1]}) | result | "
          "target |")
    print("| --- | --- | --- |")
    table = [
        ("`cstowatch classify` path in-process (`flows.cli.classify` per 256-passage file, "
         "model + lingua already loaded)",
         f"{classify_s:.1f} s = **{rate_c:.1f} passages/s**", ""),
        ("raw encoder `get_encoder().embed(texts)`, all at once (ceiling)",
         f"{embed_s:.1f} s = **{rate_e:.1f} passages/s**", ""),
        ("ratio, direct (wall times taken minutes apart on a shared machine)",
         f"{rate_c / rate_e:.2f}", ">= 0.8"),
        ("encoder on the same 256-passage chunks, paired with the classify runs",
         f"{embed_chunked_s:.1f} s = {n / embed_chunked_s:.1f} passages/s", ""),
        ("ratio classify path / encoder on the same chunks, paired (overhead outside the "
         "encoder)", f"**{paired:.2f}** (per chunk: median {ratios[len(ratios) // 2]:.2f}, "
         f"range {ratios[0]:.2f}-{ratios[-1]:.2f})", ""),
        ("padded tokens the encoder computes: all at once / per 256-chunk",
         f"{pad_global:,} / {pad_chunked:,} = {pad_factor:.3f} (real tokens "
         f"{sum(min(t, 256) for t in tokens):,})", ""),
        ("**ratio vs the ceiling, load-robust estimate** (paired ratio × padding factor)",
         f"**{paired * pad_factor:.2f}**", ">= 0.8"),
        ("`nlp.langid.detect` alone", f"{langid_total_s:.2f} s "
         f"({1000 * langid_total_s / n:.2f} ms/passage)", ""),
        ("`nlp.lexicon.features` alone", f"{lexicon_total_s:.2f} s "
         f"({1000 * lexicon_total_s / n:.2f} ms/passage)", ""),
        ("model load (`load_model()`: encoder + head)", f"{model_s:.1f} s", ""),
        ("lingua detector load (first `detect`)", f"{langid_s:.1f} s", ""),
        ("imports (flows.cli, nlp, torch, transformers)", f"{import_s:.1f} s", ""),
        ("peak RSS after load / after the classify runs / at end",
         f"{rss_loaded:,.0f} / {rss_classify:,.0f} / {rss_peak:,.0f} MB", ""),
    ]
    for name, value, target in table:
        print(f"| {name} | {value} | {target} |")
    _ = model


if __name__ == "__main__":
    main()
