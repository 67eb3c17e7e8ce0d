"""Smooth random motions of the synthetic scenes: camera homographies and object affines.

All transforms are (T, 3, 3) float64 matrices mapping texture (or canvas) pixels (x, y, 1)
to frame pixels of frame t; pixel convention: x right, y down, 0 = centre of the first
column/row (that of ``cv2.warpPerspective``).
"""

from __future__ import annotations

import numpy as np

from taptr_ros.data.synthetic_config import SyntheticConfig


def apply_homography(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Map (..., 2) points (x, y) through a (3, 3) homography; returns (..., 2) float64."""
    xy = np.asarray(xy, np.float64)
    w = xy @ matrix[2, :2] + matrix[2, 2]
    return (xy @ matrix[:2, :2].T + matrix[:2, 2]) / w[..., None]


def _smooth_curve(rng: np.random.Generator, num_frames: int, max_step: float) -> np.ndarray:
    """A smooth random (T,) curve starting at 0 whose per-frame change stays within max_step."""
    base = rng.uniform(-0.7, 0.7) * max_step
    wobble = rng.uniform(0.0, 0.3) * max_step
    freq = rng.uniform(0.5, 1.5) * 2 * np.pi / max(num_frames, 1)
    phase = rng.uniform(0, 2 * np.pi)
    steps = base + wobble * np.sin(freq * np.arange(num_frames) + phase)
    steps[0] = 0.0
    return np.cumsum(steps)


def _translate(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def _rotate_scale(angle: float, sx: float, sy: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c * sx, -s * sy, 0.0], [s * sx, c * sy, 0.0], [0.0, 0.0, 1.0]])


def camera_transforms(rng: np.random.Generator, config: SyntheticConfig,
                      canvas_hw: tuple[int, int]) -> np.ndarray:
    """Background homographies: (T, 3, 3) float64 mapping canvas pixels to frame pixels."""
    T, H, W = config.num_frames, config.height, config.width
    unit = min(H, W) / 256.0
    shift_x = _smooth_curve(rng, T, config.camera_speed * unit)
    shift_y = _smooth_curve(rng, T, config.camera_speed * unit)
    angle = rng.uniform(-0.1, 0.1) + _smooth_curve(rng, T, config.camera_rotation)
    zoom = rng.uniform(-0.1, 0.1) + _smooth_curve(rng, T, config.camera_zoom)
    tilt = rng.uniform(-1, 1, size=2) * config.camera_perspective
    tilt_t = tilt + np.stack([_smooth_curve(rng, T, config.camera_perspective / max(T, 1))
                              for _ in range(2)], axis=1)
    to_centre = _translate(-(canvas_hw[1] - 1) / 2, -(canvas_hw[0] - 1) / 2)
    out = np.empty((T, 3, 3))
    for t in range(T):
        perspective = np.eye(3)
        perspective[2, :2] = tilt_t[t] / np.array([W, H])
        scale = np.exp(zoom[t])
        out[t] = (_translate((W - 1) / 2 + shift_x[t], (H - 1) / 2 + shift_y[t])
                  @ _rotate_scale(angle[t], scale, scale) @ perspective @ to_centre)
    return out


def object_transforms(rng: np.random.Generator, config: SyntheticConfig,
                      texture_hw: tuple[int, int]) -> np.ndarray:
    """One object's affine motion: (T, 3, 3) float64 mapping texture pixels to frame pixels.

    The object's centre moves at constant velocity plus a small acceleration. With
    probability ``cross_probability`` its centre crosses a frame border (the object enters
    or leaves) at a random time in the middle 60% of the sequence.
    """
    T, H, W = config.num_frames, config.height, config.width
    unit = min(H, W) / 256.0
    speed = rng.uniform(*config.object_speed) * unit
    times = np.arange(T, dtype=np.float64)
    if rng.random() < config.cross_probability:
        # the centre is on a random border at a random time, heading in or out of the frame
        side = rng.integers(4)
        along = rng.uniform(0.1, 0.9)
        anchor = [np.array([0.0, along * (H - 1)]), np.array([W - 1.0, along * (H - 1)]),
                  np.array([along * (W - 1), 0.0]), np.array([along * (W - 1), H - 1.0])][side]
        normal = [np.pi, 0.0, -np.pi / 2, np.pi / 2][side] + (np.pi if rng.random() < 0.5 else 0.0)
        heading = normal + rng.uniform(-np.pi / 3, np.pi / 3)
        times = times - rng.uniform(0.2, 0.8) * (T - 1)
    else:
        anchor = rng.uniform([0.15 * W, 0.15 * H], [0.85 * W, 0.85 * H])
        heading = rng.uniform(0, 2 * np.pi)
        times = times - (T - 1) / 2
    direction = np.array([np.cos(heading), np.sin(heading)])
    accel = rng.normal(0, 0.02, size=2) * speed
    centre = anchor + times[:, None] * speed * direction + 0.5 * accel * times[:, None] ** 2
    angle = rng.uniform(0, 2 * np.pi) + _smooth_curve(rng, T, config.object_rotation)
    zoom = _smooth_curve(rng, T, config.object_zoom)
    aspect = _smooth_curve(rng, T, config.object_zoom / 2)
    to_centre = _translate(-(texture_hw[1] - 1) / 2, -(texture_hw[0] - 1) / 2)
    out = np.empty((T, 3, 3))
    for t in range(T):
        sx, sy = np.exp(zoom[t] + aspect[t]), np.exp(zoom[t] - aspect[t])
        out[t] = _translate(*centre[t]) @ _rotate_scale(angle[t], sx, sy) @ to_centre
    return out
