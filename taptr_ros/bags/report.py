"""What ``taptr bag eval`` writes besides the result bag: metrics.json, report.md, PNG plots.

Every file is written to a temporary name in its folder and renamed when complete.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from taptr_ros.eval.tapvid import THRESHOLDS


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` then rename tmp to ``path`` (tmp removed on failure); returns ``path``.

    The temporary name keeps the suffix (``.x.partial.png``): writers that pick the format from
    the suffix (matplotlib, OpenCV) still work.
    """
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _clean(value: Any) -> Any:
    """JSON-ready: NaN/inf -> None, numpy scalars/arrays -> Python."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON (numpy values made plain, NaN -> null), atomically; returns path."""
    return atomic_write(
        path, lambda tmp: tmp.write_text(json.dumps(_clean(data), indent=2) + "\n", encoding="utf-8")
    )


def timing_summary(push_seconds: np.ndarray) -> dict[str, float]:
    """fps and per-frame engine time percentiles (ms) of a lockstep run."""
    ms = np.asarray(push_seconds, np.float64) * 1000.0
    if not len(ms):
        return {}
    total = float(ms.sum()) / 1000.0
    return {
        "frames": int(len(ms)),
        "engine_seconds": total,
        "fps": len(ms) / total if total > 0 else float("nan"),
        "ms_mean": float(ms.mean()),
        "ms_p50": float(np.percentile(ms, 50)),
        "ms_p90": float(np.percentile(ms, 90)),
        "ms_p99": float(np.percentile(ms, 99)),
        "ms_max": float(ms.max()),
    }


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_jaccard(path: Path, metrics: Mapping[str, float], title: str) -> Path:
    """Bar chart of the Jaccard and <delta^x at each TAP-Vid threshold (percent)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    x = np.arange(len(THRESHOLDS))
    jac = [100 * (metrics.get(f"jaccard_{d}") or 0.0) for d in THRESHOLDS]
    pts = [100 * (metrics.get(f"pts_within_{d}") or 0.0) for d in THRESHOLDS]
    ax.bar(x - 0.2, jac, 0.4, label="Jaccard")
    ax.bar(x + 0.2, pts, 0.4, label="<δ (position)")
    ax.set_xticks(x, [f"{d} px" for d in THRESHOLDS])
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.set_xlabel("threshold (256 x 256 scale)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp))
    plt.close(fig)
    return path


def plot_curves(
    path: Path,
    curves: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str,
    stamps_s: np.ndarray | None = None,
) -> Path:
    """Line plot of per-frame curves (percent), x = frame index (and seconds on top if given)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for label, values in curves.items():
        y = np.array([np.nan if v is None else 100 * v for v in values], np.float64)
        ax.plot(np.arange(len(y)), y, label=label, linewidth=1.2)
    ax.set_ylim(0, 102)
    ax.set_xlabel("frame")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp))
    plt.close(fig)
    return path


def plot_histogram(path: Path, values: np.ndarray, *, title: str, xlabel: str) -> Path:
    """PNG histogram of the finite ``values`` (one per point, e.g. px of forward-backward error)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    ax.hist(values, bins=min(40, max(5, len(values) // 3 or 5)))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("points")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp))
    plt.close(fig)
    return path


def _pct(value: Any) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and not math.isfinite(value))
        else f"{100 * value:.1f}"
    )


def _num(value: Any, fmt: str = ".2f") -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and not math.isfinite(value))
        else format(value, fmt)
    )


def report_markdown(data: Mapping[str, Any], files: Sequence[str]) -> str:
    """The human summary of a metrics.json dict (see :func:`taptr_ros.bags.evaluate.evaluate_bag`)."""
    lines = [f"# Bag evaluation: {data['bag']}", ""]
    lines += [
        f"- image topic: `{data['image_topic']}` ({data['num_frames']} frames, "
        f"{data['width']}x{data['height']})",
        f"- tracker: {data['meta'].get('tracker', 'taptr')}, checkpoint `{data['meta'].get('checkpoint')}`, "
        f"device {data['meta'].get('device')}",
        f"- queries: {data['num_queries']} ({data['queries_source']})",
        "- replay: lockstep (every frame processed, in order, as the node processes it)",
    ]
    engine = data["meta"].get("engine_options")
    if engine:
        together = (
            "one by one (TAP-Vid protocol)" if engine.get("independent_points") else "together (as the node)"
        )
        lines.append(
            f"- engine: {engine.get('mode')} mode, window {engine.get('window')}/stride "
            f"{engine.get('stride')}, points decoded {together}"
        )
    lines.append("")
    timing = data.get("timing", {})
    if timing:
        lines += [
            "## Speed (engine push per frame)",
            "",
            "| fps | mean ms | p50 ms | p90 ms | p99 ms | max ms |",
            "|---|---|---|---|---|---|",
            f"| {_num(timing['fps'], '.1f')} | {_num(timing['ms_mean'])} | {_num(timing['ms_p50'])} | "
            f"{_num(timing['ms_p90'])} | {_num(timing['ms_p99'])} | {_num(timing['ms_max'])} |",
            "",
        ]
    tapvid = data.get("tapvid")
    if tapvid:
        overall = tapvid["overall"]
        lines += [
            f"## TAP-Vid metrics (query mode `{tapvid['query_mode']}`, 256 x 256 scale, %)",
            "",
            f"Ground truth: {data['ground_truth']}. Computed by the code of `taptr eval tapvid`.",
            "",
            "| AJ | <δ avg | OA | " + " | ".join(f"J@{d}" for d in THRESHOLDS) + " |",
            "|---|---|---|" + "---|" * len(THRESHOLDS),
            f"| {_pct(overall.get('average_jaccard'))} | {_pct(overall.get('average_pts_within_thresh'))} | "
            f"{_pct(overall.get('occlusion_accuracy'))} | "
            + " | ".join(_pct(overall.get(f"jaccard_{d}")) for d in THRESHOLDS)
            + " |",
            "",
        ]
    survival = data.get("survival")
    if survival:
        lines += [
            "## Track survival (no ground truth)",
            "",
            f"- visible at the last frame: {_pct(survival['survival_at_end'])} %",
            f"- mean share visible per frame: {_pct(survival['mean_visible_fraction'])} %",
            f"- median visible run: {_num(survival['median_visible_run_frames'], '.0f')} frames; "
            f"followed to the end without a predicted occlusion: {_pct(survival['full_run_fraction'])} %",
            "",
        ]
    fb = data.get("forward_backward")
    if fb:
        lines += [
            "## Forward-backward consistency",
            "",
            f"{fb['num_returned']} of {fb['num_points']} points tracked back to their query frame; "
            f"median error {_num(fb['median_error_px'])} px ({_num(fb['median_error_256'])} at 256 x 256); "
            + ", ".join(f"<{d}: {_pct(fb[f'within_{d}_256'])} %" for d in THRESHOLDS),
            "",
        ]
    if files:
        lines += ["## Files", ""] + [f"- `{name}`" for name in files] + [""]
    return "\n".join(lines)


def write_eval_outputs(
    bag: Path,
    out_dir: Path,
    topic: str,
    T: int,
    size_hw: tuple[int, int],
    truth: Any,
    report: Any,
    runs: dict[str, Any],
    *,
    query_mode: str,
    plots: bool,
    meta: dict[str, Any],
    files: list[str],
) -> tuple[dict[str, Any], list[str]]:
    """Write metrics.json, the plots and report.md of ``taptr bag eval``; returns (metrics, files).

    Args:
        truth: the :class:`taptr_ros.bags.truth.GroundTruth`, or None.
        report: the :class:`taptr_ros.eval.runner.EvalReport` (with ground truth).
        runs: ``run`` (scored :class:`taptr_ros.bags.engine.LockstepRun`), ``forward`` (its forward
            pass), ``queries`` (M, 3), ``source`` (without ground truth), ``fb`` (if measured).
        files: the files written so far (result bag, overlay); extended.
    """
    from taptr_ros.bags.metrics import (
        position_accuracy_per_frame,
        survival,
        visibility_accuracy_per_frame,
    )
    from taptr_ros.eval.tapvid import EVAL_SIZE, sample_queries, scale_tracks

    run, queries = runs["run"], runs["queries"]
    forward = runs["forward"]
    data: dict[str, Any] = {
        "bag": str(bag),
        "image_topic": topic,
        "num_frames": T,
        "width": size_hw[1],
        "height": size_hw[0],
        "mode": "lockstep",
        "meta": meta,
        "ground_truth": truth.source if truth else None,
        "num_queries": int(len(queries)),
        "queries_source": (f"ground truth, query mode {query_mode!r}" if truth else runs.get("source")),
        "timing": timing_summary(forward.push_seconds),
    }
    title = f"{bag.name} ({topic})"
    if truth is not None:
        data["tapvid"] = report.to_dict()
        _q, gt_tracks, gt_occluded = sample_queries(truth.tracks_px, truth.occluded, query_mode)
        vis_curve = visibility_accuracy_per_frame(queries[:, 0], gt_occluded, run.occluded, query_mode)
        pos_curve = position_accuracy_per_frame(
            queries[:, 0],
            scale_tracks(gt_tracks, size_hw, EVAL_SIZE),
            gt_occluded,
            scale_tracks(run.tracks, size_hw, EVAL_SIZE),
            query_mode,
        )
        data["per_frame"] = {"visibility_accuracy": vis_curve, "position_accuracy": pos_curve}
        if plots:
            plot_jaccard(out_dir / "jaccard.png", report.overall, f"Jaccard per threshold - {title}")
            plot_curves(
                out_dir / "visibility_accuracy.png",
                {"visibility accuracy": list(vis_curve), "<δ avg (position)": list(pos_curve)},
                title=f"accuracy over time - {title}",
                ylabel="%",
            )
            files += ["jaccard.png", "visibility_accuracy.png"]
    else:
        data["survival"] = survival(queries[:, 0], run.occluded)
        if plots:
            plot_curves(
                out_dir / "survival.png",
                {"visible": data["survival"]["visible_fraction_per_frame"]},
                title=f"share of started points visible - {title}",
                ylabel="%",
            )
            files.append("survival.png")
    if "fb" in runs:
        fb = dict(runs["fb"])
        errors = fb.pop("errors_px")
        data["forward_backward"] = fb
        if plots:
            plot_histogram(
                out_dir / "fb_error.png", errors, title=f"forward-backward error - {title}", xlabel="pixels"
            )
            files.append("fb_error.png")
    files += ["metrics.json", "report.md"]
    write_json(out_dir / "metrics.json", data)
    text = report_markdown(_clean(data), files)
    atomic_write(out_dir / "report.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return _clean(data), files
