"""Compare our arrays with a parity fixture's recorded ones (our implementation of the check).

Tolerances follow the fixture's README ("Numerical noise, and the tolerances we suggest"):
an array passes when every element has |ours - ref| <= atol + rtol * |ref| and ours is finite.

* positions (``pred_boxes``, ``pred_xy_norm``, ``win0_pos_*``, ``win_last_pos``), normalised:
  atol 1e-4; ``pred_xy_px`` the same 1e-4 in pixels, i.e. atol 1e-4 * (longest side - 1);
* APU delta (``win0_apu_delta``): atol 1e-5;
* raw C5 features (``f0_backbone_*``): atol 1e-3;
* everything else (projected features, position maps, memory, query, decoder features, logits,
  logit-space references): atol 1e-4, rtol 1e-4;
* boolean and integer arrays (``pred_visible``, ``update_mask``, ``win_ranges``): exact.

`compare(fixture, produced)` returns one ``(name, ok, max_abs_err, detail)`` row per array that
both hold, like the fixture folder's ``check_parity.compare``, so `taptr parity` can use either.
"""

from __future__ import annotations

import numpy as np

# (name prefix, atol, rtol); the first matching prefix wins. "pred_xy_px" is scaled by the image side.
TOLERANCES: tuple[tuple[str, float, float], ...] = (
    ("pred_xy_px", 1e-4, 0.0),
    ("pred_boxes", 1e-4, 0.0),
    ("pred_xy_norm", 1e-4, 0.0),
    ("win0_pos_", 1e-4, 0.0),
    ("win_last_pos", 1e-4, 0.0),
    ("win0_apu_delta", 1e-5, 0.0),
    ("f0_backbone_", 1e-3, 0.0),
    ("", 1e-4, 1e-4),
)
# Inputs and records of the fixture, not outputs of the network.
NOT_OUTPUTS = frozenset({"fill_seed", "video", "query_xy_px", "query_xy_norm", "query_t", "gt_tracks_px",
                         "pt_boxes", "pt_labels", "pt_tracking_mask", "meta_json", "level_shapes_hw"})


def tolerance(name: str, fixture: dict) -> tuple[float, float]:
    """(atol, rtol) of the array `name` of `fixture`."""
    _, atol, rtol = next(t for t in TOLERANCES if name.startswith(t[0]))
    if name == "pred_xy_px":
        atol *= max(np.asarray(fixture["video"]).shape[-2:]) - 1
    return atol, rtol


def compare_one(name: str, ref: np.ndarray, got: np.ndarray, fixture: dict) -> tuple[str, bool, float, str]:
    """One row: (name, within tolerance, max abs error, detail)."""
    ref, got = np.asarray(ref), np.asarray(got)
    if got.shape != ref.shape:
        return name, False, float("nan"), f"shape {got.shape} != {ref.shape}"
    if ref.dtype == bool or ref.dtype.kind in "iu":
        wrong = int(np.count_nonzero(got != ref))
        return name, wrong == 0, float(wrong), f"exact; {wrong} mismatches"
    atol, rtol = tolerance(name, fixture)
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    err = np.abs(got64 - ref64)
    excess = err - (atol + rtol * np.abs(ref64))
    finite = bool(np.isfinite(got64).all())
    if err.size == 0:
        return name, finite, 0.0, f"atol {atol:g} rtol {rtol:g}; empty"
    worst = tuple(int(i) for i in np.unravel_index(int(np.nanargmax(np.where(np.isnan(excess), np.inf, excess))),
                                                   err.shape))
    ok = finite and bool((excess <= 0).all())
    max_err = float(np.nanmax(err)) if finite else float("inf")
    return name, ok, max_err, f"atol {atol:g} rtol {rtol:g}; worst at {worst}"


def compare(fixture: dict, produced: dict) -> list[tuple[str, bool, float, str]]:
    """Rows for every array of `produced` that the fixture records (inputs excluded)."""
    return [compare_one(name, fixture[name], got, fixture)
            for name, got in produced.items() if name in fixture and name not in NOT_OUTPUTS]
