"""``taptr bag make``: a rosbag2 bag from a video file or a TAP-Vid pickle.

The bag holds the frames as sensor_msgs/Image (rgb8 or bgr8, optionally with padded rows) or
sensor_msgs/CompressedImage (jpeg or png) on one topic, stamped at the source frame rate from
``start_ns`` (header stamp = bag receive time). From a pickle it also holds the ground truth on
``/ground_truth/tracks`` (taptr_ros/TrackedPoints, one message per frame, same stamps, ids =
point index, visibility 1/0) and the queries of both TAP-Vid query modes in the sidecar
``BAG/taptr_queries.json``; from a video, the sidecar holds the points given (``--points`` or
``--grid``), if any. Frames are streamed: a long video never sits in memory.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from taptr_ros.bags.errors import BagError, BagGroundTruthError, BagWriteError
from taptr_ros.bags.sidecar import QUERIES_FILE, QueriesFile
from taptr_ros.bags.storage import BagWriter
from taptr_ros.bags.topics import DEFAULT_IMAGE_TOPIC, GROUND_TRUTH_TOPIC, STORAGES
from taptr_ros.messages.typestore import (
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    TRACKS_TYPE,
    image_message,
    tracks_message,
)

#: a fixed, non-zero start stamp (2023-11-14T22:13:20Z) keeps bags reproducible; zero means
#: "latest frame" to AddPoints, so frame 0 must not be stamped 0
DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000
DEFAULT_FPS = 30.0
PICKLE_SUFFIXES = (".pkl", ".pickle")


@dataclasses.dataclass(frozen=True)
class MakeOptions:
    """How ``taptr bag make`` lays the frames out.

    Attributes:
        storage: ``sqlite3`` or ``mcap``.
        topic: the image topic (``/camera/image_raw``; compressed images conventionally go on
            ``.../compressed``, but the topic is used as given).
        compression: ``None`` (raw Image), ``"jpeg"`` or ``"png"`` (CompressedImage).
        jpeg_quality: 0..100.
        encoding: raw images: ``rgb8`` or ``bgr8``.
        row_padding: raw images: extra bytes per row (``step = width * 3 + row_padding``), to test
            consumers that must honour ``step``.
        fps: frame rate of the stamps; ``None`` = the video's (30 when it does not say, or for a pickle).
        frame_id: header frame.
        start_ns: stamp of frame 0 (must be > 0).
        max_frames: keep only the first frames.
    """

    storage: str = "sqlite3"
    topic: str = DEFAULT_IMAGE_TOPIC
    compression: str | None = None
    jpeg_quality: int = 95
    encoding: str = "rgb8"
    row_padding: int = 0
    fps: float | None = None
    frame_id: str = "camera"
    start_ns: int = DEFAULT_START_NS
    max_frames: int | None = None

    def check(self) -> None:
        """Raises BagWriteError naming the bad option."""
        if self.storage not in STORAGES:
            raise BagWriteError(f"--storage {self.storage!r}: use one of {', '.join(STORAGES)}")
        if self.compression not in (None, "jpeg", "png"):
            raise BagWriteError(f"compression {self.compression!r}: use jpeg or png")
        if self.encoding not in ("rgb8", "bgr8"):
            raise BagWriteError(f"--encoding {self.encoding!r}: use rgb8 or bgr8")
        if self.row_padding < 0 or (self.row_padding and self.compression):
            raise BagWriteError(
                "--pad-rows must be >= 0 and applies to raw images only (not with --compressed)"
            )
        if self.fps is not None and not self.fps > 0:
            raise BagWriteError(f"--fps must be positive, got {self.fps}")
        if self.start_ns <= 0:
            raise BagWriteError(
                "the start stamp must be > 0 (a zero stamp means 'latest frame' to AddPoints)"
            )
        if self.max_frames is not None and self.max_frames < 1:
            raise BagWriteError("--max-frames must be at least 1")
        if not self.topic.startswith("/"):
            raise BagWriteError(f"--topic {self.topic!r} must be absolute (start with '/')")


@dataclasses.dataclass(frozen=True)
class MakeSummary:
    """What was written."""

    path: Path
    num_frames: int
    width: int
    height: int
    fps: float
    topics: dict[str, str]
    num_points: int


def stamps_ns(count: int, fps: float, start_ns: int = DEFAULT_START_NS) -> np.ndarray:
    """(count,) int64 stamps: ``start_ns + round(i * 1e9 / fps)``."""
    return start_ns + np.rint(np.arange(count) * (1e9 / fps)).astype(np.int64)


def grid_points(width: int, height: int, n: int) -> np.ndarray:
    """(n*n, 2) pixels (x, y): an n x n grid with a half-cell margin, row-major."""
    if n < 1:
        raise BagWriteError(f"--grid must be at least 1, got {n}")
    xs = (np.arange(n) + 0.5) * (width - 1) / n
    ys = (np.arange(n) + 0.5) * (height - 1) / n
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=-1)


def parse_points(text: str) -> np.ndarray:
    """``"x,y;x,y"`` -> (N, 2) float64 pixels; raises BagWriteError on bad syntax."""
    try:
        rows = [[float(v) for v in item.split(",")] for item in text.split(";") if item.strip()]
        array = np.asarray(rows, np.float64)
    except ValueError as error:
        raise BagWriteError(f"points {text!r}: expected 'x,y;x,y;...' in pixels ({error})") from error
    if array.ndim != 2 or array.shape[1] != 2 or not len(array) or not np.isfinite(array).all():
        raise BagWriteError(f"points {text!r}: expected 'x,y;x,y;...' with finite pixel values")
    return array


def _write_frames(
    writer: BagWriter, frames: Iterable[np.ndarray], options: MakeOptions, fps: float, on_frame: object = None
) -> tuple[int, int, int, list[int]]:
    """Write the image messages; returns (count, width, height, stamps)."""
    size = None
    stamps: list[int] = []
    for index, rgb in enumerate(frames):
        if options.max_frames is not None and index >= options.max_frames:
            break
        if size is None:
            size = rgb.shape[:2]
        elif rgb.shape[:2] != size:
            raise BagWriteError(
                f"frame {index} is {rgb.shape[1]}x{rgb.shape[0]}, frame 0 {size[1]}x{size[0]}: "
                "all frames must have one size"
            )
        stamp = int(options.start_ns + round(index * 1e9 / fps))
        msg = image_message(
            rgb,
            stamp,
            frame_id=options.frame_id,
            encoding=options.encoding,
            row_padding=options.row_padding,
            compression=options.compression,
            jpeg_quality=options.jpeg_quality,
        )
        writer.write(options.topic, stamp, msg)
        stamps.append(stamp)
        if callable(on_frame):
            on_frame(index, rgb, stamp)
    if size is None:
        raise BagWriteError("the source has no frames: nothing to write")
    return len(stamps), int(size[1]), int(size[0]), stamps


def make_bag(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: MakeOptions = MakeOptions(),
    *,
    video: str | None = None,
    points: np.ndarray | None = None,
    grid: int | None = None,
    overwrite: bool = False,
    progress: object = None,
) -> MakeSummary:
    """Write a bag from a video file or a TAP-Vid pickle (see the module docstring).

    Args:
        source: a video OpenCV can read, or a ``.pkl``/``.pickle`` TAP-Vid file.
        out: the bag directory to create.
        options: layout.
        video: the pickle's video to use (default: the first).
        points: (N, 2) pixels (x, y) of frame 0 to store as the sidecar's ``points`` queries.
        grid: instead of ``points``, an N x N grid (see :func:`grid_points`).
        overwrite: replace an existing bag at ``out``.
        progress: optional ``callable(n)`` called with the number of frames written so far.

    Raises:
        BagWriteError: bad options, output exists, empty source or frames of different sizes.
        BagGroundTruthError: a pickle that cannot be read or lacks ``video``.
        BagError: the video cannot be read.
    """
    options.check()
    if points is not None and grid is not None:
        raise BagWriteError("pass points or a grid, not both")
    if grid is not None and grid < 1:
        raise BagWriteError(f"--grid must be at least 1, got {grid}")
    source = Path(source)
    is_pickle = source.suffix.lower() in PICKLE_SUFFIXES
    topic_type = COMPRESSED_TYPE if options.compression else IMAGE_TYPE
    tick = (lambda i, _rgb, _s: progress(i + 1)) if callable(progress) else None
    with BagWriter(out, storage=options.storage, overwrite=overwrite) as writer:
        writer.add_topic(options.topic, topic_type)
        topics = {options.topic: topic_type}
        meta: dict[str, object] = {"source": str(source)}
        queries: dict[str, np.ndarray] = {}
        if is_pickle:
            item = _pickle_video(source, video)
            fps = options.fps or DEFAULT_FPS
            writer.add_topic(GROUND_TRUTH_TOPIC, TRACKS_TYPE)
            topics[GROUND_TRUTH_TOPIC] = TRACKS_TYPE
            count, width, height, stamps = _write_frames(writer, item.video, options, fps, tick)
            tracks, occluded = _write_truth(writer, item, count, stamps, options.frame_id)
            from taptr_ros.eval.tapvid import QUERY_MODES, sample_queries

            for mode in QUERY_MODES:
                queries[mode] = sample_queries(tracks, occluded, mode)[0]
            meta.update(video=item.name)
            num_points = int(tracks.shape[0])
        else:
            fps = options.fps or _video_fps(source)
            count, width, height, stamps = _write_frames(writer, _video_frames(source), options, fps, tick)
            num_points = 0
        if grid is not None:
            points = grid_points(width, height, grid)
        if points is not None:
            points = np.asarray(points, np.float64).reshape(-1, 2)
            queries["points"] = np.concatenate([np.zeros((len(points), 1)), points], axis=1)
            num_points = max(num_points, len(points))
        meta.update(fps=fps)
        if queries:
            writer.add_file(
                QUERIES_FILE,
                QueriesFile(
                    queries, np.asarray(stamps, np.int64), options.topic, width, height, meta
                ).to_json(),
            )
    return MakeSummary(Path(out), count, width, height, fps, topics, num_points)


def _pickle_video(path: Path, name: str | None):
    from taptr_ros.data.errors import DataError
    from taptr_ros.data.tapvid import load_tapvid

    try:
        videos = load_tapvid(path)
    except DataError as error:
        raise BagGroundTruthError(f"{error}") from error
    if not videos:
        raise BagWriteError(f"{path}: the pickle holds no video")
    if name is None:
        return next(iter(videos.values()))
    if name not in videos:
        raise BagGroundTruthError(f"{path}: no video {name!r}; choose one with --video: {', '.join(videos)}")
    return videos[name]


def _write_truth(
    writer: BagWriter, item, count: int, stamps: list[int], frame_id: str
) -> tuple[np.ndarray, np.ndarray]:
    """One TrackedPoints per frame on /ground_truth/tracks; returns the (N, T, 2) px tracks and occlusion."""
    tracks = item.points.astype(np.float64)[:, :count] * np.array([item.width, item.height])
    occluded = item.occluded[:, :count]
    ids = np.arange(tracks.shape[0], dtype=np.uint32)
    for t, stamp in enumerate(stamps):
        visible = ~occluded[:, t]
        writer.write(
            GROUND_TRUTH_TOPIC,
            stamp,
            tracks_message(
                ids=ids,
                xy=tracks[:, t],
                visible=visible,
                visibility=visible.astype(np.float32),
                width=item.width,
                height=item.height,
                stamp_ns=stamp,
                frame_id=frame_id,
            ),
        )
    # what a reader gets back: float32 pixels
    return tracks.astype(np.float32).astype(np.float64), occluded


def _video_fps(path: Path) -> float:
    from taptr_ros.data.errors import DataError
    from taptr_ros.data.video import video_fps

    try:
        fps = video_fps(path)
    except DataError as error:
        raise BagError(f"{error}; pass a video file or a TAP-Vid .pkl") from error
    return fps if fps > 0 else DEFAULT_FPS


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    from taptr_ros.data.errors import DataError
    from taptr_ros.data.video import iter_frames

    try:
        yield from iter_frames(path)
    except DataError as error:
        raise BagError(f"{error}; pass a video file or a TAP-Vid .pkl") from error
