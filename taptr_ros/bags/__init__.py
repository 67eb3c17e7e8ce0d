"""bags room of taptr_ros (DESIGN.md section 1): rosbag2 bags through ``rosbags``, no ROS install.

Imports `tracking`, `eval` (metrics), `messages` and `data`; never rclpy, so bag evaluation runs
anywhere. Stamps are integer nanoseconds; pixel coordinates x right, y down, of the bag's images.

* ``storage``     ``BagReader`` / ``BagWriter``: frames (``BagImage``) and tracks, atomic writes
* ``topics``      default topics, storage plugins, the rosbag2 version written
* ``make``        ``taptr bag make``: a bag from a video or a TAP-Vid pickle (+ ground truth)
* ``sidecar``     ``BAG/taptr_queries.json``: the queries a bag is evaluated with
* ``truth``       ground truth from a bag's topic or a TAP-Vid pickle (``GroundTruth``)
* ``engine``      lockstep replay through the node's engine (``run_lockstep``)
* ``evaluate``    ``taptr bag eval``: ``evaluate_bag`` -> metrics, report, plots, result bag
* ``eval_files``  the frames it reads (kept for a backward pass) and the files it writes
* ``metrics``     per-frame curves with truth; survival and forward-backward error without
* ``report``      metrics.json, report.md and the PNG plots
* ``errors``      ``BagError`` and its family (every message names the fix)
"""
