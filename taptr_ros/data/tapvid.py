"""TAP-Vid pickle layout: read (ours, TAP-Vid DAVIS, Kinetics, RGB-Stacking) and write.

The layout is ``{name: {"video": uint8 (T, H, W, 3) RGB, "points": float (N, T, 2),
"occluded": bool (N, T)}}``. ``points`` are (x, y) normalised to [0, 1] by the frame size:
``x_px = x * W``, ``y_px = y * H``, the scaling the TAP-Vid benchmark applies; a point
outside the frame has coordinates outside [0, 1] and is occluded. TAP-Vid Kinetics stores
``video`` as a list of JPEG-encoded frames; RGB-Stacking stores a list of such dicts
instead of a mapping. Both are accepted.

Pickles can run code when loaded: only read files you trust.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections.abc import Iterable, Mapping

import cv2
import numpy as np

from taptr_ros.data.errors import TapVidFormatError


@dataclasses.dataclass(frozen=True)
class TapVidVideo:
    """One annotated video.

    Attributes:
        name: key in the pickle.
        video: (T, H, W, 3) uint8 RGB.
        points: (N, T, 2) float32, (x, y) normalised: pixels are ``points * (W, H)``.
        occluded: (N, T) bool, True where the point is occluded or outside the frame.
    """

    name: str
    video: np.ndarray
    points: np.ndarray
    occluded: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.video.shape[0])

    @property
    def height(self) -> int:
        return int(self.video.shape[1])

    @property
    def width(self) -> int:
        return int(self.video.shape[2])

    def tracks_px(self) -> np.ndarray:
        """(N, T, 2) float32 pixel coordinates (x, y) in this video's frames."""
        return (self.points * np.array([self.width, self.height], np.float32)).astype(np.float32)

    @classmethod
    def from_pixels(cls, name: str, video: np.ndarray, tracks_px: np.ndarray,
                    occluded: np.ndarray) -> TapVidVideo:
        """Build from (N, T, 2) pixel tracks (x, y) of ``video`` (T, H, W, 3)."""
        H, W = video.shape[1:3]
        points = np.asarray(tracks_px, np.float64) / np.array([W, H])
        return cls(name, video, points.astype(np.float32), np.asarray(occluded, bool))


def _decode_video(raw: object, name: str) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB from an array or a sequence of JPEG/PNG byte strings."""
    if isinstance(raw, np.ndarray) and raw.dtype == np.uint8 and raw.ndim == 4:
        return raw
    if isinstance(raw, (list, tuple, np.ndarray)) and len(raw) and isinstance(raw[0], (bytes, np.bytes_)):
        frames = []
        for encoded in raw:
            bgr = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise TapVidFormatError(f"video {name!r}: a frame could not be decoded as an image")
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return np.stack(frames)
    raise TapVidFormatError(
        f"video {name!r}: 'video' must be uint8 (T, H, W, 3) or a list of encoded frames, "
        f"got {type(raw).__name__} {getattr(raw, 'shape', '')}")


def resize_video(video: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (T, H, W, 3) uint8 to size (height, width), area-averaged when shrinking."""
    height, width = size
    if video.shape[1:3] == (height, width):
        return video
    shrink = height < video.shape[1] and width < video.shape[2]
    flags = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(frame, (width, height), interpolation=flags) for frame in video])


def video_from_entry(name: str, entry: Mapping[str, object], *,
                     resize: tuple[int, int] | None = None) -> TapVidVideo:
    """Validate one pickle entry and convert it to a :class:`TapVidVideo`.

    Args:
        name: the entry's key.
        entry: ``{"video", "points", "occluded"}``.
        resize: (height, width) to resize the frames to (points are normalised, so unchanged);
            the TAP-Vid benchmark evaluates at (256, 256).

    Raises:
        TapVidFormatError: a key is missing or the shapes disagree.
    """
    missing = {"video", "points", "occluded"} - set(entry)
    if missing:
        raise TapVidFormatError(f"video {name!r}: missing keys {sorted(missing)}; "
                                "expected 'video', 'points', 'occluded'")
    video = _decode_video(entry["video"], name)
    points = np.asarray(entry["points"], np.float32)
    occluded = np.asarray(entry["occluded"], bool)
    T = video.shape[0]
    if points.ndim != 3 or points.shape[1:] != (T, 2) or occluded.shape != points.shape[:2]:
        raise TapVidFormatError(
            f"video {name!r}: expected points (N, {T}, 2) and occluded (N, {T}), got "
            f"{points.shape} and {occluded.shape}")
    if resize is not None:
        video = resize_video(video, resize)
    return TapVidVideo(str(name), video, points, occluded)


def load_tapvid(path: str | os.PathLike[str], *, resize: tuple[int, int] | None = None,
                max_videos: int | None = None) -> dict[str, TapVidVideo]:
    """Read a TAP-Vid-layout pickle (ours, TAP-Vid DAVIS, Kinetics or RGB-Stacking).

    Args:
        path: the pickle.
        resize: optional (height, width) for the frames, e.g. (256, 256) as in the benchmark.
        max_videos: keep only the first this many videos (in the file's order).

    Returns:
        {name: video} in the file's order; a list-shaped pickle gets names "0000", "0001", ...

    Raises:
        TapVidFormatError: the file is missing, unreadable, or not in the layout.
    """
    try:
        with open(path, "rb") as handle:
            data = pickle.load(handle)
    except FileNotFoundError as error:
        raise TapVidFormatError(f"{path}: no such file; create one with `taptr data synth`") from error
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as error:
        raise TapVidFormatError(f"{path}: not a readable pickle ({error})") from error
    if isinstance(data, (list, tuple)):
        data = {f"{i:04d}": entry for i, entry in enumerate(data)}
    if not isinstance(data, Mapping):
        raise TapVidFormatError(f"{path}: expected a dict of videos or a list of them, "
                                f"got {type(data).__name__}")
    out: dict[str, TapVidVideo] = {}
    for name, entry in data.items():
        if max_videos is not None and len(out) >= max_videos:
            break
        if not isinstance(entry, Mapping):
            raise TapVidFormatError(f"{path}: entry {name!r} is a {type(entry).__name__}, not a dict")
        out[str(name)] = video_from_entry(str(name), entry, resize=resize)
    return out


def save_tapvid(path: str | os.PathLike[str], videos: Iterable[TapVidVideo]) -> None:
    """Write videos as a TAP-Vid pickle (points float32, occluded bool, video uint8)."""
    data = {}
    for item in videos:
        if item.name in data:
            raise TapVidFormatError(f"duplicate video name {item.name!r}")
        data[item.name] = {
            "video": np.ascontiguousarray(item.video, np.uint8),
            "points": np.asarray(item.points, np.float32),
            "occluded": np.asarray(item.occluded, bool),
        }
    tmp = f"{os.fspath(path)}.partial"
    with open(tmp, "wb") as handle:
        pickle.dump(data, handle, protocol=4)
    os.replace(tmp, path)
