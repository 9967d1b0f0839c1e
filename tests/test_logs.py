"""Logging: secrets are masked in every sink, job logs hold only their job's lines, and library
logging (watchdog, uvicorn, httpx) goes through the same masking."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from loguru import logger

from nemowatch.logs import add_job_sink, mask, register_secret, setup_logging


def test_tokens_are_masked_by_shape_and_by_value() -> None:
    register_secret("plain-secret-value-42")
    text = mask("Bearer abc.DEF-1 nmv_usr_XYZ123 ?ct=clm_777 and plain-secret-value-42")
    assert text == "Bearer *** nmv_usr_*** ?ct=*** and ***"


def test_claim_links_can_be_kept_while_tokens_are_still_masked() -> None:
    text = mask("https://w/workspace/claim?ct=clm_777 Bearer abc", keep_claim_links=True)
    assert text == "https://w/workspace/claim?ct=clm_777 Bearer ***"


def test_console_masks_and_library_logging_is_routed_through_it() -> None:
    out = io.StringIO()
    setup_logging(None, level="DEBUG", stderr=out)
    try:
        logger.info("sending Authorization: Bearer nmv_usr_topsecret")
        logging.getLogger("somelib").warning("retrying with token nmv_usr_libsecret")
        logging.getLogger("watchdog.observers.inotify_buffer").error(
            "InotifyEmitter.queue_events() called when the thread is inactive"
        )
    finally:
        setup_logging(None, level="WARNING")
    text = out.getvalue()
    assert "topsecret" not in text and "libsecret" not in text
    assert "somelib: retrying with token nmv_usr_***" in text
    # watchdog's shutdown race is not an error a user should see.
    assert "ERROR" not in text


def test_a_job_log_holds_only_its_own_jobs_lines(tmp_path: Path) -> None:
    sink = add_job_sink("alpha", tmp_path / "alpha.log")
    try:
        logger.bind(job="alpha").info("alpha uploads nmv_usr_jobsecret")
        logger.bind(job="beta").info("beta renders")
        logger.info("daemon line")
    finally:
        logger.remove(sink)
    text = (tmp_path / "alpha.log").read_text()
    assert "alpha uploads nmv_usr_***" in text
    assert "beta" not in text and "daemon line" not in text and "jobsecret" not in text


def test_control_characters_are_escaped_in_every_sink_so_no_line_can_be_forged(tmp_path: Path) -> None:
    name = "clip\n2026-01-01 INFO done\r\x1b[2J\x9b\u2028"
    out = io.StringIO()
    setup_logging(tmp_path, level="INFO", stderr=out)
    job_sink = add_job_sink(name, tmp_path / "job.log")
    try:
        logger.bind(job=name).info(f"job {name} is ready")  # an f-string: the name is in the template
        try:
            raise OSError(f"cannot open {name}")
        except OSError:
            logger.bind(job=name).exception("upload failed")  # and in an exception's text
        logging.getLogger("somelib").warning("saw %s", name)
    finally:
        logger.remove(job_sink)
        setup_logging(None, level="WARNING")
    shown = "clip\\n2026-01-01 INFO done\\r\\x1b[2J\\x9b\\u2028"
    for text in (
        out.getvalue(),
        (tmp_path / "logs" / "nemowatch.log").read_text(),
        (tmp_path / "job.log").read_text(),
    ):
        lines = text.splitlines()
        assert f"job {shown} is ready" in text and f"(OSError: cannot open {shown})" in text
        assert not any(line.startswith("2026-01-01 INFO done") for line in lines), text
        assert not any(char in text for char in "\r\x1b\x9b\u2028"), repr(text)
    assert len(out.getvalue().splitlines()) == 3  # one line per record, whatever the name holds
    assert f"somelib: saw {shown}" in out.getvalue()
