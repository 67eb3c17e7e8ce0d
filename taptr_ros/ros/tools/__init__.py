"""rclpy programs that drive a running taptr_tracker node (DESIGN.md section 1: ``ros/tools/``).

None of them is part of the node; each talks to it over real DDS as a user's program would.

* ``client``           ``TrackerClient``: publish frames, call the services, record the outputs
* ``child_node``       the node as a child process on a ROS domain of its own
* ``demo``             ``taptr demo``: a shipped video played into the real node
* ``bag_play``         ``taptr bag play``: a bag replayed live (``bag_play_options``,
                       ``bag_play_report``: its options and what it reports)
* ``bench_node``       ``taptr bench node``: the node's overhead beyond the model
* ``bench_transport``  ``taptr bench transport``: frames delivered with and without the DDS profile
"""
