"""Node options that change its wiring: committed mode, compressed input (bgr8 in PNG).

In committed mode the tracker answers only when a window is decoded (frames 3, 7, 11 with
the official window 8 / stride 4), with the results of every frame since the last answer:
the node must publish each of them with its own image's header, in order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from taptr_ros.data.video import read_video
from taptr_ros.messages.tracks import unpack_tracks
from taptr_ros.ros.diagnostics import diagnostics_values
from taptr_ros.ros.services import stamp_to_ns
from taptr_ros.ros.tools.client import RELIABLE, TrackerClient

REPO = Path(__file__).resolve().parents[2]
NS = "/t_options"


def test_committed_mode_on_compressed_bgr_input(start_process, tiny_checkpoint,
                                                tracker_executable) -> None:
    node = start_process([
        str(tracker_executable), "--ros-args", "--params-file", "config/tracker.yaml",
        "-p", f"checkpoint:={tiny_checkpoint}", "-p", "mode:=committed",
        "-p", "input_transport:=compressed", "-p", "diagnostics_period:=0.1", "-p", "qos:=reliable",
        "-r", f"__ns:={NS}", "-r", "image:=/options/image",
    ], name="committed")
    frames, _ = read_video(REPO / "media" / "trackon_sample.mp4", max_frames=12)
    frames = frames[:, ::2, ::2].copy()  # 256x192
    client = TrackerClient(tracker=f"{NS}/taptr_tracker", image_topic="/options/image/compressed",
                           compression="png", image_qos=RELIABLE, diagnostics=True,
                           node_name="options_client")
    try:
        client.wait_until_ready(120, is_alive=lambda: node.popen.poll() is None)

        def processed() -> int:
            received = client.snapshot(client.diagnostics)
            return int(diagnostics_values(received[-1].msg)["frames_processed"]) if received else 0

        stamps = [3_000_000_000 + i * 40_000_000 for i in range(12)]
        sent = {}
        for i, stamp in enumerate(stamps):  # one frame at a time: none may be dropped
            sent[stamp] = client.publish_frame(frames[i], stamp, encoding="bgr8",
                                               frame_id=f"frame{i}")
            assert client.wait_for(lambda: processed() > i, 30), f"frame {i} not processed"
            if i == 0:
                response = client.add_points([20.0, 128.0], [30.0, 100.0])
                assert response.success, response.message
                assert stamp_to_ns(response.stamp) == stamp

        assert client.wait_for(lambda: all(client.tracks_for(s) for s in stamps), 10)
        arrivals = {stamp_to_ns(r.msg.header.stamp): r.time for r in client.snapshot(client.tracks)}
        assert sorted(arrivals) == stamps  # each frame's tracks once, no other
        for i, stamp in enumerate(stamps):
            tracks = unpack_tracks(client.tracks_for(stamp))
            assert tracks.header.frame_id == f"frame{i}"  # its own image's header
            assert (tracks.width, tracks.height) == (256, 192)
            assert sorted(tracks.ids.tolist()) == sorted(response.ids)
            # published together with the frame that completed its window (3, 7 or 11)
            publisher = stamps[i // 4 * 4 + 3]
            assert arrivals[stamp] >= sent[publisher], i
        order = [stamp_to_ns(r.msg.header.stamp) for r in client.snapshot(client.tracks)]
        assert order == stamps  # in frame order
        assert np.all(unpack_tracks(client.tracks_for(stamps[-1])).visibility <= 1.0)
    finally:
        client.close()
