"""The local backend over real loopback HTTP: every endpoint, envelope and error code a client relies on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from nemowatch.api.formats import MAX_MESSAGE_BYTES, MAX_UPLOAD_BYTES
from nemowatch.config import load_config
from nemowatch.errors import UserError
from nemowatch.local.server import LocalSettings, RunningServer, start_server
from nemowatch.local.store import RenderRecord, SessionRecord, Store
from tests.adversarial import fill
from tests.daemon_helpers import daemon_env, nemowatch

ATTRIBUTION = {"X-Skill-Source": "nemowatch-tests", "X-Skill-Version": "0", "X-Skill-Platform": "pytest"}


# -- helpers ----------------------------------------------------------------------------------------


def settings(tmp_path: Path, **changes: Any) -> LocalSettings:
    changes.setdefault("port", 0)
    return LocalSettings(state_dir=tmp_path / "state", heartbeat_s=0.2, **changes)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with start_server(settings(tmp_path)) as running:
        yield running


def client(server: RunningServer, token: str | None = None) -> httpx.Client:
    headers = dict(ATTRIBUTION)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def anonymous_token(server: RunningServer, client_id: str = "3f0e6a4e-client") -> str:
    with client(server) as http:
        response = http.post("/api/auth/anonymous-token", headers={"X-Client-Id": client_id})
    assert response.status_code == 200, response.text
    token: str = response.json()["data"]["token"]
    return token


def new_session(http: httpx.Client, task_name: str = "Trip") -> str:
    body = http.post(
        "/api/tasks/me/with-session/nemo_agent", json={"task_name": task_name, "language": "en"}
    ).json()
    assert body["code"] == 0, body
    sid: str = body["data"]["session_id"]
    return sid


def png(path: Path, size: tuple[int, int] = (64, 36), color: str = "orange") -> Path:
    Image.new("RGB", size, color).save(path)
    return path


def wav(path: Path, seconds: float = 0.5) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * int(8000 * seconds))
    return path


def upload(http: httpx.Client, sid: str, *paths: Path) -> httpx.Response:
    files = [("files", (p.name, p.open("rb"))) for p in paths]
    try:
        return http.post(f"/api/upload-video/nemo_agent/me/{sid}", files=files)
    finally:
        for _, (_, handle) in files:
            handle.close()


def admin_sessions(server: RunningServer) -> list[dict[str, Any]]:
    with client(server) as http:
        sessions: list[dict[str, Any]] = http.get("/api/local/sessions").json()["data"]["sessions"]
    return sessions


# -- tokens and auth ------------------------------------------------------------------------------


def test_anonymous_token_needs_a_client_id(server: RunningServer) -> None:
    with client(server) as http:
        response = http.post("/api/auth/anonymous-token")
    assert response.status_code == 400
    assert "X-Client-Id" in response.json()["msg"]
    assert "code" not in response.json()  # HTTP-only error: the client decides on the status


def test_anonymous_token_is_an_nmv_usr_token_with_credits_and_expiry(server: RunningServer) -> None:
    with client(server) as http:
        response = http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "abc-123"})
    body = response.json()
    assert body["code"] == 0
    assert body["data"]["token"].startswith("nmv_usr_")
    assert body["data"]["credits"] > 0
    assert body["data"]["expires_in"] == 7 * 86400
    assert body["data"]["expires_at"].endswith("Z")


def test_calls_without_a_known_token_answer_1001(server: RunningServer) -> None:
    with client(server) as http:
        missing = http.get("/api/credits/balance/simple")
    with client(server, "nmv_usr_not-issued-here") as http:
        unknown = http.post("/api/tasks/me/with-session/nemo_agent", json={"task_name": "x"})
    for response in (missing, unknown):
        assert response.status_code == 401
        assert response.json()["code"] == 1001


def test_an_expired_token_answers_1001_and_a_new_one_works(tmp_path: Path) -> None:
    # Long enough that the fresh token is still valid when used on a loaded machine.
    with start_server(settings(tmp_path, token_ttl_s=1.5)) as server:
        token = anonymous_token(server)
        time.sleep(1.6)
        with client(server, token) as http:
            expired = http.get("/api/credits/balance/simple")
        assert expired.status_code == 401 and expired.json()["code"] == 1001
        with client(server, anonymous_token(server)) as http:
            assert http.get("/api/credits/balance/simple").json()["code"] == 0


def test_tokens_survive_a_restart_and_are_not_stored_in_clear(tmp_path: Path) -> None:
    with start_server(settings(tmp_path)) as server:
        token = anonymous_token(server)
    with start_server(settings(tmp_path)) as server, client(server, token) as http:
        assert http.get("/api/credits/balance/simple").json()["code"] == 0
    stored = "".join(p.read_text(errors="replace") for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert token not in stored


def test_non_loopback_bind_without_access_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="access token"):
        start_server(settings(tmp_path, host="0.0.0.0"))


def test_serve_refuses_a_public_bind_without_token_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[paths]\nstate = "{tmp_path / "state"}"\n[local]\nhost = "0.0.0.0"\n')
    done = nemowatch("serve", "--config", str(config), "--port", "0")
    assert done.returncode == 2  # bad config (local.access_token), as the README says
    assert done.stderr.strip().count("\n") == 0
    assert "access token" in done.stderr and "Traceback" not in done.stderr


def test_with_an_access_token_only_that_token_is_accepted(tmp_path: Path) -> None:
    secret = "local-access-secret-123"
    with start_server(settings(tmp_path, access_token=secret)) as server:
        with client(server) as http:
            refused = http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "c1"})
        assert refused.status_code == 403 and "access token" in refused.json()["msg"]
        with client(server, "nmv_usr_guess") as http:
            assert http.get("/api/credits/balance/simple").json()["code"] == 1001
        with client(server, secret) as http:
            assert http.get("/api/credits/balance/simple").json()["code"] == 0


# -- sessions, claim, state, credits --------------------------------------------------------------


def test_session_state_starts_empty_with_a_1080p_canvas(server: RunningServer) -> None:
    with client(server, anonymous_token(server)) as http:
        sid = new_session(http)
        body = http.get(f"/api/state/nemo_agent/me/{sid}/latest").json()
    state = body["data"]["state"]
    assert body["code"] == 0
    assert state["draft"] == {} and state["video_infos"] == [] and state["generated_media"] == []
    assert state["canvas_config"] == {"width": 1920, "height": 1080, "aspect": "16:9"}


def test_unknown_session_answers_1002_and_404_on_run_sse(server: RunningServer, tmp_path: Path) -> None:
    with client(server, anonymous_token(server)) as http:
        state = http.get("/api/state/nemo_agent/me/ses_nope/latest")
        claim = http.post("/api/auth/claim-token", json={"task_id": "t", "session_id": "ses_nope"})
        sent = upload(http, "ses_nope", png(tmp_path / "a.png"))
        run = http.post(
            "/run_sse",
            json={
                "app_name": "nemo_agent",
                "user_id": "me",
                "session_id": "ses_nope",
                "new_message": {"parts": [{"text": "hi"}]},
            },
        )
    for response in (state, claim, sent):
        assert response.status_code == 404 and response.json()["code"] == 1002
    assert run.status_code == 404 and not run.headers["content-type"].startswith("text/event-stream")


def test_malformed_run_sse_body_is_422(server: RunningServer) -> None:
    with client(server, anonymous_token(server)) as http:
        sid = new_session(http)
        not_json = http.post("/run_sse", content=b"{oops", headers={"Content-Type": "application/json"})
        no_parts = http.post("/run_sse", json={"session_id": sid, "new_message": {}})
    assert not_json.status_code == 422 and no_parts.status_code == 422


def test_claim_token_is_a_clm_token_valid_a_week_that_opens_the_project_page(server: RunningServer) -> None:
    with client(server, anonymous_token(server)) as http:
        sid = new_session(http, "Garden <Party>")
        body = http.post("/api/auth/claim-token", json={"task_id": "t", "session_id": sid}).json()
    claim = body["data"]["claim_token"]
    assert claim.startswith("clm_") and body["data"]["expires_in"] == 604800
    with httpx.Client(base_url=server.url) as browser:  # a browser has no bearer token
        opened = browser.get("/workspace/claim", params={"ct": claim})
        unknown = browser.get("/workspace/claim", params={"ct": "clm_unknown"})
    assert opened.status_code == 200 and "Garden &lt;Party&gt;" in opened.text
    assert unknown.status_code == 404


def test_credits_are_unlimited_by_default(server: RunningServer) -> None:
    with client(server, anonymous_token(server)) as http:
        data = http.get("/api/credits/balance/simple").json()["data"]
    assert data == {"available": 999_999, "frozen": 0, "total": 999_999}


def test_admin_can_set_and_top_up_credits_and_it_persists(tmp_path: Path) -> None:
    with start_server(settings(tmp_path, credits=120)) as server, client(server) as http:
        assert http.post("/api/local/credits", json={"add": 30}).json()["data"]["available"] == 150
    with start_server(settings(tmp_path, credits=120)) as server, client(server) as http:
        token = anonymous_token(server)
        data = http.get("/api/credits/balance/simple", headers={"Authorization": f"Bearer {token}"})
        assert data.json()["data"] == {"available": 150, "frozen": 0, "total": 150}
        assert http.post("/api/local/credits", json={"set": 5}).json()["data"]["available"] == 5
        assert http.post("/api/local/credits", json={"add": "x"}).status_code == 422


# -- uploads --------------------------------------------------------------------------------------


def test_multipart_upload_of_several_files_is_probed_and_listed_in_state(
    server: RunningServer, tmp_path: Path
) -> None:
    photo = png(tmp_path / "Holiday Photo.PNG", (80, 45))
    sound = wav(tmp_path / "music.wav", 0.5)
    with client(server, anonymous_token(server)) as http:
        sid = new_session(http)
        response = upload(http, sid, photo, sound)
        state = http.get(f"/api/state/nemo_agent/me/{sid}/latest").json()["data"]["state"]
    assert response.json()["code"] == 0, response.text
    assert [f["name"] for f in response.json()["data"]["files"]] == ["Holiday Photo.PNG", "music.wav"]
    infos = {info["name"]: info for info in state["video_infos"]}
    assert infos["Holiday Photo.PNG"]["kind"] == "image"
    assert (infos["Holiday Photo.PNG"]["width"], infos["Holiday Photo.PNG"]["height"]) == (80, 45)
    assert infos["Holiday Photo.PNG"]["size"] == photo.stat().st_size
    assert infos["music.wav"]["kind"] == "audio"
    assert infos["music.wav"]["duration"] == pytest.approx(0.5, abs=0.1)
    stored = list((tmp_path / "state" / "local-backend" / "uploads" / sid).iterdir())
    assert sorted(p.stat().st_size for p in stored) == sorted([photo.stat().st_size, sound.stat().st_size])


def test_upload_of_an_unsupported_type_is_4001_and_keeps_nothing(
    server: RunningServer, tmp_path: Path
) -> None:
    good = png(tmp_path / "ok.png")
    bad = tmp_path / "notes.docx"
    bad.write_bytes(b"PK\x03\x04 not media")
    with client(server, anonymous_token(server)) as http:
        sid = new_session(http)
        response = upload(http, sid, good, bad)
        state = http.get(f"/api/state/nemo_agent/me/{sid}/latest").json()["data"]["state"]
    assert response.json()["code"] == 4001
    assert "notes.docx" in response.json()["msg"] and "mp4" in response.json()["msg"]
    assert state["video_infos"] == []
    assert list((tmp_path / "state" / "local-backend" / "uploads" / sid).iterdir()) == []


def test_upload_that_is_not_really_media_is_4001(server: RunningServer, tmp_path: Path) -> None:
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"this is text, not a video")
    with client(server, anonymous_token(server)) as http:
        sid = new_session(http)
        response = upload(http, sid, fake)
    assert response.json()["code"] == 4001 and "clip.mp4" in response.json()["msg"]


def test_upload_over_500_mb_is_4002(server: RunningServer, tmp_path: Path) -> None:
    huge = tmp_path / "huge.mp4"
    with huge.open("wb") as handle:  # sparse: no disk space used on the sending side
        handle.truncate(MAX_UPLOAD_BYTES + 1)
    with client(server, anonymous_token(server)) as http:
        sid = new_session(http)
        response = upload(http, sid, huge)
    assert response.status_code == 413 and response.json()["code"] == 4002
    assert "huge.mp4" in response.json()["msg"]
    assert list((tmp_path / "state" / "local-backend" / "uploads" / sid).iterdir()) == []


def test_file_url_upload_copies_a_local_file(server: RunningServer, tmp_path: Path) -> None:
    photo = png(tmp_path / "from url.png")
    with client(server, anonymous_token(server)) as http:
        sid = new_session(http)
        body = http.post(
            f"/api/upload-video/nemo_agent/me/{sid}",
            json={"urls": [photo.as_uri()], "source_type": "url"},
        ).json()
    assert body["code"] == 0 and body["data"]["files"][0]["name"] == "from url.png"


def test_non_file_urls_are_refused_without_touching_the_network(server: RunningServer) -> None:
    with client(server, anonymous_token(server)) as http:
        sid = new_session(http)
        response = http.post(
            f"/api/upload-video/nemo_agent/me/{sid}",
            json={"urls": ["https://example.com/a.mp4"], "source_type": "url"},
        )
    assert response.status_code == 400 and "file://" in response.json()["msg"]


# -- renders (protocol only; real renders are in the integration tests below) -----------------------


def test_export_without_attribution_headers_is_402(server: RunningServer) -> None:
    token = anonymous_token(server)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:
        response = http.post(
            "/api/render/proxy/lambda", json={"id": "render_1", "sessionId": "x", "draft": {}}
        )
    assert response.status_code == 402


def test_export_of_an_empty_draft_is_refused_and_unknown_renders_are_404(server: RunningServer) -> None:
    with client(server, anonymous_token(server)) as http:
        sid = new_session(http)
        empty = http.post("/api/render/proxy/lambda", json={"id": "render_2", "sessionId": sid, "draft": {}})
        missing = http.get("/api/render/proxy/lambda/render_nope")
        download = http.get("/api/render/proxy/render_nope/download")
    assert empty.status_code == 422
    assert missing.status_code == 404 and download.status_code == 404


def test_signed_links_refuse_a_forged_signature(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        response = http.get("/files/renders/render_x.mp4", params={"exp": "9999999999", "sig": "00" * 32})
    assert response.status_code == 403


def test_admin_sessions_lists_sessions_in_order(server: RunningServer) -> None:
    with client(server, anonymous_token(server)) as http:
        first, second = new_session(http, "one"), new_session(http, "two")
    listed = admin_sessions(server)
    assert [(s["session_id"], s["task_name"]) for s in listed] == [(first, "one"), (second, "two")]
    assert all(s["messages"] == [] for s in listed)


def test_chunked_upload_over_500_mb_is_4002_while_streaming(server: RunningServer, tmp_path: Path) -> None:
    """Without a Content-Length the limit is enforced on the bytes as they arrive."""
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.mov"\r\n\r\n'
    ).encode()
    chunk = bytes(1024 * 1024)

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(MAX_UPLOAD_BYTES // len(chunk) + 2):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    with client(server, anonymous_token(server)) as http:
        sid = new_session(http)
        response = http.post(
            f"/api/upload-video/nemo_agent/me/{sid}",
            content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert response.json()["code"] == 4002 and "big.mov" in response.json()["msg"]
    assert list((tmp_path / "state" / "local-backend" / "uploads" / sid).iterdir()) == []


def test_nemowatch_serve_prints_its_url_answers_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[paths]\nstate = "{tmp_path / "state"}"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "nemowatch", "serve", "--config", str(config), "--port", "0"],
        env=daemon_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "nemowatch local backend on http://127.0.0.1:" in first
        assert str(tmp_path / "state" / "local-backend") in first
        url = first.split(" on ", 1)[1].split()[0]
        assert f"NEMO_API_URL={url}" in proc.stdout.readline()
        with httpx.Client(base_url=url) as http:
            assert http.get("/").json()["data"]["service"] == "nemowatch-local"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in proc.stdout.read()
    finally:
        proc.kill()


# -- messages (the ADK stream) -----------------------------------------------------------------------


def send(http: httpx.Client, sid: str, text: str) -> tuple[str, list[dict[str, Any]]]:
    """POST /run_sse; returns the raw stream and its JSON events."""
    body = {
        "app_name": "nemo_agent",
        "user_id": "me",
        "session_id": sid,
        "new_message": {"parts": [{"text": text}]},
    }
    headers = {"Accept": "text/event-stream"}
    with http.stream("POST", "/run_sse", json=body, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = []
    for block in raw.split("\n\n"):
        data = [line[5:].strip() for line in block.splitlines() if line.startswith("data:")]
        if data and data[0] not in ("", "{}"):
            events.append(json.loads(data[0]))
    return raw, events


def parts(events: list[dict[str, Any]], key: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(e, p) for e in events for p in e.get("content", {}).get("parts", []) if key in p]


def photo_session(http: httpx.Client, tmp_path: Path, name: str = "Beach Day") -> str:
    sid = new_session(http, name)
    assert (
        upload(
            http, sid, png(tmp_path / "p1.png", (96, 54)), png(tmp_path / "p2.png", (96, 54), "teal")
        ).json()["code"]
        == 0
    )
    return sid


def state(http: httpx.Client, sid: str) -> dict[str, Any]:
    found: dict[str, Any] = http.get(f"/api/state/nemo_agent/me/{sid}/latest").json()["data"]["state"]
    return found


def test_a_message_streams_tool_calls_then_text_chunks_then_the_whole_reply(
    server: RunningServer, tmp_path: Path
) -> None:
    with client(server, anonymous_token(server)) as http:
        sid = photo_session(http, tmp_path)
        _, events = send(http, sid, "make a 3-second 720p video")
        after = state(http, sid)
    calls = parts(events, "functionCall")
    results = parts(events, "functionResponse")
    assert [p["functionCall"]["name"] for _, p in calls] == ["analyze_media"] * 2 + ["build_timeline"] * 2
    assert calls[0][0]["partial"] is True and calls[1][0]["partial"] is False
    assert calls[0][1]["functionCall"]["id"] == calls[1][1]["functionCall"]["id"]
    assert [p["functionResponse"]["name"] for _, p in results] == ["analyze_media", "build_timeline"]
    texts = parts(events, "text")
    chunks = [p["text"] for e, p in texts if e["partial"]]
    final = [(e, p["text"]) for e, p in texts if not e["partial"]]
    assert len(chunks) >= 2 and len(final) == 1
    assert "".join(chunks) == final[0][1]  # the final text replaces the chunks, it is not added
    assert {e["id"] for e, _ in texts} == {final[0][0]["id"]}
    assert all("actions" in e and e["invocationId"] == events[0]["invocationId"] for e in events)
    assert after["draft"]["t"] and after["canvas_config"]["height"] == 720
    assert "Beach Day" in json.dumps(after["draft"])  # the task name is the default title


def test_long_steps_send_both_kinds_of_heartbeat(tmp_path: Path) -> None:
    with (
        start_server(settings(tmp_path, sse_delay_s=1.2)) as server,
        client(server, anonymous_token(server)) as http,
    ):
        sid = photo_session(http, tmp_path)
        raw, events = send(http, sid, "make a 3-second 720p video")
    assert "event: heartbeat" in raw and "\n: ping" in "\n" + raw
    assert parts(events, "text")


def test_a_silent_edit_changes_the_state_without_any_text(tmp_path: Path) -> None:
    with (
        start_server(settings(tmp_path, reply_silently=True)) as server,
        client(server, anonymous_token(server)) as http,
    ):
        sid = photo_session(http, tmp_path)
        before = state(http, sid)
        _, events = send(http, sid, "make a 3-second 720p video")
        after = state(http, sid)
    assert parts(events, "functionCall") and not parts(events, "text")
    assert after["draft"] != before["draft"] and after["revision"] == before["revision"] + 1


def test_out_of_credits_is_2001_before_any_work_and_a_top_up_unblocks(tmp_path: Path) -> None:
    with (
        start_server(settings(tmp_path, credits=120)) as server,
        client(server, anonymous_token(server)) as http,
    ):
        sid = photo_session(http, tmp_path)
        send(http, sid, "make a 3-second 720p video")  # generation: 100
        assert http.get("/api/credits/balance/simple").json()["data"] == {
            "available": 20,
            "frozen": 0,
            "total": 20,
        }
        before = state(http, sid)
        refused = http.post(
            "/run_sse",
            json={"session_id": sid, "new_message": {"parts": [{"text": "make it black and white"}]}},
        )
        assert refused.json()["code"] == 2001 and refused.status_code == 403
        assert state(http, sid) == before
        http.post("/api/local/credits", json={"add": 100})
        _, events = send(http, sid, "make it black and white")  # edit: 50
        assert parts(events, "text")
        assert http.get("/api/credits/balance/simple").json()["data"]["available"] == 70
    (session,) = admin_sessions_at(tmp_path)
    assert session["messages"] == ["make a 3-second 720p video", "make it black and white"]
    assert [r["text"] for r in session["refused"]] == ["make it black and white"]


def test_a_message_over_64_kb_is_refused_with_its_size_and_nothing_is_kept(server: RunningServer) -> None:
    with client(server, anonymous_token(server)) as http:
        sid = new_session(http)
        over = http.post(
            "/run_sse",
            json={"session_id": sid, "new_message": {"parts": [{"text": "中" * 23_000}]}},  # 69 000 bytes
        )
        # A body too large for any message is refused however much of it arrives.
        huge = http.post(
            "/run_sse",
            json={"session_id": sid, "new_message": {"parts": [{"text": "hi"}]}, "pad": "x" * 600_000},
        )
        at_limit = fill("bread ", MAX_MESSAGE_BYTES, tail="a 3-second video")
        assert MAX_MESSAGE_BYTES - 6 < len(at_limit.encode()) <= MAX_MESSAGE_BYTES
        _, events = send(http, sid, at_limit)
    assert over.status_code == 422 and not over.headers["content-type"].startswith("text/event-stream")
    assert over.json()["msg"] == (
        "the message is too long: 69 kB, at most 64 kB; shorten it or send it as several messages"
    )
    assert huge.status_code == 422
    assert huge.json()["msg"].startswith("the request body is too large: 601 kB, at most 512 kB")
    assert parts(events, "text")  # a message at the limit is carried out
    (session,) = admin_sessions(server)
    assert session["messages"] == [at_limit] and session["refused"] == []


def admin_sessions_at(tmp_path: Path) -> list[dict[str, Any]]:
    with start_server(settings(tmp_path)) as server:
        return admin_sessions(server)


def test_a_dropped_stream_still_carries_out_the_message_once(tmp_path: Path) -> None:
    with (
        start_server(settings(tmp_path, drop_streams=1, sse_delay_s=0.4)) as server,
        client(server, anonymous_token(server)) as http,
    ):
        sid = photo_session(http, tmp_path)
        with pytest.raises(httpx.RemoteProtocolError):
            send(http, sid, "make a 3-second 720p video")
        deadline = time.monotonic() + 30
        while not state(http, sid)["draft"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert state(http, sid)["draft"]["t"]
        (session,) = admin_sessions(server)
    assert session["messages"] == ["make a 3-second 720p video"]
    assert len(session["replies"]) == 1


# -- renders --------------------------------------------------------------------------------------


def tiny_draft(media_id: str, seconds: float = 2.0) -> dict[str, Any]:
    """A 320x180 draft of one photo (the shape api/draft.py documents), cheap to render."""
    ms = int(seconds * 1000)
    segment = {
        "st": 0,
        "d": ms,
        "m": {"kind": "image", "src": media_id, "name": "p1.png", "motion": "zoom_in", "in_ms": 0},
    }
    return {
        "d": ms,
        "m": {"width": 320, "height": 180, "fps": 30, "aspect": "16:9", "transition": None, "title": "Tiny"},
        "t": [{"tt": 0, "m": {"name": "1 photo"}, "sg": [segment]}],
    }


def photo_media_id(http: httpx.Client, sid: str, tmp_path: Path) -> str:
    response = upload(http, sid, png(tmp_path / "p1.png", (160, 90)))
    media_id: str = response.json()["data"]["files"][0]["id"]
    return media_id


def submit(http: httpx.Client, sid: str, render_id: str, draft: dict[str, Any]) -> dict[str, Any]:
    body = {"id": render_id, "sessionId": sid, "draft": draft, "output": {"format": "mp4", "quality": "high"}}
    answer: dict[str, Any] = http.post("/api/render/proxy/lambda", json=body).json()
    assert answer["code"] == 0, answer
    return answer["data"]


def poll(
    http: httpx.Client, render_id: str, until: tuple[str, ...] = ("completed", "failed")
) -> list[dict[str, Any]]:
    """Every status seen until the render reaches one of ``until``."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        data = http.get(f"/api/render/proxy/lambda/{render_id}").json()["data"]
        seen.append(data)
        if data["status"] in until:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"render {render_id} never reached {until}: {seen[-1]}")


def video_facts(path: Path) -> str:
    """What ffmpeg says about the file's streams (it decodes the whole file to null, so it must be valid)."""
    import imageio_ffmpeg

    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    info = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    )
    return info.stderr


def test_a_render_goes_pending_processing_completed_and_its_link_needs_no_token(
    server: RunningServer, tmp_path: Path
) -> None:
    token = anonymous_token(server)
    with client(server, token) as http:
        sid = new_session(http)
        draft = tiny_draft(photo_media_id(http, sid, tmp_path))
        first = submit(http, sid, "render_life", draft)
        seen = poll(http, "render_life")
        by_api = http.get("/api/render/proxy/render_life/download")
    assert first["status"] == "pending"
    statuses = [s["status"] for s in seen]
    assert "processing" in statuses and statuses[-1] == "completed"
    assert statuses.index("processing") < statuses.index("completed")
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress) and progress[-1] == 100
    url = seen[-1]["output"]["url"]
    assert url.startswith(server.url + "/files/renders/render_life.mp4?") and token not in url
    with httpx.Client() as anonymous:  # no Authorization header at all
        video = anonymous.get(url)
        without_token = anonymous.get(f"{server.url}/api/render/proxy/render_life/download")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert without_token.status_code == 401
    assert by_api.content == video.content
    out = tmp_path / "out.mp4"
    out.write_bytes(video.content)
    facts = video_facts(out)
    assert "h264" in facts and "320x180" in facts


def test_a_repeated_render_id_returns_the_existing_render_and_never_renders_twice(
    server: RunningServer, tmp_path: Path
) -> None:
    with client(server, anonymous_token(server)) as http:
        sid = new_session(http)
        draft = tiny_draft(photo_media_id(http, sid, tmp_path))
        submit(http, sid, "render_twice", draft)
        again = submit(http, sid, "render_twice", draft)
        assert again["id"] == "render_twice"
        poll(http, "render_twice")
        after = submit(http, sid, "render_twice", draft)
    assert after["status"] == "completed"
    (session,) = admin_sessions(server)
    assert [(r["id"], r["attempts"]) for r in session["renders"]] == [("render_twice", 1)]


def test_a_render_set_to_fail_reports_failed_with_a_reason_and_the_next_one_succeeds(tmp_path: Path) -> None:
    with (
        start_server(settings(tmp_path, fail_renders=1)) as server,
        client(server, anonymous_token(server)) as http,
    ):
        sid = new_session(http)
        draft = tiny_draft(photo_media_id(http, sid, tmp_path))
        submit(http, sid, "render_bad", draft)
        failed = poll(http, "render_bad")[-1]
        submit(http, sid, "render_good", draft)
        good = poll(http, "render_good")[-1]
    assert failed["status"] == "failed" and failed["error"] and failed["output"] is None
    assert good["status"] == "completed"


def test_a_render_of_missing_media_fails_with_a_reason(server: RunningServer) -> None:
    with client(server, anonymous_token(server)) as http:
        sid = new_session(http)
        submit(http, sid, "render_nomedia", tiny_draft("med_not_uploaded"))
        failed = poll(http, "render_nomedia")[-1]
    assert failed["status"] == "failed" and "med_not_uploaded" in failed["error"]


def test_a_render_interrupted_by_a_restart_is_resumed_not_left_pending(tmp_path: Path) -> None:
    server = start_server(settings(tmp_path, render_slots=1))
    try:
        with client(server, anonymous_token(server)) as http:
            sid = new_session(http)
            draft = tiny_draft(photo_media_id(http, sid, tmp_path), seconds=12)
            submit(http, sid, "render_restart", draft)
            poll(http, "render_restart", until=("processing", "completed", "failed"))
    finally:
        server.stop()
    stored = json.loads(
        (tmp_path / "state" / "local-backend" / "renders" / "render_restart.json").read_text()
    )
    assert stored["status"] == "processing"  # stopped mid-render
    with start_server(settings(tmp_path)) as server, client(server, anonymous_token(server)) as http:
        final = poll(http, "render_restart")[-1]
        (session,) = admin_sessions(server)
    assert final["status"] == "completed"
    assert session["renders"][0]["attempts"] == 2


def send_as(server: RunningServer, token: str, sid: str, text: str) -> tuple[str, list[dict[str, Any]]]:
    with client(server, token) as http:
        return send(http, sid, text)


def test_messages_to_one_session_are_carried_out_one_after_the_other(tmp_path: Path) -> None:
    with start_server(settings(tmp_path, credits=1000, sse_delay_s=1.0)) as server:
        token = anonymous_token(server)
        with client(server, token) as http:
            sid = photo_session(http, tmp_path)
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(send_as, server, token, sid, "make a 3-second 720p video")
            deadline = time.monotonic() + 30
            while not admin_sessions(server)[0]["messages"] and time.monotonic() < deadline:
                time.sleep(0.02)
            second = pool.submit(send_as, server, token, sid, "make it black and white")
            first.result(), second.result()
        with client(server, token) as http:
            balance = http.get("/api/credits/balance/simple").json()["data"]
            final = state(http, sid)
    # The edit was directed on the finished generation (an edit costs 50, a generation 100).
    assert balance["available"] == 1000 - 100 - 50
    assert final["draft"]["m"]["grade"] == "bw" and final["revision"] == 2


def test_testing_hooks_can_be_changed_on_a_running_server(server: RunningServer, tmp_path: Path) -> None:
    with client(server, anonymous_token(server)) as http:
        hooks = http.post("/api/local/testing", json={"fail_renders": 1}).json()["data"]
        assert hooks["fail_renders"] == 1
        sid = new_session(http)
        submit(http, sid, "render_hooked", tiny_draft(photo_media_id(http, sid, tmp_path)))
        assert poll(http, "render_hooked")[-1]["status"] == "failed"


def test_a_message_in_progress_freezes_its_cost_then_spends_it(tmp_path: Path) -> None:
    with start_server(settings(tmp_path, credits=500, sse_delay_s=1.0)) as server:
        token = anonymous_token(server)
        with client(server, token) as http:
            sid = photo_session(http, tmp_path)
        with ThreadPoolExecutor(1) as pool, client(server, token) as http:
            running = pool.submit(send_as, server, token, sid, "make a 3-second 720p video")
            deadline = time.monotonic() + 30
            while not admin_sessions(server)[0]["messages"] and time.monotonic() < deadline:
                time.sleep(0.02)
            during = http.get("/api/credits/balance/simple").json()["data"]
            running.result()
            after = http.get("/api/credits/balance/simple").json()["data"]
    assert during == {"available": 400, "frozen": 100, "total": 500}
    assert after == {"available": 400, "frozen": 0, "total": 400}


def test_a_busy_port_is_one_clear_error(server: RunningServer, tmp_path: Path) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}.*--port"):
        start_server(settings(tmp_path / "other", port=port))


# -- retention --------------------------------------------------------------------------------------


def used_and_aged(tmp_path: Path, days: float) -> tuple[str, str]:
    """A session with an upload and a finished render, then one with only an upload; the first is
    made to look last used ``days`` ago. Returns (old session, recent session)."""
    with start_server(settings(tmp_path)) as server, client(server, anonymous_token(server)) as http:
        old = new_session(http, "Old trip")
        submit(http, old, "render_old", tiny_draft(photo_media_id(http, old, tmp_path)))
        assert poll(http, "render_old")[-1]["status"] == "completed"
        recent = new_session(http, "Recent trip")
        photo_media_id(http, recent, tmp_path)
    root = tmp_path / "state" / "local-backend"
    then = time.time() - days * 86400
    os.utime(root / "sessions" / f"{old}.json", (then, then))
    render = root / "renders" / "render_old.json"
    render.write_text(json.dumps({**json.loads(render.read_text()), "updated_at": then}))
    return old, recent


def test_sessions_and_renders_unused_for_keep_days_go_with_their_files_at_start(tmp_path: Path) -> None:
    """A service that runs for months must not fill its disk with copies the outbox already holds."""
    old, recent = used_and_aged(tmp_path, days=8)
    root = tmp_path / "state" / "local-backend"
    old_files = [
        root / "uploads" / old,
        root / "sessions" / f"{old}.json",
        root / "renders" / "render_old.json",
        root / "renders" / "render_old.mp4",
    ]
    assert all(path.exists() for path in old_files)

    with start_server(settings(tmp_path, keep_days=7)) as server:
        listed = [session["session_id"] for session in admin_sessions(server)]
        with client(server, anonymous_token(server)) as http:
            state = http.get(f"/api/state/nemo_agent/me/{old}/latest").json()
            gone = http.get("/api/render/proxy/lambda/render_old")
    assert listed == [recent]
    assert state["code"] == 1002 and gone.status_code == 404
    assert [path for path in old_files if path.exists()] == []
    assert len(list((root / "uploads" / recent).iterdir())) == 1  # the recent session keeps its photo


def test_keep_days_zero_keeps_everything(tmp_path: Path) -> None:
    old, recent = used_and_aged(tmp_path, days=400)
    with start_server(settings(tmp_path, keep_days=None)) as server:
        listed = [session["session_id"] for session in admin_sessions(server)]
    assert listed == [old, recent]
    assert (tmp_path / "state" / "local-backend" / "renders" / "render_old.mp4").exists()


def test_keep_days_comes_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[paths]\nstate = "{tmp_path}"\n[local]\nkeep_days = 0\n')
    assert LocalSettings.from_config(load_config(config)).keep_days is None
    config.write_text(f'[paths]\nstate = "{tmp_path}"\n[local]\nkeep_days = 2.5\n')
    assert LocalSettings.from_config(load_config(config)).keep_days == 2.5
    config.write_text(f'[paths]\nstate = "{tmp_path}"\n')
    assert LocalSettings.from_config(load_config(config)).keep_days == 7


def test_pruning_spares_a_session_with_a_message_running_or_a_render_at_work(tmp_path: Path) -> None:
    store = Store(tmp_path / "local-backend")
    then = time.time() - 30 * 86400
    for sid in ("ses_busy", "ses_rendering", "ses_idle"):
        store.save_session(SessionRecord(sid, f"task_{sid}", "Trip", "en", "me", then))
        (store.upload_dir(sid) / "p1.jpg").write_bytes(b"jpeg")
        os.utime(store.root / "sessions" / f"{sid}.json", (then, then))
    store.save_render(RenderRecord("render_long", "ses_rendering", {}, {}, status="processing"))
    store.renders["render_long"].updated_at = then  # a render stuck for a month is still not deleted

    assert store.prune(time.time() - 7 * 86400, busy={"ses_busy"}) == (1, 0)
    assert set(store.sessions) == {"ses_busy", "ses_rendering"} and set(store.renders) == {"render_long"}
    assert not (store.root / "uploads" / "ses_idle").exists()
    assert (store.root / "uploads" / "ses_busy" / "p1.jpg").exists()
