"""Read back the scalars fairseq's ``--tensorboard-logdir`` wrote, with tensorboardX alone (the ``test`` extra).

An event file is a sequence of TFRecords (``uint64 length``, ``uint32 masked CRC-32C of the length``, the
serialized ``Event`` protobuf, ``uint32 masked CRC-32C of the data``); tensorboardX ships the ``Event`` protobuf
and the checksum it writes, so each record is checked, not only parsed.
"""

import struct

from tensorboardX.proto import event_pb2
from tensorboardX.record_writer import masked_crc32c


def scalars(logdir):
    """{tag: [(step, value), ...]} of every scalar in the event files under ``logdir`` (recursively), in the order
    they were written. Fails the test on a truncated or corrupt record."""
    found = {}
    paths = sorted(logdir.rglob("events.out.tfevents.*"))
    assert paths, f"no event file under {logdir}"
    for path in paths:
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            assert offset + 12 <= len(data), f"{path}: truncated record header at byte {offset}"
            header = data[offset:offset + 8]
            (length,) = struct.unpack("<Q", header)
            (header_crc,) = struct.unpack("<I", data[offset + 8:offset + 12])
            assert header_crc == masked_crc32c(header), f"{path}: bad length checksum at byte {offset}"
            body = data[offset + 12:offset + 12 + length]
            assert len(body) == length and offset + 16 + length <= len(data), f"{path}: truncated record"
            (body_crc,) = struct.unpack("<I", data[offset + 12 + length:offset + 16 + length])
            assert body_crc == masked_crc32c(body), f"{path}: bad data checksum at byte {offset}"
            offset += 16 + length
            event = event_pb2.Event.FromString(body)
            for value in event.summary.value:
                if value.WhichOneof("value") == "simple_value":
                    found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found
