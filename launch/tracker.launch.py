"""Start the taptr_tracker node of package taptr_ros.

    ros2 launch taptr_ros tracker.launch.py image:=/camera/image_raw
    ros2 launch taptr_ros tracker.launch.py image:=/camera/image_raw namespace:=left \
        checkpoint:=/path/to/taptrv2.pth device:=cuda

Arguments:
    image        image topic the node subscribes to (remaps its ``image`` input)
    params_file  parameters YAML (default: share/taptr_ros/config/tracker.yaml)
    namespace    namespace of the node (topics ~/tracks etc. follow it)
    checkpoint   model checkpoint; empty = the params file's value
    device       torch device ("cpu", "cuda", "cuda:1"); empty = the params file's value
    dds_profile  "true" (default): unless FASTDDS_DEFAULT_PROFILES_FILE or
                 FASTRTPS_DEFAULT_PROFILES_FILE is set, the node uses the shipped
                 share/taptr_ros/config/fastdds_shm.xml (16 MB shared-memory segment: whole
                 camera frames between processes); "false" keeps Fast DDS's defaults

Clicks from rqt_image_view: view <namespace>/taptr_tracker/overlay and remap the node's
~/click_point to that view's mouse topic (<overlay topic>_mouse_left), e.g. with
`ros2 run taptr_ros taptr_tracker --ros-args -r image:=/camera/image_raw
-r ~/click_point:=/taptr_tracker/overlay_mouse_left`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _node(context, *args, **kwargs):
    # checkpoint/device override the params file only when given: an empty string would
    # otherwise replace its value.
    overrides = {}
    for name in ("checkpoint", "device"):
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value
    parameters = [LaunchConfiguration("params_file")]
    if overrides:
        parameters.append(overrides)
    # the node sets the profile variables itself (taptr_ros.resources.set_dds_profile) unless
    # told not to; so does `ros2 run` and a plain `taptr-tracker` process
    use_profile = LaunchConfiguration("dds_profile").perform(context).strip().lower()
    if use_profile not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"dds_profile must be true or false, got {use_profile!r}")
    additional_env = {} if use_profile in ("true", "1", "yes") else {"TAPTR_NO_DDS_PROFILE": "1"}
    return [
        Node(
            package="taptr_ros",
            executable="taptr_tracker",
            name="taptr_tracker",
            namespace=LaunchConfiguration("namespace"),
            parameters=parameters,
            remappings=[("image", LaunchConfiguration("image"))],
            output="screen",
            emulate_tty=True,
            additional_env=additional_env,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="image",
                              description="image topic to track points in"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution(
                [FindPackageShare("taptr_ros"), "config", "tracker.yaml"]),
            description="parameters YAML for the node"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="model checkpoint path (empty: from params_file)"),
        DeclareLaunchArgument("device", default_value="",
                              description="torch device, e.g. cpu or cuda (empty: from params_file)"),
        DeclareLaunchArgument("dds_profile", default_value="true",
                              description="use the shipped Fast DDS profile unless one is set "
                                          "(true/false)"),
        OpaqueFunction(function=_node),
    ])
