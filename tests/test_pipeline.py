"""The per-job pipeline against the real local backend (and a mocked cloud for the cloud-only failures).

Renders are kept tiny (720x720, 3 s) by asking the local director for them in the prompt.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from loguru import logger
from PIL import Image

from nemowatch.api.client import NemoClient
from nemowatch.api.errors import TokenRejected
from nemowatch.api.settings import ClientSettings
from nemowatch.daemon.faults import StepRetry
from nemowatch.daemon.journal import JobRecord, Journal
from nemowatch.daemon.outbox import Outbox
from nemowatch.daemon.pipeline import Pipeline, PipelineSettings, Waits
from nemowatch.ffmpeg import ffmpeg_exe
from nemowatch.local.server import LocalSettings, RunningServer, start_server
from nemowatch.logs import add_job_sink
from nemowatch.states import JobState
from tests.daemon_helpers import RESULT_KEYS

SMALL = "A square 720p video of 3 seconds"


class Crash(BaseException):
    """A simulated crash: not an Exception, so the pipeline cannot handle it (like SIGKILL)."""


FAST_WAITS = Waits(
    recovery_first_s=0.05,
    recovery_s=0.05,
    settle_s=0.05,
    retry=StepRetry(wait_s=0.01, rate_limit_wait_s=0.01),
)


def fast_settings(**changes: Any) -> PipelineSettings:
    values: dict[str, Any] = {
        "min_credits": 100,
        "poll_interval_s": 0.05,
        "backend": "local",
        "waits": FAST_WAITS,
        "recovery_reads": 3,
        "settle_reads": 2,
        "settle_max_reads": 40,
    }
    values.update(changes)
    return PipelineSettings(**values)


def crash_at(key: str) -> Any:
    def checkpoint(reached: str) -> None:
        if reached == key:
            raise Crash(key)

    return checkpoint


def photo(path: Path, color: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 36), color).save(path)
    return path


def decodes(video: Path) -> bool:
    """True when ffmpeg decodes every frame of the file without an error."""
    run = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(video), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return run.returncode == 0 and not run.stderr.strip()


@dataclass
class Rig:
    """A journal, an outbox and a client wired to one backend, plus helpers to make and inspect jobs."""

    tmp: Path
    client: NemoClient
    server: RunningServer | None = None
    journal: Journal = field(init=False)
    outbox: Outbox = field(init=False)

    def __post_init__(self) -> None:
        self.journal = Journal(self.tmp / "state" / "journal.sqlite3")
        self.outbox = Outbox(self.tmp / "outbox")

    def job(
        self,
        name: str,
        prompt: str,
        *,
        photos: tuple[str, ...] = ("2.jpg", "10.jpg"),
        toml: str | None = None,
    ) -> JobRecord:
        files = self.tmp / "work" / name / name
        files.mkdir(parents=True)
        (files / "prompt.txt").write_text(prompt, encoding="utf-8")
        for index, rel in enumerate(photos):
            photo(files / rel, ("orange", "teal", "purple")[index % 3])
        if toml is not None:
            (files / "job.toml").write_text(toml, encoding="utf-8")
        return self.journal.add_job(name, "folder", files, self.outbox.reserve(name))

    def pipeline(self, checkpoint: Any = None, **changes: Any) -> Pipeline:
        return Pipeline(
            self.journal, self.client, self.outbox, fast_settings(**changes), checkpoint=checkpoint
        )

    def reopen(self) -> None:
        """What a restarted daemon does: a fresh connection to the same journal file."""
        self.journal.close()
        self.journal = Journal(self.tmp / "state" / "journal.sqlite3")

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self.server is not None
        response = httpx.request(method, self.server.url + path, json=body, timeout=30)
        response.raise_for_status()
        return response.json()["data"]

    def sessions(self) -> list[dict[str, Any]]:
        return self.admin("GET", "/api/local/sessions")["sessions"]

    def result(self, job: JobRecord) -> dict[str, Any]:
        return json.loads((job.outbox_dir / "result.json").read_text(encoding="utf-8"))

    def status(self, job: JobRecord) -> str:
        return (job.outbox_dir / "STATUS.txt").read_text(encoding="utf-8").strip()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(LocalSettings(state_dir=tmp_path / "backend", port=0, heartbeat_s=0.5))
    try:
        yield running
    finally:
        running.stop()


def client_settings(tmp_path: Path, base_url: str, **changes: Any) -> ClientSettings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "web_url": base_url,
        "state_dir": tmp_path / "client",
        "client_id": "6f1c2d3e-0000-4000-8000-00000000abcd",
        "client_id_file": tmp_path / "home" / "client_id",
        "retry_base_s": 0.01,
        "retry_cap_s": 0.05,
        "retry_attempts": 3,
        "rate_limit_wait_s": 0.01,
        "sse_timeout_s": 120,
        "sse_idle_timeout_s": 60,
    }
    values.update(changes)
    return ClientSettings(**values)


@pytest.fixture
async def rig(tmp_path: Path, server: RunningServer) -> AsyncIterator[Rig]:
    async with NemoClient(client_settings(tmp_path, server.url)) as client:
        made = Rig(tmp_path, client, server)
        try:
            yield made
        finally:
            made.journal.close()


# -- the whole job, against the real local backend -------------------------------------------------


async def test_a_photo_job_ends_done_with_a_decodable_video_and_a_full_result(rig: Rig) -> None:
    job = rig.job("trip", SMALL)
    log_path = job.outbox_dir / "job.log"
    sink = add_job_sink("trip", log_path)
    try:
        state = await rig.pipeline().run(job.id)
    finally:
        logger.remove(sink)
    assert state is JobState.DONE
    job = rig.journal.get(job.id)
    assert job.state is JobState.DONE
    assert rig.status(job) == "done"

    video = job.outbox_dir / "trip.mp4"
    assert decodes(video)
    result = rig.result(job)
    assert result.keys() >= RESULT_KEYS
    assert "error" not in result
    assert result["job"] == "trip" and result["status"] == "done" and result["backend"] == "local"
    assert result["videos"] == [
        {
            "file": "trip.mp4",
            "width": 720,
            "height": 720,
            "duration_s": pytest.approx(3.0, abs=0.2),
            "bytes": video.stat().st_size,
        }
    ]
    assert result["timeline"].startswith("Timeline (")
    assert len(result["messages"]) == 1 and result["messages"][0]
    assert result["project_url"].startswith(rig.server.url + "/workspace/claim?ct=clm_")  # type: ignore[union-attr]
    assert isinstance(result["credits"]["before"], int) and isinstance(result["credits"]["after"], int)

    # The backend saw one session named after the job, the photos in natural order, one message.
    (session,) = rig.sessions()
    assert session["session_id"] == result["session_id"]
    assert session["task_name"] == "trip"
    assert [upload["name"] for upload in session["uploads"]] == ["2.jpg", "10.jpg"]
    assert session["messages"] == [SMALL]

    # The dropped files now live in the outbox, and the journal knows it (retry reads from there).
    assert sorted(p.name for p in (job.outbox_dir / "inputs").iterdir()) == ["10.jpg", "2.jpg", "prompt.txt"]
    assert job.files_dir == job.outbox_dir / "inputs"
    assert not (job.outbox_dir / "FAILED.txt").exists()
    log = log_path.read_text(encoding="utf-8")
    assert "session" in log and "trip.mp4" in log
    assert not [p for p in job.outbox_dir.iterdir() if p.name.startswith(".")]


async def test_export_each_writes_one_video_after_every_message(rig: Rig) -> None:
    job = rig.job("steps", f"{SMALL}\n---\nMake it warmer", toml='export = "each"\n')
    assert await rig.pipeline().run(job.id) is JobState.DONE
    result = rig.result(job)
    assert [video["file"] for video in result["videos"]] == ["steps-1.mp4", "steps-2.mp4"]
    assert decodes(job.outbox_dir / "steps-1.mp4") and decodes(job.outbox_dir / "steps-2.mp4")
    (session,) = rig.sessions()
    assert session["messages"] == [SMALL, "Make it warmer"]
    assert len(session["renders"]) == 2


async def test_job_toml_aspect_and_duration_reach_the_backend_in_the_first_message(rig: Rig) -> None:
    job = rig.job("vertical", "A 720p video", toml='aspect = "9:16"\nduration_s = 3\n')
    assert await rig.pipeline().run(job.id) is JobState.DONE
    (session,) = rig.sessions()
    assert session["messages"] == ["A 720p video\n\nAspect 9:16. Duration 3 seconds."]
    video = rig.result(job)["videos"][0]
    assert (video["width"], video["height"]) == (720, 1280)


async def test_a_text_only_job_uploads_nothing_and_makes_a_video(rig: Rig) -> None:
    text = rig.tmp / "work" / "sunset" / "sunset.txt"
    text.parent.mkdir(parents=True)
    text.write_text("A 3 second square 720p video about a sunset over the sea", encoding="utf-8")
    job = rig.journal.add_job("sunset", "text", text, rig.outbox.reserve("sunset"))
    assert await rig.pipeline().run(job.id) is JobState.DONE
    (session,) = rig.sessions()
    assert session["uploads"] == []
    assert decodes(job.outbox_dir / "sunset.mp4")
    assert (job.outbox_dir / "inputs" / "sunset.txt").exists()


# -- crashes and restarts ---------------------------------------------------------------------------


async def test_a_restart_after_the_message_went_out_never_sends_it_again(rig: Rig) -> None:
    job = rig.job("resume", SMALL)
    with pytest.raises(Crash):
        await rig.pipeline(checkpoint=crash_at("message:0:returned")).run(job.id)
    rig.reopen()
    assert rig.journal.step(job.id, "message:0:sending") is not None
    assert rig.journal.step(job.id, "message:0:sent") is None

    assert await rig.pipeline().run(job.id) is JobState.DONE
    (session,) = rig.sessions()
    assert session["messages"] == [SMALL]
    assert decodes(job.outbox_dir / "resume.mp4")


async def test_a_message_that_never_left_fails_with_the_retry_hint_and_retry_sends_it_once(rig: Rig) -> None:
    job = rig.job("lost", SMALL)
    # Crash after the write-ahead record, before the request: the backend never got the message.
    with pytest.raises(Crash):
        await rig.pipeline(checkpoint=crash_at("message:0:sending")).run(job.id)
    rig.reopen()
    assert await rig.pipeline().run(job.id) is JobState.FAILED
    assert rig.sessions()[0]["messages"] == []

    job = rig.journal.get(job.id)
    failed = (job.outbox_dir / "FAILED.txt").read_text(encoding="utf-8")
    assert "the backend did not confirm message 1" in failed
    assert "nothing was sent twice" in failed and "nemowatch retry lost" in failed
    assert rig.status(job).startswith("failed — the backend did not confirm message 1")
    result = rig.result(job)
    assert result["status"] == "failed"
    assert result["error"]["code"] == "message_unconfirmed"
    assert "Traceback" not in failed + json.dumps(result)

    # `nemowatch retry`: the user decided; the message goes out once, in the same session.
    rig.journal.requeue(job.id)
    assert await rig.pipeline().run(job.id) is JobState.DONE
    (session,) = rig.sessions()
    assert session["messages"] == [SMALL]
    assert not (job.outbox_dir / "FAILED.txt").exists()
    assert rig.result(job)["status"] == "done" and rig.result(job)["attempt"] == 2
    assert rig.status(job) == "done"


async def test_a_restart_after_the_render_was_submitted_follows_that_render(rig: Rig) -> None:
    job = rig.job("render-once", SMALL)
    with pytest.raises(Crash):
        await rig.pipeline(checkpoint=crash_at("render:0:returned")).run(job.id)
    rig.reopen()
    assert rig.journal.step(job.id, "render:0:submitting") is not None
    assert rig.journal.step(job.id, "render:0:submitted") is None
    assert await rig.pipeline().run(job.id) is JobState.DONE
    (session,) = rig.sessions()
    assert len(session["renders"]) == 1


async def test_a_restart_before_the_render_reached_the_backend_submits_it(rig: Rig) -> None:
    job = rig.job("render-lost", SMALL)
    with pytest.raises(Crash):
        await rig.pipeline(checkpoint=crash_at("render:0:submitting")).run(job.id)
    rig.reopen()
    assert await rig.pipeline().run(job.id) is JobState.DONE
    (session,) = rig.sessions()
    assert len(session["renders"]) == 1
    assert decodes(job.outbox_dir / "render-lost.mp4")


# -- what the backend does to a job ------------------------------------------------------------------


async def test_a_render_that_fails_once_is_submitted_again_and_the_job_is_done(rig: Rig) -> None:
    rig.admin("POST", "/api/local/testing", {"fail_renders": 1})
    job = rig.job("flaky", SMALL)
    assert await rig.pipeline().run(job.id) is JobState.DONE
    (session,) = rig.sessions()
    assert [render["status"] for render in session["renders"]] == ["failed", "completed"]
    assert decodes(job.outbox_dir / "flaky.mp4")


async def test_a_render_that_fails_twice_fails_the_job_and_keeps_the_inputs(rig: Rig) -> None:
    rig.admin("POST", "/api/local/testing", {"fail_renders": 2})
    job = rig.job("broken", SMALL)
    assert await rig.pipeline().run(job.id) is JobState.FAILED
    job = rig.journal.get(job.id)
    failed = (job.outbox_dir / "FAILED.txt").read_text(encoding="utf-8")
    assert "could not render the video twice" in failed
    assert rig.status(job).startswith("failed — the backend could not render the video twice")
    result = rig.result(job)
    assert result["status"] == "failed" and result["error"]["code"] == "render_failed"
    assert result["error"]["hint"]
    assert result["videos"] == []
    assert (job.outbox_dir / "inputs" / "prompt.txt").exists()
    assert len(rig.sessions()[0]["renders"]) == 2


async def test_too_few_credits_make_the_job_wait_instead_of_failing(rig: Rig) -> None:
    rig.admin("POST", "/api/local/credits", {"set": 40})
    job = rig.job("broke", SMALL)
    assert await rig.pipeline().run(job.id) is JobState.WAITING_CREDITS
    job = rig.journal.get(job.id)
    assert job.state is JobState.WAITING_CREDITS
    assert rig.status(job) == "waiting for credits — 40 available, 100 needed"
    assert not (job.outbox_dir / "FAILED.txt").exists()

    rig.admin("POST", "/api/local/credits", {"add": 1000})
    assert await rig.pipeline().run(job.id) is JobState.DONE
    assert rig.result(job)["credits"]["before"] == 40


async def test_a_message_refused_for_credits_is_sent_when_credits_return(rig: Rig) -> None:
    # Enough to start (min_credits 0) but not enough for the generation (100): the backend says 2001.
    rig.admin("POST", "/api/local/credits", {"set": 60})
    job = rig.job("refused", SMALL)
    assert await rig.pipeline(min_credits=0).run(job.id) is JobState.WAITING_CREDITS
    assert rig.journal.step(job.id, "message:0:sending") is None
    assert (
        rig.status(rig.journal.get(job.id)) == "waiting for credits — 60 available, not enough for message 1"
    )

    rig.admin("POST", "/api/local/credits", {"add": 1000})
    assert await rig.pipeline(min_credits=0).run(job.id) is JobState.DONE
    (session,) = rig.sessions()
    assert session["messages"] == [SMALL]
    assert len(session["refused"]) == 1


async def test_a_silent_reply_is_confirmed_from_the_session_state(rig: Rig) -> None:
    rig.admin("POST", "/api/local/testing", {"reply_silently": True})
    job = rig.job("quiet", SMALL)
    assert await rig.pipeline().run(job.id) is JobState.DONE
    assert rig.result(job)["messages"] == [""]
    assert decodes(job.outbox_dir / "quiet.mp4")


async def test_a_dropped_stream_whose_run_finished_carries_on_without_sending_again(rig: Rig) -> None:
    rig.admin("POST", "/api/local/testing", {"drop_streams": 1, "sse_delay_s": 0.2})
    job = rig.job("dropped", SMALL)
    # Recovery reads long enough to outlast the slowed run (their count is the limit, not a timing).
    waits = dataclasses.replace(FAST_WAITS, recovery_first_s=0.2, recovery_s=0.3)
    pipeline = rig.pipeline(waits=waits, recovery_reads=20)
    assert await pipeline.run(job.id) is JobState.DONE
    (session,) = rig.sessions()
    assert session["messages"] == [SMALL]


# -- the job's own files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: (d / "clip.mp4").write_bytes(b""), "these files are empty: clip.mp4"),
        (lambda d: (d / "notes.pdf").write_bytes(b"%PDF"), "not media the backend accepts: notes.pdf"),
        (
            lambda d: (d / "IMG_0042.HEIC").write_bytes(b"\0\0\0\x18ftypheic"),
            "iPhone photos are HEIC: share them as JPEG",
        ),
        (
            lambda d: (d / "secret.jpg").symlink_to("/etc/hostname"),
            "outside the job folder and are not sent: secret.jpg",
        ),
        (lambda d: (d / "prompt.txt").write_text(" \n---\n"), "prompt.txt is empty"),
    ],
)
async def test_a_bad_file_fails_the_job_naming_it_before_anything_is_sent(
    rig: Rig, make: Any, expected: str
) -> None:
    job = rig.job("bad", SMALL)
    make(job.files_dir)
    assert await rig.pipeline().run(job.id) is JobState.FAILED
    job = rig.journal.get(job.id)
    assert expected in (job.outbox_dir / "FAILED.txt").read_text(encoding="utf-8")
    assert expected in rig.status(job)
    expected_code = "bad_prompt" if "prompt.txt" in expected else "bad_media"
    assert rig.result(job)["error"]["code"] == expected_code
    assert rig.sessions() == []
    assert (job.outbox_dir / "inputs").is_dir()


async def test_a_message_over_64_kb_fails_the_job_before_anything_is_sent_and_keeps_its_inputs(
    rig: Rig,
) -> None:
    prompt = SMALL + "\n---\n" + "Lovely bread. " * 5000  # the second message: 70 000 bytes
    job = rig.job("long", prompt)
    assert await rig.pipeline().run(job.id) is JobState.FAILED
    job = rig.journal.get(job.id)
    failed = (job.outbox_dir / "FAILED.txt").read_text(encoding="utf-8")
    assert "What went wrong: prompt too long: 70 kB, at most 64 kB (message 2 of 2).\n" in failed
    assert (
        "What to do: shorten prompt.txt or split it into messages with a line `---` between them." in failed
    )
    assert "Traceback" not in failed
    assert "prompt too long: 70 kB, at most 64 kB (message 2 of 2)" in rig.status(job)
    assert rig.result(job)["error"]["code"] == "prompt_too_long"
    assert rig.sessions() == []  # refused before a session was made: nothing reached the backend
    inputs = job.outbox_dir / "inputs"
    assert (inputs / "prompt.txt").read_text(encoding="utf-8") == prompt
    assert sorted(p.name for p in inputs.iterdir()) == ["10.jpg", "2.jpg", "prompt.txt"]


# -- the cloud's failure paths (mocked cloud) -------------------------------------------------------

BASE = "https://api.nemo.test"
CDN = "https://cdn.nemo.test"
READY_DRAFT = {"d": 1000, "t": [{"tt": 0, "m": {"name": "clip"}, "sg": [{"st": 0, "d": 1000}]}]}


@pytest.fixture(scope="module")
def tiny_mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 1-second 320x180 H.264 MP4, what the cloud's CDN would hand out."""
    out = tmp_path_factory.mktemp("cdn") / "video.mp4"
    subprocess.run(
        [
            *(ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=navy:s=320x180:d=1:r=10"),
            *("-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)),
        ],
        check=True,
        timeout=120,
    )
    return out.read_bytes()


def envelope(data: Any, code: int = 0, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "data": data, "msg": "ok" if code == 0 else "error"})


def stream(*frames: bytes | BaseException) -> httpx.Response:
    """An SSE response; an exception in the list cuts the connection at that point."""

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for item in frames:
                if isinstance(item, BaseException):
                    raise item
                yield item

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Body())


def event(part: dict[str, Any]) -> bytes:
    body = {
        "content": {"role": "model", "parts": [part]},
        "author": "nemo_agent",
        "partial": False,
        "id": "e1",
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@dataclass
class Cloud:
    """A scripted NemoVideo cloud: sessions, drafts, and what /run_sse answers each time."""

    video: bytes
    replies: list[Any] = field(default_factory=list)  # per /run_sse call: "text", or an httpx.Response
    drafts: dict[str, Any] = field(default_factory=dict)
    sessions: int = 0
    sent: list[tuple[str, str]] = field(default_factory=list)  # (session id, text) of every /run_sse call

    def install(self, mock: Any) -> None:
        mock.get("/api/credits/balance/simple").mock(
            return_value=envelope({"available": 500, "frozen": 0, "total": 500})
        )
        mock.post("/api/tasks/me/with-session/nemo_agent").mock(side_effect=self.create)
        self.upload = mock.post(url__regex=r"/api/upload-video/nemo_agent/me/.+").mock(
            return_value=envelope({"files": [{"name": "x"}]})
        )
        mock.get(url__regex=r"/api/state/nemo_agent/me/(?P<sid>[^/]+)/latest").mock(side_effect=self.state)
        self.run_sse = mock.post("/run_sse").mock(side_effect=self.message)
        mock.post("/api/render/proxy/lambda").mock(return_value=envelope({"status": "pending"}))
        self.render_status = mock.get(url__regex=r"/api/render/proxy/lambda/.+").mock(
            return_value=httpx.Response(
                200, json={"status": "completed", "progress": 100, "output": {"url": f"{CDN}/v.mp4"}}
            )
        )
        mock.get(f"{CDN}/v.mp4").mock(
            return_value=httpx.Response(200, content=self.video, headers={"content-type": "video/mp4"})
        )
        mock.post("/api/auth/claim-token").mock(return_value=envelope({"claim_token": "clm_test"}))

    def create(self, request: httpx.Request) -> httpx.Response:
        self.sessions += 1
        return envelope({"task_id": f"task-{self.sessions}", "session_id": f"sess-{self.sessions}"})

    def state(self, request: httpx.Request, sid: str) -> httpx.Response:
        return envelope({"state": {"draft": self.drafts.get(sid)}})

    def message(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sid, text = body["session_id"], body["new_message"]["parts"][0]["text"]
        self.sent.append((sid, text))
        answer = self.replies.pop(0) if self.replies else "Done: your video is ready."
        if isinstance(answer, httpx.Response):
            return answer
        self.drafts[sid] = READY_DRAFT
        return stream(event({"text": answer}))


@pytest.fixture
async def cloud_rig(tmp_path: Path, tiny_mp4: bytes) -> AsyncIterator[tuple[Rig, Cloud]]:
    import respx

    cloud = Cloud(tiny_mp4)
    settings = client_settings(
        tmp_path, BASE, web_url="https://web.nemo.test", user_token="user-token-123456"
    )
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        cloud.install(mock)
        async with NemoClient(settings) as client:
            made = Rig(tmp_path, client)
            try:
                yield made, cloud
            finally:
                made.journal.close()


async def test_a_lost_session_is_recreated_and_files_and_messages_are_replayed(
    cloud_rig: tuple[Rig, Cloud],
) -> None:
    rig, cloud = cloud_rig
    lost = httpx.Response(200, json={"code": 1002, "data": None, "msg": "session not found"})
    cloud.replies = ["Made the first cut.", lost]
    job = rig.job("replay", "First cut\n---\nSecond pass", photos=("a.jpg",))
    assert await rig.pipeline().run(job.id) is JobState.DONE
    # Message 2 hit the lost session; the new session got the file and both messages again.
    assert cloud.sent == [
        ("sess-1", "First cut"),
        ("sess-1", "Second pass"),
        ("sess-2", "First cut"),
        ("sess-2", "Second pass"),
    ]
    assert cloud.upload.call_count == 2
    result = rig.result(job)
    assert result["session_id"] == "sess-2"
    assert result["videos"][0]["width"] == 320 and result["videos"][0]["height"] == 180
    assert result["project_url"] == "https://web.nemo.test/workspace/claim?ct=clm_test"


async def test_a_dropped_stream_with_no_change_fails_with_the_retry_hint_and_is_not_resent(
    cloud_rig: tuple[Rig, Cloud],
) -> None:
    rig, cloud = cloud_rig
    cut = stream(event({"functionCall": {"id": "c1", "name": "edit", "args": {}}}), httpx.ReadError("gone"))
    cloud.replies = [cut]
    job = rig.job("cut", "Make a video", photos=())
    assert await rig.pipeline().run(job.id) is JobState.FAILED
    assert cloud.run_sse.call_count == 1
    job = rig.journal.get(job.id)
    failed = (job.outbox_dir / "FAILED.txt").read_text(encoding="utf-8")
    assert "the backend did not confirm message 1" in failed
    assert "nothing was sent twice — run `nemowatch retry cut` to send it again" in failed
    assert rig.result(job)["error"]["code"] == "message_unconfirmed"


async def test_out_of_credits_on_a_message_waits_and_the_rerun_sends_it(cloud_rig: tuple[Rig, Cloud]) -> None:
    rig, cloud = cloud_rig
    cloud.replies = [httpx.Response(403, json={"code": 2001, "data": None, "msg": "insufficient credits"})]
    job = rig.job("poor", "Make a video", photos=())
    assert await rig.pipeline().run(job.id) is JobState.WAITING_CREDITS
    assert (
        rig.status(rig.journal.get(job.id)) == "waiting for credits — 500 available, not enough for message 1"
    )
    assert await rig.pipeline().run(job.id) is JobState.DONE
    assert [text for _, text in cloud.sent] == ["Make a video", "Make a video"]


async def test_a_rate_limited_message_is_sent_once_more_after_waiting(cloud_rig: tuple[Rig, Cloud]) -> None:
    rig, cloud = cloud_rig
    cloud.replies = [httpx.Response(429, json={"detail": "slow down"})]
    job = rig.job("busy", "Make a video", photos=())
    assert await rig.pipeline().run(job.id) is JobState.DONE
    assert cloud.run_sse.call_count == 2


async def test_an_idempotent_call_is_tried_only_by_the_client_then_the_job_waits(
    cloud_rig: tuple[Rig, Cloud],
) -> None:
    rig, cloud = cloud_rig
    cloud.render_status.mock(return_value=envelope(None, code=503, status=503))
    job = rig.job("busy-render", "Make a video", photos=())
    assert await rig.pipeline().run(job.id) is JobState.WAITING_BACKEND
    # The client's retry_attempts (3 here, 5 in production) and not one more: the pipeline does not
    # stack rounds of its own on a call the client already retried.
    assert cloud.render_status.call_count == 3
    assert rig.journal.get(job.id).state is JobState.WAITING_BACKEND


async def test_an_upload_hit_by_a_server_error_is_retried_as_a_step(cloud_rig: tuple[Rig, Cloud]) -> None:
    rig, cloud = cloud_rig
    cloud.upload.side_effect = [envelope(None, code=503, status=503), envelope({"files": []})]
    job = rig.job("flaky-upload", "Make a video", photos=("a.jpg",))
    assert await rig.pipeline().run(job.id) is JobState.DONE
    assert cloud.upload.call_count == 2


# -- one error table for both forms: codes inside the SSE stream ------------------------------------


def stream_error(code: str, message: str) -> httpx.Response:
    """HTTP 200 and a stream whose run reports ``code`` (the in-stream form of an envelope error)."""
    frame = json.dumps({"errorCode": code, "errorMessage": message}).encode()
    return stream(b"data: " + frame + b"\n\n")


async def test_an_in_stream_credits_refusal_waits_for_credits_and_the_rerun_sends_the_message(
    cloud_rig: tuple[Rig, Cloud],
) -> None:
    rig, cloud = cloud_rig
    cloud.replies = [stream_error("2001", "Insufficient credits for this request")]
    job = rig.job("poor-stream", "Make a video", photos=())
    # Waiting for credits at once: no five minutes of "no change yet" reads, no "unconfirmed" failure.
    assert await rig.pipeline().run(job.id) is JobState.WAITING_CREDITS
    assert rig.status(rig.journal.get(job.id)).startswith("waiting for credits — ")
    assert rig.journal.step(job.id, "message:0:sending") is None  # refused: safe to send after the top-up
    assert await rig.pipeline().run(job.id) is JobState.DONE
    assert [text for _, text in cloud.sent] == ["Make a video", "Make a video"]


async def test_an_in_stream_lost_session_is_replayed_like_the_http_form(cloud_rig: tuple[Rig, Cloud]) -> None:
    rig, cloud = cloud_rig
    cloud.replies = [stream_error("1002", "Session not found")]
    job = rig.job("lost-stream", "Make a video", photos=("a.jpg",))
    assert await rig.pipeline().run(job.id) is JobState.DONE
    assert cloud.sent == [("sess-1", "Make a video"), ("sess-2", "Make a video")]
    assert cloud.upload.call_count == 2  # the new session got the file again
    assert rig.result(job)["session_id"] == "sess-2"


async def test_an_in_stream_rate_limit_is_waited_out_and_sent_once_more(cloud_rig: tuple[Rig, Cloud]) -> None:
    rig, cloud = cloud_rig
    cloud.replies = [stream_error("429", "Too many requests")]
    job = rig.job("busy-stream", "Make a video", photos=())
    assert await rig.pipeline().run(job.id) is JobState.DONE
    assert cloud.run_sse.call_count == 2


async def test_an_in_stream_token_error_with_a_users_token_pauses_instead_of_failing(
    cloud_rig: tuple[Rig, Cloud],
) -> None:
    rig, cloud = cloud_rig
    cloud.replies = [stream_error("1001", "Token expired")]
    job = rig.job("token-stream", "Make a video", photos=())
    with pytest.raises(TokenRejected):
        await rig.pipeline().run(job.id)
    assert not (rig.journal.get(job.id).outbox_dir / "FAILED.txt").exists()


async def test_an_unknown_in_stream_error_is_checked_against_the_session_never_resent(
    cloud_rig: tuple[Rig, Cloud],
) -> None:
    rig, cloud = cloud_rig
    unknown = stream_error("5103", "the title stage failed")
    cloud.replies = [unknown]
    job = rig.job("odd-stream", "Make a video", photos=())
    assert await rig.pipeline().run(job.id) is JobState.FAILED  # the draft never changed
    assert cloud.run_sse.call_count == 1
    failed = (rig.journal.get(job.id).outbox_dir / "FAILED.txt").read_text(encoding="utf-8")
    assert "did not confirm message 1 (it reported: the title stage failed (5103))" in failed


# -- passing faults: a backend that does not answer -------------------------------------------------


def restart_server(rig: Rig, tmp_path: Path, port: int) -> RunningServer:
    """The same local backend (same state folder) back on the same port, after an outage."""
    rig.server = start_server(LocalSettings(state_dir=tmp_path / "backend", port=port, heartbeat_s=0.5))
    return rig.server


async def test_an_unreachable_backend_makes_the_job_wait_and_it_finishes_once_it_answers(
    tmp_path: Path, server: RunningServer
) -> None:
    port = httpx.URL(server.url).port
    assert port is not None
    async with NemoClient(client_settings(tmp_path, server.url)) as client:
        rig = Rig(tmp_path, client, server)
        job = rig.job("outage", SMALL)
        server.stop()  # the port now refuses connections, as during a network outage
        assert await rig.pipeline().run(job.id) is JobState.WAITING_BACKEND
        waiting = rig.journal.get(job.id)
        assert waiting.state is JobState.WAITING_BACKEND
        assert re.fullmatch(r"waiting for the backend — unreachable since \d\d:\d\d", rig.status(waiting))
        assert not (job.outbox_dir / "FAILED.txt").exists()
        assert rig.journal.step(job.id, "waiting") is not None  # the patience clock started
        restarted = restart_server(rig, tmp_path, port)
        try:
            assert await rig.pipeline().run(job.id) is JobState.DONE
            assert rig.journal.step(job.id, "waiting") is None  # progress reset it
        finally:
            restarted.stop()
            rig.journal.close()
        assert decodes(job.outbox_dir / "outage.mp4")


async def test_a_backend_away_longer_than_the_patience_fails_the_job_with_true_hints(
    tmp_path: Path, server: RunningServer
) -> None:
    async with NemoClient(client_settings(tmp_path, server.url)) as client:
        rig = Rig(tmp_path, client, server)
        job = rig.job("gone", SMALL)
        server.stop()
        try:
            assert await rig.pipeline(patience_s=0).run(job.id) is JobState.FAILED
        finally:
            rig.journal.close()
    failed = (job.outbox_dir / "FAILED.txt").read_text(encoding="utf-8")
    assert "the backend did not answer from " in failed
    assert "--backend local" in failed and "`nemowatch retry gone`" in failed
    # Nothing is wrong with the files: FAILED.txt must not send the user to fix them.
    assert "fix the files" not in failed
    assert sorted(p.name for p in (job.outbox_dir / "inputs").iterdir()) == ["10.jpg", "2.jpg", "prompt.txt"]


# -- open_backend -----------------------------------------------------------------------------------


async def test_the_local_backend_runs_in_process_on_a_free_port_and_stops_on_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nemowatch.config import load_config
    from nemowatch.daemon.backend import open_backend

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paths]\nstate = "{tmp_path / "state"}"\n[backend]\nkind = "local"\n', encoding="utf-8"
    )
    cloud_token = "cloud-only-token-0123456789"
    cfg = load_config(config, env={"NEMO_TOKEN": cloud_token, "HOME": str(tmp_path / "home")})
    async with open_backend(cfg) as client:
        url = client.settings.base_url
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":8765")
        # The cloud's token is never offered to the local backend: it hands out its own.
        assert client.settings.user_token is None
        assert (await client.credits()).available > 0
        assert (await client.token_info()).anonymous
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)
