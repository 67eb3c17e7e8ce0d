"""taptr_ros.messages.tracks: TrackedPoints <-> numpy, over CDR bytes and rosbags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from taptr_ros.msg import TrackedPoints

from taptr_ros.messages.tracks import TracksMessageError, pack_tracks, unpack_tracks

MSG_FILE = Path(__file__).resolve().parents[2] / "msg" / "TrackedPoints.msg"


def _arrays(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return dict(
        ids=rng.permutation(np.arange(count, dtype=np.uint32) * 3 + 4_000_000_000 - 3 * count),
        x=(rng.random(count) * 1919).astype(np.float32),
        y=(rng.random(count) * 1079).astype(np.float32),
        visible=rng.random(count) > 0.4,
        visibility=rng.random(count).astype(np.float32),
    )


def _assert_same(tracks, arrays: dict[str, np.ndarray]) -> None:
    for name, expected in arrays.items():
        got = getattr(tracks, name)
        assert got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got, expected, err_msg=name)


def test_pack_unpack_through_cdr_bytes() -> None:
    arrays = _arrays(5000)
    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = 1_700_000_000, 123_456_789
    msg = pack_tracks(**arrays, width=1920, height=1080, header=header)
    back = deserialize_message(serialize_message(msg), TrackedPoints)
    tracks = unpack_tracks(back)
    assert len(tracks) == 5000 and (tracks.width, tracks.height) == (1920, 1080)
    assert tracks.header.frame_id == "camera_optical"
    assert tracks.stamp_ns == 1_700_000_000_123_456_789
    _assert_same(tracks, arrays)


def test_unpack_reads_rosbags_messages() -> None:
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(MSG_FILE.read_text(), "taptr_ros/msg/TrackedPoints"))
    arrays = _arrays(300, seed=1)
    cdr = bytes(serialize_message(pack_tracks(**arrays, width=640, height=480)))
    tracks = unpack_tracks(store.deserialize_cdr(cdr, "taptr_ros/msg/TrackedPoints"))
    assert (tracks.width, tracks.height, len(tracks)) == (640, 480, 300)
    _assert_same(tracks, arrays)


def test_pack_casts_and_accepts_empty() -> None:
    msg = pack_tracks(ids=[5, 7], x=[1.5, 2.0], y=np.array([3, 4]), visible=[1, 0],
                      visibility=np.array([0.25, 1.0]), width=10, height=20)
    tracks = unpack_tracks(msg)
    np.testing.assert_array_equal(tracks.ids, np.array([5, 7], np.uint32))
    np.testing.assert_array_equal(tracks.visible, [True, False])
    np.testing.assert_array_equal(tracks.y, np.array([3.0, 4.0], np.float32))
    empty = unpack_tracks(pack_tracks(ids=np.zeros(0, np.int64), x=[], y=[], visible=[],
                                      visibility=[], width=1, height=1))
    assert len(empty) == 0 and empty.visible.dtype == bool


def test_pack_refuses_mismatched_lengths_and_bad_ids() -> None:
    arrays = _arrays(4)
    with pytest.raises(TracksMessageError, match=r"x has shape \(3,\), expected \(4,\)"):
        pack_tracks(**{**arrays, "x": arrays["x"][:3]}, width=1, height=1)
    with pytest.raises(TracksMessageError, match=r"visible has shape"):
        pack_tracks(**{**arrays, "visible": arrays["visible"][:2]}, width=1, height=1)
    with pytest.raises(TracksMessageError, match=r"uint32"):
        pack_tracks(**{**arrays, "ids": np.array([0, 1, 2, -1])}, width=1, height=1)
    with pytest.raises(TracksMessageError, match=r"uint32"):
        pack_tracks(**{**arrays, "ids": np.array([0, 1, 2, 2**32])}, width=1, height=1)


def test_unpack_refuses_arrays_of_different_lengths() -> None:
    msg = pack_tracks(**_arrays(3), width=1, height=1)
    msg.visible = [True, False]
    with pytest.raises(TracksMessageError, match=r"differ in length"):
        unpack_tracks(msg)
