"""Every NemoVideo endpoint as the client speaks it: paths, bodies, headers, parsed answers."""

from __future__ import annotations

import json
import os
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import httpx
import pytest

from nemowatch.api import (
    ClientSettings,
    Credits,
    FileTooLarge,
    NemoClient,
    NemoError,
    RenderStatus,
    Session,
    UnsupportedFile,
)
from nemowatch.api.formats import MAX_UPLOAD_BYTES
from nemowatch.api.multipart import CHUNK_BYTES
from nemowatch.config import load_config
from nemowatch.errors import UserError
from tests.api_helpers import BASE, CDN, USER_TOKEN, WEB, ChunkStream, fail, make_settings, ok

pytestmark = pytest.mark.respx(base_url=BASE, assert_all_called=False)


@pytest.fixture
async def client(tmp_path: Path):
    async with NemoClient(make_settings(tmp_path)) as nemo:
        yield nemo


async def test_create_session_sends_task_name_and_language_with_auth_and_attribution(client, respx_mock):
    route = respx_mock.post("/api/tasks/me/with-session/nemo_agent").mock(
        return_value=ok({"task_id": "task-1", "session_id": "sess-1"})
    )
    session = await client.create_session("holiday", language="de")
    assert session == Session("task-1", "sess-1")
    request = route.calls.last.request
    assert json.loads(request.content) == {"task_name": "holiday", "language": "de"}
    assert request.headers["Authorization"] == f"Bearer {USER_TOKEN}"
    assert request.headers["X-Skill-Source"] == "nemowatch"
    assert request.headers["X-Skill-Version"]
    assert request.headers["X-Skill-Platform"].startswith("nemowatch-")


async def test_create_session_uses_the_configured_language_by_default(tmp_path, respx_mock):
    route = respx_mock.post("/api/tasks/me/with-session/nemo_agent").mock(
        return_value=ok({"task_id": "t", "session_id": "s"})
    )
    async with NemoClient(make_settings(tmp_path, language="fr")) as nemo:
        await nemo.create_session()
    assert json.loads(route.calls.last.request.content) == {"task_name": "project", "language": "fr"}


async def test_project_link_is_a_claim_link_on_the_web_app_without_the_bearer_token(client, respx_mock):
    route = respx_mock.post("/api/auth/claim-token").mock(
        return_value=ok({"claim_token": "clm_abc", "expires_in": 604800})
    )
    link = await client.project_link("task-1", "sess-1")
    assert link == f"{WEB}/workspace/claim?ct=clm_abc"
    assert USER_TOKEN not in link
    assert json.loads(route.calls.last.request.content) == {"task_id": "task-1", "session_id": "sess-1"}


async def test_session_state_exposes_draft_media_and_canvas(client, respx_mock):
    draft = {"t": [{"tt": 0, "sg": [{"st": 0, "d": 3000}]}], "d": 3000}
    respx_mock.get("/api/state/nemo_agent/me/sess-1/latest").mock(
        return_value=ok(
            {
                "state": {
                    "draft": draft,
                    "video_infos": [{"id": "v1"}],
                    "canvas_config": {"ratio": "16:9"},
                    "generated_media": [{"url": "x"}],
                }
            }
        )
    )
    state = await client.get_state("sess-1")
    assert state.draft == draft
    assert state.video_infos == [{"id": "v1"}]
    assert state.canvas_config == {"ratio": "16:9"}
    assert state.generated_media == [{"url": "x"}]


async def test_session_state_without_a_draft_yet_is_not_an_error(client, respx_mock):
    respx_mock.get("/api/state/nemo_agent/me/sess-1/latest").mock(return_value=ok({"state": {}}))
    assert (await client.get_state("sess-1")).draft is None


async def test_credits_report_available_frozen_and_total(client, respx_mock):
    respx_mock.get("/api/credits/balance/simple").mock(
        return_value=ok({"available": 50, "frozen": 50, "total": 100})
    )
    assert await client.credits() == Credits(available=50, frozen=50, total=100)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"status": "pending"}, RenderStatus("r1", "pending")),
        ({"status": "processing", "progress": 40}, RenderStatus("r1", "processing", progress=0.4)),
        (
            {"status": "completed", "progress": 100, "output": {"url": f"{CDN}/v.mp4"}},
            RenderStatus("r1", "completed", progress=1.0, url=f"{CDN}/v.mp4"),
        ),
        ({"status": "failed", "error": "draft empty"}, RenderStatus("r1", "failed", error="draft empty")),
        (
            {"code": 0, "data": {"status": "processing", "progress": 0.5}},
            RenderStatus("r1", "processing", progress=0.5),
        ),
    ],
)
async def test_render_status_reads_top_level_status_progress_and_output_url(
    client, respx_mock, body, expected
):
    respx_mock.get("/api/render/proxy/lambda/r1").mock(return_value=httpx.Response(200, json=body))
    assert await client.render_status("r1") == expected


async def test_submit_render_sends_the_draft_with_camel_case_session_id(client, respx_mock):
    route = respx_mock.post("/api/render/proxy/lambda").mock(return_value=ok({}))
    journal: list[str] = []
    render_id = await client.submit_render("sess-1", {"t": []}, before_submit=journal.append)
    body = json.loads(route.calls.last.request.content)
    assert body == {
        "id": render_id,
        "sessionId": "sess-1",
        "draft": {"t": []},
        "output": {"format": "mp4", "quality": "high"},
    }
    assert journal == [render_id] and render_id.startswith("render_")


async def test_upload_urls_sends_the_url_list(client, respx_mock):
    route = respx_mock.post("/api/upload-video/nemo_agent/me/sess-1").mock(return_value=ok({"files": 1}))
    assert await client.upload_urls("sess-1", ["https://example.test/a.mp4"]) == {"files": 1}
    assert json.loads(route.calls.last.request.content) == {
        "urls": ["https://example.test/a.mp4"],
        "source_type": "url",
    }


def _multipart_parts(request: httpx.Request) -> list:
    raw = b"Content-Type: " + request.headers["Content-Type"].encode() + b"\r\n\r\n" + request.content
    return list(BytesParser(policy=HTTP).parsebytes(raw).iter_parts())


async def test_upload_file_streams_a_correct_multipart_body_with_progress(client, respx_mock, tmp_path):
    media = tmp_path / 'clip "one".MP4'
    payload = os.urandom(CHUNK_BYTES * 2 + 1234)
    media.write_bytes(payload)
    route = respx_mock.post("/api/upload-video/nemo_agent/me/sess-1").mock(
        return_value=ok({"uploaded": ["clip.mp4"]})
    )
    seen: list[tuple[int, int]] = []
    answer = await client.upload_file(
        "sess-1", media, progress=lambda sent, total: seen.append((sent, total))
    )
    assert answer == {"uploaded": ["clip.mp4"]}
    request = route.calls.last.request
    assert int(request.headers["Content-Length"]) == len(request.content)
    assert "Transfer-Encoding" not in request.headers
    (part,) = _multipart_parts(request)
    assert part.get_param("name", header="content-disposition") == "files"
    assert part.get_filename() == "clip %22one%22.MP4"
    assert part.get_payload(decode=True) == payload
    # Sent piece by piece: one progress report per chunk, never the whole file at once.
    assert seen == [
        (CHUNK_BYTES, len(payload)),
        (CHUNK_BYTES * 2, len(payload)),
        (len(payload), len(payload)),
    ]


async def test_unsupported_file_types_are_refused_before_sending(client, respx_mock, tmp_path):
    route = respx_mock.post(url__regex=r".*/api/upload-video/.*")
    doc = tmp_path / "notes.docx"
    doc.write_bytes(b"x")
    with pytest.raises(UnsupportedFile) as caught:
        await client.upload_file("sess-1", doc)
    assert "notes.docx" in str(caught.value) and "mp4 mov" in str(caught.value)
    assert not route.called


async def test_files_over_500_mb_are_refused_before_sending(client, respx_mock, tmp_path):
    route = respx_mock.post(url__regex=r".*/api/upload-video/.*")
    big = tmp_path / "huge.mov"
    with big.open("wb") as handle:
        handle.truncate(MAX_UPLOAD_BYTES + 1)  # sparse: no disk used
    with pytest.raises(FileTooLarge, match="compress or trim"):
        await client.upload_file("sess-1", big)
    assert not route.called


async def test_a_missing_file_is_a_one_line_user_error(client, tmp_path):
    with pytest.raises(UserError, match="cannot be read"):
        await client.upload_file("sess-1", tmp_path / "gone.jpg")


# -- downloads -------------------------------------------------------------------------------


async def test_download_from_the_cdn_never_sends_the_token_and_lands_atomically(client, respx_mock, tmp_path):
    cdn = respx_mock.get(f"{CDN}/v.mp4").mock(return_value=httpx.Response(200, content=b"MP4DATA"))
    target = tmp_path / "out" / "job.mp4"
    target.parent.mkdir()
    assert await client.download_render("r1", target, url=f"{CDN}/v.mp4") == target
    assert target.read_bytes() == b"MP4DATA"
    assert sorted(p.name for p in target.parent.iterdir()) == ["job.mp4"]
    headers = cdn.calls.last.request.headers
    assert "Authorization" not in headers and "X-Skill-Source" not in headers


async def test_download_falls_back_to_the_api_when_the_cdn_link_fails(client, respx_mock, tmp_path):
    respx_mock.get(f"{CDN}/v.mp4").mock(return_value=httpx.Response(403, text="expired"))
    api = respx_mock.get("/api/render/proxy/r1/download").mock(
        return_value=httpx.Response(200, content=b"VIDEO")
    )
    target = tmp_path / "job.mp4"
    await client.download_render("r1", target, url=f"{CDN}/v.mp4")
    assert target.read_bytes() == b"VIDEO"
    assert api.calls.last.request.headers["Authorization"] == f"Bearer {USER_TOKEN}"


async def test_download_without_a_url_uses_the_api_endpoint(client, respx_mock, tmp_path):
    respx_mock.get("/api/render/proxy/r1/download").mock(return_value=httpx.Response(200, content=b"VIDEO"))
    target = tmp_path / "job.mp4"
    await client.download_render("r1", target)
    assert target.read_bytes() == b"VIDEO"


async def test_a_url_on_the_api_host_gets_the_token(client, respx_mock, tmp_path):
    route = respx_mock.get("/files/r1.mp4").mock(return_value=httpx.Response(200, content=b"V"))
    await client.download_render("r1", tmp_path / "job.mp4", url=f"{BASE}/files/r1.mp4")
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {USER_TOKEN}"


async def test_a_redirect_from_the_api_to_another_host_drops_the_token(client, respx_mock, tmp_path):
    respx_mock.get("/api/render/proxy/r1/download").mock(
        return_value=httpx.Response(302, headers={"Location": f"{CDN}/signed.mp4"})
    )
    cdn = respx_mock.get(f"{CDN}/signed.mp4").mock(return_value=httpx.Response(200, content=b"V"))
    await client.download_render("r1", tmp_path / "job.mp4")
    assert "Authorization" not in cdn.calls.last.request.headers


async def test_a_download_that_breaks_off_leaves_no_partial_file(client, respx_mock, tmp_path):
    def broken(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Length": "100"}, stream=ChunkStream([b"half", httpx.ReadError("reset")])
        )

    respx_mock.get(f"{CDN}/v.mp4").mock(side_effect=broken)
    respx_mock.get("/api/render/proxy/r1/download").mock(side_effect=broken)
    target = tmp_path / "job.mp4"
    with pytest.raises(NemoError):
        await client.download_render("r1", target, url=f"{CDN}/v.mp4")
    assert not target.exists()
    assert not (tmp_path / ".job.mp4.part").exists()


async def test_a_failed_download_keeps_an_older_video_untouched(client, respx_mock, tmp_path):
    respx_mock.get("/api/render/proxy/r1/download").mock(return_value=fail(500, status=500))
    target = tmp_path / "job.mp4"
    target.write_bytes(b"OLD")
    with pytest.raises(NemoError):
        await client.download_render("r1", target)
    assert target.read_bytes() == b"OLD"
    assert not (tmp_path / ".job.mp4.part").exists()


def test_settings_from_config_take_the_token_credentials_and_client_id_file(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("")
    env = {
        "NEMO_TOKEN": "tok-from-env",
        "CREDENTIALS_DIRECTORY": str(tmp_path / "creds"),
        "HOME": str(tmp_path),
    }
    cfg = load_config(config, env=env)
    settings = ClientSettings.from_config(cfg, env=env)
    assert settings.user_token == "tok-from-env"
    assert settings.credentials_dir == tmp_path / "creds"
    assert settings.client_id_file == tmp_path / ".config" / "nemovideo" / "client_id"
    assert settings.base_url == cfg.base_url and settings.sse_timeout_s == cfg.sse_timeout_s
    assert "tok-from-env" not in repr(settings)
