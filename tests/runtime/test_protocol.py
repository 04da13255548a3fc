"""The 116-byte binary expression frame of DESIGN §4."""

import struct

import numpy as np
import pytest
from avatar_runtime.protocol import ARKIT_BLENDSHAPES, FRAME_BYTES, decode_frame, encode_frame


def test_blendshape_order_is_the_alphabetical_arkit_52():
    assert len(ARKIT_BLENDSHAPES) == 52
    assert list(ARKIT_BLENDSHAPES) == sorted(ARKIT_BLENDSHAPES, key=str.lower)
    assert ARKIT_BLENDSHAPES[24] == "jawOpen" and ARKIT_BLENDSHAPES[-1] == "tongueOut"


def test_frame_layout_round_trip_and_clipping():
    weights = np.linspace(-0.5, 1.5, 52).astype(np.float32)
    data = encode_frame(turn=7, pts_ms=123456, weights=weights, last=True)
    assert len(data) == FRAME_BYTES == 116
    version, flags, n, turn, pts = struct.unpack_from("<BBHII", data)
    assert (version, flags, n, turn, pts) == (1, 1, 52, 7, 123456)
    decoded = decode_frame(data)
    assert decoded.last and decoded.turn == 7 and decoded.pts_ms == 123456
    np.testing.assert_allclose(decoded.weights, np.clip(weights, 0, 1), atol=1e-3)


@pytest.mark.parametrize("data", [b"", b"\x02" + bytes(115), encode_frame(1, 0, np.zeros(52))[:-2]])
def test_decode_rejects_malformed_frames(data):
    with pytest.raises(ValueError):
        decode_frame(data)
