"""Tokens: sources in order, the client id file, anonymous tokens, their cache, 1001 handling, masking."""

from __future__ import annotations

import asyncio
import json
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import respx
from loguru import logger

from nemowatch.api import NemoClient, RateLimited, TokenRejected
from nemowatch.api.auth import SOURCE_ANONYMOUS
from nemowatch.errors import UserError
from nemowatch.logs import PLAIN_FORMAT, add_sink, mask
from tests.api_helpers import BASE, TOKEN_PATH, USER_TOKEN, fail, make_settings, ok, token_answer

pytestmark = pytest.mark.respx(base_url=BASE, assert_all_called=False)

CREDITS = "/api/credits/balance/simple"


def anonymous(tmp_path: Path, **changes):
    """Settings with no user token: the client must get an anonymous one."""
    return make_settings(tmp_path, user_token=None, **changes)


def write_cache(
    tmp_path: Path,
    token: str,
    expires_in: timedelta,
    client_id: str,
    base_url: str = BASE,
    age: timedelta | None = None,
) -> None:
    cache = tmp_path / "state" / "token.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    record = {
        "token": token,
        "expires_at": (now + expires_in).isoformat(),
        "client_id": client_id,
        "base_url": base_url,
    }
    if age is not None:
        record["obtained_at"] = (now - age).isoformat()
    cache.write_text(json.dumps(record))


def bearer(route: respx.Route) -> str:
    return route.calls.last.request.headers["Authorization"]


async def test_anonymous_token_is_requested_with_a_new_persisted_client_id_and_then_used(
    tmp_path, respx_mock
):
    token_route = respx_mock.post(TOKEN_PATH).mock(return_value=token_answer("nmv_usr_first"))
    credits = respx_mock.get(CREDITS).mock(return_value=ok({"available": 100, "frozen": 0, "total": 100}))
    settings = anonymous(tmp_path)
    async with NemoClient(settings) as client:
        await client.credits()
    client_id = settings.client_id_file.read_text()
    assert client_id == str(uuid.UUID(client_id.strip())) + "\n"  # only the UUID
    request = token_route.calls.last.request
    assert request.headers["X-Client-Id"] == client_id.strip()
    assert "Authorization" not in request.headers
    assert request.headers["X-Skill-Source"] == "nemowatch"
    assert bearer(credits) == "Bearer nmv_usr_first"


async def test_an_existing_client_id_file_or_setting_is_used_as_is(tmp_path, respx_mock):
    token_route = respx_mock.post(TOKEN_PATH).mock(
        side_effect=[token_answer("nmv_usr_a"), token_answer("nmv_usr_b")]
    )
    settings = anonymous(tmp_path)
    settings.client_id_file.parent.mkdir(parents=True)
    settings.client_id_file.write_text("11111111-2222-4333-8444-555555555555\n")
    async with NemoClient(settings) as client:
        await client.token_info()
    assert token_route.calls[0].request.headers["X-Client-Id"] == "11111111-2222-4333-8444-555555555555"
    explicit = anonymous(tmp_path / "other", client_id="explicit-id")
    async with NemoClient(explicit) as client:
        await client.token_info()
    assert token_route.calls[1].request.headers["X-Client-Id"] == "explicit-id"
    assert not explicit.client_id_file.exists()


async def test_anonymous_token_is_cached_private_with_its_expiry_and_reused(tmp_path, respx_mock):
    token_route = respx_mock.post(TOKEN_PATH).mock(
        return_value=token_answer("nmv_usr_cached", expires_in=3 * 86400)
    )
    settings = anonymous(tmp_path, client_id="cid")
    async with NemoClient(settings) as client:
        info = await client.token_info()
    cache = settings.state_dir / "token.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    saved = json.loads(cache.read_text())
    assert saved["token"] == "nmv_usr_cached" and saved["client_id"] == "cid"
    assert info.anonymous and info.source == SOURCE_ANONYMOUS
    assert timedelta(days=2.9) < info.expires_at - datetime.now(UTC) < timedelta(days=3.1)
    async with NemoClient(settings) as client:  # a restarted daemon
        assert (await client.token_info()).expires_at == info.expires_at
    assert token_route.call_count == 1


async def test_anonymous_tokens_last_seven_days_when_the_answer_does_not_say(tmp_path, respx_mock):
    respx_mock.post(TOKEN_PATH).mock(return_value=token_answer("nmv_usr_x"))
    async with NemoClient(anonymous(tmp_path, client_id="cid")) as client:
        info = await client.token_info()
    assert timedelta(days=6.9) < info.expires_at - datetime.now(UTC) <= timedelta(days=7)


async def test_a_cached_token_near_expiry_is_replaced(tmp_path, respx_mock):
    write_cache(tmp_path, "nmv_usr_old", timedelta(hours=12), "cid")
    respx_mock.post(TOKEN_PATH).mock(return_value=token_answer("nmv_usr_new"))
    credits = respx_mock.get(CREDITS).mock(return_value=ok({"available": 1}))
    async with NemoClient(anonymous(tmp_path, client_id="cid")) as client:
        await client.credits()
    assert bearer(credits) == "Bearer nmv_usr_new"
    assert json.loads((tmp_path / "state" / "token.json").read_text())["token"] == "nmv_usr_new"


async def test_a_cached_token_with_days_left_is_reused_without_a_request(tmp_path, respx_mock):
    write_cache(tmp_path, "nmv_usr_fresh", timedelta(days=3), "cid")
    token_route = respx_mock.post(TOKEN_PATH)
    credits = respx_mock.get(CREDITS).mock(return_value=ok({"available": 1}))
    async with NemoClient(anonymous(tmp_path, client_id="cid")) as client:
        await client.credits()
    assert bearer(credits) == "Bearer nmv_usr_fresh" and not token_route.called


async def test_a_short_lived_token_is_refreshed_in_proportion_to_its_life(tmp_path, respx_mock):
    # Issued for 21 hours with 12 left: far from its end, although under the one-day margin.
    write_cache(tmp_path, "nmv_usr_short", timedelta(hours=12), "cid", age=timedelta(hours=9))
    token_route = respx_mock.post(TOKEN_PATH)
    credits = respx_mock.get(CREDITS).mock(return_value=ok({"available": 1}))
    async with NemoClient(anonymous(tmp_path, client_id="cid")) as client:
        await client.credits()
    assert bearer(credits) == "Bearer nmv_usr_short" and not token_route.called


async def test_a_token_cached_for_another_backend_is_not_used(tmp_path, respx_mock):
    write_cache(tmp_path, "nmv_usr_local", timedelta(days=3), "cid", base_url="http://127.0.0.1:8765")
    respx_mock.post(TOKEN_PATH).mock(return_value=token_answer("nmv_usr_cloud"))
    credits = respx_mock.get(CREDITS).mock(return_value=ok({"available": 1}))
    async with NemoClient(anonymous(tmp_path, client_id="cid")) as client:
        await client.credits()
    assert bearer(credits) == "Bearer nmv_usr_cloud"


async def test_a_rate_limited_renewal_keeps_the_still_valid_token(tmp_path, respx_mock):
    write_cache(tmp_path, "nmv_usr_old", timedelta(hours=12), "cid")
    token_route = respx_mock.post(TOKEN_PATH).mock(return_value=fail(429, status=429))
    credits = respx_mock.get(CREDITS).mock(return_value=ok({"available": 1}))
    async with NemoClient(anonymous(tmp_path, client_id="cid")) as client:
        await client.credits()
    assert bearer(credits) == "Bearer nmv_usr_old"
    assert token_route.call_count == 2  # waited, tried once more


async def test_rate_limit_on_the_token_call_waits_and_retries_once(tmp_path, respx_mock):
    token_route = respx_mock.post(TOKEN_PATH).mock(
        side_effect=[fail(429, status=429), token_answer("nmv_usr_late")]
    )
    async with NemoClient(anonymous(tmp_path, client_id="cid")) as client:
        assert (await client.token_info()).anonymous
    assert token_route.call_count == 2


async def test_rate_limit_twice_on_the_token_call_is_reported(tmp_path, respx_mock):
    respx_mock.post(TOKEN_PATH).mock(return_value=httpx.Response(429, text="slow down"))
    async with NemoClient(anonymous(tmp_path, client_id="cid")) as client:
        with pytest.raises(RateLimited, match="NEMO_TOKEN"):
            await client.token_info()


async def test_http_400_on_the_token_call_gets_a_new_client_id_and_one_retry(tmp_path, respx_mock):
    token_route = respx_mock.post(TOKEN_PATH).mock(
        side_effect=[httpx.Response(400, json={"detail": "X-Client-Id required"}), token_answer("nmv_usr_ok")]
    )
    settings = anonymous(tmp_path)
    settings.client_id_file.parent.mkdir(parents=True)
    settings.client_id_file.write_text("not-accepted")
    async with NemoClient(settings) as client:
        await client.token_info()
    first, second = (call.request.headers["X-Client-Id"] for call in token_route.calls)
    assert first == "not-accepted" and second != first
    assert settings.client_id_file.read_text().strip() == second


async def test_code_1001_with_an_anonymous_token_renews_it_with_the_same_client_id_and_retries(
    tmp_path, respx_mock
):
    token_route = respx_mock.post(TOKEN_PATH).mock(
        side_effect=[token_answer("nmv_usr_one"), token_answer("nmv_usr_two")]
    )
    credits = respx_mock.get(CREDITS).mock(side_effect=[fail(1001), ok({"available": 7})])
    async with NemoClient(anonymous(tmp_path, client_id="same-client")) as client:
        assert (await client.credits()).available == 7
    assert [call.request.headers["X-Client-Id"] for call in token_route.calls] == [
        "same-client",
        "same-client",
    ]
    assert [call.request.headers["Authorization"] for call in credits.calls] == [
        "Bearer nmv_usr_one",
        "Bearer nmv_usr_two",
    ]


async def test_a_fresh_anonymous_token_rejected_again_is_reported_not_looped(tmp_path, respx_mock):
    token_route = respx_mock.post(TOKEN_PATH).mock(
        side_effect=[token_answer("nmv_usr_1"), token_answer("nmv_usr_2")]
    )
    respx_mock.get(CREDITS).mock(return_value=httpx.Response(401, json={"code": 1001, "msg": "bad token"}))
    async with NemoClient(anonymous(tmp_path, client_id="cid")) as client:
        with pytest.raises(TokenRejected, match="freshly issued anonymous token"):
            await client.credits()
    assert token_route.call_count == 2


async def test_concurrent_calls_hitting_1001_cause_a_single_token_request(tmp_path, respx_mock):
    token_route = respx_mock.post(TOKEN_PATH).mock(
        side_effect=[token_answer("nmv_usr_a"), token_answer("nmv_usr_b")]
    )

    def answer(request: httpx.Request) -> httpx.Response:
        return ok({"available": 1}) if request.headers["Authorization"] == "Bearer nmv_usr_b" else fail(1001)

    respx_mock.get(CREDITS).mock(side_effect=answer)
    async with NemoClient(anonymous(tmp_path, client_id="cid")) as client:
        await asyncio.gather(*(client.credits() for _ in range(4)))
    assert token_route.call_count == 2


async def test_code_1001_with_nemo_token_names_the_variable_and_requests_no_anonymous_token(
    tmp_path, respx_mock
):
    token_route = respx_mock.post(TOKEN_PATH)
    respx_mock.get(CREDITS).mock(return_value=fail(1001))
    async with NemoClient(make_settings(tmp_path)) as client:
        with pytest.raises(TokenRejected) as caught:
            await client.credits()
    assert str(caught.value) == (
        "the token in NEMO_TOKEN was rejected by the backend (invalid or expired); "
        "set NEMO_TOKEN to a valid token, or unset it to use a free anonymous token."
    )
    assert not token_route.called


async def test_token_sources_are_tried_in_order(tmp_path, respx_mock):
    credits = respx_mock.get(CREDITS).mock(return_value=ok({"available": 1}))
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "nemo-token").write_text("token-from-credential\n")
    token_file = tmp_path / "token.txt"
    token_file.write_text("token-from-file\n")
    cases = [
        (make_settings(tmp_path, credentials_dir=creds, token_file=token_file), USER_TOKEN, "NEMO_TOKEN"),
        (
            anonymous(tmp_path, credentials_dir=creds, token_file=token_file),
            "token-from-credential",
            "credential",
        ),
        (
            anonymous(tmp_path, credentials_dir=tmp_path / "empty", token_file=token_file),
            "token-from-file",
            "token.txt",
        ),
    ]
    for settings, expected, source in cases:
        async with NemoClient(settings) as client:
            info = await client.token_info()
            await client.credits()
        assert bearer(credits) == f"Bearer {expected}"
        assert source in info.source and not info.anonymous and info.expires_at is None


async def test_a_rejected_token_file_says_which_file(tmp_path, respx_mock):
    token_file = tmp_path / "token.txt"
    token_file.write_text("stale-token-value")
    respx_mock.get(CREDITS).mock(return_value=fail(1001))
    async with NemoClient(anonymous(tmp_path, token_file=token_file)) as client:
        with pytest.raises(TokenRejected, match=r"token\.txt"):
            await client.credits()


async def test_a_configured_token_file_that_is_missing_is_a_user_error(tmp_path):
    async with NemoClient(anonymous(tmp_path, token_file=tmp_path / "nope.txt")) as client:
        with pytest.raises(UserError, match="does not exist"):
            await client.token_info()


async def test_refresh_token_gets_a_new_anonymous_token_now(tmp_path, respx_mock):
    token_route = respx_mock.post(TOKEN_PATH).mock(
        side_effect=[token_answer("nmv_usr_1"), token_answer("nmv_usr_2")]
    )
    credits = respx_mock.get(CREDITS).mock(return_value=ok({"available": 1}))
    async with NemoClient(anonymous(tmp_path, client_id="cid")) as client:
        await client.token_info()
        await client.refresh_token()
        await client.credits()
    assert token_route.call_count == 2 and bearer(credits) == "Bearer nmv_usr_2"


async def test_refresh_token_checks_a_user_token_against_the_backend(tmp_path, respx_mock):
    respx_mock.get(CREDITS).mock(return_value=fail(1001))
    async with NemoClient(make_settings(tmp_path)) as client:
        with pytest.raises(TokenRejected):
            await client.refresh_token()


async def test_no_token_reaches_a_log_line(tmp_path, respx_mock):
    lines: list[str] = []
    sink = add_sink(lines.append, PLAIN_FORMAT, level="DEBUG")
    try:
        respx_mock.post(TOKEN_PATH).mock(
            side_effect=[token_answer("opaque-anon-token-1"), token_answer("opaque-anon-token-2")]
        )
        respx_mock.get(CREDITS).mock(
            side_effect=[fail(1001, msg="token opaque-anon-token-1 expired"), ok({"available": 1})]
        )
        async with NemoClient(anonymous(tmp_path, client_id="cid")) as client:
            await client.credits()
    finally:
        logger.remove(sink)
    text = "".join(lines)
    assert "anonymous token" in text
    assert "opaque-anon-token" not in text
    # Registered as secrets: masked in any later log line, whatever code logs them.
    assert mask("a opaque-anon-token-1 b opaque-anon-token-2") == "a *** b ***"
