"""Bounded work for any message: the local director on adversarial prompts at the 64 kB limit.

Each input of tests/adversarial.py once made a pattern quadratic or worse (a 64 kB one ran for
minutes to hours in a thread nobody can cancel). Here each must simply finish and give an answer;
the timeout is a hang guard, not a speed target: figures come from bench/prompt_bench.py.
"""

from __future__ import annotations

import re

import pytest

from nemowatch.api.formats import MAX_MESSAGE_BYTES, message_bytes
from nemowatch.local.director import GENERATION_COST, direct
from nemowatch.local.intent import _without_placeholders, parse
from tests.adversarial import ADVERSARIAL


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_an_adversarial_message_at_the_limit_is_directed(name: str) -> None:
    text = ADVERSARIAL[name][1](MAX_MESSAGE_BYTES)
    assert MAX_MESSAGE_BYTES - 100 < message_bytes(text) <= MAX_MESSAGE_BYTES  # at the limit, not below it
    direction = direct(text, [], None, title_hint="Bakery")
    # The message is understood as a text-card video (it has a title to show) or answered in words.
    assert direction.reply
    if direction.draft is not None:
        assert direction.cost == GENERATION_COST and direction.draft["d"] > 0


@pytest.mark.timeout(20)
def test_an_edit_at_the_limit_is_directed_against_an_existing_video() -> None:
    first = direct("a 10-second video about bread", [], None, title_hint="Bakery")
    assert first.draft is not None
    for name in ("newlines after title", "spaces after duration", "repeated transition"):
        edit = direct(ADVERSARIAL[name][1](MAX_MESSAGE_BYTES), [], first.draft, title_hint="Bakery")
        assert edit.reply


def test_a_number_too_long_for_a_float_is_not_a_length() -> None:
    # float("1" * 400) is infinity; it used to crash the director (OverflowError) on any length.
    assert parse("1" * 400 + " seconds").duration_s is None
    direction = direct("1" * 400 + " seconds about bread", [], None, title_hint="Bakery")
    assert direction.draft is not None and direction.draft["d"] > 0


def test_a_duration_far_after_each_photo_is_the_video_length() -> None:
    # "each photo for" is looked for just before a duration, not anywhere before it.
    intent = parse("each photo for 3 seconds. " + "Lovely bread. " * 2000 + "Make it 20 seconds")
    assert (intent.shot_s, intent.duration_s) == (3.0, 20.0)


@pytest.mark.parametrize(
    "text",
    [
        "A video about [product] for <audience>, see [link]",
        "[a [b] c] <d <e> f> [unclosed <also",
        "x] ]y[ <[>]",
        "[" * 50 + "]" + "<" * 20,
        "no placeholders at all",
        "",
    ],
)
def test_placeholders_are_masked_exactly_as_the_pattern_did(text: str) -> None:
    assert _without_placeholders(text) == re.sub(r"\[[^\]]*\]|<[^>]*>", " ", text)
