"""Service and click requests -> `OnlineTracker` calls -> responses. Never raises.

Each handler validates what only the request can tell (array lengths, empty requests), lets
the tracker refuse the rest (NaN, outside the image, unknown or too old stamp, no frame yet,
too many points: its `TrackerError` messages name the fix), and answers ``success=false``
with that message. Tracking state is the tracker's; nothing here keeps any.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time

from taptr_ros.tracking.errors import TrackerError


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (the stamps the node pushes frames with)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_time(ns: int) -> Time:
    """Integer nanoseconds -> builtin_interfaces/Time."""
    return Time(sec=int(ns) // 1_000_000_000, nanosec=int(ns) % 1_000_000_000)


def add_points(tracker, xs, ys, stamp_ns: int | None) -> tuple[bool, str, np.ndarray, int | None]:
    """Add points at a frame (``stamp_ns`` None or 0 = the latest frame).

    Returns:
        (success, message, ids (uint32, request order), stamp used in ns or None).
    """
    x = np.asarray(xs, np.float64).reshape(-1)
    y = np.asarray(ys, np.float64).reshape(-1)
    empty = np.zeros(0, np.uint32)
    if x.shape != y.shape:
        return False, f"x has {x.size} values and y {y.size}: give one x and one y per point", \
            empty, None
    if x.size == 0:
        return False, "no points given: fill x and y with pixel coordinates", empty, None
    try:
        ids, used = tracker.add_points(np.stack((x, y), axis=1), stamp_ns or None)
    except TrackerError as exc:
        return False, str(exc), empty, None
    return True, f"added {len(ids)} point(s) at stamp {used}", np.asarray(ids, np.uint32), used


def handle_add(tracker, request, response):
    """taptr_ros/srv/AddPoints."""
    ok, message, ids, used = add_points(tracker, request.x, request.y,
                                        stamp_to_ns(request.stamp))
    response.success, response.message = ok, message
    response.ids = ids.tolist()
    if used is not None:
        response.stamp = ns_to_time(used)
    return response


def handle_remove(tracker, request, response):
    """taptr_ros/srv/RemovePoints: ``all`` removes every point; unknown ids -> success=false."""
    try:
        if request.all:
            removed, unknown = tracker.remove_all(), np.zeros(0, np.uint32)
        else:
            removed, unknown = tracker.remove_points(np.asarray(request.ids, np.int64))
    except TrackerError as exc:
        response.success, response.message = False, str(exc)
        return response
    response.removed, response.unknown = removed.tolist(), unknown.tolist()
    if len(unknown):
        response.success = False
        response.message = (f"unknown ids {unknown.tolist()} (never added, or already removed); "
                            f"removed {removed.tolist()}")
    elif not request.all and not len(request.ids):
        response.success = True
        response.message = "no ids given: nothing removed (set all: true to remove every point)"
    else:
        response.success, response.message = True, f"removed {len(removed)} point(s)"
    return response


def handle_reset(tracker, response):
    """std_srvs/Trigger: forget every point and buffered frame (ids keep counting up)."""
    try:
        count = tracker.num_points
        tracker.reset()
    except TrackerError as exc:
        response.success, response.message = False, str(exc)
        return response
    response.success = True
    response.message = f"removed {count} point(s) and the buffered frames"
    return response
