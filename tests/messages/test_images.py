"""taptr_ros.messages.raw_image, compressed_image and rgb8: raw and compressed images <-> numpy.

The decoder is checked against message bytes laid out here independently (rows written one
by one with explicit byte order, padding filled with garbage), not only against the encoder.
"""

from __future__ import annotations

import types

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from taptr_ros.messages.compressed_image import (
    compressed_to_numpy,
    encode_compressed,
    numpy_to_compressed,
)
from taptr_ros.messages.raw_image import (
    ENCODINGS,
    ImageConversionError,
    image_to_numpy,
    numpy_to_image,
    pack_image,
)
from taptr_ros.messages.rgb8 import (
    array_to_rgb8,
    compressed_to_rgb8,
    image_to_rgb8,
    message_to_rgb8,
)


def _shape(encoding: str, height: int, width: int) -> tuple[int, ...]:
    channels = ENCODINGS[encoding].channels
    return (height, width) if channels == 1 else (height, width, channels)


@st.composite
def raw_images(draw: st.DrawFn, encoding: str) -> tuple[np.ndarray, int, bool]:
    """(image array, padding bytes per row, is_bigendian) for ``encoding``."""
    height = draw(st.integers(1, 9))
    width = draw(st.integers(1, 9))
    image = draw(hnp.arrays(ENCODINGS[encoding].dtype, _shape(encoding, height, width)))
    return image, draw(st.integers(0, 13)), draw(st.booleans())


def _reference_message(image: np.ndarray, encoding: str, padding: int, bigendian: bool):
    """A message-like object laid out by hand: row by row, explicit order, garbage padding."""
    order = ">" if bigendian else "<"
    rows = [image[r].astype(image.dtype.newbyteorder(order)).tobytes() + b"\xa5" * padding
            for r in range(image.shape[0])]
    return types.SimpleNamespace(height=image.shape[0], width=image.shape[1],
                                 encoding=encoding, is_bigendian=int(bigendian),
                                 step=len(rows[0]), data=b"".join(rows))


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_raw_round_trip_with_padding_and_byte_order(encoding: str, data: st.DataObject) -> None:
    image, padding, bigendian = data.draw(raw_images(encoding))
    reference = _reference_message(image, encoding, padding, bigendian)

    decoded = image_to_numpy(reference)
    assert decoded.dtype == image.dtype and decoded.dtype.isnative
    assert decoded.shape == image.shape
    assert decoded.tobytes() == image.tobytes()  # bitwise, NaN payloads included

    msg = numpy_to_image(image, encoding, step=reference.step, is_bigendian=bigendian)
    assert (msg.height, msg.width, msg.encoding) == (image.shape[0], image.shape[1], encoding)
    assert (msg.step, bool(msg.is_bigendian)) == (reference.step, bigendian)
    assert not isinstance(msg.data, np.ndarray)
    expected = b"".join(row[: reference.step - padding] + b"\x00" * padding
                        for row in _split(reference.data, reference.step))
    assert bytes(msg.data) == expected
    assert image_to_numpy(msg).tobytes() == image.tobytes()


def _split(data: bytes, step: int) -> list[bytes]:
    return [data[i:i + step] for i in range(0, len(data), step)]


def test_decoding_accepts_numpy_data_like_rosbags_messages() -> None:
    from rosbags.typesys import Stores, get_typestore

    image = np.arange(4 * 5, dtype=np.uint16).reshape(4, 5) * 1000
    packed = pack_image(image, "16UC1", step=12, is_bigendian=True)
    store = get_typestore(Stores.ROS2_KILTED)
    Image, Header, Time = (store.types[name] for name in (
        "sensor_msgs/msg/Image", "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    msg = Image(header=Header(stamp=Time(sec=1, nanosec=2), frame_id="cam"),
                height=packed.height, width=packed.width, encoding=packed.encoding,
                is_bigendian=packed.is_bigendian, step=packed.step,
                data=np.frombuffer(packed.data, dtype=np.uint8))
    cdr = store.serialize_cdr(msg, "sensor_msgs/msg/Image")
    back = store.deserialize_cdr(cdr, "sensor_msgs/msg/Image")
    np.testing.assert_array_equal(image_to_numpy(back), image)


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "32FC1"])
def test_decoded_arrays_never_alias_the_message(encoding: str) -> None:
    image = np.ones(_shape(encoding, 3, 4), ENCODINGS[encoding].dtype)
    msg = numpy_to_image(image, encoding)  # unpadded, native order: the zero-copy case
    decoded, rgb = image_to_numpy(msg), image_to_rgb8(msg)
    before = rgb.copy()
    np.frombuffer(msg.data, np.uint8)[:] = 0  # the publisher reuses its buffer
    np.testing.assert_array_equal(decoded, image)
    np.testing.assert_array_equal(rgb, before)


def test_pack_image_pads_with_zeros_and_keeps_step() -> None:
    image = np.full((2, 3, 3), 7, dtype=np.uint8)
    packed = pack_image(image, "rgb8", step=12)
    assert packed.step == 12 and len(packed.data) == 24
    assert packed.data == (b"\x07" * 9 + b"\x00" * 3) * 2


# --- RGB for the tracker ---------------------------------------------------------------

def test_rgb8_from_colour_encodings_reorders_channels_and_drops_alpha() -> None:
    rgb = np.array([[[10, 20, 30], [40, 50, 60]]], dtype=np.uint8)
    alpha = np.full((1, 2, 1), 99, dtype=np.uint8)
    cases = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1], "rgba8": np.concatenate([rgb, alpha], 2),
             "bgra8": np.concatenate([rgb[:, :, ::-1], alpha], 2)}
    for encoding, image in cases.items():
        out = image_to_rgb8(numpy_to_image(image, encoding, step=17))
        assert out.dtype == np.uint8 and out.flags.c_contiguous, encoding
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)


def test_rgb8_from_mono_replicates_gray_and_scales_16_bit_and_float() -> None:
    mono8 = np.array([[0, 128, 255]], dtype=np.uint8)
    mono16 = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    depth16 = np.array([[0, 129, 65535 - 128]], dtype=np.uint16)  # round(v / 257)
    floats = np.array([[-1.0, 0.5, np.nan]], dtype=np.float32)
    expected = {"mono8": [0, 128, 255], "mono16": [0, 128, 255], "16UC1": [0, 1, 255],
                "32FC1": [0, 128, 0]}
    arrays = {"mono8": mono8, "mono16": mono16, "16UC1": depth16, "32FC1": floats}
    for encoding, image in arrays.items():
        out = image_to_rgb8(numpy_to_image(image, encoding, is_bigendian=True))
        assert out.shape == (1, 3, 3) and out.dtype == np.uint8
        for channel in range(3):
            np.testing.assert_array_equal(out[0, :, channel], expected[encoding], err_msg=encoding)


def test_rgb8_value_range_maps_depth_linearly_and_clips() -> None:
    depth_m = np.array([[0.5, 1.0, 3.0, 9.0]], dtype=np.float32)
    out = array_to_rgb8(depth_m, "32FC1", value_range=(1.0, 3.0))
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 255, 255])
    depth_mm = np.array([[1000, 2000, 3000]], dtype=np.uint16)
    out = array_to_rgb8(depth_mm, "16UC1", value_range=(1000, 3000))
    np.testing.assert_array_equal(out[0, :, 1], [0, 128, 255])
    with pytest.raises(ImageConversionError, match="value_range"):
        array_to_rgb8(depth_mm, "16UC1", value_range=(5, 5))


# --- compressed ----------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1"])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_png_round_trip_is_lossless(encoding: str, data: st.DataObject) -> None:
    image, _, _ = data.draw(raw_images(encoding))
    msg = numpy_to_compressed(image, encoding, fmt="png")
    assert msg.format.startswith(f"{encoding}; png compressed ")
    decoded, decoded_encoding = compressed_to_numpy(msg)
    assert decoded_encoding == encoding
    assert decoded.dtype == image.dtype
    np.testing.assert_array_equal(decoded, image)


def _smooth_rgb(height: int = 48, width: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // (width - 1), yy * 255 // (height - 1),
                     (xx + yy) * 255 // (width + height - 2)], axis=2).astype(np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "mono8"])
def test_jpeg_round_trip_is_close(encoding: str) -> None:
    rgb = _smooth_rgb()
    image = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1],
             "rgba8": np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 200, np.uint8)], 2),
             "mono8": rgb[:, :, 0]}[encoding]
    msg = numpy_to_compressed(image, encoding, fmt="jpeg", jpeg_quality=95)
    assert bytes(msg.data[:2]) == b"\xff\xd8"  # a real JPEG stream
    decoded, decoded_encoding = compressed_to_numpy(msg)
    expected_encoding = "bgr8" if encoding == "rgba8" else encoding  # jpeg drops alpha
    assert decoded_encoding == expected_encoding
    reference = image[:, :, :3][:, :, ::-1] if encoding == "rgba8" else image
    error = np.abs(decoded.astype(int) - reference.astype(int))
    assert error.mean() < 2.0 and error.max() < 40
    rgb_out = compressed_to_rgb8(msg)
    expected_rgb = np.repeat(image[:, :, None], 3, 2) if encoding == "mono8" else rgb
    assert np.abs(rgb_out.astype(int) - expected_rgb.astype(int)).mean() < 2.0


def test_plain_format_from_other_publishers_decodes_as_bgr8() -> None:
    rgb = _smooth_rgb()
    ok, buf = cv2.imencode(".png", rgb[:, :, ::-1])
    assert ok
    msg = types.SimpleNamespace(format="png", data=buf)  # numpy data, as rosbags gives it
    decoded, encoding = compressed_to_numpy(msg)
    assert encoding == "bgr8"
    np.testing.assert_array_equal(decoded, rgb[:, :, ::-1])
    np.testing.assert_array_equal(message_to_rgb8(msg), rgb)


def test_compressed_depth_16uc1_skips_its_config_header() -> None:
    depth = (np.arange(6 * 7, dtype=np.uint16) * 1500).reshape(6, 7)
    ok, buf = cv2.imencode(".png", depth)
    assert ok
    header = np.zeros(12, np.uint8)  # compression format (int32) + two float32 parameters
    msg = types.SimpleNamespace(format="16UC1; compressedDepth png",
                                data=np.concatenate([header, buf.reshape(-1)]).tobytes())
    decoded, encoding = compressed_to_numpy(msg)
    assert encoding == "16UC1"
    np.testing.assert_array_equal(decoded, depth)


def test_message_to_rgb8_tells_raw_from_compressed() -> None:
    rgb = _smooth_rgb(8, 8)
    np.testing.assert_array_equal(message_to_rgb8(numpy_to_image(rgb, "rgb8")), rgb)
    np.testing.assert_array_equal(message_to_rgb8(numpy_to_compressed(rgb, "rgb8", fmt="png")), rgb)


# --- malformed input: one exception type, a message naming the problem -----------------------

def _valid_raw(**changes):
    fields = dict(height=2, width=3, encoding="rgb8", is_bigendian=0, step=9, data=bytes(18))
    fields.update(changes)
    return types.SimpleNamespace(**fields)


def test_data_shorter_than_step_times_height() -> None:
    expected = r"17 bytes, expected step \* height = 9 \* 2 = 18"
    with pytest.raises(ImageConversionError, match=expected):
        image_to_numpy(_valid_raw(data=bytes(17)))


def test_step_smaller_than_a_row() -> None:
    with pytest.raises(ImageConversionError, match=r"step 8 is smaller than one row .*9 bytes"):
        image_to_numpy(_valid_raw(step=8))
    with pytest.raises(ImageConversionError, match=r"step 5 is smaller than one row"):
        pack_image(np.zeros((2, 3), np.uint16), "mono16", step=5)


def test_unknown_encoding() -> None:
    expected = r"unsupported image encoding 'bayer_rggb8'.*rgb8"
    with pytest.raises(ImageConversionError, match=expected):
        image_to_numpy(_valid_raw(encoding="bayer_rggb8"))
    with pytest.raises(ImageConversionError, match=r"unsupported image encoding 'yuv422'"):
        numpy_to_image(np.zeros((2, 2, 2), np.uint8), "yuv422")


@pytest.mark.parametrize("height, width", [(0, 3), (2, 0), (0, 0)])
def test_zero_size(height: int, width: int) -> None:
    expected = rf"empty rgb8 image \({width}x{height} pixels\)"
    with pytest.raises(ImageConversionError, match=expected):
        image_to_numpy(_valid_raw(height=height, width=width, data=b""))
    with pytest.raises(ImageConversionError, match=r"has no pixels"):
        numpy_to_image(np.zeros((height, width, 3), np.uint8), "rgb8")


def test_undecodable_compressed_bytes() -> None:
    msg = types.SimpleNamespace(format="jpeg", data=b"\xff\xd8 this is not a jpeg" * 4)
    with pytest.raises(ImageConversionError, match=r"OpenCV cannot decode the 84 bytes.*'jpeg'"):
        compressed_to_numpy(msg)


def test_empty_compressed_data() -> None:
    with pytest.raises(ImageConversionError, match=r"has no data"):
        compressed_to_rgb8(types.SimpleNamespace(format="png", data=b""))


def test_array_not_matching_encoding() -> None:
    expected = r"shape \(4, 4, 3\) does not fit encoding 'rgba8'"
    with pytest.raises(ImageConversionError, match=expected):
        numpy_to_image(np.zeros((4, 4, 3), np.uint8), "rgba8")
    with pytest.raises(ImageConversionError, match=r"dtype float64 does not fit encoding 'mono8'"):
        numpy_to_image(np.zeros((4, 4)), "mono8")


def test_unsupported_compression() -> None:
    with pytest.raises(ImageConversionError, match=r"cannot be compressed as jpeg: use png"):
        encode_compressed(np.zeros((4, 4), np.uint16), "mono16", fmt="jpeg")
    with pytest.raises(ImageConversionError, match=r"32FC1 images cannot be compressed"):
        encode_compressed(np.zeros((4, 4), np.float32), "32FC1", fmt="png")
    with pytest.raises(ImageConversionError, match=r"unsupported compression 'webp'"):
        encode_compressed(np.zeros((4, 4), np.uint8), "mono8", fmt="webp")
