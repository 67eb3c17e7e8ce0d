"""The options of a live bag replay (`taptr_ros.ros.tools.bag_play.play_bag`, ``taptr bag play``).

Rates are relative to the recording (1.0 = as recorded); times in seconds; topics and the
tracker node's name are ROS names; ``points`` is (N, 2) float64 pixels (x, y) of the bag's
images, queried at frame 0; ``grid`` an N x N grid there instead.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class PlayOptions:
    """Options of :func:`play_bag` (see ``taptr bag play --help``)."""

    rate: float = 1.0
    image_topic: str | None = None
    publish_topic: str | None = None
    tracker: str = "/taptr_tracker"
    ground_truth: str | None = None
    gt_video: str | None = None
    use_ground_truth: bool = True
    query_mode: str = "first"
    points: np.ndarray | None = None
    grid: int | None = None
    clock: bool = True
    wait_s: float = 30.0
    drain_s: float = 10.0
    sync: bool = False
    start_node: bool = False
    checkpoint: str = "default"
    device: str = "auto"
    node_args: tuple[str, ...] = ()
