"""Sine embeddings against their closed forms."""

from __future__ import annotations

import math

import torch

from taptr_ros.model.position_encoding import sine_embed, sine_embed_box, sine_embed_delta, sine_map


def test_sine_map_closed_form():
    h, w, c, temp = 5, 7, 16, 10.0
    pos = sine_map(h, w, c, temp)
    assert pos.shape == (c, h, w)
    i, j = 3, 6
    ey, ex = (i + 1) / (h + 1e-6) * 2 * math.pi, (j + 1) / (w + 1e-6) * 2 * math.pi
    for k in range(c // 4):
        f = temp ** (2 * k / (c // 2))
        assert math.isclose(pos[2 * k, i, j].item(), math.sin(ey / f), abs_tol=1e-6)
        assert math.isclose(pos[2 * k + 1, i, j].item(), math.cos(ey / f), abs_tol=1e-6)
        assert math.isclose(pos[c // 2 + 2 * k, i, j].item(), math.sin(ex / f), abs_tol=1e-6)
        assert math.isclose(pos[c // 2 + 2 * k + 1, i, j].item(), math.cos(ex / f), abs_tol=1e-6)


def test_box_embedding_order_is_y_x_w_h():
    box = torch.tensor([[0.1, 0.7, 0.3, 0.9]])
    d = 8
    emb = sine_embed_box(box, d, 10.0)
    parts = [sine_embed(box[:, i:i + 1], d, 10.0) for i in (1, 0, 2, 3)]
    torch.testing.assert_close(emb, torch.cat(parts, -1))
    assert math.isclose(emb[0, 0].item(), math.sin(0.7 * 2 * math.pi), abs_tol=1e-6)  # y first
    delta = sine_embed_delta(box[:, :2], d, 10.0)
    torch.testing.assert_close(delta, torch.cat(parts[:2], -1))
