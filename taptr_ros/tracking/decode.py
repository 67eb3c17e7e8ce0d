"""One decoder pass of the online engine: a window's state in, the committed-style state out,
with optional padding queries (``TrackerOptions.pad_queries_to``)."""

from __future__ import annotations

from dataclasses import fields

import torch
from torch import Tensor

from taptr_ros.model.taptr import TAPTRv2, WindowOutput
from taptr_ros.model.windowing import Trajectory, commit_window


def dummy_positions(count: int, seed: int) -> Tensor:
    """(count, 2) float32 normalised (x, y) of the padding queries: ``torch.rand`` of a CPU
    generator seeded with `seed` (uniform in [0, 1]); deterministic across runs and devices."""
    return torch.rand(count, 2, generator=torch.Generator().manual_seed(seed))


def decode_padded(model: TAPTRv2, memory: Tensor, kv: tuple[Tensor, Tensor] | None, state: Trajectory,
                  f0: Tensor, tracked: Tensor, update: Tensor, dummy_xy: Tensor, *,
                  kv_frames: Tensor | None = None, isolated: bool = False) -> Trajectory:
    """Decode a window of n frames for N points, padded with dummies up to len(dummy_xy).

    The dummies start at the window's first frame (features sampled from its memory, positions
    `dummy_xy[:pad]`), are tracked in every frame of the window, updated after the first, take
    part in spatial attention like any point, and are dropped from the output.

    Args:
        memory: (n, L, C) window memory, or, when `kv` is given, at least the first frame's
            (1, L, C) (the dummies' features).
        kv: cached keys and values of the window, ((nD, n, L, C), (nD, n, L, C)), or None;
            with `kv_frames`, of any F frames ((nD, F, L, C), ...) read at those frames.
        kv_frames: (n,) long frame of `kv` each window frame reads (e.g. ring-buffer slots).
        state: (n, N, ...) `Trajectory` of the points before the window.
        f0: (N, C) initial content of the points.
        tracked, update: (n, N) bool masks (`windowing.point_masks`).
        dummy_xy: (P, 2) normalised padding positions; pad = max(0, P - N).
        isolated: decode every point as if alone (`TAPTRv2.decode_window`); no padding then,
            since dummies could not change anything.

    Returns:
        (n, N, ...) state after the window as `commit_window` leaves it (no tail copy), in the
        dtype of `state`.
    """
    n_frames, n_pts = update.shape
    pad = 0 if isolated else max(0, dummy_xy.shape[0] - n_pts)
    content, ref, init, trk, upd = state.content, state.ref, f0, tracked, update
    if pad:
        d_f0, d_ref = model.init_queries(memory[:1].expand(pad, *memory.shape[1:]), dummy_xy[:pad])
        content = torch.cat((content, d_f0[None].expand(n_frames, -1, -1)), 1)
        ref = torch.cat((ref, d_ref[None].expand(n_frames, -1, -1)), 1)
        init = torch.cat((f0, d_f0), 0)
        d_upd = (torch.arange(n_frames, device=update.device) > 0)[:, None].expand(n_frames, pad)
        trk = torch.cat((tracked, torch.ones_like(d_upd)), 1)
        upd = torch.cat((update, d_upd), 1)
    out = model.decode_window(None if kv is not None else memory, content, ref, init, trk, upd, memory_kv=kv,
                              kv_frames=kv_frames, isolated=isolated)
    if pad:
        out = WindowOutput(**{f.name: getattr(out, f.name)[..., :n_pts, :] for f in fields(WindowOutput)})
    # under autocast the decoder's outputs may be half precision; the state keeps its dtype
    return commit_window(state, 0, out, update, copy_tail=False).to(state.ref.dtype)
