"""taptr bag play against the real taptr_tracker process: --sync reproduces `taptr bag eval` exactly;
a timed replay accounts for every frame (answered + dropped) and measures latency."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from taptr_ros.bags.errors import BagError
from taptr_ros.bags.make import MakeOptions, make_bag
from taptr_ros.data.synthetic import generate_tapvid, preset
from taptr_ros.data.tapvid import save_tapvid

T = 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from taptr_ros.model.checkpoint import save_checkpoint
    from taptr_ros.model.config import preset as model_preset
    from taptr_ros.model.taptr import TAPTRv2

    folder = tmp_path_factory.mktemp("bag_play")
    torch.manual_seed(0)
    save_checkpoint(folder / "tiny.pt", TAPTRv2(model_preset("tiny", input_hw=(64, 64))))
    videos = generate_tapvid(
        preset("easy", num_frames=T, num_points=8, height=64, width=80), num_videos=1, seed=5
    )
    save_tapvid(folder / "s.pkl", videos)
    make_bag(folder / "s.pkl", folder / "raw", MakeOptions(row_padding=5))
    make_bag(
        folder / "s.pkl",
        folder / "png",
        MakeOptions(storage="mcap", compression="png", topic="/camera/image_raw/compressed"),
    )
    return folder


@pytest.fixture(scope="module")
def raw_node(setup, ros_isolation):
    """One taptr_tracker for the raw-image tests (a replayed bag rewinds the stamps: the node resets)."""
    from taptr_ros.ros.tools.bag_play import start_node, stop_node

    node = start_node(
        topic="/camera/image_raw",
        compressed=False,
        checkpoint=str(setup / "tiny.pt"),
        device="cpu",
        sim_time=True,
        extra=("-p", "cpu_threads:=1"),
        log_path=setup / "node.log",
    )
    yield node
    stop_node(node)


@pytest.fixture
def isolated_env(ros_isolation):
    """play --start-node moves this process to a fresh random domain: restore the session's after."""
    saved = {
        k: os.environ.get(k)
        for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE",
                  "FASTRTPS_DEFAULT_PROFILES_FILE")
    }
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _lockstep(folder: Path, bag: str) -> dict:
    from taptr_ros.bags.engine import make_engine_factory
    from taptr_ros.bags.evaluate import EvalOptions, evaluate_bag

    factory, meta = make_engine_factory(str(folder / "tiny.pt"), "cpu")
    return evaluate_bag(
        folder / bag, folder / f"{bag}_eval", factory, EvalOptions(overlay=False, plots=False), meta=meta
    ).metrics


@pytest.mark.parametrize("bag", ["raw", "png"])
def test_sync_replay_through_the_node_equals_lockstep_eval(setup, raw_node, isolated_env, bag):
    from taptr_ros.ros.tools.bag_play import PlayOptions, play_bag

    # raw: the module's node; png: --start-node starts one with input_transport compressed
    options = (
        PlayOptions(sync=True, wait_s=120.0)
        if bag == "raw"
        else PlayOptions(
            sync=True,
            start_node=True,
            checkpoint=str(setup / "tiny.pt"),
            device="cpu",
            node_args=("-p", "cpu_threads:=1"),
        )
    )
    result = play_bag(setup / bag, options, out_dir=setup / f"{bag}_play", log=lambda _text: None)
    live = result.metrics
    assert live["frames_answered"] == T and live["frames_dropped"] == 0 and live["held_point_frames"] == 0
    assert live["queries"]["late"] == 0 and live["queries"]["failed"] == 0
    assert live["latency_ms"]["p50"] > 0
    lockstep = _lockstep(setup, bag)
    for key, value in lockstep["tapvid"]["overall"].items():
        if key != "ms_per_frame":
            assert live["tapvid"]["overall"][key] == pytest.approx(value, abs=1e-6), key
    assert json.loads((setup / f"{bag}_play" / "metrics.json").read_text())["frames_answered"] == T
    from taptr_ros.bags.storage import BagReader
    from taptr_ros.bags.topics import RESULT_TOPIC

    with BagReader(setup / f"{bag}_play" / "tracks") as reader:
        assert len(list(reader.iter_tracks(RESULT_TOPIC))) == T


def test_timed_replay_accounts_for_every_frame(setup, raw_node, isolated_env):
    from taptr_ros.ros.tools.bag_play import PlayOptions, play_bag

    # 30 fps x 2: faster than a CPU model, so the node drops frames (newest wins)
    result = play_bag(setup / "raw", PlayOptions(rate=2.0, wait_s=120.0), log=lambda _text: None)
    m = result.metrics
    assert m["frames_published"] == T == m["frames_answered"] + m["frames_dropped"]
    assert m["frames_answered"] >= 1
    lat = m["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] < 60_000
    assert m["queries"]["added"] + m["queries"]["late"] + m["queries"]["failed"] == m["num_queries"]
    assert "tapvid" in m and m["mode"] == "live"
    assert "dropped" in result.summary()


def test_no_tracker_is_a_clear_error(setup, isolated_env):
    from taptr_ros.ros.tools.bag_play import PlayOptions, isolate_ros_domain, play_bag

    isolate_ros_domain()  # a domain nobody else uses
    with pytest.raises(BagError, match=r"no tracker answered within 1 s.*--start-node"):
        play_bag(setup / "raw", PlayOptions(wait_s=1.0), log=lambda _text: None)


def test_node_that_cannot_start_is_reported(setup, isolated_env):
    from taptr_ros.ros.tools.bag_play import PlayOptions, play_bag

    with pytest.raises(BagError, match="exited with code 1 before it was ready"):
        play_bag(
            setup / "raw",
            PlayOptions(start_node=True, checkpoint=str(setup / "missing.pt")),
            out_dir=setup / "bad",
            log=lambda _text: None,
        )
    assert "does not exist" in (setup / "bad" / "taptr_tracker.log").read_text()
