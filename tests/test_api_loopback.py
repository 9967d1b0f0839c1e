"""The client over real HTTP (uvicorn on loopback): what respx cannot show about the wire."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from nemowatch.api import NemoClient
from tests.api_helpers import USER_TOKEN, frame, make_settings, text_event


async def upload(request: Request) -> JSONResponse:
    """Parse the multipart body the way Starlette (and so the local backend) does."""
    form = await request.form()
    item = form["files"]
    data = await item.read()  # type: ignore[union-attr]
    return JSONResponse(
        {
            "code": 0,
            "data": {"name": item.filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        }  # type: ignore[union-attr]
    )


async def run_sse(request: Request) -> StreamingResponse:
    body = await request.json()

    async def stream() -> AsyncIterator[bytes]:
        yield b": ping\n\n"
        yield frame(text_event("Your ", partial=True, event_id="e"))
        await asyncio.sleep(0.05)
        yield frame(text_event("video", partial=True, event_id="e"))
        if body["session_id"] == "drop":
            raise RuntimeError("the server dies mid-run")
        yield frame(text_event("Your video is ready.", event_id="e"))

    return StreamingResponse(stream(), media_type="text/event-stream")


async def download(request: Request) -> Response:
    if request.headers.get("authorization") != f"Bearer {USER_TOKEN}":
        return JSONResponse({"code": 1001, "msg": "token"}, status_code=401)
    return Response(b"\x00\x00\x00\x18ftypmp42" + b"v" * 100_000, media_type="video/mp4")


APP = Starlette(
    routes=[
        Route("/api/upload-video/nemo_agent/me/{sid}", upload, methods=["POST"]),
        Route("/run_sse", run_sse, methods=["POST"]),
        Route("/api/render/proxy/{rid}/download", download),
    ]
)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(APP, host="127.0.0.1", port=0, log_level="critical", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


async def test_a_streamed_upload_parses_as_an_ordinary_form_on_a_real_server(server_url, tmp_path):
    media = tmp_path / "Strand Tag 1.mp4"
    payload = os.urandom(1_500_000)
    media.write_bytes(payload)
    async with NemoClient(make_settings(tmp_path, base_url=server_url)) as client:
        answer = await client.upload_file("s1", media)
    assert answer == {
        "name": "Strand Tag 1.mp4",
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }


async def test_a_real_event_stream_gives_the_final_text(server_url, tmp_path):
    async with NemoClient(make_settings(tmp_path, base_url=server_url)) as client:
        result = await client.send_message("s1", "hello")
    assert result.completed and result.text == "Your video is ready."


async def test_a_server_dying_mid_stream_is_an_incomplete_message_not_an_exception(server_url, tmp_path):
    async with NemoClient(make_settings(tmp_path, base_url=server_url)) as client:
        result = await client.send_message("drop", "hello")
    assert not result.completed and result.text == "Your video"


async def test_a_real_download_lands_complete(server_url, tmp_path):
    target = tmp_path / "job.mp4"
    async with NemoClient(make_settings(tmp_path, base_url=server_url)) as client:
        await client.download_render("r1", target)
    assert target.stat().st_size == 100_012 and not (tmp_path / ".job.mp4.part").exists()
