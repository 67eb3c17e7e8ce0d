"""Checkpoints: the official TAPTRv2 key map, the official `taptrv2.pth` layout, and our own.

* `official_to_ours(key)`: pure function, official state_dict key -> our parameter name. It
  covers all 614 official keys (``tests/fixtures/parity/taptrv2_state_dict_keys.tsv``), including the
  40 aliases: ``transformer.decoder.bbox_embed.*`` / ``transformer.decoder.class_embed.*`` are
  the same tensors as the top-level ``bbox_embed.*`` / ``class_embed.*`` and map to the same name.
* `map_official_state_dict(sd)`: a whole official state_dict -> ours (aliases must agree).
* `load_official(model, source)`: ``torch.load(path)["ema_model"]`` (or ``["model"]``, or a bare
  state_dict), optional ``module.`` prefix, mapped and loaded strictly.
* `save_checkpoint` / `load_checkpoint`: our own files, a dict with ``"config"`` (plain dict of
  `TaptrConfig`), ``"model"`` (state_dict), ``"metadata"`` and ``"format"``.

Every problem ends in one `CheckpointError` listing the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field

import torch
from torch import Tensor

from taptr_ros.model.config import ConfigError, TaptrConfig
from taptr_ros.model.taptr import TAPTRv2

FORMAT = "taptr_ros/1"

_DEC = r"transformer\.decoder\.layers\.(\d+)\."
_ENC = r"transformer\.encoder\.layers\.(\d+)\."
# (official regex, our replacement); the first full match wins.
_RULES: tuple[tuple[str, str], ...] = (
    (r"backbone\.0\.body\.(.+)", r"backbone.resnet.\1"),
    (r"input_proj\.(\d+)\.0\.(weight|bias)", r"backbone.proj.\1.conv.\2"),
    (r"input_proj\.(\d+)\.1\.(weight|bias)", r"backbone.proj.\1.norm.\2"),
    (r"transformer\.level_embed", r"encoder.level_embed"),
    (_ENC + r"self_attn\.(.+)", r"encoder.layers.\1.attn.\2"),
    (_ENC + r"norm1\.(weight|bias)", r"encoder.layers.\1.norm_attn.\2"),
    (_ENC + r"norm2\.(weight|bias)", r"encoder.layers.\1.norm_ffn.\2"),
    (_ENC + r"(linear[12])\.(weight|bias)", r"encoder.layers.\1.\2.\3"),
    (_DEC + r"cross_attn\.(.+)", r"decoder.layers.\1.cross_attn.\2"),
    (_DEC + r"norm1\.(weight|bias)", r"decoder.layers.\1.norm_cross.\2"),
    (_DEC + r"norm_temp\.(weight|bias)", r"decoder.layers.\1.norm_temporal.\2"),
    (_DEC + r"norm2\.(weight|bias)", r"decoder.layers.\1.norm_spatial.\2"),
    (_DEC + r"norm3\.(weight|bias)", r"decoder.layers.\1.norm_ffn.\2"),
    (_DEC + r"self_attn\.(.+)", r"decoder.layers.\1.spatial_attn.\2"),
    (_DEC + r"temp_self_attn\.(.+)", r"decoder.layers.\1.temporal_attn.\2"),
    (_DEC + r"(linear[12])\.(weight|bias)", r"decoder.layers.\1.\2.\3"),
    (_DEC + r"update_pos_embed_head\.(.+)", r"decoder.layers.\1.apu_pos_head.\2"),
    (_DEC + r"caupdate_weight_normalizer\.([02])\.(weight|bias)", r"decoder.layers.\1.apu_weights.\2.\3"),
    (_DEC + r"caupdate_weight_regressor\.0\.(weight|bias)", r"decoder.layers.\1.apu_weights.4.\2"),
    (r"transformer\.decoder\.ref_point_head\.(.+)", r"decoder.ref_point_head.\1"),
    (r"transformer\.decoder\.ca_update_fuser\.(.+)", r"decoder.head_fuser.\1"),
    (r"transformer\.decoder\.query_updater\.(.+)", r"decoder.content_updater.\1"),
    (r"(?:transformer\.decoder\.)?bbox_embed\.(\d+)\.(.+)", r"decoder.pos_heads.\1.\2"),
    (r"(?:transformer\.decoder\.)?class_embed\.(\d+)\.(.+)", r"decoder.vis_heads.\1.\2"),
    (r"transformer\.query_feature_initializer\.(weight|bias)", r"query_init.\1"),
    (r"query_between_window_updater\.(.+)", r"decoder.window_updater.\1"),
)
_COMPILED = tuple((re.compile(p), r) for p, r in _RULES)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded; the message lists every offending key."""


@dataclass
class KeyReport:
    """Differences between a state_dict and a model's."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mis_shaped: list[str] = field(default_factory=list)
    conflicting_aliases: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mis_shaped or self.conflicting_aliases)

    def message(self, what: str) -> str:
        """A multi-line error message listing the keys that do not fit, and what to check."""
        parts = [f"{what} does not fit the model:"]
        for name, keys in (("missing", self.missing), ("unexpected", self.unexpected),
                           ("mis-shaped", self.mis_shaped), ("conflicting aliases", self.conflicting_aliases)):
            if keys:
                parts.append(f"  {len(keys)} {name}: " + ", ".join(keys))
        parts.append("  check that the checkpoint and the preset/config describe the same network")
        return "\n".join(parts)


def official_to_ours(key: str) -> str:
    """Our parameter name for an official TAPTRv2 state_dict key (no ``module.`` prefix).

    Raises:
        CheckpointError: the key is not part of the official TAPTRv2 model.
    """
    for pattern, repl in _COMPILED:
        if pattern.fullmatch(key):
            return pattern.sub(repl, key)
    raise CheckpointError(f"official key {key!r} has no mapping: not a TAPTRv2 (v2 branch) checkpoint?")


def map_official_state_dict(official: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official state_dict (``module.`` prefixes allowed) -> ours.

    Aliased keys must hold equal tensors; unknown keys and conflicting aliases raise one
    `CheckpointError` listing them.
    """
    out: dict[str, Tensor] = {}
    source: dict[str, str] = {}
    report = KeyReport()
    for key, value in official.items():
        key = key[len("module."):] if key.startswith("module.") else key
        try:
            ours = official_to_ours(key)
        except CheckpointError:
            report.unexpected.append(key)
            continue
        if ours in out:
            if out[ours].shape != value.shape or not torch.equal(out[ours], value):
                report.conflicting_aliases.append(f"{source[ours]} != {key}")
            continue
        out[ours], source[ours] = value, key
    if report:
        raise CheckpointError(report.message("official state_dict"))
    return out


def compare_state_dict(model: torch.nn.Module, state: dict[str, Tensor]) -> KeyReport:
    """Missing / unexpected / mis-shaped keys of `state` against `model.state_dict()`."""
    own = model.state_dict()
    report = KeyReport(missing=sorted(set(own) - set(state)), unexpected=sorted(set(state) - set(own)))
    report.mis_shaped = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
                         for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    return report


def load_state_strict(model: torch.nn.Module, state: dict[str, Tensor], what: str) -> None:
    """`model.load_state_dict(state)` after checking every key; raises one `CheckpointError`."""
    report = compare_state_dict(model, state)
    if report:
        raise CheckpointError(report.message(what))
    model.load_state_dict(state, strict=True)


def _read(source) -> dict:
    if isinstance(source, (str, os.PathLike)):
        try:
            return torch.load(source, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            # unreadable, truncated, not a torch file, or pickled objects beyond plain tensors
            raise CheckpointError(f"cannot read checkpoint {os.fspath(source)!r}: {exc}") from exc
    return source


def load_official(model: TAPTRv2, source) -> None:
    """Load official TAPTRv2 weights into `model` (a ``taptrv2``-preset network).

    Args:
        source: path to ``taptrv2.pth`` or an already loaded dict: ``{"ema_model": sd}``,
            ``{"model": sd}`` or a bare state_dict; keys may carry a ``module.`` prefix.

    Raises:
        CheckpointError: unreadable file, unknown layout, or keys that do not fit.
    """
    data = _read(source)
    if not isinstance(data, dict):
        raise CheckpointError(f"official checkpoint must be a dict, got {type(data).__name__}")
    for slot in ("ema_model", "model", "state_dict"):
        if slot in data and isinstance(data[slot], dict):
            data = data[slot]
            break
    load_state_strict(model, map_official_state_dict(data), "official checkpoint")


def save_checkpoint(path, model: TAPTRv2, *, metadata: dict | None = None) -> None:
    """Write our checkpoint: {"format", "config" (plain dict), "model" (state_dict), "metadata"}."""
    torch.save({"format": FORMAT, "config": model.config.to_dict(),
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "metadata": dict(metadata or {})}, path)


@dataclass
class LoadedCheckpoint:
    """A network rebuilt from our checkpoint, with the file's metadata."""

    model: TAPTRv2
    config: TaptrConfig
    metadata: dict


def load_checkpoint(source, *, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the network of one of our checkpoints (config embedded) on `device`, eval mode.

    Raises:
        CheckpointError: not one of our checkpoints (the official layout says so and names
            `load_official`), bad config, or keys that do not fit.
    """
    data = _read(source)
    if not isinstance(data, dict) or "config" not in data or "model" not in data:
        hint = " (this looks like an official checkpoint: use load_official with the taptrv2 preset)" \
            if isinstance(data, dict) and ("ema_model" in data or "model" in data) else ""
        raise CheckpointError("not a taptr_ros checkpoint: expected a dict with 'config' and 'model'" + hint)
    try:
        config = TaptrConfig.from_dict(data["config"])
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"checkpoint config is invalid: {exc}") from exc
    model = TAPTRv2(config)
    load_state_strict(model, data["model"], "checkpoint")
    return LoadedCheckpoint(model=model.to(device).eval(), config=config,
                            metadata=dict(data.get("metadata", {})))
