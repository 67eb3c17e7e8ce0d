"""taptr_ros.bags.storage / bag_make: bags written with rosbags read back exactly (sqlite3, mcap,
padded rows, bgr8, png/jpeg), our types registered from msg/, atomic writes, the queries sidecar."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from taptr_ros.bags.errors import BagWriteError
from taptr_ros.bags.make import DEFAULT_START_NS, MakeOptions, make_bag, stamps_ns
from taptr_ros.bags.sidecar import QUERIES_FILE, read_queries
from taptr_ros.bags.storage import BagReader, BagWriter
from taptr_ros.bags.topics import GROUND_TRUTH_TOPIC
from taptr_ros.bags.truth import truth_from_bag
from taptr_ros.data.synthetic import generate_tapvid, preset
from taptr_ros.data.tapvid import save_tapvid
from taptr_ros.eval.tapvid import sample_queries
from taptr_ros.messages.typestore import TRACKS_TYPE, bag_typestore, image_message

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A 10-frame 96x128 synthetic TAP-Vid pickle (non-square, so x/y mix-ups show) and its video."""
    folder = tmp_path_factory.mktemp("synth")
    video = generate_tapvid(
        preset("easy", num_frames=10, num_points=12, height=96, width=128), num_videos=1, seed=7
    )[0]
    save_tapvid(folder / "s.pkl", [video])
    return folder / "s.pkl", video


def _read(bag: Path):
    with BagReader(bag) as reader:
        topics = reader.topics
        images = list(reader.iter_images())
        stamps = np.array([i.stamp_ns for i in images])
        truth = (
            truth_from_bag(reader, GROUND_TRUTH_TOPIC, stamps, (images[0].width, images[0].height))
            if GROUND_TRUTH_TOPIC in topics
            else None
        )
    return topics, images, truth


@pytest.mark.parametrize(
    "options",
    [
        MakeOptions(),
        MakeOptions(storage="mcap"),
        MakeOptions(row_padding=13, encoding="bgr8"),
        MakeOptions(storage="mcap", compression="png", topic="/cam/image_raw/compressed"),
    ],
    ids=["sqlite3-rgb8", "mcap-rgb8", "padded-bgr8", "mcap-png"],
)
def test_pickle_bag_reads_back_exactly(tmp_path, synth, options):
    pkl, video = synth
    summary = make_bag(pkl, tmp_path / "bag", options)
    assert (summary.num_frames, summary.width, summary.height) == (10, 128, 96)
    topics, images, truth = _read(tmp_path / "bag")
    kind = "sensor_msgs/msg/CompressedImage" if options.compression else "sensor_msgs/msg/Image"
    assert topics == {options.topic: kind, GROUND_TRUTH_TOPIC: TRACKS_TYPE}
    np.testing.assert_array_equal(np.stack([i.rgb for i in images]), video.video)
    np.testing.assert_array_equal([i.stamp_ns for i in images], stamps_ns(10, 30.0))
    assert [i.log_ns for i in images] == [i.stamp_ns for i in images]
    assert images[0].stamp_ns == DEFAULT_START_NS and images[0].frame_id == "camera"
    # the truth travels as float32 pixels of the TAP-Vid convention (points * (W, H))
    expected = video.points.astype(np.float64) * [128, 96]
    np.testing.assert_array_equal(truth.tracks_px, expected.astype(np.float32))
    np.testing.assert_allclose(truth.tracks_px, expected, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(truth.occluded, video.occluded)
    np.testing.assert_array_equal(truth.ids, np.arange(12))


def test_padded_rows_are_really_padded(tmp_path, synth):
    pkl, _video = synth
    make_bag(pkl, tmp_path / "bag", MakeOptions(row_padding=13))
    store = bag_typestore()
    with BagReader(tmp_path / "bag") as reader:
        conn = [c for c in reader._reader.connections if c.topic == "/camera/image_raw"][0]
        _c, _t, raw = next(reader._reader.messages(connections=[conn]))
    msg = store.deserialize_cdr(raw, "sensor_msgs/msg/Image")
    assert msg.step == 128 * 3 + 13 and len(msg.data) == msg.step * 96
    # rosbags-image style decoding that ignores step gives a sheared image: ours does not
    naive = np.asarray(msg.data[: 96 * 128 * 3]).reshape(96, 128, 3)
    with BagReader(tmp_path / "bag") as reader:
        ours = next(reader.iter_images()).rgb
    assert not np.array_equal(naive, ours)


def test_jpeg_bag_is_close_not_exact(tmp_path, synth):
    pkl, video = synth
    make_bag(pkl, tmp_path / "bag", MakeOptions(compression="jpeg", jpeg_quality=90))
    _topics, images, _truth = _read(tmp_path / "bag")
    frames = np.stack([i.rgb for i in images]).astype(np.int16)
    error = np.abs(frames - video.video).mean()
    assert 0 < error < 6


def test_sidecar_holds_the_truths_queries(tmp_path, synth):
    pkl, video = synth
    make_bag(pkl, tmp_path / "bag", MakeOptions(fps=12.5))
    sidecar = read_queries(tmp_path / "bag")
    data = json.loads((tmp_path / "bag" / QUERIES_FILE).read_text())
    assert data["columns"] == ["frame", "stamp_ns", "x", "y"] and data["meta"]["fps"] == 12.5
    np.testing.assert_array_equal(sidecar.stamps_ns, stamps_ns(10, 12.5))
    truth_px = (video.points.astype(np.float64) * [128, 96]).astype(np.float32)  # as the bag carries it
    for mode in ("first", "strided"):
        expected = sample_queries(truth_px, video.occluded, mode)[0]
        np.testing.assert_array_equal(sidecar.queries[mode], expected)
    row = data["queries"]["first"][0]
    assert row[1] == sidecar.stamps_ns[int(row[0])]


def test_video_source_with_grid(tmp_path):
    import cv2

    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    summary = make_bag(path, tmp_path / "bag", MakeOptions(storage="mcap"), grid=3)
    assert (summary.num_frames, summary.fps, summary.num_points) == (5, 15.0, 9)
    topics, images, truth = _read(tmp_path / "bag")
    assert truth is None and list(topics) == ["/camera/image_raw"]
    assert abs(int(images[4].rgb.mean()) - 160) <= 3
    np.testing.assert_array_equal(
        [i.stamp_ns for i in images], DEFAULT_START_NS + np.rint(np.arange(5) * 1e9 / 15)
    )
    queries = read_queries(tmp_path / "bag").queries["points"]
    assert queries.shape == (9, 3) and (queries[:, 0] == 0).all()
    assert queries[:, 1].min() > 0 and queries[:, 1].max() < 63


def test_writer_is_atomic_and_refuses_to_overwrite(tmp_path, synth):
    pkl, _video = synth
    make_bag(pkl, tmp_path / "bag", MakeOptions())
    before = hashlib.sha256((tmp_path / "bag" / "bag.db3").read_bytes()).hexdigest()
    with pytest.raises(BagWriteError, match="exists already"):
        make_bag(pkl, tmp_path / "bag", MakeOptions())
    with pytest.raises(RuntimeError, match="boom"):
        with BagWriter(tmp_path / "bag", overwrite=True) as writer:
            writer.add_topic("/x", TRACKS_TYPE)
            raise RuntimeError("boom")
    assert hashlib.sha256((tmp_path / "bag" / "bag.db3").read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]  # no temporary left behind
    make_bag(pkl, tmp_path / "bag", MakeOptions(storage="mcap"), overwrite=True)
    assert sorted(p.name for p in (tmp_path / "bag").iterdir()) == ["bag.mcap", "metadata.yaml", QUERIES_FILE]


@pytest.mark.parametrize(
    "options, match",
    [
        (MakeOptions(storage="rosbag1"), "storage"),
        (MakeOptions(compression="png", row_padding=4), "raw images only"),
        (MakeOptions(fps=0.0), "positive"),
        (MakeOptions(start_ns=0), "latest frame"),
        (MakeOptions(topic="camera"), "absolute"),
    ],
)
def test_bad_make_options_name_the_fix(tmp_path, synth, options, match):
    with pytest.raises(BagWriteError, match=match):
        make_bag(synth[0], tmp_path / "bag", options)
    assert not (tmp_path / "bag").exists()


def test_our_types_come_from_msg_and_hash_like_rosidl():
    from taptr_ros.messages import typestore as bag_types

    ours = [
        line.split("#")[0].strip() for line in (REPO / "msg" / "TrackedPoints.msg").read_text().splitlines()
    ]
    assert [" ".join(l.split()) for l in ours if l] == bag_types._TRACKED_POINTS_MSG.splitlines()
    store = bag_typestore()
    fields = [name for name, _ in store.get_msgdef(TRACKS_TYPE).fields]
    assert fields == ["header", "width", "height", "ids", "x", "y", "visible", "visibility"]
    generated = list(Path(sys.prefix).glob("share/taptr_ros/msg/TrackedPoints.json"))
    if not generated:
        pytest.skip("rosidl's TrackedPoints.json is not installed in this environment (make setup builds it)")
    description = json.loads(generated[0].read_text())
    assert store.hash_rihs01(TRACKS_TYPE) in json.dumps(description)


def test_tracks_cdr_reads_in_rclpy_and_back():
    from rclpy.serialization import deserialize_message, serialize_message
    from taptr_ros.msg import TrackedPoints

    from taptr_ros.messages.tracks import pack_tracks
    from taptr_ros.messages.typestore import tracks_message

    rng = np.random.default_rng(0)
    xy = rng.random((5, 2)).astype(np.float32) * 100
    visible = rng.random(5) > 0.5
    ours = tracks_message(
        ids=np.arange(5) + 7,
        xy=xy,
        visible=visible,
        visibility=visible.astype(np.float32),
        width=640,
        height=480,
        stamp_ns=1_700_000_000_123_456_789,
        frame_id="cam",
    )
    msg = pack_tracks(
        ids=np.arange(5) + 7,
        x=xy[:, 0],
        y=xy[:, 1],
        visible=visible,
        visibility=visible.astype(np.float32),
        width=640,
        height=480,
    )
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = 1_700_000_000, 123_456_789, "cam"
    # byte equality is too strict: rclpy leaves CDR alignment padding uninitialised
    theirs = deserialize_message(bytes(bag_typestore().serialize_cdr(ours, TRACKS_TYPE)), TrackedPoints)
    assert theirs == msg
    back = bag_typestore().deserialize_cdr(bytes(serialize_message(msg)), TRACKS_TYPE)
    for name in ("ids", "x", "y", "visible", "visibility"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ours, name))
    assert (back.header.stamp.sec, back.header.stamp.nanosec, back.width) == (1_700_000_000, 123_456_789, 640)


def test_image_message_reads_in_rclpy():
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from taptr_ros.messages.raw_image import numpy_to_image

    rgb = np.random.default_rng(1).integers(0, 255, (6, 5, 3), dtype=np.uint8)
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 34
    theirs = numpy_to_image(rgb, "rgb8", header=header, step=5 * 3 + 3)
    ours = image_message(rgb, 12_000_000_034, frame_id="cam", row_padding=3)
    assert (
        deserialize_message(bytes(bag_typestore().serialize_cdr(ours, "sensor_msgs/msg/Image")), Image)
        == theirs
    )


def test_cli_make(tmp_path, synth, capsys):
    from taptr_ros.cli import main

    pkl, _video = synth
    assert (
        main(["bag", "make", str(pkl), "--out", str(tmp_path / "c"), "--compressed", "png", "--fps", "10"])
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    with BagReader(tmp_path / "c") as reader:  # image_transport's name for compressed images
        assert reader.topics["/camera/image_raw/compressed"] == "sensor_msgs/msg/CompressedImage"
    assert main(["bag", "make", str(pkl), "--out", str(tmp_path / "c")]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["bag", "make", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "m")]) == 1
    assert "no such video file" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
