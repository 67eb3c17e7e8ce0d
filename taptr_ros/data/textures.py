"""Texture and alpha-mask sources for the synthetic sequences.

Photographs come from scikit-image's bundled sample images (``skimage.data``, shipped in the
wheel, no download; permissively licensed, see ``skimage/data/README.txt``) and, for training
runs that name them, frames of real camera videos (`video_frames`). Procedural
textures (multi-octave noise, rotated checkers, sinusoid gratings) add unlimited variety.
Every function takes a ``numpy.random.Generator`` and is deterministic given its state.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

#: scikit-image sample images used as photographic textures (all bundled in the wheel).
SKIMAGE_TEXTURES: tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "grass", "gravel",
    "immunohistochemistry", "hubble_deep_field", "colorwheel", "moon", "coins", "retina",
    "text", "page", "cell", "clock",
)

_MAX_SIDE = 640  # photos are cached downscaled to this longest side


def _downscaled(image: np.ndarray) -> np.ndarray:
    """The (H, W, 3) image with its longest side at most 640 px (area interpolation)."""
    scale = _MAX_SIDE / max(image.shape[:2])
    if scale >= 1.0:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@functools.lru_cache(maxsize=None)
def skimage_texture(name: str) -> np.ndarray:
    """One scikit-image sample image as RGB uint8 (H, W, 3), longest side at most 640 px.

    The array is cached and read-only: copy before writing.
    """
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3])
    image = _downscaled(image)
    image.setflags(write=False)
    return image


@functools.lru_cache(maxsize=None)
def video_frames(path: str, *, count: int = 12) -> tuple[np.ndarray, ...]:
    """``count`` frames spread evenly over a video file, RGB uint8 (H, W, 3), longest side <= 640.

    Real camera footage as texture: its statistics are those the tracker meets on a robot.
    Cached and read-only.

    Raises:
        FileNotFoundError: the file cannot be opened or holds no frame.
    """
    capture = cv2.VideoCapture(path)
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    frames = []
    for index in np.linspace(0, max(total - 1, 0), count).round().astype(int) if total > 0 else ():
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, bgr = capture.read()
        if not ok:
            continue
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        image = _downscaled(image)
        image.setflags(write=False)
        frames.append(image)
    capture.release()
    if not frames:
        raise FileNotFoundError(f"no frame could be read from texture video {path!r}")
    return tuple(frames)


def photo_texture(rng: np.random.Generator, height: int, width: int,
                  videos: tuple[str, ...] = ()) -> np.ndarray:
    """A random crop of a photograph, rescaled, flipped and colour-permuted.

    The photograph is a scikit-image sample or, when ``videos`` are given, with probability
    1/2 a frame of one of those video files (`video_frames`). With no videos the draws from
    ``rng`` are those of earlier versions (the held-out splits do not change).

    Returns:
        (height, width, 3) uint8 RGB.
    """
    if videos and rng.random() < 0.5:
        frames = video_frames(videos[rng.integers(len(videos))])
        image = frames[rng.integers(len(frames))]
    else:
        image = skimage_texture(SKIMAGE_TEXTURES[rng.integers(len(SKIMAGE_TEXTURES))])
    cover = max(height / image.shape[0], width / image.shape[1])
    scale = cover * rng.uniform(1.0, 1.8)
    size = (max(width, int(np.ceil(image.shape[1] * scale))),
            max(height, int(np.ceil(image.shape[0] * scale))))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y0 = rng.integers(image.shape[0] - height + 1)
    x0 = rng.integers(image.shape[1] - width + 1)
    crop = image[y0:y0 + height, x0:x0 + width]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop[::-1]
    if np.ptp(crop.astype(np.int16) - crop[:, :, :1], axis=None) < 8:  # grey image: tint it
        tint = rng.uniform(0.5, 1.0, size=3)
        crop = crop * tint
    else:
        crop = crop[:, :, rng.permutation(3)]
    return np.ascontiguousarray(crop, dtype=np.uint8)


def _colourise(rng: np.random.Generator, field: np.ndarray) -> np.ndarray:
    """Map a real (H, W) field in [0, 1] to RGB uint8 between two random colours."""
    low, high = rng.uniform(0, 255, size=(2, 3))
    rgb = low + field[:, :, None] * (high - low)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _normalise(field: np.ndarray) -> np.ndarray:
    lo, hi = field.min(), field.max()
    return (field - lo) / max(hi - lo, 1e-6)


def noise_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Multi-octave value noise in colour, (height, width, 3) uint8 RGB."""
    field = np.zeros((height, width, 3), np.float32)
    cell = float(rng.uniform(24, 64))
    weight = 1.0
    while cell >= 2.0:
        coarse = rng.random((int(height / cell) + 2, int(width / cell) + 2, 3)).astype(np.float32)
        field += weight * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        cell /= 2.0
        weight *= 0.6
    field = (field - field.min(axis=(0, 1))) / np.maximum(np.ptp(field, axis=(0, 1)), 1e-6)
    return (field * 255).astype(np.uint8)


def checker_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Rotated checkerboard with two random colours and fine noise, (height, width, 3) uint8 RGB."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    cell = rng.uniform(6, 24)
    u = (xs * np.cos(angle) + ys * np.sin(angle)) / cell
    v = (-xs * np.sin(angle) + ys * np.cos(angle)) / cell
    board = (np.floor(u) + np.floor(v)) % 2
    field = 0.85 * board + 0.15 * rng.random((height, width))
    return _colourise(rng, field.astype(np.float32))


def sinusoid_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Sum of 2-4 colour sinusoid gratings of random orientation and period, uint8 RGB."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.zeros((height, width, 3), np.float32)
    for _ in range(rng.integers(2, 5)):
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(5, 40)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period + phase)
        rgb += wave[:, :, None] * rng.uniform(-1, 1, size=3).astype(np.float32)
    rgb = (rgb - rgb.min()) / max(float(np.ptp(rgb)), 1e-6)
    return (rgb * 255).astype(np.uint8)


_PROCEDURAL = (noise_texture, checker_texture, sinusoid_texture)


def random_texture(rng: np.random.Generator, height: int, width: int,
                   *, photo_probability: float = 0.6, videos: tuple[str, ...] = ()) -> np.ndarray:
    """A photo crop (probability ``photo_probability``, see `photo_texture`) or a procedural one.

    Returns:
        (height, width, 3) uint8 RGB.
    """
    if rng.random() < photo_probability:
        return photo_texture(rng, height, width, videos)
    return _PROCEDURAL[rng.integers(len(_PROCEDURAL))](rng, height, width)


def random_mask(rng: np.random.Generator, height: int, width: int, *, margin: int = 2) -> np.ndarray:
    """An anti-aliased ellipse or star-shaped polygon filling most of a (height, width) box.

    The shape keeps ``margin`` pixels clear of the box edge, so warping the texture with a
    zero border never bleeds into the visible object.

    Returns:
        (height, width) float32 alpha in [0, 1].
    """
    shift = 4  # sub-pixel precision of the drawing: coordinates in 1/16 px
    scale = 1 << shift
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    radii = np.array([(width - 1) / 2 - margin, (height - 1) / 2 - margin])
    mask = np.zeros((height, width), np.uint8)
    if rng.random() < 0.4:
        axes = radii * rng.uniform(0.7, 1.0, size=2)
        cv2.ellipse(mask, tuple(int(c * scale) for c in centre), tuple(int(a * scale) for a in axes),
                    0.0, 0.0, 360.0, 255, thickness=-1, lineType=cv2.LINE_AA, shift=shift)
    else:
        count = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=count))
        reach = rng.uniform(0.55, 1.0, size=count)
        vertices = centre + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii * reach[:, None]
        cv2.fillPoly(mask, [np.round(vertices * scale).astype(np.int32)], 255,
                     lineType=cv2.LINE_AA, shift=shift)
    return mask.astype(np.float32) / 255.0
