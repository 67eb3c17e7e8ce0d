"""Size, motion and difficulty of the synthetic sequences, and the named presets.

Speeds are pixels per frame of a 256-pixel frame (scaled with ``min(height, width)``), angles
radians per frame, zooms changes of log-scale per frame. Used by `taptr_ros.data.motion`,
`taptr_ros.data.scene`, `taptr_ros.data.render` and `taptr_ros.data.synthetic`.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Size, motion and difficulty of the generated sequences.

    Speeds are in pixels per frame for a 256-pixel frame and scale with ``min(height, width)``.
    Use :func:`preset` for the named difficulties.
    """

    height: int = 256
    width: int = 256
    num_frames: int = 24
    num_points: int = 64                 # tracks per sequence
    object_point_fraction: float = 0.5   # share of the tracks that start on an object
    min_objects: int = 2
    max_objects: int = 6
    object_size: tuple[float, float] = (0.2, 0.45)  # object diameter / min(height, width)
    object_speed: tuple[float, float] = (0.5, 2.0)   # px/frame
    object_rotation: float = 0.01        # max rad/frame
    object_zoom: float = 0.005           # max change of log-scale per frame
    cross_probability: float = 0.3       # chance that an object enters or leaves the frame
    camera_speed: float = 1.0            # max background translation, px/frame
    camera_rotation: float = 0.003       # max rad/frame
    camera_zoom: float = 0.003           # max change of log-scale per frame
    camera_perspective: float = 0.1      # max perspective strength (dimensionless)
    canvas_scale: float = 1.6            # background canvas size / frame size
    brightness: float = 0.1              # max relative brightness drift over the sequence
    blur_probability: float = 0.1        # chance a frame is blurred
    blur_sigma: float = 1.0              # max Gaussian blur sigma, px
    noise_std: float = 2.0               # Gaussian noise std, uint8 levels
    motion_blur: float = 0.0             # chance a frame is blurred along the camera's motion
    photo_probability: float = 0.6       # share of textures cropped from photographs
    texture_videos: tuple[str, ...] = ()  # video files whose frames are photographs too


_PRESETS: dict[str, SyntheticConfig] = {
    "easy": SyntheticConfig(),
    "hard": SyntheticConfig(
        min_objects=3, max_objects=6, object_size=(0.25, 0.5), object_speed=(1.5, 5.0),
        object_rotation=0.04, object_zoom=0.015, cross_probability=0.6, camera_speed=4.0,
        camera_rotation=0.01, camera_zoom=0.01, camera_perspective=0.25, canvas_scale=2.0,
        brightness=0.3, blur_probability=0.3, blur_sigma=2.0, noise_std=6.0,
    ),
    # nothing moves (a robot standing still): only noise, brightness drift and blur change,
    # so a tracker learns that zero motion is an answer
    "still": SyntheticConfig(
        object_speed=(0.0, 0.0), object_rotation=0.0, object_zoom=0.0, cross_probability=0.0,
        camera_speed=0.0, camera_rotation=0.0, camera_zoom=0.0, camera_perspective=0.0,
    ),
    # a robot's camera panning: fast background motion blurred along its direction, small
    # fast objects crossing, mostly photographic textures
    "pan": SyntheticConfig(
        min_objects=1, max_objects=5, object_size=(0.06, 0.2), object_speed=(2.0, 8.0),
        object_rotation=0.02, cross_probability=0.6, camera_speed=8.0, camera_rotation=0.005,
        camera_zoom=0.005, camera_perspective=0.1, canvas_scale=2.2, brightness=0.15,
        blur_probability=0.1, motion_blur=0.5, photo_probability=0.9, noise_std=3.0,
    ),
}


def preset(name: str, **overrides: object) -> SyntheticConfig:
    """The named difficulty (``"easy"`` or ``"hard"``) with optional field overrides.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    if name not in _PRESETS:
        raise KeyError(f"unknown synthetic preset {name!r}; choose one of {sorted(_PRESETS)}")
    return dataclasses.replace(_PRESETS[name], **overrides)


def preset_names() -> list[str]:
    """Names accepted by :func:`preset`."""
    return sorted(_PRESETS)
