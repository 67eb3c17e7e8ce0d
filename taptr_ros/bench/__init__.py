"""bench room of taptr_ros (DESIGN.md section 1): benchmarks behind ``taptr bench``, no ROS.

Every figure is a ratio or a median measured side by side in one run (absolute times on a
shared CPU are noise). The node's own benchmarks need rclpy and live in `taptr_ros.ros.tools`.

* ``engine``  ``taptr bench engine``: the online engine vs the offline reference vs a naive loop
* ``memory``  ``taptr bench memory``: RSS, Python heap and CUDA memory over a long stream
* ``naive``   the naive re-encode-the-window online loop (a baseline only)
* ``common``  models, synthetic streams, clocks, stage timers, tables
"""
