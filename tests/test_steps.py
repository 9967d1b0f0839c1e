"""The write-ahead protocol (daemon/steps.py): the stored form existing journals hold, its readers, and
the retry policy's share in the pipeline (faults.StepRetry)."""

from __future__ import annotations

from nemowatch.api.errors import BackendUnreachable, NemoError, RateLimited, ServerError
from nemowatch.daemon import steps
from nemowatch.daemon.faults import StepRetry


def error(kind: type[NemoError], **extra: object) -> NemoError:
    return kind("the backend said no", "try later", code="test", **extra)  # type: ignore[arg-type]


def test_the_keys_are_the_ones_existing_journals_hold() -> None:
    assert [step.key for step in (steps.RUN, steps.SESSION, steps.OUTBOX, steps.WAITING)] == [
        "run",
        "session",
        "outbox",
        "waiting",
    ]
    assert steps.UPLOAD("clips/a:b.mp4").key == "upload:clips/a:b.mp4"
    assert steps.SENDING(0).key == "message:0:sending"
    assert steps.SENT(3).key == "message:3:sent"
    assert steps.SUBMITTING(1).key == "render:1:submitting"
    assert steps.SUBMITTED(1).key == "render:1:submitted"
    assert steps.RENDER_FAILED(1).key == "render:1:failed"
    assert steps.RENDER_DONE(1).key == "render:1:done"
    assert steps.DOWNLOAD(2).key == "download:2"
    assert steps.message_returned(0) == "message:0:returned"
    assert steps.render_returned(0) == "render:0:returned"


def test_the_values_are_stored_as_before_and_read_back_typed() -> None:
    assert steps.Upload(done=False).to_json() == {"done": False}
    assert steps.Upload(done=True, bytes=12).to_json() == {"done": True, "bytes": 12}
    assert steps.Sent(reply="ok", completed=True).to_json() == {"reply": "ok", "completed": True}
    recovered = {"reply": "", "completed": False, "recovered": True}
    assert steps.Sent(reply="", completed=False, recovered=True).to_json() == recovered
    assert steps.SENT(0).load(recovered) == steps.Sent(reply="", completed=False, recovered=True)
    assert steps.Run(started_at="t").to_json() == {"started_at": "t", "credits_before": None}
    assert steps.RenderRef(render_id="r").to_json() == {"render_id": "r", "timeline": None}
    assert steps.OutboxWritten().to_json() == {"written": True}
    # A record written by an older version, without the later "timeline": read with its default.
    assert steps.SUBMITTED(0).load({"render_id": "r"}) == steps.RenderRef(render_id="r")
    assert steps.SESSION.load(None) is None


def test_indexed_values_come_in_message_order_and_result_facts_are_read_from_the_steps() -> None:
    stored = {
        "session": {"task_id": "t", "session_id": "s"},
        "message:10:sent": {"reply": "eleventh", "completed": True},
        "message:2:sent": {"reply": "third", "completed": True},
        "message:2:sending": {"draft_hash_before": "h"},
        "render:2:submitted": {"render_id": "r2", "timeline": "early"},
        "render:10:submitted": {"render_id": "r10", "timeline": "late"},
    }
    recorded = steps.Recorded.read(stored)
    assert recorded.replies == ["third", "eleventh"]
    assert [ref.timeline for ref in recorded.submitted] == ["early", "late"]
    assert recorded.session == steps.Session(task_id="t", session_id="s")
    assert recorded.run is None and recorded.downloads == []


def test_a_lost_session_voids_its_uploads_and_messages_but_not_the_videos() -> None:
    stored = {
        key: {}
        for key in (
            "run",
            "session",
            "upload:a.jpg",
            "message:0:sending",
            "message:0:sent",
            "render:0:done",
            "download:0",
        )
    }
    assert steps.lost_with_session(stored) == [
        "session",
        "upload:a.jpg",
        "message:0:sending",
        "message:0:sent",
    ]


def test_a_call_the_client_retried_is_not_repeated_by_the_step() -> None:
    tries = StepRetry().tries(client_retried=True)
    assert tries.wait_before_next(error(ServerError), backend_down=False) is None
    assert (
        StepRetry().tries(client_retried=True).wait_before_next(error(RateLimited), backend_down=False)
        is None
    )


def test_a_repeatable_step_gets_its_attempts_and_one_rate_limit_wait() -> None:
    policy = StepRetry(attempts=3, wait_s=7, rate_limit_wait_s=11)
    tries = policy.tries(client_retried=False)
    assert tries.wait_before_next(error(ServerError), backend_down=False) == 7
    assert tries.wait_before_next(error(ServerError), backend_down=False) == 7
    assert tries.wait_before_next(error(ServerError), backend_down=False) is None  # three tries in all
    limited = policy.tries(client_retried=False)
    assert limited.wait_before_next(error(RateLimited, retry_after=2.0), backend_down=False) == 2.0
    assert limited.wait_before_next(error(RateLimited), backend_down=False) is None
    assert policy.tries(client_retried=False).wait_before_next(error(RateLimited), backend_down=False) == 11


def test_no_step_repeats_a_call_when_no_connection_was_made_or_the_backend_is_known_down() -> None:
    tries = StepRetry().tries(client_retried=False)
    assert tries.wait_before_next(error(BackendUnreachable), backend_down=False) is None
    assert (
        StepRetry().tries(client_retried=False).wait_before_next(error(ServerError), backend_down=True)
        is None
    )


def test_retry_drops_the_run_the_patience_clock_and_every_record_of_an_unfinished_render() -> None:
    stored = {
        key: {}
        for key in (
            "run",
            "waiting",
            "render:0:submitted",
            "render:0:done",
            "render:1:submitting",
            "render:1:submitted",
            "message:0:sending",
            "message:0:sent",
            "download:0",
        )
    }
    assert sorted(steps.unfinished(stored)) == ["render:1:submitted", "render:1:submitting", "run", "waiting"]
