"""Splitting a corpus of too few documents by position: the last part of its text stream is
the validation split.

A corpus of one file (a novel, one big module) is one document; a split by document-key hash
puts it all in one split and leaves the other empty. By position instead, the documents in
order form one stream; the stream's last `validation_fraction` (in bytes of plain text,
characters of JSON-lines text) is validation and the rest train, the document at the cut
being cut at the line boundary nearest to it (a character boundary when it has no line
break).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# A document: file number, byte span in the file, char span in a JSON line's text (end -1:
# a plain-text document, all of its byte span).
Row = tuple[int, int, int, int, int]


def _size(row: Row) -> int:
    _, b0, b1, c0, c1 = row
    return b1 - b0 if c1 < 0 else c1 - c0


def _cut_bytes(data: bytes, offset: int) -> int:
    """The byte index nearest to `offset` just after a newline, strictly inside `data`; else
    `offset` moved forward to a UTF-8 character boundary."""
    back, forward = data.rfind(b"\n", 0, offset) + 1, data.find(b"\n", offset) + 1
    candidates = [k for k in (back, forward) if 0 < k < len(data)]
    if candidates:
        return min(candidates, key=lambda k: abs(k - offset))
    while offset < len(data) and data[offset] & 0xC0 == 0x80:  # a UTF-8 continuation byte
        offset += 1
    return offset


def split_by_position(rows: Sequence[Row], validation_fraction: float,
                      read_bytes: Callable[[Row], bytes]) -> dict[str, list[Row]]:
    """{"train": rows before the cut, "validation": rows after it}, in order.

    Args:
      rows: the corpus's documents in order.
      validation_fraction: the stream's share that goes to validation.
      read_bytes: the bytes of a plain-text row's byte span (to cut it at a line break).
    """
    total = sum(_size(r) for r in rows)
    cut = round(total * (1.0 - validation_fraction))
    before = 0
    for i, row in enumerate(rows):
        size = _size(row)
        if before + size <= cut:
            before += size
            continue
        offset = cut - before
        f, b0, b1, c0, c1 = row
        if c1 < 0:
            k = _cut_bytes(read_bytes(row), offset)
            left, right = (f, b0, b0 + k, c0, c1), (f, b0 + k, b1, c0, c1)
        else:
            left, right = (f, b0, b1, c0, c0 + offset), (f, b0, b1, c0 + offset, c1)
        train = [*rows[:i], left] if _size(left) else list(rows[:i])
        validation = [right, *rows[i + 1:]] if _size(right) else list(rows[i + 1:])
        return {"train": train, "validation": validation}
    return {"train": list(rows), "validation": []}
