"""The frames a bag evaluation reads and the files it writes as it goes (`taptr_ros.bags.evaluate`).

Frames are `taptr_ros.bags.storage.BagImage` (RGB uint8 (H, W, 3), integer-nanosecond stamps);
tracks are written as the node publishes them (pixels x/y of the image, header = the image's).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from taptr_ros.bags.engine import FrameTracks
from taptr_ros.bags.errors import BagError, BagWriteError
from taptr_ros.bags.storage import BagImage, BagReader, BagWriter
from taptr_ros.bags.topics import RESULT_TOPIC
from taptr_ros.messages.typestore import TRACKS_TYPE, tracks_message

#: frames kept in memory for a backward pass up to this many bytes; beyond, a memory-mapped file
MEMORY_LIMIT_BYTES = 2 << 30


class FrameSource:
    """The bag's frames on one topic: streamed for the forward pass, kept (in RAM, or in a
    memory-mapped ``scratch/frames.npy`` beyond `MEMORY_LIMIT_BYTES`) for a backward one.

    Args:
        bag: the bag folder.
        topic: its image topic.
        num_frames: frames on the topic (T).
        size_hw: (height, width) pixels of every frame; another size raises BagError.
        keep: keep the frames for `backward`.
        scratch: a folder for the memory map.
        tick: called once per frame yielded (progress).
    """

    def __init__(
        self,
        bag: Path,
        topic: str,
        num_frames: int,
        size_hw: tuple[int, int],
        keep: bool,
        scratch: Path,
        tick: Callable[[], None],
    ) -> None:
        self.bag, self.topic, self.T, self.size_hw, self.keep = bag, topic, num_frames, size_hw, keep
        self.tick = tick
        self.images: list[BagImage] = []
        self._pixels: np.ndarray | None = None
        if keep and num_frames * size_hw[0] * size_hw[1] * 3 > MEMORY_LIMIT_BYTES:
            self._pixels = np.lib.format.open_memmap(
                scratch / "frames.npy", mode="w+", dtype=np.uint8, shape=(num_frames, *size_hw, 3)
            )

    def forward(self) -> Iterator[BagImage]:
        with BagReader(self.bag) as reader:
            for image in reader.iter_images(self.topic):
                if image.rgb.shape[:2] != self.size_hw:
                    raise BagError(
                        f"{self.bag}: frame {image.index} of {self.topic!r} is {image.width}x"
                        f"{image.height}, frame 0 {self.size_hw[1]}x{self.size_hw[0]}: the tools "
                        "need one image size per topic; split the bag where the size changes"
                    )
                if self.keep:
                    if self._pixels is not None:
                        self._pixels[image.index] = image.rgb
                        image = dataclasses.replace(image, rgb=self._pixels[image.index], raw=b"")
                    else:
                        image = dataclasses.replace(image, raw=b"")
                    self.images.append(image)
                self.tick()
                yield image

    def backward(self, last: int | None = None) -> Iterator[BagImage]:
        """Frames ``last`` (default: the final one) down to 0, stamped with mirrored, increasing
        stamps (the engine refuses stamps that go back in time)."""
        if len(self.images) != self.T:
            raise BagError("internal: the backward pass needs the forward pass's frames")
        last = self.T - 1 if last is None else last
        first, top = self.images[0].stamp_ns, self.images[last].stamp_ns
        for image in reversed(self.images[: last + 1]):
            self.tick()
            yield dataclasses.replace(image, stamp_ns=first + (top - image.stamp_ns))
        for _ in range(self.T - 1 - last):  # progress counts whole passes
            self.tick()


class ResultWriter:
    """The result bag (``out_dir/tracks``, taptr_ros/TrackedPoints on `RESULT_TOPIC`) and the
    overlay video (``out_dir/overlay.mp4``, when ``overlay``), written frame by frame.

    Each goes to a temporary name first; `close` (ok=True) renames them, close(ok=False)
    removes them. ``size_hw`` is (height, width) pixels, ``fps`` the overlay's frame rate.
    """

    def __init__(self, out_dir: Path, size_hw: tuple[int, int], fps: float, *, storage: str,
                 overlay: bool) -> None:
        self.writer = BagWriter(out_dir / "tracks", storage=storage, overwrite=True)
        self.writer.add_topic(RESULT_TOPIC, TRACKS_TYPE)
        self.size_hw = size_hw
        self.video = None
        if overlay:
            import cv2

            self.video_path = out_dir / "overlay.mp4"
            self.video_tmp = out_dir / ".overlay.partial.mp4"
            self.video = cv2.VideoWriter(
                os.fspath(self.video_tmp),
                cv2.VideoWriter_fourcc(*"mp4v"),
                float(fps),
                (size_hw[1], size_hw[0]),
            )
            if not self.video.isOpened():
                raise BagWriteError(f"{self.video_tmp}: OpenCV cannot open an mp4v writer; pass --no-overlay")

    def frame(self, image: BagImage, out: FrameTracks) -> None:
        """Write one frame's tracks (pixels x/y of ``image``, its stamp and frame id) and overlay."""
        self.writer.write(
            RESULT_TOPIC,
            image.log_ns,
            tracks_message(
                ids=out.ids,
                xy=out.xy,
                visible=out.visible,
                visibility=out.visibility,
                width=image.width,
                height=image.height,
                stamp_ns=image.stamp_ns,
                frame_id=image.frame_id,
            ),
        )
        if self.video is not None:
            import cv2

            from taptr_ros.data.video import draw_tracks

            drawn = draw_tracks(image.rgb, out.ids, out.xy, out.visible)
            self.video.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))

    def close(self, ok: bool) -> list[str]:
        """Finish (ok) or discard both outputs; returns the names written, relative to out_dir."""
        files = []
        if self.video is not None:
            self.video.release()
            if ok:
                os.replace(self.video_tmp, self.video_path)
                files.append("overlay.mp4")
            else:
                self.video_tmp.unlink(missing_ok=True)
        if ok:
            self.writer.close()
            files.insert(0, "tracks/")
        else:
            self.writer.abort()
        return files
