"""A streamed multipart/form-data body for one file: never more than one chunk in memory.

httpx would build the same body from ``files=``, but it reads the file
synchronously; here the body is an async generator with a Content-Length
computed up front, so a 500 MB clip costs one chunk of memory and the server
sees a plain (not chunked) upload.
"""

from __future__ import annotations

import asyncio
import mimetypes
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from nemowatch.errors import UserError

CHUNK_BYTES = 512 * 1024

Progress = Callable[[int, int], None]


def _quote(name: str) -> str:
    """A filename safe inside a quoted header parameter (the HTML5 form encoding rules)."""
    return name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


@dataclass(frozen=True)
class MultipartFile:
    """One file as a multipart body: ``headers()`` for the request, ``chunks()`` for its content."""

    path: Path
    size: int
    field: str = "files"
    boundary: str = ""

    @property
    def _head(self) -> bytes:
        mime = mimetypes.guess_type(self.path.name)[0] or "application/octet-stream"
        return (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="{self.field}"; filename="{_quote(self.path.name)}"\r\n'
            f"Content-Type: {mime}\r\n\r\n"
        ).encode()

    @property
    def _tail(self) -> bytes:
        return f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def content_length(self) -> int:
        return len(self._head) + self.size + len(self._tail)

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(self.content_length),
        }

    async def chunks(self, progress: Progress | None = None) -> AsyncIterator[bytes]:
        """The body; reads happen in a thread so a slow disk never stalls the event loop."""
        yield self._head
        sent = 0
        with self.path.open("rb") as handle:
            while sent < self.size:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK_BYTES, self.size - sent))
                if not chunk:
                    # Content-Length is already promised: a file that shrank cannot be sent.
                    raise UserError(
                        f"{self.path.name} changed while it was being uploaded",
                        "leave the job's files alone until the job is done",
                    )
                sent += len(chunk)
                yield chunk
                if progress is not None:
                    progress(sent, self.size)
        yield self._tail


def multipart_file(path: Path, size: int, field: str = "files") -> MultipartFile:
    """A body for ``path`` of ``size`` bytes with a fresh random boundary."""
    return MultipartFile(path=path, size=size, field=field, boundary=f"nemowatch-{uuid.uuid4().hex}")
