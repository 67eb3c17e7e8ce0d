"""Helpers of the online engine tests: a seeded random tiny network, random streams, and the
offline reference (`track_video`) on truncated videos with the frames' memory computed once.

A plain module (imported as ``tracking_helpers``), not conftest.py: ``from conftest import ...``
reads whichever conftest module Python imported first, so another folder's conftest could
shadow these.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from random_weights import randomize  # tests/random_weights.py
from taptr_ros.model.config import preset
from taptr_ros.model.preprocess import preprocess_frame
from taptr_ros.model.taptr import TAPTRv2, TrackResult, track_video


def make_model(seed: int = 0, **overrides) -> TAPTRv2:
    """The tiny preset (with `overrides`), weights randomised from `seed`, eval mode, CPU."""
    return randomize(TAPTRv2(preset("tiny", **overrides)), seed).eval()


def random_video(seed: int, frames: int, sizes: list[tuple[int, int]] | tuple[int, int]) -> list[np.ndarray]:
    """Smooth random uint8 RGB frames; `sizes` (h, w) for all, or one per frame."""
    rng = np.random.default_rng(seed)
    if isinstance(sizes, tuple):
        sizes = [sizes] * frames
    base = rng.uniform(0, 255, (8, 8, 3))
    out = []
    for t, (h, w) in enumerate(sizes):
        shift = np.roll(base, t % 8, axis=1) + rng.normal(0, 20, base.shape)
        img = cv2.resize(shift.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        out.append(np.clip(img + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8))
    return out


class Offline:
    """`track_video` on prefixes of a stream; every frame's memory is encoded once, up front,
    by the same network (one frame per call, as the engine does)."""

    def __init__(self, model: TAPTRv2, frames: list[np.ndarray], *, bgr: bool = False) -> None:
        self.model = model
        self.video = torch.stack([preprocess_frame(f, model.config, bgr=bgr) for f in frames])
        with torch.no_grad():
            self.memory = torch.cat([model.encode_frames(v[None]) for v in self.video])
        self._index = {self._key(v): i for i, v in enumerate(self.video)}

    @staticmethod
    def _key(image: torch.Tensor) -> bytes:
        return image.contiguous().numpy().tobytes()

    def encode_frames(self, images: torch.Tensor) -> torch.Tensor:
        return self.memory[[self._index[self._key(v)] for v in images]]

    def __getattr__(self, name):
        return getattr(self.model, name)

    def run(self, last: int, xy_norm: np.ndarray, query_t: np.ndarray, gap: int = 1) -> TrackResult:
        """Offline result on frames 0..last for queries (xy normalised, start frames)."""
        with torch.no_grad():
            return track_video(self, self.video[: last + 1], torch.as_tensor(xy_norm, dtype=torch.float32),
                               torch.as_tensor(query_t), content_propagation_gap=gap)
