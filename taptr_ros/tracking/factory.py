"""Build a network and an `OnlineTracker` from a checkpoint path or ``"default"``.

Checkpoints: our own files (`taptr_ros.model.checkpoint.save_checkpoint`: the config travels
with the weights) or the official ``taptrv2.pth`` (``ema_model``/``model`` state_dict, loaded
into the preset named by `preset`, default ``taptrv2``). ``"default"`` is the shipped
``models/default.pt``, found from any install by `taptr_ros.resources` (source checkout, colcon
install space, pip), or the file named by the ``TAPTR_DEFAULT_CHECKPOINT`` environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from taptr_ros.model.checkpoint import CheckpointError, load_checkpoint, load_official
from taptr_ros.model.config import ConfigError
from taptr_ros.model.config import preset as config_preset
from taptr_ros.model.taptr import TAPTRv2
from taptr_ros.resources import DEFAULT_MODEL, find_share_file, share_dirs
from taptr_ros.tracking.errors import ModelLoadError
from taptr_ros.tracking.options import TrackerOptions
from taptr_ros.tracking.tracker import OnlineTracker

DEFAULT_ENV = "TAPTR_DEFAULT_CHECKPOINT"


def default_checkpoint_path() -> Path | None:
    """``$TAPTR_DEFAULT_CHECKPOINT`` if set, else the installed ``models/default.pt`` (None if
    no install holds one)."""
    env = os.environ.get(DEFAULT_ENV)
    return Path(env) if env else find_share_file(DEFAULT_MODEL)


def resolve_checkpoint(checkpoint: str | os.PathLike[str]) -> Path:
    """The file a checkpoint argument names (``"default"`` resolved).

    Raises:
        ModelLoadError: the file does not exist (the message names the path and the fix).
    """
    if os.fspath(checkpoint) == "default":
        path = default_checkpoint_path()
        if path is None:
            searched = ", ".join(str(d) for d in share_dirs())
            raise ModelLoadError(
                f"the default model {DEFAULT_MODEL} is not installed (searched {searched}): "
                f"pass a checkpoint file (--checkpoint PATH / checkpoint parameter) or set {DEFAULT_ENV}")
        if not path.is_file():
            raise ModelLoadError(f"{DEFAULT_ENV}={path} does not exist: point it at a checkpoint file")
        return path
    path = Path(checkpoint)
    if not path.is_file():
        raise ModelLoadError(f"checkpoint {path} does not exist: pass a taptr_ros checkpoint or the "
                             "official taptrv2.pth")
    return path


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> cuda if available else cpu; a CUDA device without CUDA is refused.

    Raises:
        ModelLoadError: unknown device string or CUDA not available.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelLoadError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' or 'auto'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for but CUDA is not available: use device 'cpu'")
    return dev


def load_model(checkpoint: str | os.PathLike[str] = "default", *, preset: str | None = None,
               device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
               input_hw: tuple[int, int] | None = None, window_passes: int | None = None) -> TAPTRv2:
    """The network of a checkpoint, on `device`, in eval mode.

    Args:
        checkpoint: our checkpoint, the official ``taptrv2.pth``, or ``"default"``.
        preset: for an official checkpoint, the preset to load it into (default ``taptrv2``);
            for ours, a check that the file holds that preset (None = no check).
        device: "cpu", "cuda", "cuda:N" or "auto".
        dtype: e.g. torch.float16 on CUDA; None keeps float32.
        input_hw: (height, width) network input in pixels instead of the checkpoint's (the
            same weights: none depends on the input size); None keeps the checkpoint's.
        window_passes: decoder passes per window instead of the checkpoint's
            (`TaptrConfig.window_passes`); None keeps the checkpoint's.

    Raises:
        ModelLoadError: missing/unreadable file, keys that do not fit, preset mismatch, device.
    """
    path = resolve_checkpoint(checkpoint)
    dev = resolve_device(device)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise ModelLoadError(f"cannot read checkpoint {path}: {exc}") from exc
    try:
        if isinstance(data, dict) and "config" in data and "model" in data:
            model = load_checkpoint(data).model
            if preset is not None and model.config.name != preset:
                raise ModelLoadError(f"checkpoint {path} holds a {model.config.name!r} network, not preset "
                                     f"{preset!r}: drop the preset or pick the matching checkpoint")
        else:
            model = TAPTRv2(config_preset(preset or "taptrv2"))
            load_official(model, data)
    except (CheckpointError, ConfigError) as exc:
        raise ModelLoadError(f"checkpoint {path}: {exc}") from exc
    changes = {}
    if input_hw is not None and tuple(input_hw) != model.config.input_hw:
        changes["input_hw"] = tuple(input_hw)
    if window_passes is not None and window_passes != model.config.window_passes:
        changes["window_passes"] = window_passes
    if changes:
        try:
            changed = TAPTRv2(model.config.replace(**changes))
        except ConfigError as exc:
            raise ModelLoadError(f"checkpoint {path}: {exc}") from exc
        changed.load_state_dict(model.state_dict())
        model = changed
    model = model.to(dev) if dtype is None else model.to(dev, dtype)
    return model.eval()


def build_tracker(checkpoint: str | os.PathLike[str] = "default", *, preset: str | None = None,
                  device: str | torch.device = "cpu", options: TrackerOptions | None = None,
                  dtype: torch.dtype | None = None) -> OnlineTracker:
    """`load_model` + `OnlineTracker(model, options)`.

    Raises:
        ModelLoadError: see `load_model`.
        OptionsError: options that do not fit the network.
    """
    return OnlineTracker(load_model(checkpoint, preset=preset, device=device, dtype=dtype), options)
