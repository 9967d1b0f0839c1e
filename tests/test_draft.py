"""Draft helpers: the export-readiness check and the documented timeline summary."""

from __future__ import annotations

from nemowatch.api.draft import duration_ms, is_ready_for_export, timeline_summary


def _doc_example() -> dict:
    return {
        "d": 10000,
        "t": [
            {"tt": 0, "m": {"name": "city timelapse"}, "sg": [{"st": 0, "d": 10000, "m": {}}]},
            {"tt": 1, "m": {"name": "Lo-fi", "role": "bgm", "volume": 0.35}, "sg": [{"st": 0, "d": 10000}]},
            {"tt": 7, "m": {"role": "title"}, "sg": [{"st": 0, "d": 3000, "m": {"text": "Urban Dreams"}}]},
        ],
    }


def test_summary_matches_the_documented_form_exactly() -> None:
    assert timeline_summary(_doc_example()) == (
        "Timeline (3 tracks): 1. Video: city timelapse (0-10s) 2. BGM: Lo-fi (0-10s, 35%) "
        '3. Title: "Urban Dreams" (0-3s)'
    )


def test_summary_spans_overlapping_segments_and_fractional_seconds() -> None:
    draft = {
        "t": [{"tt": 0, "m": {"name": "2 photos"}, "sg": [{"st": 0, "d": 2500}, {"st": 1800, "d": 2500}]}]
    }
    assert timeline_summary(draft) == "Timeline (1 track): 1. Video: 2 photos (0-4.3s)"


def test_summary_tolerates_cloud_drafts_with_unknown_or_missing_keys() -> None:
    draft = {"t": [{"tt": 1, "sg": [{"d": 5000, "x": 1}]}, {"foo": "bar"}, "junk"], "extra": {}}
    assert timeline_summary(draft) == "Timeline (2 tracks): 1. BGM (0-5s) 2. Track (0-0s)"
    assert timeline_summary(None) == "Timeline (0 tracks): empty"


def test_ready_for_export_needs_a_track_with_segments() -> None:
    assert is_ready_for_export(_doc_example())
    assert not is_ready_for_export({"t": [{"tt": 0, "sg": []}]})
    assert not is_ready_for_export({"t": []})
    assert not is_ready_for_export({})
    assert not is_ready_for_export(None)
    assert not is_ready_for_export({"t": "broken"})


def test_duration_prefers_d_and_falls_back_to_the_longest_track() -> None:
    assert duration_ms(_doc_example()) == 10000
    assert duration_ms({"t": [{"tt": 0, "sg": [{"st": 1000, "d": 4000}]}]}) == 5000
