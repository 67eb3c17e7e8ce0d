"""tracking room of taptr_ros (see DESIGN.md section 1): the online engine, pure torch, no ROS.

* `feature_cache.FeatureCache`: ring buffer of the last W frames' encoder memory.
* `points.PointRegistry`: ids, start frames and per-point state.
* `windows.WindowDecoder`: provisional and committed windows; committed windows decoded again
  when a point starting in them is added after they were committed.
* `stamps`: which buffered frame a point stamp names; frame stamps must increase.
* `tracker.OnlineTracker`: push(frame, stamp) -> [FrameResult]; add_points / remove_points /
  remove_all / reset from any thread; flush() in committed mode; encode(frame) ahead of its
  push on another thread (a two-stage pipeline).
* `encoding.encode_frame` / `encoding.EncodedFrame`: a frame's encoder memory and decoder
  keys/values, computed apart from the stream's state.
* `options.TrackerOptions`, `options.FrameResult`, `options.FrameTimings`.
* `factory.load_model` / `factory.build_tracker`: from a checkpoint path or "default".
* `errors.TrackerError` and its family.
"""

from taptr_ros.tracking.errors import (CapacityError, FrameError, ModelLoadError, OptionsError, PointError,
                                       StampError, TrackerError, TrackerStateError)
from taptr_ros.tracking.options import FrameResult, FrameTimings, TrackerOptions
from taptr_ros.tracking.tracker import OnlineTracker

__all__ = ["CapacityError", "FrameError", "FrameResult", "FrameTimings", "ModelLoadError", "OnlineTracker",
           "OptionsError", "PointError", "StampError", "TrackerError", "TrackerOptions", "TrackerStateError"]
