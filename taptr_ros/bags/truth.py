"""Ground truth for a bag's video: from its ``/ground_truth/tracks`` topic or a TAP-Vid pickle.

Ground truth is aligned to the image topic's frames: frame t of the truth is the image whose
header stamp equals the TrackedPoints header stamp (bag topic), or image t (pickle). Pixels are
those of the TAP-Vid convention used by ``taptr eval tapvid``: ``points * (W, H)``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from taptr_ros.bags.errors import BagGroundTruthError
from taptr_ros.bags.storage import BagReader
from taptr_ros.data.tapvid import TapVidVideo


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """Tracks of N points over the T frames of a bag's image topic.

    Attributes:
        tracks_px: (N, T, 2) float64 pixels (x, y) of the image topic's frames.
        occluded: (N, T) bool.
        ids: (N,) uint32 point ids (the pickle's point order for pickles).
        source: where it came from (for reports).
    """

    tracks_px: np.ndarray
    occluded: np.ndarray
    ids: np.ndarray
    source: str

    def as_tapvid(self, name: str, num_frames: int, height: int, width: int) -> TapVidVideo:
        """A frame-less TapVidVideo (a zero-byte broadcast ``video``) for the TAP-Vid runner."""
        video = np.broadcast_to(np.zeros((1, 1, 1, 3), np.uint8), (num_frames, height, width, 3))
        return TapVidVideo.from_pixels(name, video, self.tracks_px, self.occluded)


def _mismatch(source: str, what: str) -> BagGroundTruthError:
    return BagGroundTruthError(
        f"{source}: ground truth does not match the bag's video: {what}. Pass the "
        "ground truth the bag was made from (or remake the bag from it with "
        "`taptr bag make`)"
    )


def truth_from_bag(
    reader: BagReader, topic: str, stamps_ns: np.ndarray, size_wh: tuple[int, int]
) -> GroundTruth:
    """Read a TrackedPoints ground-truth topic and align it to the image frames.

    Args:
        reader: the open bag.
        topic: the ground-truth topic (TrackedPoints).
        stamps_ns: (T,) header stamps of the image frames, in order.
        size_wh: (width, height) of the image frames.

    Raises:
        BagTopicError / BagTypeError / BagEmptyError: see :meth:`BagReader.iter_tracks`.
        BagGroundTruthError: stamps not among the frames', a frame without truth, ids that differ
            between frames, or a size that differs from the images'.
    """
    source = f"{reader.path}:{topic}"
    index = {int(s): t for t, s in enumerate(stamps_ns)}
    T = len(stamps_ns)
    per_frame: dict[int, object] = {}
    ids = None
    for _log_ns, tracks in reader.iter_tracks(topic):
        t = index.get(tracks.stamp_ns)
        if t is None:
            raise _mismatch(source, f"a message has stamp {tracks.stamp_ns} ns, which no image frame has")
        if (tracks.width, tracks.height) != tuple(size_wh):
            raise _mismatch(
                source,
                f"it is for {tracks.width}x{tracks.height} images, the frames are "
                f"{size_wh[0]}x{size_wh[1]}",
            )
        if ids is None:
            ids = tracks.ids
        elif not np.array_equal(ids, tracks.ids):
            raise _mismatch(source, f"frame {t} lists other point ids than frame 0")
        per_frame[t] = tracks
    missing = sorted(set(range(T)) - set(per_frame))
    if missing:
        raise _mismatch(
            source, f"{len(missing)} of {T} frames have no ground truth (first: frame {missing[0]})"
        )
    assert ids is not None
    xy = np.stack([np.stack([per_frame[t].x, per_frame[t].y], axis=-1) for t in range(T)], axis=1)
    occluded = ~np.stack([per_frame[t].visible for t in range(T)], axis=1)
    return GroundTruth(xy.astype(np.float64), occluded, ids.copy(), source)


def truth_from_pickle(
    path: str | os.PathLike[str], num_frames: int, size_wh: tuple[int, int], *, video: str | None = None
) -> GroundTruth:
    """Ground truth from a TAP-Vid pickle, checked against the bag's frame count and size.

    Args:
        path: the pickle (trusted: pickles run code when loaded).
        num_frames: frames on the bag's image topic.
        size_wh: (width, height) of those frames.
        video: the pickle's video name; default its only video (or the first, for several).

    Raises:
        BagGroundTruthError: unreadable pickle, unknown video, or frame count/size that differ.
    """
    from taptr_ros.data.errors import DataError
    from taptr_ros.data.tapvid import load_tapvid

    try:
        videos = load_tapvid(path)
    except DataError as error:
        raise BagGroundTruthError(f"ground truth {path}: {error}") from error
    if not videos:
        raise BagGroundTruthError(f"ground truth {path}: the pickle holds no video")
    name = video if video is not None else next(iter(videos))
    if name not in videos:
        raise BagGroundTruthError(f"ground truth {path}: no video {name!r}; it has {', '.join(videos)}")
    item = videos[name]
    source = f"{Path(path)}[{name}]"
    if item.num_frames != num_frames or (item.width, item.height) != tuple(size_wh):
        raise _mismatch(
            source,
            f"it has {item.num_frames} frames of {item.width}x{item.height}, the bag "
            f"{num_frames} frames of {size_wh[0]}x{size_wh[1]}",
        )
    tracks = item.points.astype(np.float64) * np.array([item.width, item.height])
    return GroundTruth(tracks, item.occluded.copy(), np.arange(len(tracks), dtype=np.uint32), source)
