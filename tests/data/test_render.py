"""Rendering: camera motion measured from the scene, motion blur along it, the pan preset."""

from __future__ import annotations

import numpy as np
import pytest

from taptr_ros.data.render import camera_motion, motion_blur_kernel, photometric
from taptr_ros.data.scene import point_tracks, sample_scene
from taptr_ros.data.synthetic import generate_sequence, preset


def test_camera_motion_is_the_background_tracks_step():
    config = preset("pan", height=96, width=96, num_frames=6, num_points=16)
    scene = sample_scene(np.random.default_rng(3), config)
    motion = camera_motion(scene)
    # a background point at the frame centre in frame 0 moves exactly by motion[t] per frame
    centre = np.array([[(96 - 1) / 2, (96 - 1) / 2]])
    uv = np.linalg.inv(scene.layers[0].transforms[0])
    canvas = (uv[:2, :2] @ centre.T).T + uv[:2, 2]
    canvas /= (uv[2, :2] @ centre.T + uv[2, 2])[:, None]
    tracks, _ = point_tracks(scene, np.zeros(1, np.int16), canvas)
    np.testing.assert_allclose(motion[1:], np.diff(tracks[0], axis=0), atol=1e-9)
    assert np.all(motion[0] == 0)
    assert np.abs(motion[1:]).max() > 0.5  # the pan preset does move the camera


@pytest.mark.parametrize("displacement", [(6.0, 0.0), (0.0, -5.0), (4.0, 4.0)])
def test_motion_blur_kernel_is_a_normalised_line_along_the_motion(displacement):
    kernel = motion_blur_kernel(np.array(displacement), 1.0)
    assert kernel is not None
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    ys, xs = np.nonzero(kernel > 1e-3)
    centre = (kernel.shape[0] - 1) / 2
    # every weighted cell lies within one cell of the line through the centre along the motion
    direction = np.array(displacement) / np.hypot(*displacement)
    offsets = np.stack([xs - centre, ys - centre], axis=1)
    across = np.abs(offsets @ np.array([-direction[1], direction[0]]))
    along = np.abs(offsets @ direction)
    assert across.max() <= 1.0
    assert along.max() >= np.hypot(*displacement) / 2 - 1.0


def test_motion_blur_kernel_none_under_a_pixel():
    assert motion_blur_kernel(np.array([0.3, 0.4]), 1.0) is None
    assert motion_blur_kernel(np.array([4.0, 0.0]), 0.2) is None


def test_photometric_motion_blur_smears_along_the_motion_only():
    # vertical stripes moving right blur away; the same stripes moving down stay sharp
    video = np.zeros((1, 32, 32, 3), np.float32)
    video[:, :, ::4] = 255.0
    config = preset("easy", motion_blur=1.0, blur_probability=0.0, noise_std=0.0, brightness=0.0)
    across = photometric(np.random.default_rng(0), video, config, np.array([[8.0, 0.0]]))
    along = photometric(np.random.default_rng(0), video, config, np.array([[0.0, 8.0]]))
    untouched = photometric(np.random.default_rng(0), video, config, None)
    assert np.ptp(untouched[0, 16, :, 0]) == 255
    assert np.ptp(across[0, 16, 4:-4, 0]) < 128
    np.testing.assert_array_equal(along[0, 8:-8], untouched[0, 8:-8])


def test_pan_preset_moves_faster_than_easy():
    def speed(name):
        seq = generate_sequence(preset(name, height=128, width=128, num_frames=8, num_points=64), (7, 0))
        step = np.linalg.norm(np.diff(seq.tracks, axis=1), axis=-1)
        return np.median(step[seq.point_layer == 0])

    assert speed("pan") > 2 * speed("easy")
