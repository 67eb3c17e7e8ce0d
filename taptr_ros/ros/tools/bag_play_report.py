"""What ``taptr bag play`` reports: predictions as a live consumer sees them, metrics.json, report.md,
and the recorded tracks as a bag."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from taptr_ros.bags.storage import BagWriter
from taptr_ros.bags.topics import RESULT_TOPIC
from taptr_ros.messages.typestore import TRACKS_TYPE
from taptr_ros.ros.tools.bag_play_options import PlayOptions


@dataclasses.dataclass
class PlayResult:
    """What was measured, and where it was written."""

    metrics: dict[str, Any]
    out_dir: Path | None
    files: list[str]

    def summary(self) -> str:
        """A few lines for the terminal: frames published/answered/dropped, latency, metrics."""
        m, lat = self.metrics, self.metrics.get("latency_ms") or {}
        lines = [
            f"{m['bag']}: published {m['frames_published']} frames at rate {m['rate']:g} "
            f"({m['publish_fps'] or 0:.1f} fps), answered {m['frames_answered']}, dropped {m['frames_dropped']}"
        ]
        if lat:
            lines.append(
                f"latency ms: p50 {lat['p50']:.1f}  p90 {lat['p90']:.1f}  p99 {lat['p99']:.1f}  "
                f"max {lat['max']:.1f}"
            )
        q = m["queries"]
        lines.append(f"queries: {q['added']} added at their frame, {q['late']} late, {q['failed']} failed")
        tapvid = m.get("tapvid")
        if tapvid:
            o = tapvid["overall"]
            fmt = lambda k: "n/a" if o.get(k) is None else f"{100 * o[k]:.1f}"  # noqa: E731
            lines.append(
                f"TAP-Vid ({tapvid['query_mode']}, live): AJ {fmt('average_jaccard')}  <d_avg "
                f"{fmt('average_pts_within_thresh')}  OA {fmt('occlusion_accuracy')}"
            )
        if self.out_dir is not None:
            lines.append(f"wrote {self.out_dir}: {', '.join(self.files)}")
        return "\n".join(lines)


def live_predictions(recorder: Any, adder: Any, queries: np.ndarray, T: int) -> tuple[np.ndarray, ...]:
    """(tracks (M, T, 2), occluded (M, T), held (M, T)) as a live consumer sees them."""
    M = len(queries)
    qt = np.rint(queries[:, 0]).astype(np.int64)
    tracks = np.repeat(queries[:, None, 1:], T, axis=1).astype(np.float64)
    occluded = np.arange(T)[None, :] < qt[:, None]
    held = np.zeros((M, T), bool)
    last_xy = queries[:, 1:].astype(np.float64).copy()
    last_occ = np.zeros(M, bool)
    for k in range(T):
        got = np.zeros(M, bool)
        msg = recorder.messages.get(k)
        if msg is not None and len(msg.ids):
            rows = np.array([adder.ids.get(int(i), -1) for i in msg.ids])
            keep = rows >= 0
            rows = rows[keep]
            last_xy[rows] = np.stack([np.asarray(msg.x), np.asarray(msg.y)], axis=1)[keep]
            last_occ[rows] = ~np.asarray(msg.visible, bool)[keep]
            got[rows] = True
        after = k > qt
        tracks[after, k] = last_xy[after]
        occluded[after, k] = last_occ[after]
        held[:, k] = after & ~got
    return tracks, occluded, held


def play_report(
    bag: Path,
    topic: str,
    T: int,
    size_hw: tuple[int, int],
    stamps: np.ndarray,
    truth: Any,
    queries: np.ndarray,
    source: str,
    run: dict[str, Any],
    options: PlayOptions,
    out_dir: str | os.PathLike[str] | None,
) -> PlayResult:
    """Metrics of a finished live replay, and its files under ``out_dir`` (None = no files).

    Args:
        bag, topic: the replayed bag and image topic; T frames of size_hw (height, width) px.
        stamps: (T,) int64 image stamps, nanoseconds.
        truth: the bag's `GroundTruth` or None (then survival and forward-backward only).
        queries: (M, 3) float64 (frame, x, y) pixels, the points added through the service.
        source: where the queries came from (for the report).
        run: what `bag_play` recorded (``recorder``, ``adder``, ``sent`` send times, s).
        options: the replay's options.
    """
    from taptr_ros.bags import report as bag_report
    from taptr_ros.eval.runner import evaluate_dataset

    recorder, adder, sent = run["recorder"], run["adder"], run["sent"]
    answered = sorted(recorder.arrivals)
    latency = np.array([1000.0 * (recorder.arrivals[k] - sent[k]) for k in answered])
    tracks, occluded, held = live_predictions(recorder, adder, queries, T)
    data: dict[str, Any] = {
        "bag": str(bag),
        "image_topic": topic,
        "num_frames": T,
        "width": size_hw[1],
        "height": size_hw[0],
        "mode": "sync" if options.sync else "live",
        "rate": options.rate,
        "tracker": options.tracker,
        "ground_truth": truth.source if truth is not None else None,
        "num_queries": int(len(queries)),
        "queries_source": source,
        "frames_published": T,
        "frames_answered": len(answered),
        "frames_dropped": T - len(answered),
        # frames 1.. after the frame-0 handshake
        "publish_fps": (T - 1) / run["publish_seconds"] if run["publish_seconds"] > 0 else None,
        "latency_ms": (
            {
                "mean": float(latency.mean()),
                "p50": float(np.percentile(latency, 50)),
                "p90": float(np.percentile(latency, 90)),
                "p99": float(np.percentile(latency, 99)),
                "max": float(latency.max()),
            }
            if len(latency)
            else {}
        ),
        "queries": {
            "added": len(adder.added_at) - adder.late,
            "late": adder.late,
            "failed": adder.failed,
            "messages": adder.messages[:10],
        },
        "held_point_frames": int(held.sum()),
        "meta": {"checkpoint": options.checkpoint if options.start_node else None},
    }
    if truth is not None:
        video = truth.as_tapvid(bag.name, T, *size_hw)
        report = evaluate_dataset(
            [video],
            lambda _f, _q: (tracks, occluded, 0.0),
            "first",
            meta={"tracker": "taptr_tracker (live)", "mode": data["mode"]},
        )
        data["tapvid"] = report.to_dict()
    files: list[str] = []
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with BagWriter(out / "tracks", overwrite=True) as writer:
            writer.add_topic(RESULT_TOPIC, TRACKS_TYPE)
            for k in answered:
                writer.write_raw(
                    RESULT_TOPIC,
                    int(stamps[0] + 1e9 * (recorder.arrivals[k] - sent[0])),
                    _serialize(recorder.messages[k]),
                )
        bag_report.write_json(out / "metrics.json", data)
        files = ["tracks/", "metrics.json", "report.md"]
        text = _markdown(data)
        bag_report.atomic_write(out / "report.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return PlayResult(bag_report._clean(data), Path(out_dir) if out_dir is not None else None, files)


def _serialize(msg: Any) -> bytes:
    from rclpy.serialization import serialize_message

    return bytes(serialize_message(msg))


def _markdown(data: dict[str, Any]) -> str:
    lat = data["latency_ms"]
    lines = [
        f"# Live replay: {data['bag']}",
        "",
        f"- image topic `{data['image_topic']}`, {data['num_frames']} frames, rate {data['rate']:g} "
        f"({data['mode']}), tracker `{data['tracker']}`",
        f"- answered {data['frames_answered']} frames, dropped {data['frames_dropped']}; point-frames held "
        f"from an earlier frame: {data['held_point_frames']}",
        f"- queries: {data['num_queries']} ({data['queries_source']}): {data['queries']['added']} at their "
        f"frame, {data['queries']['late']} late, {data['queries']['failed']} failed",
        "",
    ]
    if lat:
        lines += [
            "| latency | mean | p50 | p90 | p99 | max |",
            "|---|---|---|---|---|---|",
            f"| ms | {lat['mean']:.1f} | {lat['p50']:.1f} | {lat['p90']:.1f} | {lat['p99']:.1f} | "
            f"{lat['max']:.1f} |",
            "",
        ]
    if data.get("tapvid"):
        o = data["tapvid"]["overall"]
        pct = lambda k: "n/a" if o.get(k) is None else f"{100 * o[k]:.1f}"  # noqa: E731
        lines += [
            "TAP-Vid (first, live; compare with `taptr bag eval` on the same bag): "
            f"AJ {pct('average_jaccard')}, <δ avg {pct('average_pts_within_thresh')}, "
            f"OA {pct('occlusion_accuracy')}",
            "",
        ]
    return "\n".join(lines)
