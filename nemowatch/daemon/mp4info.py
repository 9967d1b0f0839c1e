"""Width, height and duration of an MP4 read from its boxes, without starting ffmpeg.

result.json needs three facts per video; ``ffmpeg -i`` gives them but costs a process
(fork + exec + probe, tens of ms on a busy machine) per job. The facts sit in the ``moov``
box, wherever it is (``+faststart`` puts it first, a plain mux last):

- ``moov/mvhd``: timescale and duration (version 0: 32-bit, version 1: 64-bit fields);
- ``moov/trak/tkhd``: the track's width and height (16.16 fixed point), taken from the
  first track whose ``mdia/hdlr`` says ``vide``; ``stsd``'s sample entry when tkhd says 0.

Box sizes may be 32-bit, 64-bit (size 1 + largesize) or 0 (to the end of the file). Chunk
offsets (``stco``/``co64``) are never needed: only box headers are followed. Anything
unexpected returns None, and the caller falls back to ffmpeg.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# A moov box holds the sample tables: a few MB for hours of video. Larger is not a file we made.
MAX_MOOV_BYTES = 64 * 1024 * 1024
_CONTAINERS = (b"trak", b"mdia", b"minf", b"stbl")


@dataclass(frozen=True)
class Mp4Facts:
    """The video track's size in pixels and the movie's duration in seconds."""

    width: int
    height: int
    duration_s: float


def read_mp4_facts(path: Path) -> Mp4Facts | None:
    """The facts of the MP4 at ``path``, or None when its boxes cannot be read (not an MP4, fragmented, cut)."""
    try:
        with path.open("rb") as handle:
            moov = _find_moov(handle)
    except OSError:
        return None
    if moov is None:
        return None
    try:
        return _parse_moov(moov)
    except (struct.error, ValueError):
        return None


def _find_moov(handle: BinaryIO) -> bytes | None:
    """The payload of the top-level ``moov`` box, seeking past every other box (mdat included)."""
    handle.seek(0, 2)
    end = handle.tell()
    offset = 0
    while offset + 8 <= end:
        handle.seek(offset)
        header = handle.read(16)
        if len(header) < 8:
            return None
        size, kind = struct.unpack(">I4s", header[:8])
        body = 8
        if size == 1:
            if len(header) < 16:
                return None
            (size,) = struct.unpack(">Q", header[8:16])
            body = 16
        elif size == 0:
            size = end - offset
        if size < body or offset + size > end:
            return None  # a cut or corrupt file
        if kind == b"moov":
            if size - body > MAX_MOOV_BYTES:
                return None
            handle.seek(offset + body)
            payload = handle.read(size - body)
            return payload if len(payload) == size - body else None
        offset += size
    return None


def _boxes(data: bytes, start: int = 0, stop: int | None = None) -> list[tuple[bytes, int, int]]:
    """The boxes in ``data[start:stop]`` as (type, payload start, payload end); ValueError when malformed."""
    stop = len(data) if stop is None else stop
    found: list[tuple[bytes, int, int]] = []
    offset = start
    while offset + 8 <= stop:
        size, kind = struct.unpack_from(">I4s", data, offset)
        body = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            body = 16
        elif size == 0:
            size = stop - offset
        if size < body or offset + size > stop:
            raise ValueError(f"malformed {kind!r} box")
        found.append((kind, offset + body, offset + size))
        offset += size
    return found


def _parse_moov(moov: bytes) -> Mp4Facts | None:
    duration_s: float | None = None
    size: tuple[int, int] | None = None
    for kind, start, end in _boxes(moov):
        if kind == b"mvhd":
            duration_s = _mvhd_duration(moov, start)
        elif kind == b"trak" and size is None:
            size = _video_size(moov, start, end)
    if duration_s is None or duration_s <= 0 or size is None or 0 in size:
        return None
    return Mp4Facts(width=size[0], height=size[1], duration_s=round(duration_s, 2))


def _mvhd_duration(data: bytes, start: int) -> float | None:
    version = data[start]
    if version == 1:
        timescale, duration = struct.unpack_from(">IQ", data, start + 4 + 16)
    else:
        timescale, duration = struct.unpack_from(">II", data, start + 4 + 8)
    if timescale == 0 or duration in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        return None  # unknown duration (a fragmented file): ffmpeg can tell
    return duration / timescale


def _video_size(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """(width, height) of a ``trak`` when it is a video track, else None."""
    found: dict[bytes, tuple[int, int]] = {}
    _collect(data, start, end, found)
    if b"hdlr" not in found:
        return None
    h_start, _ = found[b"hdlr"]
    if data[h_start + 8 : h_start + 12] != b"vide":
        return None
    width = height = 0
    if b"tkhd" in found:
        t_start, _ = found[b"tkhd"]
        # version/flags, then times and ids (32- or 64-bit), reserved, layer…matrix: 16.16 size at the end.
        skip = 4 + (32 if data[t_start] == 1 else 20) + 8 + 8 + 36
        w_fixed, h_fixed = struct.unpack_from(">II", data, t_start + skip)
        width, height = w_fixed >> 16, h_fixed >> 16
    if (not width or not height) and b"stsd" in found:
        s_start, _ = found[b"stsd"]
        # version/flags, entry count, then the first VisualSampleEntry: 8 header + 24 bytes to its size.
        width, height = struct.unpack_from(">HH", data, s_start + 8 + 8 + 24)
    return width, height


def _collect(data: bytes, start: int, end: int, found: dict[bytes, tuple[int, int]]) -> None:
    """The first tkhd, hdlr and stsd below a trak, descending only through the container boxes."""
    for kind, b_start, b_end in _boxes(data, start, end):
        if kind in _CONTAINERS:
            _collect(data, b_start, b_end, found)
        elif kind in (b"tkhd", b"hdlr", b"stsd"):
            found.setdefault(kind, (b_start, b_end))
