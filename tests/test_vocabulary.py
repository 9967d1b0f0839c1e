"""The vocabulary is the one list of moods, grades, transitions, aspects and resolutions: the
parser, the replies, the renderer and the music bed all cover exactly its entries."""

from __future__ import annotations

import pytest

from nemowatch.local import graph as g
from nemowatch.local.intent import parse
from nemowatch.local.music import STYLES
from nemowatch.local.vocabulary import (
    ASPECTS,
    EN,
    GRADES,
    MOODS,
    SIZES,
    TRANSITIONS,
    ZH,
    aspect_of,
    label,
    palette,
)


def test_every_mood_has_a_music_style_and_no_style_lacks_a_mood() -> None:
    assert set(STYLES) == {mood.name for mood in MOODS}


def test_every_transition_is_one_ffmpeg_knows() -> None:
    assert {t.name for t in TRANSITIONS} <= g.XFADE_TRANSITIONS


def test_every_grade_is_rendered_and_named_in_both_languages() -> None:
    for grade in GRADES:
        assert g.grade(grade.name) == grade.filters
        assert grade.labels[EN] and grade.labels[ZH]
    assert g.grade("sepia") is None and g.grade(None) is None


@pytest.mark.parametrize(
    ("prompt", "field", "value"),
    [
        ("make it lo-fi", "mood", "lofi"),
        ("音乐舒缓一点", "mood", "calm"),
        ("black and white please", "grade", "bw"),
        ("暖色调", "grade", "warm"),
        ("use wipe transitions", "transition", "wipeleft"),
        ("加上淡入淡出转场", "transition", "fade"),
        ("switch to vertical", "aspect", "9:16"),
        ("改成正方形", "aspect", "1:1"),
        ("in 360p", "height", 360),
    ],
)
def test_the_parser_reads_the_vocabulary_words(prompt: str, field: str, value: object) -> None:
    assert getattr(parse(prompt), field) == value


def test_frame_sizes_follow_the_aspect_with_the_height_as_short_side() -> None:
    assert SIZES[("16:9", 1080)] == (1920, 1080)
    assert SIZES[("9:16", 720)] == (720, 1280)
    assert SIZES[("1:1", 180)] == (180, 180)
    assert len(SIZES) == len(ASPECTS) * 4


def test_a_frame_size_is_read_back_as_the_aspect_of_its_shape() -> None:
    assert [aspect_of(1280, 720), aspect_of(720, 1280), aspect_of(500, 500)] == ["16:9", "9:16", "1:1"]
    assert aspect_of(1000, 999) == "16:9"  # any wider frame: the nearest named shape


def test_a_grade_picks_the_card_colours_before_the_mood() -> None:
    warm = next(grade for grade in GRADES if grade.name == "warm")
    calm = next(mood for mood in MOODS if mood.name == "calm")
    assert palette("warm", "calm") == warm.palette
    assert palette(None, "calm") == calm.palette
    assert palette(None, "unknown") == palette(None, "upbeat")


def test_labels_fall_back_to_english_then_to_the_name() -> None:
    moods = {mood.name: mood for mood in MOODS}
    assert label(moods, ZH, "lofi") == "Lo-fi"
    assert label(moods, "fr", "calm") == "calm"
    assert label(moods, EN, "polka") == "polka"
