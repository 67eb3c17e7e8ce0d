"""Held-out synthetic evaluation splits, fixed once so reported numbers can be reproduced.

Each split is a preset plus sizes and a seed; ``taptr data synth --heldout easy`` writes it.
Video i of a split is drawn from ``numpy.random.default_rng((seed, i))``. Training must draw
from other seeds: keep training seeds below ``TRAIN_SEED_LIMIT``.
"""

from __future__ import annotations

import dataclasses

from taptr_ros.data.synthetic import SyntheticConfig, generate_tapvid, preset
from taptr_ros.data.tapvid import TapVidVideo

#: training data must use seeds below this; held-out splits use seeds above it.
TRAIN_SEED_LIMIT = 1_000_000


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """Generation parameters of one synthetic split."""

    preset: str
    num_videos: int
    num_frames: int
    size: int        # frames are size x size pixels
    num_points: int  # tracks per video
    seed: int

    def config(self) -> SyntheticConfig:
        """The synthetic configuration the split's videos are generated with."""
        return preset(self.preset, num_frames=self.num_frames, height=self.size,
                      width=self.size, num_points=self.num_points)

    def generate(self) -> list[TapVidVideo]:
        """The split's videos, named ``{preset}_0000``, ..."""
        return generate_tapvid(self.config(), num_videos=self.num_videos, seed=self.seed,
                               prefix=self.preset)


#: The project's held-out splits (README table).
HELDOUT: dict[str, SplitSpec] = {
    "easy": SplitSpec("easy", num_videos=10, num_frames=24, size=256, num_points=64, seed=1_000_001),
    "hard": SplitSpec("hard", num_videos=10, num_frames=24, size=256, num_points=64, seed=1_000_002),
}
