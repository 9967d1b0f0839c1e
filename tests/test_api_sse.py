"""send_message: the ADK event stream of /run_sse as the daemon sees it (respx plays the cloud)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from loguru import logger

from nemowatch.api import (
    BackendUnreachable,
    BadRequest,
    Event,
    Heartbeat,
    MessageResult,
    NemoClient,
    OutOfCredits,
    SessionNotFound,
    StreamError,
    StreamFailed,
    TextReply,
    ToolCall,
    ToolResult,
)
from nemowatch.api.events import Comment, SSEDecoder
from nemowatch.logs import PLAIN_FORMAT, add_sink
from tests.api_helpers import (
    BASE,
    TOKEN_PATH,
    USER_TOKEN,
    fail,
    frame,
    make_settings,
    sse,
    text_event,
    token_answer,
)

pytestmark = pytest.mark.respx(base_url=BASE, assert_all_called=False)


async def send(
    tmp_path: Path, respx_mock: respx.MockRouter, *responses: Any, **settings: Any
) -> tuple[MessageResult, list[Event]]:
    """Send one message against the given /run_sse answers; returns the result and every event seen."""
    respx_mock.post("/run_sse", name="run_sse").mock(side_effect=list(responses))
    events: list[Event] = []
    async with NemoClient(make_settings(tmp_path, **settings)) as client:
        result = await client.send_message("sess-1", "make a video", on_event=events.append)
    return result, events


async def test_reply_text_is_returned_and_the_request_has_the_documented_body(tmp_path, respx_mock):
    result, events = await send(tmp_path, respx_mock, sse(frame(text_event("Here is your video."))))
    assert result.text == "Here is your video."
    assert result.completed and result.error is None and result.events == 1
    assert events == [TextReply("Here is your video.", partial=False)]
    request = respx_mock.routes["run_sse"].calls.last.request
    assert json.loads(request.content) == {
        "app_name": "nemo_agent",
        "user_id": "me",
        "session_id": "sess-1",
        "new_message": {"parts": [{"text": "make a video"}]},
    }
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Authorization"] == f"Bearer {USER_TOKEN}"
    assert request.headers["X-Skill-Source"] == "nemowatch"


async def test_thought_parts_are_not_part_of_the_reply(tmp_path, respx_mock):
    thinking = text_event("I should add music", thought=True, event_id="a")
    result, _ = await send(
        tmp_path, respx_mock, sse(frame(thinking), frame(text_event("Added music.", event_id="b")))
    )
    assert result.text == "Added music."


async def test_tool_calls_are_counted_once_per_call_id_and_results_are_reported(tmp_path, respx_mock):
    call = {"functionCall": {"id": "call-1", "name": "generate_video", "args": {"style": "lofi"}}}
    partial_call = {"content": {"role": "model", "parts": [call]}, "partial": True, "id": "e1"}
    final_call = {"content": {"role": "model", "parts": [call]}, "partial": False, "id": "e2"}
    result_event = {
        "content": {
            "role": "user",
            "parts": [
                {"functionResponse": {"id": "call-1", "name": "generate_video", "response": {"ok": True}}}
            ],
        },
        "id": "e3",
    }
    result, events = await send(
        tmp_path,
        respx_mock,
        sse(
            frame(partial_call),
            frame(final_call),
            frame(result_event),
            frame(text_event("Done.", event_id="e4")),
        ),
    )
    assert result.tool_calls == 1
    assert [e for e in events if isinstance(e, ToolCall)] == [
        ToolCall("call-1", "generate_video", {"style": "lofi"})
    ]
    assert [e for e in events if isinstance(e, ToolResult)] == [
        ToolResult("call-1", "generate_video", {"ok": True})
    ]
    assert result.text == "Done."


async def test_all_three_heartbeat_forms_keep_the_stream_alive(tmp_path, respx_mock):
    result, events = await send(
        tmp_path,
        respx_mock,
        sse(b"event: heartbeat\ndata: {}\n\n", b"data:\n\n", b": ping\n\n", frame(text_event("Still here."))),
    )
    assert result.text == "Still here." and result.completed
    assert events.count(Heartbeat()) == 3
    assert result.events == 1  # heartbeats are not events


async def test_streamed_chunks_are_replaced_by_the_final_text_not_added_to_it(tmp_path, respx_mock):
    chunk1 = text_event("Your video ", partial=True, event_id="same")
    chunk2 = {**text_event("is ready.", partial=True, event_id="same"), "finishReason": "STOP"}
    final = text_event("Your video is ready.", event_id="same")
    result, events = await send(tmp_path, respx_mock, sse(frame(chunk1), frame(chunk2), frame(final)))
    assert result.text == "Your video is ready."
    assert [e for e in events if isinstance(e, TextReply)][-1] == TextReply("Your video is ready.")


async def test_separate_replies_are_kept_and_a_repeated_event_id_replaces_its_text(tmp_path, respx_mock):
    result, _ = await send(
        tmp_path,
        respx_mock,
        sse(
            frame(text_event("Uploading your clips.", event_id="one")),
            frame(text_event("Generated the video.", event_id="two")),
            frame(text_event("Generated the video with music.", event_id="two")),
        ),
    )
    assert result.text == "Uploading your clips.\n\nGenerated the video with music."


async def test_an_error_frame_is_reported_in_the_result_not_raised(tmp_path, respx_mock):
    error = {"error": "model overloaded", "error_details": {"retryable": True}}
    result, events = await send(tmp_path, respx_mock, sse(frame(text_event("Working")), frame(error)))
    assert result.completed and result.error == "model overloaded"
    assert StreamError("model overloaded", {"retryable": True}) in events
    with pytest.raises(StreamFailed, match="model overloaded"):
        result.raise_for_error()


async def test_an_event_with_error_code_is_reported_in_the_result(tmp_path, respx_mock):
    event = {"errorCode": "MALFORMED_FUNCTION_CALL", "errorMessage": "bad call", "id": "x", "actions": {}}
    result, _ = await send(tmp_path, respx_mock, sse(frame(event)))
    assert result.error == "bad call (MALFORMED_FUNCTION_CALL)"


async def test_an_error_event_of_unknown_shape_is_still_an_error(tmp_path, respx_mock):
    result, _ = await send(
        tmp_path, respx_mock, sse(b'event: error\ndata: {"message": "quota", "code": 7}\n\n')
    )
    assert result.error == "quota (7)"


async def test_a_frame_that_is_not_json_is_skipped_and_unknown_keys_are_ignored(tmp_path, respx_mock):
    odd = {**text_event("Fine."), "brandNewKey": {"x": 1}, "actions": {"stateDelta": {"a": 1}}}
    result, _ = await send(tmp_path, respx_mock, sse(b"data: <html>oops\n\n", b"data: [DONE\n\n", frame(odd)))
    assert result.text == "Fine." and result.completed and result.error is None


async def test_a_stream_that_closes_without_text_is_a_completed_silent_edit(tmp_path, respx_mock):
    event = {"content": None, "actions": {"stateDelta": {"draft": 1}}, "id": "q"}
    result, _ = await send(tmp_path, respx_mock, sse(frame(event)))
    assert result.completed and result.text == "" and result.error is None and result.events == 1


async def test_a_dropped_stream_returns_incomplete_and_is_never_resent(tmp_path, respx_mock):
    dropped = sse(frame(text_event("Generating", partial=True)), httpx.RemoteProtocolError("peer closed"))
    result, _ = await send(tmp_path, respx_mock, dropped, sse(frame(text_event("second send"))))
    assert not result.completed
    assert result.text == "Generating"
    assert respx_mock.routes["run_sse"].call_count == 1


async def test_a_connection_lost_before_the_answer_is_not_resent(tmp_path, respx_mock):
    result, _ = await send(tmp_path, respx_mock, httpx.ReadTimeout("no answer"), sse(frame(text_event("x"))))
    assert not result.completed and result.text == ""
    assert respx_mock.routes["run_sse"].call_count == 1


async def test_a_message_that_could_not_connect_at_all_is_retried(tmp_path, respx_mock):
    result, _ = await send(tmp_path, respx_mock, httpx.ConnectError("refused"), sse(frame(text_event("Hi."))))
    assert result.text == "Hi." and respx_mock.routes["run_sse"].call_count == 2


async def test_a_backend_that_never_accepts_the_connection_is_unreachable(tmp_path, respx_mock):
    with pytest.raises(BackendUnreachable, match=r"cannot reach.*api\.nemo\.test"):
        await send(tmp_path, respx_mock, *[httpx.ConnectError("refused")] * 3)


async def test_heartbeats_alone_end_in_a_timeout_and_still_working_is_logged(tmp_path, respx_mock):
    lines: list[str] = []
    sink = add_sink(lines.append, PLAIN_FORMAT, level="INFO")
    stream = sse(frame(text_event("Starting", event_id="s")), b": ping\n\n", forever=True)
    try:
        result, events = await send(
            tmp_path, respx_mock, stream, sse_idle_timeout_s=0.2, still_working_every_s=0.05
        )
    finally:
        logger.remove(sink)
    assert not result.completed
    assert result.text == "Starting"
    assert Heartbeat() in events
    assert any("still working" in line for line in lines)
    assert any("only heartbeats" in line for line in lines)


async def test_the_overall_time_limit_ends_a_busy_stream(tmp_path, respx_mock):
    busy = sse(
        *[item for i in range(200) for item in (frame(text_event(f"{i}", partial=True, event_id="p")), 0.01)]
    )
    result, _ = await send(tmp_path, respx_mock, busy, sse_timeout_s=0.3)
    assert not result.completed


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(404, text="Not Found"), SessionNotFound),
        (httpx.Response(422, json={"detail": [{"msg": "field required"}]}), BadRequest),
        (fail(1002), SessionNotFound),
        (fail(2001, status=402), OutOfCredits),
    ],
)
async def test_errors_before_the_stream_starts_raise_and_are_not_retried(tmp_path, respx_mock, answer, error):
    with pytest.raises(error):
        await send(tmp_path, respx_mock, answer, sse(frame(text_event("x"))))
    assert respx_mock.routes["run_sse"].call_count == 1


def test_sse_decoder_handles_lines_split_across_chunks_and_crlf():
    decoder = SSEDecoder()
    frames = decoder.feed('data: {"a"') + decoder.feed(": 1}\r") + decoder.feed("\n\r\n: hi\n")
    assert [getattr(f, "data", None) for f in frames] == ['{"a": 1}', None]
    assert frames[1] == Comment("hi")
    assert [f.data for f in decoder.feed("data: tail") + decoder.close()] == ["tail"]


async def test_a_message_refused_for_an_expired_anonymous_token_is_sent_again_with_a_new_one(
    tmp_path, respx_mock
):
    # 1001 comes before the run starts: the backend refused the message, so sending it again is safe.
    respx_mock.post(TOKEN_PATH).mock(side_effect=[token_answer("nmv_usr_old"), token_answer("nmv_usr_new")])
    route = respx_mock.post("/run_sse").mock(
        side_effect=[fail(1001, status=401), sse(frame(text_event("Done.")))]
    )
    async with NemoClient(make_settings(tmp_path, user_token=None, client_id="cid")) as client:
        result = await client.send_message("sess-1", "hello")
    assert result.text == "Done."
    assert [call.request.headers["Authorization"] for call in route.calls] == [
        "Bearer nmv_usr_old",
        "Bearer nmv_usr_new",
    ]
