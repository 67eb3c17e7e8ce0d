"""Video files and track overlays with OpenCV, always RGB uint8 at the interface.

Pixel convention of the overlay: x right, y down, 0 = centre of the first column/row.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from taptr_ros.data.errors import VideoError


def _open(path: str | os.PathLike[str]) -> cv2.VideoCapture:
    if not os.path.isfile(path):
        raise VideoError(f"{path}: no such video file")
    capture = cv2.VideoCapture(os.fspath(path))
    if not capture.isOpened():
        raise VideoError(f"{path}: OpenCV cannot open it; is it a video in a format FFmpeg reads?")
    return capture


def video_fps(path: str | os.PathLike[str]) -> float:
    """Frame rate stored in the file (0.0 when the container does not say)."""
    capture = _open(path)
    try:
        return float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()


def iter_frames(path: str | os.PathLike[str], *, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decode frames one at a time.

    Yields:
        (H, W, 3) uint8 RGB frames, in file order.

    Raises:
        VideoError: the file is missing or cannot be opened.
    """
    capture = _open(path)
    try:
        count = 0
        while max_frames is None or count < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            count += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def read_video(path: str | os.PathLike[str], *,
               max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a whole video into memory.

    Returns:
        frames (T, H, W, 3) uint8 RGB; fps (0.0 when the container does not say).

    Raises:
        VideoError: missing, unreadable, or without a single frame.
    """
    fps = video_fps(path)
    frames = list(iter_frames(path, max_frames=max_frames))
    if not frames:
        raise VideoError(f"{path}: no frame could be decoded")
    return np.stack(frames), fps


def write_video(path: str | os.PathLike[str], frames: Iterable[np.ndarray], fps: float) -> int:
    """Encode RGB frames to an MP4 (codec mp4v).

    Args:
        path: output file; its folder must exist.
        frames: (H, W, 3) uint8 RGB frames, all the same size.
        fps: frames per second, > 0.

    Returns:
        The number of frames written.

    Raises:
        VideoError: the writer cannot be opened or a frame has another size.
    """
    if fps <= 0:
        raise VideoError(f"fps must be positive, got {fps}")
    writer = None
    count = 0
    try:
        for frame in frames:
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise VideoError(f"frames must be uint8 (H, W, 3) RGB, got {frame.dtype} {frame.shape}")
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                writer = cv2.VideoWriter(os.fspath(path), fourcc, float(fps), size)
                if not writer.isOpened():
                    raise VideoError(f"{path}: OpenCV cannot open an mp4v writer there")
            elif (frame.shape[1], frame.shape[0]) != size:
                raise VideoError(f"frame {count} is {frame.shape[1]}x{frame.shape[0]}, "
                                 f"expected {size[0]}x{size[1]}")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            count += 1
    finally:
        if writer is not None:
            writer.release()
    return count


def id_color(point_id: int) -> tuple[int, int, int]:
    """A bright RGB colour that depends only on the id (golden-ratio hue steps)."""
    hue = (int(point_id) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_tracks(frame_rgb: np.ndarray, ids: np.ndarray, xy_px: np.ndarray, visible: np.ndarray,
                *, radius: int | None = None, labels: bool | None = None) -> np.ndarray:
    """Draw points on a copy of a frame: filled when visible, hollow when not, coloured by id.

    Args:
        frame_rgb: (H, W, 3) uint8 RGB; not modified.
        ids: (N,) integer point ids (colour and label).
        xy_px: (N, 2) pixels (x, y) in this frame; points outside the frame are skipped.
        visible: (N,) bool.
        radius: circle radius in pixels; default scales with the frame (3 px at 256).
        labels: write each id beside its point; default only when N <= 64.

    Returns:
        A new (H, W, 3) uint8 RGB frame.
    """
    out = np.ascontiguousarray(frame_rgb, np.uint8).copy()
    ids = np.asarray(ids).reshape(-1)
    xy = np.asarray(xy_px, np.float64).reshape(-1, 2)
    visible = np.asarray(visible, bool).reshape(-1)
    if not (len(ids) == len(xy) == len(visible)):
        raise ValueError(f"ids, xy_px, visible disagree in length: {len(ids)}, {len(xy)}, {len(visible)}")
    H, W = out.shape[:2]
    radius = max(2, round(min(H, W) / 85)) if radius is None else radius
    labels = len(ids) <= 64 if labels is None else labels
    shift = 4  # sub-pixel centres: 1/16 px
    ring = 1 if radius < 5 else 2  # line width of hollow circles
    font_scale = max(0.3, min(H, W) / 800)
    inside = np.isfinite(xy).all(axis=1) & (xy[:, 0] >= -radius) & (xy[:, 1] >= -radius) \
        & (xy[:, 0] <= W - 1 + radius) & (xy[:, 1] <= H - 1 + radius)
    centres = np.rint(xy[inside] * (1 << shift)).astype(np.int64).tolist()
    corners = (xy[inside].astype(np.int64) + [radius + 1, -radius - 1]).tolist()
    for point_id, centre, corner, is_visible in zip(ids[inside].tolist(), centres, corners,
                                                    visible[inside].tolist()):
        color = id_color(point_id)
        cv2.circle(out, centre, radius << shift, color, -1 if is_visible else ring, cv2.LINE_AA, shift)
        if labels:
            cv2.putText(out, str(point_id), corner, cv2.FONT_HERSHEY_SIMPLEX, font_scale, color, 1,
                        cv2.LINE_AA)
    return out
