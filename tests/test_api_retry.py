"""What is retried (idempotent reads, connection failures) and what never is (POSTs once sent)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from nemowatch.api import (
    BackendUnreachable,
    ExportBlocked,
    NemoClient,
    RateLimited,
    ServerError,
)
from nemowatch.api.retry import RETRY_AFTER_CAP_S, RetryPolicy, retry_after_seconds
from tests.api_helpers import BASE, fail, make_settings, ok

pytestmark = pytest.mark.respx(base_url=BASE, assert_all_called=False)

CREDITS = "/api/credits/balance/simple"
SESSION = "/api/tasks/me/with-session/nemo_agent"
RENDER = "/api/render/proxy/lambda"


@pytest.fixture
async def client(tmp_path):
    async with NemoClient(make_settings(tmp_path, retry_attempts=4)) as nemo:
        yield nemo


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(503, text="busy"),
        httpx.Response(502, html="<html>Bad Gateway</html>"),
        fail(500),
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("reset"),
    ],
    ids=["503", "502-html", "envelope-500", "429", "read-timeout", "connect-error", "dropped"],
)
async def test_reads_are_retried_after_temporary_failures(client, respx_mock, failure):
    route = respx_mock.get(CREDITS).mock(side_effect=[failure, failure, ok({"available": 3})])
    assert (await client.credits()).available == 3
    assert route.call_count == 3


@pytest.mark.parametrize(
    ("path", "call"),
    [
        ("/api/state/nemo_agent/me/s1/latest", lambda c: c.get_state("s1")),
        ("/api/render/proxy/lambda/r1", lambda c: c.render_status("r1")),
    ],
)
async def test_state_and_render_polls_are_retried(client, respx_mock, path, call):
    route = respx_mock.get(path).mock(
        side_effect=[httpx.Response(500), ok({"status": "pending", "state": {}})]
    )
    await call(client)
    assert route.call_count == 2


async def test_reads_give_up_after_the_configured_attempts(client, respx_mock):
    route = respx_mock.get(CREDITS).mock(return_value=httpx.Response(503))
    with pytest.raises(ServerError):
        await client.credits()
    assert route.call_count == 4


async def test_an_unreachable_backend_is_reported_after_the_attempts(client, respx_mock):
    route = respx_mock.get(CREDITS).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(BackendUnreachable, match=r"api\.nemo\.test"):
        await client.credits()
    assert route.call_count == 4


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(503), httpx.Response(429), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("reset")],
    ids=["503", "429", "read-timeout", "dropped"],
)
@pytest.mark.parametrize(
    ("path", "call"),
    [
        (SESSION, lambda c, tmp: c.create_session()),
        ("/api/auth/claim-token", lambda c, tmp: c.project_link("t", "s")),
        ("/api/upload-video/nemo_agent/me/s1", lambda c, tmp: c.upload_urls("s1", ["https://x.test/a.mp4"])),
    ],
    ids=["create-session", "claim", "upload-urls"],
)
async def test_posts_are_never_retried_once_they_may_have_been_sent(
    client, respx_mock, tmp_path, failure, path, call
):
    route = respx_mock.post(path).mock(side_effect=[failure, ok({"task_id": "t", "session_id": "s"})])
    with pytest.raises((ServerError, RateLimited, BackendUnreachable)):
        await call(client, tmp_path)
    assert route.call_count == 1


async def test_a_post_that_could_not_connect_is_retried(client, respx_mock):
    route = respx_mock.post(SESSION).mock(
        side_effect=[httpx.ConnectError("refused"), ok({"task_id": "t", "session_id": "s"})]
    )
    assert (await client.create_session()).session_id == "s"
    assert route.call_count == 2


async def test_an_upload_that_could_not_connect_is_sent_again_whole(client, respx_mock, tmp_path):
    media = tmp_path / "a.jpg"
    media.write_bytes(b"JPEGDATA" * 1000)
    route = respx_mock.post("/api/upload-video/nemo_agent/me/s1").mock(
        side_effect=[httpx.ConnectError("refused"), ok({})]
    )
    await client.upload_file("s1", media)
    assert route.call_count == 2
    body = route.calls.last.request.content
    assert b"JPEGDATA" * 1000 in body and int(route.calls.last.request.headers["Content-Length"]) == len(body)


async def test_an_upload_is_not_resent_after_a_server_error(client, respx_mock, tmp_path):
    media = tmp_path / "a.jpg"
    media.write_bytes(b"x")
    route = respx_mock.post("/api/upload-video/nemo_agent/me/s1").mock(return_value=httpx.Response(500))
    with pytest.raises(ServerError):
        await client.upload_file("s1", media)
    assert route.call_count == 1


async def test_a_failed_export_is_retried_once_under_a_new_journaled_id(client, respx_mock):
    route = respx_mock.post(RENDER).mock(side_effect=[httpx.Response(500), ok({})])
    journal: list[str] = []

    async def before_submit(render_id: str) -> None:
        journal.append(render_id)
        assert route.call_count == len(journal) - 1  # journaled BEFORE the request goes out

    used = await client.submit_render("s1", {"t": []}, before_submit=before_submit)
    sent = [json.loads(call.request.content)["id"] for call in route.calls]
    assert sent == journal and len(set(sent)) == 2 and used == sent[-1]


async def test_an_export_failing_twice_is_reported(client, respx_mock):
    route = respx_mock.post(RENDER).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(BackendUnreachable):
        await client.submit_render("s1", {"t": []})
    assert route.call_count == 2


async def test_an_export_blocked_by_the_plan_is_not_retried(client, respx_mock):
    route = respx_mock.post(RENDER).mock(return_value=httpx.Response(402))
    journal: list[str] = []
    with pytest.raises(ExportBlocked):
        await client.submit_render("s1", {"t": []}, before_submit=journal.append)
    assert route.call_count == 1 and len(journal) == 1


def test_backoff_doubles_from_the_base_to_the_cap_with_jitter():
    policy = RetryPolicy(base_s=0.5, cap_s=8, attempts=5)
    for attempt, nominal in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert nominal * 0.75 <= min(delays) and max(delays) <= nominal * 1.25
        assert max(delays) - min(delays) > 0  # jittered, so parallel clients do not retry in step


def test_retry_after_is_honoured_up_to_a_minute():
    policy = RetryPolicy(base_s=0.01, cap_s=0.02)
    assert 5 <= policy.delay(0, retry_after=5) <= 5.1
    assert policy.delay(0, retry_after=3600) == RETRY_AFTER_CAP_S
    assert retry_after_seconds("12") == 12
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after_seconds(later) <= 30
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
