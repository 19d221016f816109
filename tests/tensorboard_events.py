"""Reads TensorBoard event files back with tensorboardX's protos (no TensorFlow needed)."""

import pathlib
import struct

from tensorboardX.proto.event_pb2 import Event


def read_events(path: pathlib.Path) -> list[Event]:
    """The events of one TFRecord event file (u64 length, u32 crc, data, u32 crc)."""
    data, events, at = path.read_bytes(), [], 0
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        events.append(Event.FromString(data[at + 12:at + 12 + length]))
        at += 12 + length + 4
    return events


def summaries(logdir: pathlib.Path) -> list[tuple[str, str, int]]:
    """(tag, kind, step) of every summary value in `logdir`'s event files, oldest file first;
    kind is "scalar", "image", "text" or "other"."""
    out = []
    for path in sorted(pathlib.Path(logdir).glob("events.out.tfevents.*")):
        for event in read_events(path):
            for value in event.summary.value:
                if value.HasField("image"):
                    kind = "image" if value.image.encoded_image_string else "other"
                elif value.metadata.plugin_data.plugin_name == "text":
                    kind = "text"
                elif value.HasField("simple_value"):
                    kind = "scalar"
                else:
                    kind = "other"
                out.append((value.tag, kind, event.step))
    return out
