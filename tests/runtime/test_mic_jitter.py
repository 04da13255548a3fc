"""The microphone's receive buffer: each RTP audio packet is decoded as soon as it is next in sequence."""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket
from avatar_runtime.transport.tuning import InOrderAudioBuffer

FRAME = 960  # 20 ms of 48 kHz Opus: each packet's timestamp advances by this much


def _packet(seq: int) -> RtpPacket:
    packet = RtpPacket(payload_type=111, sequence_number=seq % 65536, timestamp=seq * FRAME)
    packet._data = f"opus-{seq}".encode()  # what the receiver's depayloader sets before the jitter buffer
    return packet


def _released(buffer: JitterBuffer, seqs: list[int]) -> list[bytes | None]:
    out = []
    for seq in seqs:
        _pli, frame = buffer.add(_packet(seq))
        out.append(frame.data if frame is not None else None)
    return out


def test_each_packet_is_released_as_it_arrives_where_aiortc_waits_for_the_next() -> None:
    ours = _released(InOrderAudioBuffer(capacity=16), [100, 101, 102])
    assert ours == [b"opus-100", b"opus-101", b"opus-102"]
    # aiortc's own buffer at its smallest prefetch releases a packet only when the following one arrives.
    theirs = _released(JitterBuffer(capacity=16, prefetch=1), [100, 101, 102])
    assert theirs == [None, b"opus-100", b"opus-101"]


def test_reordered_packets_come_out_in_order_at_most_one_packet_behind() -> None:
    buffer = InOrderAudioBuffer(capacity=16)
    assert _released(buffer, [10, 12, 11, 13, 14]) == [b"opus-10", None, b"opus-11", b"opus-12", b"opus-13"]


def test_a_lost_packet_is_given_up_after_three_later_ones_and_the_lag_does_not_stay() -> None:
    buffer = InOrderAudioBuffer(capacity=16)
    assert _released(buffer, [0]) == [b"opus-0"]
    # 1 never comes. After 60 ms of later packets it is skipped; of the three waiting, the oldest is dropped so
    # that only one is left behind the one released.
    assert _released(buffer, [2, 3, 4]) == [None, None, b"opus-3"]
    assert _released(buffer, [5, 6]) == [b"opus-4", b"opus-5"]


def test_aiortc_buffer_stays_a_whole_buffer_behind_after_one_loss() -> None:
    # What InOrderAudioBuffer avoids: aiortc waits for the overflow, then releases one frame per packet forever.
    buffer = JitterBuffer(capacity=16, prefetch=1)
    _released(buffer, [0, 1])
    out = _released(buffer, list(range(3, 30)))  # 2 is lost
    assert out[:14] == [None] * 14  # nothing at all until the buffer overflows
    behind = [arrived - int(frame.split(b"-")[1]) for arrived, frame in zip(range(3, 30), out, strict=True) if frame]
    assert min(behind) >= 14  # and from then on every packet comes out ~280 ms after it arrived


def test_sequence_numbers_wrap_around() -> None:
    buffer = InOrderAudioBuffer(capacity=16)
    assert _released(buffer, [65534, 65535, 65536, 65537]) == [
        b"opus-65534",
        b"opus-65535",
        b"opus-65536",
        b"opus-65537",
    ]
