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
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import cv2
import numpy as np

from taptr_ros.data.errors import DataError
from taptr_ros.data.motion import apply_homography, camera_transforms, object_transforms
from taptr_ros.data.tapvid import TapVidVideo
from taptr_ros.data.textures import random_mask, random_texture


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


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer of a scene.

    Attributes:
        texture: (h, w, 3) uint8 RGB, in texture pixels.
        alpha: (h, w) float32 in [0, 1]; None means opaque everywhere (the background, which
            is drawn with reflected borders so it always fills the frame).
        transforms: (T, 3, 3) float64; transforms[t] maps texture pixels (x, y, 1) to frame
            pixels of frame t (a homography; affine for objects).
    """

    texture: np.ndarray
    alpha: np.ndarray | None
    transforms: np.ndarray


@dataclasses.dataclass(frozen=True)
class Scene:
    """Layers back to front (layer 0 = background) and the frame size (height, width)."""

    layers: tuple[Layer, ...]
    height: int
    width: int

    @property
    def num_frames(self) -> int:
        return int(self.layers[0].transforms.shape[0])


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


def sample_scene(rng: np.random.Generator, config: SyntheticConfig) -> Scene:
    """Draw textures, masks and motions of one random scene."""
    H, W = config.height, config.width
    canvas_hw = (int(np.ceil(H * config.canvas_scale)), int(np.ceil(W * config.canvas_scale)))
    texture = functools.partial(random_texture, photo_probability=config.photo_probability,
                                videos=config.texture_videos)
    background = Layer(texture(rng, *canvas_hw), None, camera_transforms(rng, config, canvas_hw))
    layers = [background]
    for _ in range(rng.integers(config.min_objects, config.max_objects + 1)):
        diameter = rng.uniform(*config.object_size) * min(H, W)
        aspect = np.exp(rng.uniform(-0.4, 0.4))
        hw = (max(8, int(diameter * aspect)), max(8, int(diameter / aspect)))
        layers.append(Layer(texture(rng, *hw), random_mask(rng, *hw),
                            object_transforms(rng, config, hw)))
    return Scene(tuple(layers), H, W)


# --------------------------------------------------------------------------- geometry


def bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sample a 2-D image at (N, 2) pixel positions (x, y), zero outside; returns (N,)."""
    h, w = image.shape
    x, y = xy[:, 0], xy[:, 1]
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    out = np.zeros(len(xy), np.float64)
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                           (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        out[inside] += weight[inside] * image[yi[inside], xi[inside]]
    return out


def point_tracks(scene: Scene, point_layer: np.ndarray,
                 texture_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact tracks and occlusion of points fixed on layers.

    Args:
        scene: the scene.
        point_layer: (N,) int, the layer of each point.
        texture_xy: (N, 2) texture pixels (x, y) of each point on its layer.

    Returns:
        tracks (N, T, 2) float64 frame pixels (x, y); occluded (N, T) bool.
    """
    N, T = len(point_layer), scene.num_frames
    tracks = np.empty((N, T, 2))
    for k, layer in enumerate(scene.layers):
        on_layer = point_layer == k
        for t in range(T):
            tracks[on_layer, t] = apply_homography(layer.transforms[t], texture_xy[on_layer])
    x, y = tracks[..., 0], tracks[..., 1]
    occluded = (x < 0) | (x > scene.width - 1) | (y < 0) | (y > scene.height - 1)
    for k, layer in enumerate(scene.layers[1:], start=1):
        behind = point_layer < k
        if not behind.any():
            continue
        for t in range(T):
            local = apply_homography(np.linalg.inv(layer.transforms[t]), tracks[behind, t])
            occluded[behind, t] |= bilinear(layer.alpha, local) > 0.5
    return tracks, occluded


# --------------------------------------------------------------------------- rendering


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


def sample_points(rng: np.random.Generator, scene: Scene,
                  config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw query points visible in their own sample frame.

    A share ``object_point_fraction`` starts on objects (uniform over mask pixels), the rest
    uniformly over the frame (kept only where the background is visible).

    Returns:
        point_layer (N,) int16, texture_xy (N, 2) float64, query_frames (N,) int32.
    """
    N, T, H, W = config.num_points, scene.num_frames, scene.height, scene.width
    mask_pixels = [None] + [np.stack(np.nonzero(layer.alpha > 0.99)[::-1], axis=1)
                            for layer in scene.layers[1:]]
    inverse = np.linalg.inv(scene.layers[0].transforms)
    layers, uvs, frames = [], [], []
    count = 0
    for _attempt in range(20):
        batch = 2 * (N - count) + 8
        frame = rng.integers(0, T, size=batch)
        layer = np.zeros(batch, np.int64)
        if len(scene.layers) > 1:
            on_object = rng.random(batch) < config.object_point_fraction
            layer[on_object] = rng.integers(1, len(scene.layers), size=int(on_object.sum()))
        frame_xy = rng.uniform([0, 0], [W - 1, H - 1], size=(batch, 2))
        w = np.einsum("nij,nj->ni", inverse[frame], np.concatenate([frame_xy, np.ones((batch, 1))], 1))
        uv = w[:, :2] / w[:, 2:]
        jitter = rng.uniform(-0.5, 0.5, size=(batch, 2))
        for k in range(1, len(scene.layers)):
            chosen = np.flatnonzero(layer == k)
            pixels = mask_pixels[k]
            if len(pixels) == 0:
                layer[chosen] = 0
                continue
            uv[chosen] = pixels[rng.integers(len(pixels), size=len(chosen))] + jitter[chosen]
        _, occluded = point_tracks(scene, layer, uv)
        keep = ~occluded[np.arange(batch), frame]
        layers.append(layer[keep])
        uvs.append(uv[keep])
        frames.append(frame[keep])
        count += int(keep.sum())
        if count >= N:
            break
    layer = np.concatenate(layers)[:N].astype(np.int16)
    if len(layer) < N:
        raise DataError(f"could only place {len(layer)} of {N} visible points; use fewer objects, "
                        "smaller objects or a larger frame")
    return layer, np.concatenate(uvs)[:N], np.concatenate(frames)[:N].astype(np.int32)


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
