"""Image pairs with exact dense correspondence, for pre-training the backbone and encoder.

A pair is one photograph seen twice: the first view is a crop of it, the second the same crop
through a random homography (rotation, scale, shear, perspective, shift about the image
centre), each view with its own photometric changes (contrast, brightness, gamma, blur,
noise), and in the second, with some probability, an occluder pasted over it. Points are drawn
uniformly in the first view; the homography gives their exact positions in the second, and a
point that leaves the second view or falls under the occluder is marked invisible there.

A pair costs a few milliseconds to make and one encoder pass per view to learn from, against a
12-frame windowed rollout for a tracking clip: the cheap stage of issue 15, item 2
(`taptr_ros.train.pretrain`). Every function takes a ``numpy.random.Generator`` and is
deterministic given its state. Positions are pixels, (x, y), of the square ``size`` x ``size``
views.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from taptr_ros.data.textures import photo_texture, random_mask, random_texture


@dataclass(frozen=True)
class PairConfig:
    """How far the second view departs from the first.

    Attributes:
        size: side of both square views in px (the network input).
        max_rotation_deg: rotation drawn in [-this, this].
        scale_range: (low, high) zoom, drawn log-uniformly.
        max_shear: shear coefficient drawn in [-this, this].
        max_perspective: perspective coefficients drawn in [-this, this] per view side (1/side).
        max_shift: translation drawn in [-this, this] x size, per axis.
        occluder_probability: chance of an occluder in the second view.
        photometric: apply contrast / brightness / gamma / blur / noise to each view.
    """

    size: int = 192
    max_rotation_deg: float = 25.0
    scale_range: tuple[float, float] = (0.75, 1.33)
    max_shear: float = 0.1
    max_perspective: float = 0.25
    max_shift: float = 0.15
    occluder_probability: float = 0.5
    photometric: bool = True


@dataclass(frozen=True)
class ImagePair:
    """Two views and N points with their exact correspondence.

    Attributes:
        first, second: (size, size, 3) uint8 RGB.
        xy_first: (N, 2) float32 pixel (x, y) in the first view, inside it.
        xy_second: (N, 2) float32 pixel (x, y) of the same scene points in the second view
            (may lie outside it).
        visible: (N,) bool, the point is inside the second view and not under its occluder.
    """

    first: np.ndarray
    second: np.ndarray
    xy_first: np.ndarray
    xy_second: np.ndarray
    visible: np.ndarray


def _about_centre(matrix: np.ndarray, size: int) -> np.ndarray:
    c = (size - 1) / 2
    shift, back = np.eye(3), np.eye(3)
    shift[:2, 2], back[:2, 2] = -c, c
    return back @ matrix @ shift


def random_homography(rng: np.random.Generator, config: PairConfig) -> np.ndarray:
    """(3, 3) float64 mapping pixels of the second view to pixels of the first (about the
    centre of a ``config.size`` square: rotation, log-uniform zoom, shear, perspective, shift)."""
    size = config.size
    angle = np.deg2rad(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg))
    lo, hi = np.log(config.scale_range[0]), np.log(config.scale_range[1])
    scale = np.exp(rng.uniform(lo, hi))
    shear = rng.uniform(-config.max_shear, config.max_shear)
    cos, sin = np.cos(angle), np.sin(angle)
    m = np.eye(3)
    m[:2, :2] = scale * np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, shear], [0.0, 1.0]])
    m[2, :2] = rng.uniform(-config.max_perspective, config.max_perspective, 2) / size
    m[:2, 2] = rng.uniform(-config.max_shift, config.max_shift, 2) * size
    return _about_centre(m, size)


def apply_homography(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(N, 2) pixel points through a (3, 3) homography -> (N, 2) float64."""
    homogeneous = np.concatenate([xy, np.ones((len(xy), 1))], 1) @ matrix.T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def photometric(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Contrast, brightness, gamma, then sometimes Gaussian or motion blur, then noise."""
    x = image.astype(np.float32) / 255.0
    x = (x - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.1, 0.1)
    x = np.clip(x, 0.0, 1.0) ** rng.uniform(0.75, 1.35)
    kind = rng.integers(3)
    if kind == 1:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.5))
    elif kind == 2:
        length = int(rng.integers(3, 8))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1.0 / length
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        x = cv2.filter2D(x, -1, kernel / max(kernel.sum(), 1e-6))
    x = x + rng.normal(0.0, rng.uniform(0.0, 0.02), x.shape).astype(np.float32)
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _paste_occluder(rng: np.random.Generator, image: np.ndarray,
                    videos: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """An occluder of 20-50% of the side at a random place: (image, (H, W) bool covered)."""
    size = image.shape[0]
    h, w = (int(rng.uniform(0.2, 0.5) * size) for _ in range(2))
    y0, x0 = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
    alpha = random_mask(rng, h, w)[..., None]
    texture = random_texture(rng, h, w, videos=videos).astype(np.float32)
    out = image.astype(np.float32)
    region = out[y0:y0 + h, x0:x0 + w]
    out[y0:y0 + h, x0:x0 + w] = alpha * texture + (1 - alpha) * region
    covered = np.zeros((size, size), bool)
    covered[y0:y0 + h, x0:x0 + w] = alpha[..., 0] > 0.02
    return (out + 0.5).astype(np.uint8), covered


def make_pair(rng: np.random.Generator, config: PairConfig, num_points: int, *,
              videos: tuple[str, ...] = ()) -> ImagePair:
    """One pair (see the module docstring); ``videos`` add their frames to the photographs."""
    size = config.size
    source = photo_texture(rng, 2 * size, 2 * size, videos)
    # the first view is the centre of the source; the second reads it through the homography
    offset = np.eye(3)
    offset[:2, 2] = size / 2
    to_first = random_homography(rng, config)
    first = cv2.warpPerspective(source, offset, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    second = cv2.warpPerspective(source, offset @ to_first, (size, size),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    xy_first = rng.uniform(0, size - 1, (num_points, 2))
    xy_second = apply_homography(np.linalg.inv(to_first), xy_first)
    visible = ((xy_second >= 0) & (xy_second <= size - 1)).all(1)
    if rng.random() < config.occluder_probability:
        second, covered = _paste_occluder(rng, second, videos)
        col, row = np.clip(np.round(xy_second), 0, size - 1).astype(int).T
        visible &= ~covered[row, col]
    if config.photometric:
        first, second = photometric(rng, first), photometric(rng, second)
    return ImagePair(first=first, second=second, xy_first=xy_first.astype(np.float32),
                     xy_second=xy_second.astype(np.float32), visible=visible)
