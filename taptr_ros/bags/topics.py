"""Bag conventions: default topics, storage plugins and the rosbag2 format version written.

Topics are those of a recorded robot camera and of our tools: images on ``/camera/image_raw``,
ground truth (taptr_ros/TrackedPoints from ``taptr bag make``) on ``/ground_truth/tracks``, the
tracker's results on ``/taptr_tracker/tracks`` (the node's ``~/tracks`` under its default name).
"""

DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
GROUND_TRUTH_TOPIC = "/ground_truth/tracks"
RESULT_TOPIC = "/taptr_tracker/tracks"
STORAGES = ("sqlite3", "mcap")

#: rosbag2 metadata version written: 8 is read by Jazzy and Kilted
BAG_VERSION = 8
