"""model room of taptr_ros (see DESIGN.md section 1): the TAPTRv2 network, pure torch.

The public API is re-exported here; see `taptr_ros.model.taptr` for shapes and units.
"""

from taptr_ros.model.config import PRESETS, ConfigError, TaptrConfig, preset
from taptr_ros.model.decoder import WindowOutput
from taptr_ros.model.taptr import TAPTRv2, TrackResult, track_video
from taptr_ros.model.windowing import (Trajectory, commit_window, initial_vis_logits,
                                       official_content_gap, point_masks, window_ranges)

__all__ = ["PRESETS", "ConfigError", "TAPTRv2", "TaptrConfig", "TrackResult", "Trajectory",
           "WindowOutput", "commit_window", "initial_vis_logits", "official_content_gap",
           "point_masks", "preset", "track_video", "window_ranges"]
