"""Frames -> network input, coordinates, visibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from taptr_ros.model.config import preset
from taptr_ros.model.preprocess import (is_visible, norm_to_pixels, pixels_to_norm, preprocess_frame,
                                        preprocess_frames, preprocess_tensor, visibility_prob)

CFG = preset("tiny", input_hw=(48, 64))


def test_normalisation_resize_and_channel_order():
    img = np.zeros((30, 40, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 255, 128, 0
    x = preprocess_frame(img, CFG)
    assert x.shape == (3, 48, 64) and x.dtype == torch.float32
    expect = [(255 / 255 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0 - 0.406) / 0.225]
    torch.testing.assert_close(x[:, 10, 10], torch.tensor(expect), atol=1e-6, rtol=0)
    torch.testing.assert_close(preprocess_frame(img[..., ::-1].copy(), CFG, bgr=True), x)
    assert preprocess_frames(np.stack([img, img]), CFG).shape == (2, 3, 48, 64)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frame(img.astype(np.float32), CFG)


def test_tensor_variant_matches_numpy_without_resize():
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    got = preprocess_tensor(torch.from_numpy(img)[None], CFG)[0]
    torch.testing.assert_close(got, preprocess_frame(img, CFG), atol=1e-6, rtol=0)
    torch.testing.assert_close(preprocess_tensor(torch.from_numpy(img[..., ::-1].copy())[None], CFG, bgr=True)[0], got)
    assert preprocess_tensor(torch.zeros(1, 20, 30, 3, dtype=torch.uint8), CFG).shape == (1, 3, 48, 64)


def test_coordinates_use_size_minus_one():
    xy = np.array([[0.0, 0.0], [639.0, 479.0], [319.5, 100.0]])
    norm = pixels_to_norm(xy, 640, 480)
    np.testing.assert_allclose(norm[:2], [[0, 0], [1, 1]])
    np.testing.assert_allclose(norm_to_pixels(norm, 640, 480), xy)
    t = torch.tensor([[639.0, 479.0]])
    torch.testing.assert_close(pixels_to_norm(t, 640, 480), torch.tensor([[1.0, 1.0]]))
    with pytest.raises(ValueError, match="2x2"):
        pixels_to_norm(xy, 1, 480)


def test_visibility_threshold():
    logits = torch.tensor([[0.0, 0.1, 0.0], [5.0, -0.1, 5.0], [0.0, 1.0, 0.0]])
    assert is_visible(logits).tolist() == [True, False, True]
    assert is_visible(logits, 0.6).tolist() == [False, False, True]
    torch.testing.assert_close(visibility_prob(logits), logits[:, 1].sigmoid())
