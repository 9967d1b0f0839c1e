"""Every error of the contract, as an HTTP status and as an envelope code with HTTP 200."""

from __future__ import annotations

import httpx
import pytest

from nemowatch.api import (
    BadRequest,
    ExportBlocked,
    FileTooLarge,
    NemoClient,
    NemoError,
    OutOfCredits,
    RateLimited,
    ServerError,
    SessionNotFound,
    UnsupportedFile,
)
from nemowatch.api.errors import parse_envelope
from tests.api_helpers import BASE, TOKEN_PATH, WEB, fail, make_settings, ok, token_answer

pytestmark = pytest.mark.respx(base_url=BASE, assert_all_called=False)

SESSION = "/api/tasks/me/with-session/nemo_agent"


async def create_session_error(tmp_path, respx_mock, answer: httpx.Response, **settings) -> NemoError:
    """The error create_session raises for ``answer`` (a POST: never retried, one call)."""
    route = respx_mock.post(SESSION).mock(return_value=answer)
    async with NemoClient(make_settings(tmp_path, **settings)) as client:
        with pytest.raises(NemoError) as caught:
            await client.create_session()
    assert route.call_count == 1
    return caught.value


BOTH_FORMS = [
    pytest.param(lambda code: fail(code), id="envelope"),
    pytest.param(lambda code: httpx.Response(code, text=""), id="http-status"),
]


@pytest.mark.parametrize("form", BOTH_FORMS)
@pytest.mark.parametrize(
    ("code", "kind", "words"),
    [
        (400, BadRequest, "refused the request"),
        (402, ExportBlocked, "register or upgrade to unlock export"),
        (422, BadRequest, "refused the request"),
        (429, RateLimited, "rate-limiting"),
        (500, ServerError, "usually temporary"),
        (503, ServerError, "error 503"),
    ],
)
async def test_http_codes_map_to_typed_errors_in_both_forms(tmp_path, respx_mock, form, code, kind, words):
    error = await create_session_error(tmp_path, respx_mock, form(code))
    assert type(error) is kind
    assert words in str(error)
    assert "\n" not in str(error) and str(error).endswith(".")


@pytest.mark.parametrize("status", [200, 400])
@pytest.mark.parametrize(
    ("code", "kind"),
    [(1002, SessionNotFound), (2001, OutOfCredits), (4001, UnsupportedFile), (4002, FileTooLarge)],
)
async def test_envelope_codes_decide_whatever_the_http_status(tmp_path, respx_mock, status, code, kind):
    error = await create_session_error(tmp_path, respx_mock, fail(code, status=status))
    assert type(error) is kind and error.api_code == code


async def test_a_session_404_means_the_session_is_gone(tmp_path, respx_mock):
    respx_mock.get("/api/state/nemo_agent/me/s1/latest").mock(
        return_value=httpx.Response(404, text="Not Found")
    )
    async with NemoClient(make_settings(tmp_path)) as client:
        with pytest.raises(SessionNotFound, match="new session"):
            await client.get_state("s1")


async def test_out_of_credits_for_an_anonymous_user_links_to_registration_with_the_bind_id(
    tmp_path, respx_mock
):
    respx_mock.post(TOKEN_PATH).mock(return_value=token_answer("nmv_usr_anon"))
    respx_mock.post(SESSION).mock(return_value=ok({"task_id": "t1", "session_id": "s1", "user_id": "u-77"}))
    respx_mock.post("/api/render/proxy/lambda").mock(return_value=fail(2001, msg="no credits"))
    async with NemoClient(make_settings(tmp_path, user_token=None, client_id="cid")) as client:
        session = await client.create_session()
        with pytest.raises(OutOfCredits) as caught:
            await client.submit_render(session.session_id, {"t": []})
    assert caught.value.link == f"{WEB}/register?bind=u-77"
    assert caught.value.link in str(caught.value) and "waits" in str(caught.value)


async def test_out_of_credits_without_a_bind_id_binds_the_client_id(tmp_path, respx_mock):
    respx_mock.post(TOKEN_PATH).mock(return_value=token_answer("nmv_usr_anon"))
    error = await create_session_error(tmp_path, respx_mock, fail(2001), user_token=None, client_id="cid-9")
    assert isinstance(error, OutOfCredits) and error.link == f"{WEB}/register?bind=cid-9"


async def test_out_of_credits_for_a_registered_user_says_top_up(tmp_path, respx_mock):
    error = await create_session_error(tmp_path, respx_mock, fail(2001))
    assert "top up" in str(error) and "register" not in str(error)


async def test_unsupported_file_lists_the_accepted_formats_and_too_large_says_compress(tmp_path, respx_mock):
    unsupported = await create_session_error(tmp_path, respx_mock, fail(4001))
    assert "mp4 mov avi webm mkv jpg" in unsupported.hint
    respx_mock.routes.clear()
    too_large = await create_session_error(tmp_path, respx_mock, fail(4002))
    assert "compress or trim" in too_large.hint


async def test_export_blocked_is_not_about_credits(tmp_path, respx_mock):
    error = await create_session_error(tmp_path, respx_mock, httpx.Response(402, json={"detail": "plan"}))
    assert "not about credits" in error.message and "register or upgrade" in error.hint


async def test_a_proxy_html_page_is_a_server_error_with_the_status(tmp_path, respx_mock):
    page = httpx.Response(502, html="<html><body><h1>502 Bad Gateway</h1></body></html>")
    error = await create_session_error(tmp_path, respx_mock, page)
    assert isinstance(error, ServerError) and error.http_status == 502


async def test_an_unknown_envelope_code_is_still_a_one_line_error(tmp_path, respx_mock):
    error = await create_session_error(tmp_path, respx_mock, fail(7777, msg="quota\nexceeded"))
    assert type(error) is NemoError and "7777" in str(error) and "\n" not in str(error)


def test_envelope_parsing_tolerates_missing_and_odd_bodies():
    assert parse_envelope(200, b"").ok
    assert parse_envelope(204, b"").data is None
    assert parse_envelope(502, b"<html>bad gateway</html>").error == 502
    assert parse_envelope(200, b'{"code": "1002", "msg": "x"}').error == 1002
    assert parse_envelope(500, b'{"code": 0, "data": {"a": 1}}').data == {"a": 1}
    assert parse_envelope(200, b'{"status": "completed"}').data == {"status": "completed"}
    assert parse_envelope(200, b"[1, 2]").ok
