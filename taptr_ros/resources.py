"""Files shipped beside the code (default model, params file, Fast DDS profile), found from
any install: a source checkout, a colcon install space, or a pip install.

Paths are relative to the package's share directory, e.g. ``"models/default.pt"``,
``"config/tracker.yaml"``, ``"config/fastdds_shm.xml"``. Where they live:

* source checkout: the repository root (``package.xml`` beside ``taptr_ros/``);
* colcon / ament install: ``<prefix>/share/taptr_ros/`` for every prefix of
  ``AMENT_PREFIX_PATH`` that registers the package in the ament index, then the prefix this
  module is installed under (``<prefix>/lib/pythonX.Y/site-packages/taptr_ros/``), which works
  before ``setup.bash`` is sourced too;
* pip: ``<sys.prefix>/share/taptr_ros/`` (setup.py's ``data_files``).

The first directory that holds the file wins, in that order. No ROS import: this is the
bottom of the house, used by tracking (default model) and by every tool that starts a node.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

PACKAGE = "taptr_ros"
DEFAULT_MODEL = "models/default.pt"
PARAMS_FILE = "config/tracker.yaml"
DDS_PROFILE = "config/fastdds_shm.xml"
#: Fast DDS 3.x (Kilted) reads the first, Fast DDS 2.x (Jazzy, Humble) the second
DDS_PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
#: set (non-empty) to keep Fast DDS's own defaults (launch argument ``dds_profile:=false``)
DDS_PROFILE_OPT_OUT = "TAPTR_NO_DDS_PROFILE"


def share_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Candidate share directories, in search order (they need not exist)."""
    environ = os.environ if environ is None else environ
    here = Path(__file__).resolve().parent            # .../taptr_ros
    dirs: list[Path] = []
    if (here.parent / "package.xml").is_file():       # source checkout (or editable install)
        dirs.append(here.parent)
    for prefix in filter(None, environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        if (Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file():
            dirs.append(Path(prefix) / "share" / PACKAGE)
    if here.parent.name in ("site-packages", "dist-packages") and here.parents[2].name == "lib":
        dirs.append(here.parents[3] / "share" / PACKAGE)  # <prefix>/lib/pythonX.Y/site-packages
    dirs.append(Path(sys.prefix) / "share" / PACKAGE)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def find_share_file(relative: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """The first existing ``<share dir>/relative``, or None."""
    for d in share_dirs(environ):
        if (d / relative).is_file():
            return d / relative
    return None


def share_file(relative: str, environ: Mapping[str, str] | None = None) -> Path:
    """Like `find_share_file`, but a missing file raises.

    Raises:
        FileNotFoundError: names every directory searched.
    """
    found = find_share_file(relative, environ)
    if found is None:
        searched = ", ".join(str(d) for d in share_dirs(environ))
        raise FileNotFoundError(f"{relative} is not installed (searched {searched})")
    return found


def dds_profile_variables(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The profile variables to set for the Fast DDS this ROS 2 runs on.

    Fast DDS 3.x (Kilted and later) reads ``FASTDDS_DEFAULT_PROFILES_FILE`` and warns at every
    start when ``FASTRTPS_DEFAULT_PROFILES_FILE`` is set too; Fast DDS 2.x (Humble, Jazzy) reads
    only the latter and ignores the former. The distribution is ``$ROS_DISTRO`` (set by a ROS
    install's setup script), else the rclpy wheel installed (``ros-jazzy-rclpy``: Jazzy,
    ``ros-rclpy``: Kilted); unknown = both variables.
    """
    environ = os.environ if environ is None else environ
    distro = environ.get("ROS_DISTRO", "").strip().lower()
    if not distro:
        from importlib import metadata
        for wheel, name in (("ros-jazzy-rclpy", "jazzy"), ("ros-rclpy", "kilted")):
            try:
                metadata.version(wheel)
            except metadata.PackageNotFoundError:
                continue
            distro = name
            break
    if distro in ("humble", "iron", "jazzy"):
        return DDS_PROFILE_VARIABLES
    if distro:
        return DDS_PROFILE_VARIABLES[:1]
    return DDS_PROFILE_VARIABLES


def set_dds_profile(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Make Fast DDS 2.x and 3.x read one profile: the shipped one unless the user chose one.

    If neither variable of `DDS_PROFILE_VARIABLES` is set, those of `dds_profile_variables`
    (the running Fast DDS's) are set to the shipped ``config/fastdds_shm.xml``; if the user set
    one, the missing ones among those get the same file (their choice holds whichever Fast DDS
    runs); if `DDS_PROFILE_OPT_OUT` is set, nothing changes. Fast DDS reads the variables when the process's first ROS context starts:
    call this before ``rclpy.init``.

    Returns:
        The variables this call set (empty if none, or if the profile is not installed).
    """
    environ = os.environ if environ is None else environ
    if environ.get(DDS_PROFILE_OPT_OUT):
        return {}
    chosen = next((environ[v] for v in DDS_PROFILE_VARIABLES if environ.get(v)), None)
    if chosen is None:
        profile = find_share_file(DDS_PROFILE, environ)
        if profile is None:
            return {}
        chosen = str(profile)
    added = {v: chosen for v in dds_profile_variables(environ) if not environ.get(v)}
    environ.update(added)
    return added
