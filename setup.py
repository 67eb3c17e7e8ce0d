"""pip install of the Python half of taptr_ros (the interfaces are built by CMake: see Makefile)."""

from setuptools import find_packages, setup

setup(
    name="taptr_ros",
    version="0.1.0",
    description="ROS 2 node tracking any point in a live camera stream with TAPTRv2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["taptr_ros", "taptr_ros.*"]),
    package_data={"taptr_ros": ["py.typed"]},
    # what the node loads, where taptr_ros.resources looks for it in a pip install
    # (<prefix>/share/taptr_ros/...): the default model, the params file, the DDS profile
    data_files=[
        ("share/taptr_ros/models", ["models/default.pt"]),
        ("share/taptr_ros/config", ["config/tracker.yaml", "config/fastdds_shm.xml"]),
        ("share/taptr_ros/launch", ["launch/tracker.launch.py"]),
    ],
    install_requires=["numpy", "torch", "opencv-python-headless", "tqdm", "matplotlib", "rosbags"],
    entry_points={
        "console_scripts": [
            "taptr = taptr_ros.cli:main",
            "taptr-tracker = taptr_ros.ros.node:main",
        ]
    },
)
