"""The parity fixture's deterministic synthetic weights, pure numpy (our implementation).

The official network was recorded with synthetic weights that depend only on each official
state_dict key's name, its shape and one integer seed (``fill_seed`` in the fixture, 20240716
for case A). `fill_official(shapes, seed)` regenerates them, so `taptr parity` can fill our
network through the official key map (`taptr_ros.model.checkpoint`) without any file from the
fixture's folder other than the key list.

Rules, as written in the fixture's README ("Synthetic weights"):

* Canonical name: a key starting with ``transformer.decoder.bbox_embed.`` or
  ``transformer.decoder.class_embed.`` drops the leading ``transformer.decoder.``; these 40
  aliases are the same tensors as ``bbox_embed.*`` / ``class_embed.*`` and get identical values.
* Stream: SplitMix64 with initial state ``(seed * 2**32 + crc32(canonical name)) mod 2**64``.
  Output k (k = 1, 2, ...) is ``mix(state0 + k * 0x9E3779B97F4A7C15)``; it becomes the uniform
  ``((out >> 11) + 0.5) / 2**53`` in (0, 1).
* Normals: a tensor of n elements takes 2n uniforms u; in float64,
  ``z_i = sqrt(-2 ln u_i) * cos(2 pi u_{n+i})`` for i < n, in C (row-major) order of the shape.
* Value, by the canonical name (first rule that applies), then cast to float32:
    ``*running_var`` -> 1 + 0.1|z|;  ``*running_mean`` -> 0.1 z;  ``*level_embed`` -> 0.1 z;
    ``*bias`` (incl. ``in_proj_bias``) -> 0.02 z;  1-D ``*weight`` -> 1 + 0.1 z;
    ``*weight`` with >= 2 dims (Linear, Conv, ``in_proj_weight``) -> gain z / sqrt(fan_in),
    fan_in = product of all dims but the first, gain from `GAINS` (first substring found).

Shapes: `read_shapes_tsv` reads the official key list (``key<TAB>(d0, d1, ...)`` per line, 614
keys for ``taptrv2``); `verify_checksums` checks filled arrays against the fixture's
``weights_checksum_caseA.tsv`` (per key: shape, float64 sum, sum of squares, first value).
"""

from __future__ import annotations

import math
import os
import zlib

import numpy as np

GAINS: tuple[tuple[str, float], ...] = (
    ("backbone.0.body.", 1.2),
    ("class_embed.", 6.0),
    ("bbox_embed.", 0.5),
    ("sampling_offsets", 0.5),
)
ALIAS_PREFIX = "transformer.decoder."
ALIASED = ("bbox_embed.", "class_embed.")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_53 = float(1 << 53)


def canonical_name(key: str) -> str:
    """The name a key's stream is seeded from (decoder head aliases lose ``transformer.decoder.``)."""
    rest = key[len(ALIAS_PREFIX):]
    if key.startswith(ALIAS_PREFIX) and rest.startswith(ALIASED):
        return rest
    return key


def splitmix64(state0: int, count: int) -> np.ndarray:
    """Outputs 1..count of SplitMix64 started at `state0`, as uint64."""
    steps = np.arange(1, count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = np.uint64(state0 % (1 << 64)) + steps * _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _MIX1
        x = (x ^ (x >> np.uint64(27))) * _MIX2
        return x ^ (x >> np.uint64(31))


def key_normals(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Standard normals of `shape` (float64) from the stream of the canonical `name`."""
    n = math.prod(shape)
    state0 = (int(seed) * (1 << 32) + zlib.crc32(name.encode("utf-8"))) % (1 << 64)
    uniform = ((splitmix64(state0, 2 * n) >> np.uint64(11)).astype(np.float64) + 0.5) / _TWO_POW_53
    radius = np.sqrt(-2.0 * np.log(uniform[:n]))
    return (radius * np.cos(2.0 * math.pi * uniform[n:])).reshape(shape)


def gain(name: str) -> float:
    """Extra scale on 1/sqrt(fan_in) for the weight matrices of `name` (default 1)."""
    return next((g for sub, g in GAINS if sub in name), 1.0)


def fill_value(key: str, shape, seed: int) -> np.ndarray:
    """The float32 synthetic value of one official key.

    Raises:
        KeyError: the key's name ends in none of the filled kinds (weight, bias, BN buffers,
            level_embed).
    """
    name = canonical_name(key)
    shape = tuple(int(d) for d in shape)
    z = key_normals(name, shape, seed)
    if name.endswith("running_var"):
        value = 1.0 + 0.1 * np.abs(z)
    elif name.endswith(("running_mean", "level_embed")):
        value = 0.1 * z
    elif name.endswith("bias"):
        value = 0.02 * z
    elif name.endswith("weight") and len(shape) == 1:
        value = 1.0 + 0.1 * z
    elif name.endswith("weight") and len(shape) >= 2:
        value = gain(name) * z / math.sqrt(math.prod(shape[1:]))
    else:
        raise KeyError(f"no synthetic-weight rule for key {key!r} of shape {shape}")
    return value.astype(np.float32)


def fill_official(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """{official key: shape} -> {official key: float32 array}, in the order of `shapes`."""
    return {key: fill_value(key, shape, seed) for key, shape in shapes.items()}


def _parse_shape(text: str) -> tuple[int, ...]:
    return tuple(int(d) for d in text.strip().strip("()").split(",") if d.strip())


def read_shapes_tsv(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """The official key list: one ``key<TAB>(d0, d1, ...)`` per line, order kept."""
    shapes: dict[str, tuple[int, ...]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                key, shape = line.rstrip("\n").split("\t")
                shapes[key] = _parse_shape(shape)
    return shapes


def read_checksums_tsv(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], float, float, float]]:
    """``weights_checksum_*.tsv`` (header line, then key, shape, sum, sum_sq, first) -> dict."""
    rows = {}
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["key", "shape", "sum", "sum_sq", "first"]:
            raise ValueError(f"{path}: unexpected header {header}")
        for line in f:
            if line.strip():
                key, shape, total, total_sq, first = line.rstrip("\n").split("\t")
                rows[key] = (_parse_shape(shape), float(total), float(total_sq), float(first))
    return rows


def verify_checksums(arrays: dict[str, np.ndarray], checksums: dict, rel: float = 1e-9) -> list[str]:
    """Keys whose array disagrees with its checksum row (or is missing, or extra); [] if all agree.

    The shape must be equal, the first value equal as float32 (the file's 10 significant digits
    identify a float32), and the float64 sum and sum of squares equal to `rel` of their value
    (the file rounds them to 10 significant digits, a relative error of at most 5e-10).
    """
    bad = sorted(set(arrays) ^ set(checksums))
    for key, (shape, total, total_sq, first) in checksums.items():
        if key not in arrays:
            continue
        a = np.asarray(arrays[key])
        flat = a.astype(np.float64).ravel()
        if tuple(a.shape) != shape or flat.size == 0:
            bad.append(key)
            continue
        if (np.float32(first) != np.float32(flat[0])
                or abs(flat.sum() - total) > rel * abs(total) + 1e-12
                or abs((flat * flat).sum() - total_sq) > rel * total_sq + 1e-12):
            bad.append(key)
    return bad
