"""Drawing a synthetic scene: layers composited per frame, then photometric changes.

Photometric changes (brightness drift, Gaussian blur, motion blur along the camera's motion,
noise) are applied after compositing and move nothing: the tracks of `taptr_ros.data.scene`
stay exact. Arrays are (T, H, W, 3) RGB; pixel convention as in `taptr_ros.data.scene`.
"""

from __future__ import annotations

import cv2
import numpy as np

from taptr_ros.data.motion import apply_homography
from taptr_ros.data.scene import Scene
from taptr_ros.data.synthetic_config import SyntheticConfig


def render(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Draw every frame of a scene.

    Returns:
        video (T, H, W, 3) float32 RGB in [0, 255]; layer_map (T, H, W) int8, the top-most
        layer whose alpha exceeds 0.5 at each pixel.
    """
    T, H, W = scene.num_frames, scene.height, scene.width
    video = np.empty((T, H, W, 3), np.float32)
    layer_map = np.zeros((T, H, W), np.int8)
    background = scene.layers[0]
    for t in range(T):
        frame = cv2.warpPerspective(background.texture, background.transforms[t], (W, H),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        frame = frame.astype(np.float32)
        for k, layer in enumerate(scene.layers[1:], start=1):
            affine = layer.transforms[t][:2]
            rgb = cv2.warpAffine(layer.texture, affine, (W, H), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            alpha = cv2.warpAffine(layer.alpha, affine, (W, H), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            frame += alpha[:, :, None] * (rgb.astype(np.float32) - frame)
            layer_map[t][alpha > 0.5] = k
        video[t] = frame
    return video, layer_map


def camera_motion(scene: Scene) -> np.ndarray:
    """(T, 2) float64 frame pixels (x, y): how far the frame centre's background point moved
    since the previous frame (0 at frame 0); the direction and length of camera motion blur."""
    centre = np.array([(scene.width - 1) / 2, (scene.height - 1) / 2])
    transforms = scene.layers[0].transforms
    canvas_xy = apply_homography(np.linalg.inv(transforms[0]), centre)
    xy = np.stack([apply_homography(m, canvas_xy) for m in transforms])
    return np.diff(xy, axis=0, prepend=xy[:1])


def motion_blur_kernel(displacement: np.ndarray, exposure: float) -> np.ndarray | None:
    """A normalised line kernel along ``exposure * displacement`` (px, x/y); None if under 1 px."""
    dx, dy = exposure * np.asarray(displacement, np.float64)
    length = float(np.hypot(dx, dy))
    if length < 1.0:
        return None
    half = int(np.ceil(length / 2))
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    ends = [(half - dx / 2, half - dy / 2), (half + dx / 2, half + dy / 2)]
    shift = 4
    cv2.line(kernel, *[tuple(int(round(v * (1 << shift))) for v in e) for e in ends], 1.0,
             thickness=1, lineType=cv2.LINE_AA, shift=shift)
    return kernel / kernel.sum()


def photometric(rng: np.random.Generator, video: np.ndarray, config: SyntheticConfig,
                motion: np.ndarray | None = None) -> np.ndarray:
    """Brightness drift, random blur and noise; (T, H, W, 3) float32 in, uint8 out. Moves nothing.

    With ``config.motion_blur`` > 0 and ``motion`` ((T, 2) px per frame, `camera_motion`), a
    frame is blurred along the camera's motion with that probability (exposure 30-100% of the
    frame interval); the tracks stay those of the frame's instant (the blur's centre).
    """
    T = video.shape[0]
    gain = 1.0 + config.brightness * np.sin(rng.uniform(0.5, 2.0) * np.pi * np.arange(T) / max(T, 1)
                                             + rng.uniform(0, 2 * np.pi))
    offset = rng.uniform(-0.5, 0.5) * config.brightness * 64.0
    out = np.empty(video.shape, np.uint8)
    for t in range(T):
        frame = video[t] * gain[t] + offset
        if rng.random() < config.blur_probability:
            frame = cv2.GaussianBlur(frame, (0, 0), rng.uniform(0.3, max(config.blur_sigma, 0.3)))
        if config.motion_blur > 0 and motion is not None and rng.random() < config.motion_blur:
            kernel = motion_blur_kernel(motion[t], rng.uniform(0.3, 1.0))
            if kernel is not None:
                frame = cv2.filter2D(frame, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
        if config.noise_std > 0:
            frame = frame + rng.standard_normal(frame.shape, np.float32) * config.noise_std
        out[t] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return out
