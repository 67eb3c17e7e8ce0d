"""ros room of taptr_ros (DESIGN.md section 1): the taptr_tracker node and only the node.

Holds no tracking logic (that is `taptr_ros.tracking`) and no message decoding (that is
`taptr_ros.messages`); programs that drive a running node are in `taptr_ros.ros.tools`.

* ``node``            the node: subscriptions, publishers, services, timers (``main``)
* ``parameters``      its parameter table, declared with descriptors, validated on set
* ``tracker_setup``   parameters -> an ``OnlineTracker`` through the tracking factory
* ``worker``          inference off the executor thread, one-slot mailbox, newest frame wins
* ``services``        service and click requests -> tracker calls -> responses; never raises
* ``wire``            received images read from their CDR bytes (no rclpy conversion)
* ``features``        the optional ``~/features`` PointCloud output
* ``diagnostics``     counters and the /diagnostics message
* ``callback_guard``  no callback ends the node: exceptions logged once and counted
"""
