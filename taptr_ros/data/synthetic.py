"""Synthetic point-tracking sequences with exactly known tracks and occlusion (Kubric in spirit).

A scene is a stack of layers drawn back to front. Layer 0 is the background: a textured
canvas seen through a smooth random homography that changes every frame (camera motion).
Layers 1.. are textured objects (ellipses or star polygons with anti-aliased alpha masks),
each moved by its own affine motion (translation, rotation, anisotropic zoom) and possibly
entering or leaving the frame. A query point lives on one layer at fixed texture
coordinates ``u``; its track is the exact image of ``u`` under that layer's transform, and it
is occluded in frame t when it is outside the frame or a nearer layer's alpha there is above
0.5. Photometric changes (brightness drift, blur, noise) are applied after rendering and do
not move anything.

Conventions: pixel coordinates (x right, y down, 0 = centre of the first column/row), the
same convention as ``cv2.warpPerspective``; frame indices start at 0. Everything is drawn
from one ``numpy.random.Generator``: the same seed gives the same sequence, bit for bit.

Rooms of the generator: `synthetic_config` (sizes, difficulty, presets), `motion` (camera
and object transforms), `textures`, `scene` (layers and exact tracks), `render` (frames and
photometric changes); this module puts them together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from taptr_ros.data.render import camera_motion, photometric, render
from taptr_ros.data.scene import point_tracks, sample_points, sample_scene
from taptr_ros.data.synthetic_config import SyntheticConfig, preset, preset_names
from taptr_ros.data.tapvid import TapVidVideo

__all__ = ["SyntheticConfig", "SyntheticSequence", "generate_sequence", "generate_tapvid", "preset",
           "preset_names"]


@dataclasses.dataclass(frozen=True)
class SyntheticSequence:
    """A rendered sequence and its exact point tracks.

    Attributes:
        video: (T, H, W, 3) uint8 RGB, after photometric changes.
        tracks: (N, T, 2) float32 pixels (x, y) in every frame, also where occluded.
        occluded: (N, T) bool; True where the point is covered by a nearer layer or is outside
            the frame (x outside [0, W-1] or y outside [0, H-1]).
        point_layer: (N,) int16, the layer each point lies on (0 = background).
        query_frames: (N,) int32, the frame each point was sampled in (visible there).
        clean_video: (T, H, W, 3) uint8 before photometric changes, when requested.
        layer_map: (T, H, W) int8, the top-most layer (alpha > 0.5) at each pixel, when requested.
    """

    video: np.ndarray
    tracks: np.ndarray
    occluded: np.ndarray
    point_layer: np.ndarray
    query_frames: np.ndarray
    clean_video: np.ndarray | None = None
    layer_map: np.ndarray | None = None


def generate_sequence(config: SyntheticConfig, rng: np.random.Generator | int | Sequence[int],
                      *, keep_clean: bool = False) -> SyntheticSequence:
    """Generate one sequence with exact tracks.

    Args:
        config: sizes and difficulty (see :func:`preset`).
        rng: a numpy Generator, or a seed (int or tuple of ints) for ``numpy.random.default_rng``.
        keep_clean: also return the video before photometric changes and the layer map.

    Returns:
        The sequence; ``tracks`` are float32 pixels (x, y).
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    scene = sample_scene(rng, config)
    point_layer, texture_xy, query_frames = sample_points(rng, scene, config)
    tracks, occluded = point_tracks(scene, point_layer, texture_xy)
    clean, layer_map = render(scene)
    video = photometric(rng, clean, config, camera_motion(scene))
    return SyntheticSequence(
        video=video, tracks=tracks.astype(np.float32), occluded=occluded,
        point_layer=point_layer, query_frames=query_frames,
        clean_video=np.clip(np.rint(clean), 0, 255).astype(np.uint8) if keep_clean else None,
        layer_map=layer_map if keep_clean else None,
    )


def generate_tapvid(config: SyntheticConfig, *, num_videos: int, seed: int,
                    prefix: str = "synth") -> list[TapVidVideo]:
    """``num_videos`` sequences as TAP-Vid videos named ``{prefix}_0000``, ...

    Video i is drawn from ``numpy.random.default_rng((seed, i))``, so it does not depend on
    ``num_videos``: a longer split extends a shorter one with the same seed.
    """
    out = []
    for index in range(num_videos):
        sequence = generate_sequence(config, (seed, index))
        out.append(TapVidVideo.from_pixels(f"{prefix}_{index:04d}", sequence.video,
                                           sequence.tracks, sequence.occluded))
    return out
