"""The queries sidecar of a bag: ``BAG/taptr_queries.json``, written by ``taptr bag make``.

JSON: ``format``, ``image_topic``, ``width``, ``height``, ``num_frames``, ``stamps_ns`` (the image
topic's header stamps), ``columns`` = ``["frame", "stamp_ns", "x", "y"]`` and ``queries`` =
``{mode: [[frame, stamp_ns, x, y], ...]}``: modes ``first`` and ``strided`` (TAP-Vid sampling of
the ground truth, as ``taptr eval tapvid`` samples it) and ``points`` (given by hand or a grid);
``meta`` (source, video name, fps). x, y are pixels of the image topic's frames.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from taptr_ros.bags.errors import BagGroundTruthError, BagNotFoundError

QUERIES_FILE = "taptr_queries.json"
QUERIES_FORMAT = "taptr_ros/bag_queries/1"


@dataclasses.dataclass(frozen=True)
class QueriesFile:
    """The sidecar a bag made by ``taptr bag make`` carries: its queries, per query mode.

    Attributes:
        queries: {mode: (M, 3) float64 (t, x, y)}, t a frame index of the image topic, x, y pixels;
            modes ``first``/``strided`` (from ground truth) or ``points`` (given by hand or a grid).
        stamps_ns: (T,) int64 header stamps of the image topic's frames.
        image_topic, width, height: the video the queries refer to.
        meta: source path, video name, fps, ...
    """

    queries: dict[str, np.ndarray]
    stamps_ns: np.ndarray
    image_topic: str
    width: int
    height: int
    meta: dict[str, Any]

    def to_json(self) -> str:
        """The sidecar as JSON text: per mode, rows [frame, stamp_ns, x, y] (pixels)."""
        stamps = [int(s) for s in self.stamps_ns]
        rows = {
            mode: [[int(t), stamps[int(t)], float(x), float(y)] for t, x, y in q]
            for mode, q in self.queries.items()
        }
        return (
            json.dumps(
                {
                    "format": QUERIES_FORMAT,
                    "image_topic": self.image_topic,
                    "width": self.width,
                    "height": self.height,
                    "num_frames": len(stamps),
                    "stamps_ns": stamps,
                    "columns": ["frame", "stamp_ns", "x", "y"],
                    "queries": rows,
                    "meta": self.meta,
                },
                indent=1,
            )
            + "\n"
        )


def write_queries(path: str | os.PathLike[str], queries: QueriesFile) -> None:
    """Write the sidecar atomically (``path`` is the JSON file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(queries.to_json(), encoding="utf-8")
    os.replace(tmp, path)


def read_queries(path: str | os.PathLike[str]) -> QueriesFile:
    """Read a sidecar (a JSON file, or a bag directory holding :data:`QUERIES_FILE`).

    Raises:
        BagNotFoundError: no such file.
        BagError: not the sidecar format.
    """
    path = Path(path)
    if path.is_dir():
        path = path / QUERIES_FILE
    if not path.is_file():
        raise BagNotFoundError(
            f"{path}: no queries file; make the bag with `taptr bag make`, or pass "
            "--points 'x,y;x,y' or --grid N"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != QUERIES_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {QUERIES_FORMAT!r}")
        queries = {
            mode: np.asarray([[r[0], r[2], r[3]] for r in rows], np.float64).reshape(-1, 3)
            for mode, rows in data["queries"].items()
        }
        return QueriesFile(
            queries,
            np.asarray(data["stamps_ns"], np.int64),
            str(data["image_topic"]),
            int(data["width"]),
            int(data["height"]),
            dict(data.get("meta", {})),
        )
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise BagGroundTruthError(
            f"{path}: not a taptr bag queries file ({error}); regenerate it with " "`taptr bag make`"
        ) from error
