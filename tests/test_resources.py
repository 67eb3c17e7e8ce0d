"""Shipped files are found from a source checkout, an ament prefix or sys.prefix; the Fast DDS
profile variables are set for both Fast DDS versions unless the user chose a profile."""

from __future__ import annotations

import os
from pathlib import Path

from taptr_ros import resources

REPO = Path(__file__).resolve().parents[1]


def _ament_prefix(root: Path, *, registered: bool = True) -> Path:
    share = root / "share" / "taptr_ros"
    (share / "models").mkdir(parents=True)
    (share / "models" / "only_in_prefix.pt").write_bytes(b"x")
    if registered:
        marker = root / "share" / "ament_index" / "resource_index" / "packages" / "taptr_ros"
        marker.parent.mkdir(parents=True)
        marker.write_text("")
    return root


def test_source_checkout_first_then_ament_prefixes(tmp_path) -> None:
    prefix = _ament_prefix(tmp_path / "install")
    env = {"AMENT_PREFIX_PATH": os.pathsep.join(["/nonexistent", str(prefix)])}
    dirs = resources.share_dirs(env)
    assert dirs[0] == REPO and prefix / "share" / "taptr_ros" in dirs
    assert resources.find_share_file("models/default.pt", env) == REPO / "models" / "default.pt"
    assert resources.find_share_file("models/only_in_prefix.pt", env) == \
        prefix / "share" / "taptr_ros" / "models" / "only_in_prefix.pt"


def test_an_unregistered_prefix_is_not_searched(tmp_path) -> None:
    prefix = _ament_prefix(tmp_path / "other", registered=False)
    env = {"AMENT_PREFIX_PATH": str(prefix)}
    assert resources.find_share_file("models/only_in_prefix.pt", env) is None
    try:
        resources.share_file("models/only_in_prefix.pt", env)
    except FileNotFoundError as exc:
        assert "models/only_in_prefix.pt is not installed" in str(exc) and str(REPO) in str(exc)
    else:
        raise AssertionError("a missing file must raise")


def test_dds_profile_variables_follow_the_fast_dds_version() -> None:
    fastdds, fastrtps = resources.DDS_PROFILE_VARIABLES
    assert resources.dds_profile_variables({"ROS_DISTRO": "kilted"}) == (fastdds,)
    assert resources.dds_profile_variables({"ROS_DISTRO": "rolling"}) == (fastdds,)
    for distro in ("jazzy", "humble"):
        assert resources.dds_profile_variables({"ROS_DISTRO": distro}) == (fastdds, fastrtps)


def test_dds_profile_set_unless_the_user_chose_one() -> None:
    shipped = str(REPO / "config" / "fastdds_shm.xml")
    jazzy: dict[str, str] = {"ROS_DISTRO": "jazzy"}
    assert resources.set_dds_profile(jazzy) == {"FASTDDS_DEFAULT_PROFILES_FILE": shipped,
                                                "FASTRTPS_DEFAULT_PROFILES_FILE": shipped}
    # Fast DDS 3 warns at every start when the old variable is set: only the new one
    kilted: dict[str, str] = {"ROS_DISTRO": "kilted"}
    assert resources.set_dds_profile(kilted) == {"FASTDDS_DEFAULT_PROFILES_FILE": shipped}
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in kilted
    # the user's choice wins, on either variable, and is carried to the other one
    mine = {"ROS_DISTRO": "jazzy", "FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/my_profile.xml"}
    assert resources.set_dds_profile(mine) == {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/my_profile.xml"}
    assert mine["FASTRTPS_DEFAULT_PROFILES_FILE"] == "/etc/my_profile.xml"
    both = {"FASTDDS_DEFAULT_PROFILES_FILE": "/a.xml", "FASTRTPS_DEFAULT_PROFILES_FILE": "/b.xml"}
    assert resources.set_dds_profile(both) == {} and both["FASTDDS_DEFAULT_PROFILES_FILE"] == "/a.xml"
    opted_out = {"TAPTR_NO_DDS_PROFILE": "1"}
    assert resources.set_dds_profile(opted_out) == {} and len(opted_out) == 1
