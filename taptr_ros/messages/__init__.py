"""messages room of taptr_ros: what ROS messages hold, as numpy, without rclpy.

Used alike by the node (`taptr_ros.ros`), the bag tools (`taptr_ros.bags`) and the programs
that drive a node (`taptr_ros.ros.tools`), so a frame is decoded the same way in all of them.
rclpy message classes are imported only inside the functions that build them.

* ``raw_image``         sensor_msgs/Image <-> numpy in 8 encodings, any row padding and byte order
* ``compressed_image``  sensor_msgs/CompressedImage (jpeg, png, compressedDepth) <-> numpy
* ``rgb8``              the tracker's input, RGB uint8 (H, W, 3), from any image message
* ``tracks``            taptr_ros/TrackedPoints <-> numpy arrays (pack / unpack)
* ``typestore``         the rosbags typestore with our message types, and message builders
"""
