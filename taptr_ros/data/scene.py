"""A synthetic scene: textured layers and their motions, and the exact tracks of points on them.

A scene is a stack of layers drawn back to front. Layer 0 is the background: a textured
canvas seen through a smooth random homography that changes every frame (camera motion).
Layers 1.. are textured objects (anti-aliased alpha masks), each moved by its own affine
motion. A point lives on one layer at fixed texture coordinates; its track is the exact image
of those under the layer's transform, occluded where it leaves the frame or a nearer layer's
alpha there is above 0.5.

Conventions: pixel coordinates (x right, y down, 0 = centre of the first column/row), those of
``cv2.warpPerspective``; frame indices from 0; everything drawn from one
``numpy.random.Generator``.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from taptr_ros.data.errors import DataError
from taptr_ros.data.motion import apply_homography, camera_transforms, object_transforms
from taptr_ros.data.synthetic_config import SyntheticConfig
from taptr_ros.data.textures import random_mask, random_texture


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
