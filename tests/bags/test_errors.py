"""Every bag problem is a BagError whose message says what is wrong and what to do: missing topic,
unknown message type, empty or truncated bag, ground truth that does not match the video."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from taptr_ros.bags.errors import (
    BagEmptyError,
    BagGroundTruthError,
    BagNotFoundError,
    BagTopicError,
    BagTruncatedError,
    BagTypeError,
)
from taptr_ros.bags.evaluate import EvalOptions, evaluate_bag
from taptr_ros.bags.make import MakeOptions, make_bag, stamps_ns
from taptr_ros.bags.storage import BagReader, BagWriter
from taptr_ros.bags.topics import GROUND_TRUTH_TOPIC
from taptr_ros.bags.truth import truth_from_pickle
from taptr_ros.cli import main
from taptr_ros.data.synthetic import generate_tapvid, preset
from taptr_ros.data.tapvid import TapVidVideo, save_tapvid
from taptr_ros.messages.typestore import TRACKS_TYPE, image_message


@pytest.fixture(scope="module")
def video() -> TapVidVideo:
    return generate_tapvid(
        preset("easy", num_frames=6, num_points=5, height=48, width=64), num_videos=1, seed=3
    )[0]


@pytest.fixture(scope="module")
def good_bags(tmp_path_factory, video):
    folder = tmp_path_factory.mktemp("bags")
    save_tapvid(folder / "v.pkl", [video])
    make_bag(folder / "v.pkl", folder / "sqlite", MakeOptions())
    make_bag(folder / "v.pkl", folder / "mcap", MakeOptions(storage="mcap"))
    return folder


def _no_engine(_num_points):
    raise AssertionError("the engine must not be built for a bag that cannot be evaluated")


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _bayer_bag(path: Path, video: TapVidVideo) -> Path:
    """One frame whose encoding (bayer_rggb8) the tools do not convert."""
    msg = image_message(video.video[0], 5)
    msg.encoding = "bayer_rggb8"
    with BagWriter(path) as writer:
        writer.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        writer.write("/camera/image_raw", 5, msg)
    return path


def _empty_bag(path: Path) -> Path:
    """An image topic without messages."""
    with BagWriter(path) as writer:
        writer.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
    return path


def _truncated_copy(good_bags: Path, storage: str, name: str, dst: Path) -> Path:
    """A copy of a good bag whose storage file `name` lost its second half."""
    bag = _copy(good_bags / storage, dst)
    os.truncate(bag / name, os.path.getsize(bag / name) // 2)
    return bag


def _short_truth(path: Path, video: TapVidVideo) -> Path:
    """A ground-truth pickle of the bag's sequence without its last frame."""
    short = TapVidVideo(video.name, video.video[:5], video.points[:, :5], video.occluded[:, :5])
    save_tapvid(path, [short])
    return path


def test_missing_topic_lists_the_topics_present(good_bags):
    with BagReader(good_bags / "sqlite") as reader:
        with pytest.raises(BagTopicError) as info:
            reader.image_topic("/camera/left/image_raw")
    text = str(info.value)
    assert "no topic '/camera/left/image_raw'" in text
    assert "/camera/image_raw (sensor_msgs/msg/Image)" in text and GROUND_TRUTH_TOPIC in text
    assert "--image-topic" in text


def test_missing_topic_through_the_cli_fails_before_loading_a_model(good_bags, capsys):
    code = main(
        [
            "bag",
            "eval",
            str(good_bags / "mcap"),
            "--out",
            str(good_bags / "o"),
            "--image-topic",
            "/nope",
            "--checkpoint",
            str(good_bags / "no-such-model.pt"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "no topic '/nope'" in err and "/camera/image_raw" in err and "checkpoint" not in err


def test_no_or_several_image_topics(tmp_path, video):
    with BagWriter(tmp_path / "none") as writer:
        writer.add_topic(GROUND_TRUTH_TOPIC, TRACKS_TYPE)
    with BagReader(tmp_path / "none") as reader, pytest.raises(BagTopicError, match="no sensor_msgs/Image"):
        reader.image_topic()
    with BagWriter(tmp_path / "two") as writer:
        for topic in ("/left/image_raw", "/right/image_raw"):
            writer.add_topic(topic, "sensor_msgs/msg/Image")
            writer.write(topic, 1, image_message(video.video[0], 1))
    with BagReader(tmp_path / "two") as reader:
        with pytest.raises(BagTopicError, match=r"several image topics .*--image-topic"):
            reader.image_topic()
        assert reader.image_topic("/right/image_raw") == "/right/image_raw"


def test_unknown_message_type_on_the_image_topic(tmp_path):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg("uint32 width\nuint8[] pixels\n", "acme_msgs/msg/Frame"))
    frame = store.types["acme_msgs/msg/Frame"](width=2, pixels=np.zeros(4, np.uint8))
    with Writer(tmp_path / "acme", version=8) as writer:
        conn = writer.add_connection("/camera/image_raw", "acme_msgs/msg/Frame", typestore=store)
        writer.write(conn, 1, store.serialize_cdr(frame, "acme_msgs/msg/Frame"))
    with BagReader(tmp_path / "acme") as reader:
        assert reader.topics == {"/camera/image_raw": "acme_msgs/msg/Frame"}
        with pytest.raises(BagTypeError) as info:
            reader.image_topic("/camera/image_raw")
        with pytest.raises(BagTypeError, match="expected taptr_ros/msg/TrackedPoints"):
            list(reader.iter_tracks("/camera/image_raw"))
    assert "carries acme_msgs/msg/Frame" in str(info.value)
    assert "sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage" in str(info.value)
    with pytest.raises(BagTopicError, match="no sensor_msgs/Image"):
        evaluate_bag(tmp_path / "acme", tmp_path / "out", _no_engine)


def test_unsupported_encoding_is_a_type_error(tmp_path, video):
    with BagReader(_bayer_bag(tmp_path / "bayer", video)) as reader, pytest.raises(BagTypeError, match="bayer_rggb8.*debayer"):
        list(reader.iter_images())


def test_empty_bag_and_empty_topic(tmp_path):
    with BagReader(_empty_bag(tmp_path / "empty")) as reader:
        with pytest.raises(BagEmptyError, match=r"'/camera/image_raw' has no messages.*record some"):
            list(reader.iter_images())
    with pytest.raises(BagEmptyError):
        evaluate_bag(tmp_path / "empty", tmp_path / "out", _no_engine)


def test_not_a_bag(tmp_path, good_bags):
    with pytest.raises(BagNotFoundError, match="taptr bag make"):
        BagReader(tmp_path / "nothing")
    (tmp_path / "folder").mkdir()
    with pytest.raises(BagNotFoundError, match="no metadata.yaml.*ros2 bag reindex"):
        BagReader(tmp_path / "folder")
    with pytest.raises(BagNotFoundError, match="pass its directory"):
        BagReader(good_bags / "mcap" / "mcap.mcap")


@pytest.mark.parametrize("storage, name", [("sqlite", "sqlite.db3"), ("mcap", "mcap.mcap")])
def test_truncated_storage(tmp_path, good_bags, storage, name):
    bag = _truncated_copy(good_bags, storage, name, tmp_path / storage)
    with pytest.raises(BagTruncatedError, match="truncated or corrupt.*re-record or re-copy"):
        with BagReader(bag) as reader:
            list(reader.iter_images())


def test_fewer_messages_than_the_metadata_lists(tmp_path, good_bags):
    bag = _copy(good_bags / "mcap", tmp_path / "short")
    meta = (bag / "metadata.yaml").read_text()
    # claim one message more on the image topic than the storage holds
    entry = "- message_count: 6\n    topic_metadata:\n      name: /camera/image_raw"
    assert entry in meta
    meta = meta.replace(entry, entry.replace("6", "7"))
    (bag / "metadata.yaml").write_text(meta)
    with BagReader(bag) as reader, pytest.raises(BagTruncatedError, match="6 readable messages.*lists 7"):
        list(reader.iter_images())


def test_truncated_image_message(tmp_path, video):
    msg = image_message(video.video[0], 5)
    msg.data = msg.data[: msg.step * 10]  # 10 of 48 rows
    with BagWriter(tmp_path / "cut") as writer:
        writer.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        writer.write("/camera/image_raw", 5, msg)
    with BagReader(tmp_path / "cut") as reader, pytest.raises(BagTruncatedError, match="frame 0.*truncated"):
        list(reader.iter_images())


def test_ground_truth_pickle_that_does_not_match(tmp_path, good_bags, video):
    _short_truth(tmp_path / "short.pkl", video)
    with pytest.raises(BagGroundTruthError) as info:
        evaluate_bag(
            good_bags / "sqlite",
            tmp_path / "out",
            _no_engine,
            EvalOptions(ground_truth=str(tmp_path / "short.pkl")),
        )
    assert "5 frames of 64x48, the bag 6 frames of 64x48" in str(info.value)
    assert "Pass the ground truth the bag was made from" in str(info.value)
    with pytest.raises(BagGroundTruthError, match="64x48, the bag 6 frames of 32x48"):
        truth_from_pickle(good_bags / "v.pkl", 6, (32, 48))
    with pytest.raises(BagGroundTruthError, match="no video 'other'"):
        truth_from_pickle(good_bags / "v.pkl", 6, (64, 48), video="other")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(BagGroundTruthError, match="not a readable pickle"):
        truth_from_pickle(tmp_path / "junk.pkl", 6, (64, 48))


def test_ground_truth_topic_that_does_not_match(tmp_path, video):
    from taptr_ros.messages.typestore import tracks_message

    stamps = stamps_ns(6, 30.0)
    with BagWriter(tmp_path / "bag") as writer:
        writer.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        writer.add_topic(GROUND_TRUTH_TOPIC, TRACKS_TYPE)
        for t, stamp in enumerate(stamps):
            writer.write("/camera/image_raw", stamp, image_message(video.video[t], stamp))
            if t != 3:  # frame 3 has no ground truth
                writer.write(
                    GROUND_TRUTH_TOPIC,
                    stamp,
                    tracks_message(
                        ids=np.arange(5),
                        xy=np.zeros((5, 2)),
                        visible=np.ones(5, bool),
                        visibility=np.ones(5),
                        width=64,
                        height=48,
                        stamp_ns=stamp,
                        frame_id="camera",
                    ),
                )
    with pytest.raises(BagGroundTruthError, match=r"1 of 6 frames have no ground truth \(first: frame 3\)"):
        evaluate_bag(tmp_path / "bag", tmp_path / "out", _no_engine)


def test_sidecar_from_another_bag(tmp_path, good_bags):
    other = generate_tapvid(
        preset("easy", num_frames=6, num_points=5, height=48, width=64), num_videos=1, seed=4
    )
    save_tapvid(tmp_path / "other.pkl", other)
    make_bag(tmp_path / "other.pkl", tmp_path / "other", MakeOptions())
    bag = _copy(good_bags / "sqlite", tmp_path / "bag")
    with pytest.raises(BagGroundTruthError, match="sidecar belongs to another bag"):
        evaluate_bag(
            bag,
            tmp_path / "out",
            _no_engine,
            EvalOptions(queries_file=str(tmp_path / "other" / "taptr_queries.json")),
        )


BAD_BAGS = {  # case -> (make the bag, extra arguments, the fix the message must name)
    "not a bag": (lambda tmp, good, video: tmp / "nothing", [], "taptr bag make"),
    "no metadata": (lambda tmp, good, video: (tmp / "folder").mkdir() or tmp / "folder", [],
                    "ros2 bag reindex"),
    "empty topic": (lambda tmp, good, video: _empty_bag(tmp / "empty"), [], "record some"),
    "bayer encoding": (lambda tmp, good, video: _bayer_bag(tmp / "bayer", video), [], "debayer"),
    "truncated": (lambda tmp, good, video: _truncated_copy(good, "mcap", "mcap.mcap", tmp / "cut"), [],
                  "re-record or re-copy"),
    "other ground truth": (lambda tmp, good, video: _copy(good / "sqlite", tmp / "bag"),
                           ["--gt", "{tmp}/short.pkl"], "Pass the ground truth the bag was made from"),
}


@pytest.mark.parametrize("case", list(BAD_BAGS))
def test_cli_reports_each_bag_problem_with_its_fix(tmp_path, good_bags, video, tiny_checkpoint, capsys,
                                                   case):
    """`taptr bag eval` on a bad bag, with a model that loads: exit 1 and one line naming the
    fix on stderr, no traceback, nothing written (every one of these errors is a BagError)."""
    make, extra, fix = BAD_BAGS[case]
    bag = make(tmp_path, good_bags, video)
    _short_truth(tmp_path / "short.pkl", video)
    code = main(["bag", "eval", str(bag), "--out", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint),
                 "--device", "cpu", "--no-overlay", "--no-plots",
                 *(arg.format(tmp=tmp_path) for arg in extra)])
    err = capsys.readouterr().err
    message = err.replace("\r", "\n").strip().splitlines()[-1]  # after the progress bar, if any
    assert code == 1, err
    assert message.startswith("taptr bag eval: ") and fix in message, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
