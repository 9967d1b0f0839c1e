"""Receiving uploads: multipart bodies streamed straight to disk, file:// URLs copied, limits enforced.

Starlette's ``request.form()`` spools every file to a temporary file first (and keeps
up to 1 MB of each in memory); here each part goes straight from the socket into its
final folder in chunks, so a 500 MB upload costs a few hundred kilobytes of memory
and one write, and the type and size limits are checked while the bytes arrive.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from python_multipart.multipart import MultipartParser, parse_options_header

from nemowatch.api.formats import ACCEPTED_LIST, MAX_UPLOAD_BYTES, extension, media_kind
from nemowatch.local.store import new_id

CODE_UNSUPPORTED = 4001
CODE_TOO_LARGE = 4002
# Room for the multipart boundaries and part headers around a file of the maximum size.
MULTIPART_OVERHEAD = 64 * 1024


class UploadRejected(Exception):
    """An upload the backend refuses; carries the envelope code, the HTTP status and one sentence."""

    def __init__(self, code: int, http_status: int, message: str) -> None:
        super().__init__(message)
        self.code, self.http_status, self.message = code, http_status, message


@dataclass(frozen=True)
class ReceivedFile:
    """One file now on disk: its display name, where it is, its id and size."""

    media_id: str
    name: str
    path: Path
    size: int


def safe_name(raw: str) -> str:
    """The file's own name without any folder part (both separators), control characters or excess length."""
    name = PureWindowsPath(PurePosixPath(raw).name).name
    name = "".join(ch for ch in name if ch.isprintable()).strip() or "upload"
    return name[-200:]


def unsupported(name: str) -> UploadRejected:
    """The 4001 refusal, naming the accepted formats."""
    return UploadRejected(
        CODE_UNSUPPORTED,
        415,
        f"{name} is not a supported file type; the accepted formats are {ACCEPTED_LIST}",
    )


def too_large(name: str) -> UploadRejected:
    """The 4002 refusal."""
    limit = MAX_UPLOAD_BYTES // 1_000_000
    return UploadRejected(
        CODE_TOO_LARGE, 413, f"{name} is larger than {limit} MB; compress or trim it and upload it again"
    )


class _MultipartSink:
    """python-multipart callbacks that write each file part into ``folder`` as it streams in."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self.files: list[ReceivedFile] = []
        self.rejected: UploadRejected | None = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._handle: BinaryIO | None = None
        self._current: tuple[str, str, Path] | None = None  # media id, display name, path
        self._size = 0
        self.written: list[Path] = []  # every file created, for clean-up on refusal

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_cb,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._disposition = b""
        self._current, self._size = None, 0

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        raw = options.get(b"filename")
        if raw is None or self.rejected:
            return  # a plain form field, or the upload is already refused: skip its bytes
        name = safe_name(raw.decode("utf-8", "replace"))
        if media_kind(name) is None:
            self.rejected = unsupported(name)
            return
        media_id = new_id("med_", 8)
        path = self.folder / f"{media_id}.{extension(name)}"
        self.written.append(path)
        self._handle = path.open("wb")
        self._current = (media_id, name, path)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._handle is None or self._current is None:
            return
        self._size += end - start
        if self._size > self.max_bytes:
            self.rejected = too_large(self._current[1])
            self._close()
            return
        # A plain write: local disk writes of one chunk land in the page cache in microseconds,
        # cheaper than a thread hop per chunk.
        self._handle.write(data[start:end])

    def _part_end(self) -> None:
        if self._handle is not None and self._current is not None:
            self._close()
            media_id, name, path = self._current
            self.files.append(ReceivedFile(media_id, name, path, self._size))
        self._current = None

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        """Remove everything written (the request was refused or broke off)."""
        self._close()
        for path in self.written:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


async def receive_multipart(
    content_type: str,
    body: AsyncIterator[bytes],
    folder: Path,
    *,
    content_length: int | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> list[ReceivedFile]:
    """Stream every file part of a multipart body into ``folder``; all or nothing.

    A refused file (4001 type, 4002 size) refuses the whole request: the rest of the body
    is read and dropped, so the client gets the answer instead of a reset connection.
    A declared length beyond the limit is refused before a byte is written: a request
    carries at most 500 MB (clients send one file per request).
    """
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadRejected(400, 400, "the upload is not multipart/form-data with a boundary")
    if content_length is not None and content_length > max_bytes + MULTIPART_OVERHEAD:
        async for _ in body:
            pass
        raise too_large("the upload")
    sink = _MultipartSink(folder, max_bytes)
    parser = MultipartParser(boundary, sink.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in body:
            if sink.rejected is None:
                parser.write(chunk)
        if sink.rejected is None:
            parser.finalize()
    except BaseException:
        sink.discard()
        raise
    if sink.rejected is not None:
        sink.discard()
        raise sink.rejected
    if not sink.files:
        raise UploadRejected(
            400, 400, "the upload holds no file; send the media in the multipart field `files`"
        )
    return sink.files


def copy_file_url(url: str, folder: Path, max_bytes: int = MAX_UPLOAD_BYTES) -> ReceivedFile:
    """Copy the file a ``file://`` URL names into ``folder``; any other scheme is refused (no outbound network)."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise UploadRejected(
            400,
            400,
            f"the local backend only fetches file:// URLs, not {parts.scheme or 'this'} URLs;"
            " upload the file itself instead",
        )
    source = Path(unquote(parts.path))
    name = safe_name(source.name)
    if media_kind(name) is None:
        raise unsupported(name)
    if not source.is_file():
        raise UploadRejected(400, 400, f"{source} does not exist or is not a file; check the URL")
    size = source.stat().st_size
    if size > max_bytes:
        raise too_large(name)
    media_id = new_id("med_", 8)
    target = folder / f"{media_id}.{extension(name)}"
    shutil.copyfile(source, target)
    return ReceivedFile(media_id, name, target, size)
