"""The director: every example prompt of the skills users come from (director_examples.py), Chinese prompts, edits, and the timing contract."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from nemowatch.api.draft import TRACK_AUDIO, TRACK_TEXT, TRACK_VIDEO, is_ready_for_export, segments, tracks
from nemowatch.local.director import EDIT_COST, GENERATION_COST, direct
from nemowatch.local.intent import parse, prettify
from nemowatch.local.media import MediaItem, probe
from nemowatch.local.timeline import END_CARD_MS, caption_from_name, find_logo
from nemowatch.local.vocabulary import SIZES
from nemowatch.local.wording import say
from tests.director_examples import TRY_SAYING

# ---------------------------------------------------------------- fixtures and checks


def photo(name: str, *, alpha: bool = False) -> MediaItem:
    return MediaItem(
        id=f"id-{name}",
        name=name,
        path=Path("/media") / name,
        kind="image",
        width=1200,
        height=800,
        has_alpha=alpha,
    )


def clip(name: str, seconds: float, *, sound: bool = True) -> MediaItem:
    return MediaItem(
        id=f"id-{name}", name=name, path=Path("/media") / name, kind="video", width=1920, height=1080,
        duration_s=seconds, has_audio=sound,
    )  # fmt: skip


def song(name: str, seconds: float) -> MediaItem:
    return MediaItem(
        id=f"id-{name}",
        name=name,
        path=Path("/media") / name,
        kind="audio",
        duration_s=seconds,
        has_audio=True,
    )


# Five product photos with readable names and a logo: the seed skills' "typical use".
PRODUCTS = [
    photo(f"{i}_{n}.jpg") for i, n in enumerate(["red-mug", "blue_mug", "teapot", "saucer", "gift box"], 1)
]
LOGO = photo("acme-logo.png", alpha=True)
CLIPS = [clip("beach.mp4", 4.0), clip("city.mov", 6.0), clip("forest.mp4", 5.0, sound=False)]


def video_track(draft: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in tracks(draft) if t["tt"] == TRACK_VIDEO)


def text_track(draft: dict[str, Any], role: str) -> dict[str, Any] | None:
    return next((t for t in tracks(draft) if t["tt"] == TRACK_TEXT and t["m"]["role"] == role), None)


def audio_track(draft: dict[str, Any]) -> dict[str, Any] | None:
    return next((t for t in tracks(draft) if t["tt"] == TRACK_AUDIO), None)


def assert_contract(draft: dict[str, Any], media: list[MediaItem]) -> None:
    """The draft docstring's timing and reference rules, which the renderer relies on."""
    ids = {m.id: m for m in media}
    meta = draft["m"]
    assert (meta["width"], meta["height"]) in SIZES.values()
    assert meta["width"] % 2 == 0 and meta["height"] % 2 == 0
    overlap = meta["transition_ms"] if meta["transition"] else 0
    if not meta["transition"]:
        assert meta["transition_ms"] == 0
    video = segments(video_track(draft))
    assert video and video[0]["st"] == 0
    for before, after in itertools.pairwise(video):
        assert after["st"] == before["st"] + before["d"] - overlap
    for track in tracks(draft):
        for seg in segments(track):
            # 100 ms is exactly 3 frames at 30 fps: the renderer's frame counts add up with no drift.
            assert seg["st"] % 100 == 0 and seg["d"] % 100 == 0, "times are whole 100 ms units"
    for seg in video:
        assert isinstance(seg["st"], int) and isinstance(seg["d"], int)
        assert seg["d"] >= 2 * overlap + 100, "every shot outlasts the transitions on both sides"
        m = seg["m"]
        if m["kind"] == "card":
            assert m["src"] is None and len(m["colors"]) == 2
        else:
            assert m["src"] in ids and ids[m["src"]].kind == m["kind"]
        if m["kind"] == "video":
            assert m["in_ms"] >= 0 and m["in_ms"] + seg["d"] <= ids[m["src"]].duration_s * 1000
    assert draft["d"] == video[-1]["st"] + video[-1]["d"]
    for track in tracks(draft):
        for seg in segments(track):
            assert seg["st"] >= 0 and seg["d"] > 0 and seg["st"] + seg["d"] <= draft["d"]
            if track["tt"] == TRACK_TEXT:
                assert seg["m"]["text"].strip() and seg["m"]["position"] in ("center", "bottom")
            if track["tt"] == TRACK_AUDIO and seg["m"]["src"] is not None:
                assert ids[seg["m"]["src"]].kind == "audio"
    if meta["logo"]:
        assert meta["logo"]["src"] in ids
    assert is_ready_for_export(draft)


def make(text: str, media: list[MediaItem], *, hint: str = "acme-spring_sale") -> dict[str, Any]:
    result = direct(text, media, None, title_hint=hint)
    assert result.draft is not None, result.reply
    assert result.cost == GENERATION_COST
    assert_contract(result.draft, media)
    return result.draft


def edit(text: str, media: list[MediaItem], draft: dict[str, Any]) -> tuple[dict[str, Any], str]:
    result = direct(text, media, draft, title_hint="acme-spring_sale")
    assert result.draft is not None, result.reply
    assert result.cost == EDIT_COST
    assert_contract(result.draft, media)
    return result.draft, result.reply


# ---------------------------------------------------------------- every seed prompt


# (prompt, media set, duration s or None for "follows the media", aspect, music, transition, captions)
SEED_PROMPTS = [
    ("create five product photos and a logo file into a 1080p MP4", "photos", None, "16:9", None, "fade", False),
    ("turn these photos into a 30-second promotional video with music and transitions", "photos", 30, "16:9", "upbeat", "fade", False),
    ("generating videos from photos or clips without manual editing for TikTok creators", "photos", None, "9:16", None, None, False),
    ("combine these images into a 30-second video with background music and text overlays", "photos", 30, "16:9", "upbeat", None, True),
    ("creating short videos from photos or clips without editing software for content creators", "mixed", None, "16:9", None, None, False),
    ("create a 30-second promotional video with music and text overlays", "photos", 30, "16:9", "upbeat", "fade", True),
    (
        "generating polished videos from images or clips without paid software for small business owners and social media creators",
        "mixed", None, "16:9", None, None, False,
    ),
    (
        "Generate a 20-second MP4 video promoting a coffee shop, vertical 9:16 format, warm tones, no voiceover",
        "photos", 20, "9:16", None, "fade", False,
    ),
    (
        "Create a 15-second explainer video from this product description: [paste text] — output in 1080p landscape",
        "photos", 15, "16:9", None, "fade", False,
    ),
    (
        "Turn these 4 product images into a 30-second slideshow video with text overlays and background music",
        "photos", 30, "16:9", "upbeat", "fade", True,
    ),
    ("A 20-second video about a new running shoe, upbeat music, 1080p, landscape format.", "none", 20, "16:9", "upbeat", "fade", False),
    ("create my video clips or images", "mixed", None, "16:9", None, None, False),
    ("export 1080p MP4", "photos", None, "16:9", None, None, False),
    ("combine these clips into a 60-second", "clips", 60, "16:9", None, None, False),
    ("combine these clips into a 60-second promo video with text overlays and transitions", "clips", 60, "16:9", None, "fade", True),
    ("make a 15-second product clip, square 1:1 format for Instagram post", "photos", 15, "1:1", None, "fade", False),
    ("a 9:16 vertical for Reels, 10 seconds", "photos", 10, "9:16", None, None, False),
    ("Turn these photos into a 30 seconds video", "photos", 30, "16:9", None, None, False),
]  # fmt: skip
MEDIA_SETS = {
    "photos": [*PRODUCTS, LOGO],
    "mixed": [*PRODUCTS[:2], *CLIPS],
    "clips": CLIPS,
    "none": [],
}


@pytest.mark.parametrize(
    ("prompt", "media_set", "seconds", "aspect", "mood", "transition", "captions"),
    SEED_PROMPTS,
    ids=[p[0][:50] for p in SEED_PROMPTS],
)
def test_seed_prompt_gives_the_video_it_asks_for(
    prompt: str,
    media_set: str,
    seconds: int | None,
    aspect: str,
    mood: str | None,
    transition: str | None,
    captions: bool,
) -> None:
    media = MEDIA_SETS[media_set]
    draft = make(prompt, media)
    meta = draft["m"]
    assert (meta["aspect"], meta["width"], meta["height"]) == (aspect, *SIZES[(aspect, 1080)])
    if seconds is not None:
        assert draft["d"] == seconds * 1000
    else:
        photos = sum(1 for m in media if m.kind == "image" and m is not LOGO)
        end_card = END_CARD_MS if LOGO in media else 0
        assert (
            3000 * photos
            <= draft["d"] - end_card
            <= 4000 * photos + sum(c.duration_s * 1000 for c in media if c.kind == "video")
        )
        assert 6000 <= draft["d"] <= 60000
    music = audio_track(draft)
    assert (music["sg"][0]["m"]["mood"] if music else None) == mood
    if music:
        assert music["sg"][0]["m"]["src"] is None and music["sg"][0]["d"] == draft["d"]
    assert meta["transition"] == transition
    assert (text_track(draft, "caption") is not None) == captions or media_set == "none"


@pytest.mark.parametrize(
    ("prompt", "seconds", "aspect", "music", "transition", "captions"),
    [
        ("turn these photos into a 30-second promotional video with music and transitions", 30, None, True, "fade", None),
        ("Generate a 20-second MP4 video promoting a coffee shop, vertical 9:16 format, warm tones, no voiceover", 20, "9:16", None, None, None),
        ("combine these clips into a 60-second promo video with text overlays and transitions", 60, None, None, "fade", True),
        ("swap the duration from 20 seconds to 10", 10, None, None, None, None),
        ("switch from landscape to 9:16", None, "9:16", None, None, None),
        ("If you need a square 1:1 format for Instagram or a 9:16 vertical for Reels", None, "9:16", None, None, None),
        ("a 1 minute video", 60, None, None, None, None),
        ("90 sec, no music, hard cuts", 90, None, False, None, None),
        ("15s teaser for YouTube Shorts", 15, "9:16", None, None, None),
        ("half a minute, landscape", 30, "16:9", None, None, None),
        ("a thirty-second montage with dissolves", 30, None, None, "dissolve", None),
        ("Aspect 9:16. Duration 20 seconds.", 20, "9:16", None, None, None),
        ("Aspect 1:1. Duration 7.5 seconds.", 7.5, "1:1", None, None, None),
        ("Show each photo for 2 seconds, fade to black between them", None, None, None, "fadeblack", None),
        ("wipe transitions please, without captions", None, None, None, "wipeleft", False),
        ("use zoom transitions", None, None, None, "zoomin", None),
        ("一分钟的竖屏视频，要背景音乐和字幕", 60, "9:16", True, None, True),
        ("30秒，横屏，不要音乐，转场", 30, "16:9", False, "fade", None),
        ("半分钟的方形视频，配乐", 30, "1:1", True, None, None),
        ("十五秒 抖音 视频 无转场", 15, "9:16", None, None, None),
    ],
)  # fmt: skip
def test_prompt_settings_are_parsed(
    prompt: str,
    seconds: float | None,
    aspect: str | None,
    music: bool | None,
    transition: str | None,
    captions: bool | None,
) -> None:
    intent = parse(prompt)
    assert intent.duration_s == seconds
    assert intent.aspect == aspect
    assert intent.music is music
    assert intent.transition == transition
    assert intent.captions is captions


@pytest.mark.parametrize("prompt", [line for line, _ in TRY_SAYING])
def test_every_try_saying_example_makes_a_draft_with_the_logo(prompt: str) -> None:
    """Each example prompt of the skills users come from (tests/director_examples.py) gives the typical
    job a draft, with its logo placed."""
    draft = make(prompt, [*PRODUCTS, LOGO])
    assert draft["m"]["logo"]["src"] == LOGO.id


# ---------------------------------------------------------------- generation details


def test_typical_promo_reply_names_what_was_done_and_ends_with_the_timeline() -> None:
    result = direct(
        "turn these photos into a 30-second promotional video with music and transitions",
        [*PRODUCTS, LOGO],
        None,
        title_hint="summer-sale_2026",
    )
    assert result.reply.startswith(
        "Made a 30-second 16:9 video from 5 photos with crossfade transitions, gentle Ken Burns motion, "
        "an upbeat music bed, the title “Summer Sale 2026” and your logo as a watermark and end card."
    )
    assert "\n\nTimeline (4 tracks): 1. Video: 5 photos (0-30s) 2. BGM: Upbeat (0-30s, 80%)" in result.reply
    assert result.draft is not None and result.draft["m"]["title"] == "Summer Sale 2026"


def test_title_hint_is_prettified() -> None:
    assert prettify("summer-sale_2026") == "Summer Sale 2026"
    assert prettify("the_best-of_iPhone") == "The Best of iPhone"


def test_photos_play_in_natural_name_order() -> None:
    media = [photo("10.jpg"), photo("2.jpg"), photo("1.jpg"), photo("Img 3.jpg")]
    draft = make("a slideshow", media)
    assert [s["m"]["name"] for s in segments(video_track(draft))] == ["1.jpg", "2.jpg", "10.jpg", "Img 3.jpg"]


def test_photos_alternate_ken_burns_moves() -> None:
    draft = make("a slideshow", PRODUCTS)
    motions = [s["m"]["motion"] for s in segments(video_track(draft))]
    assert motions == ["zoom_in", "zoom_out", "pan_left", "pan_right", "zoom_in"]


def test_default_length_gives_each_photo_three_to_four_seconds() -> None:
    draft = make("a slideshow", PRODUCTS[:4])
    assert 4 * 3000 <= draft["d"] <= 4 * 4000
    assert make("a slideshow", PRODUCTS[:1])["d"] == 6000, "never shorter than 6 s"
    many = [photo(f"{i}.jpg") for i in range(40)]
    assert make("a slideshow", many)["d"] == 60000, "never longer than a minute unless asked"


@pytest.mark.parametrize(
    ("names", "alphas", "expected"),
    [
        (["a.jpg", "logo.png"], [False, False], "logo.png"),
        (["a.jpg", "Brand_Mark.PNG"], [False, False], "Brand_Mark.PNG"),
        (["a.jpg", "acme watermark.png"], [False, False], "acme watermark.png"),
        (["a.jpg", "b.jpg", "acme.png"], [False, False, True], "acme.png"),
        (["acme.png"], [True], None),  # the only picture is the subject, not a logo
        (["a.png", "b.png", "c.png"], [True, True, True], None),  # product cut-outs
        (["a.jpg", "b.jpg"], [False, False], None),
        (["catalogue.jpg", "a.jpg"], [False, False], None),  # "logo" inside a word is not a logo
    ],
)
def test_logo_is_found_by_name_or_by_being_the_one_transparent_png(
    names: list[str], alphas: list[bool], expected: str | None
) -> None:
    images = [photo(n, alpha=a) for n, a in zip(names, alphas, strict=True)]
    found = find_logo(images)
    assert (found.name if found else None) == expected


def test_logo_becomes_a_watermark_and_an_end_card_not_a_photo() -> None:
    draft = make("make a video", [*PRODUCTS, LOGO])
    shots = segments(video_track(draft))
    assert LOGO.id not in [s["m"]["src"] for s in shots]
    assert draft["m"]["logo"] == {"src": LOGO.id, "name": LOGO.name}
    assert shots[-1]["m"]["kind"] == "card" and shots[-1]["m"]["logo"] is True
    end = text_track(draft, "endcard")
    assert end is not None and end["sg"][0]["m"]["text"] == "Acme Spring Sale"
    assert video_track(draft)["m"]["name"] == "5 photos"


def test_prompt_mentioning_a_logo_file_takes_the_lone_png_even_without_transparency() -> None:
    media = [*PRODUCTS, photo("acme.png")]
    draft = make("create five product photos and a logo file into a 1080p MP4", media)
    assert draft["m"]["logo"]["src"] == "id-acme.png"


def test_no_logo_request_keeps_the_logo_out() -> None:
    draft = make("a 10-second video, no logo", [*PRODUCTS, LOGO])
    assert draft["m"]["logo"] is None
    assert all(s["m"]["kind"] == "image" for s in segments(video_track(draft)))


def test_call_to_action_goes_on_the_end_card() -> None:
    draft = make("15 second promo for our mugs, link in bio", [*PRODUCTS, LOGO])
    end = text_track(draft, "endcard")
    assert end is not None and end["sg"][0]["m"]["text"] == "Link in bio"
    no_logo = make("15 second promo, shop now!", PRODUCTS)
    last = segments(video_track(no_logo))[-1]["m"]
    assert (last["kind"], last["logo"]) == ("card", False)
    end = text_track(no_logo, "endcard")
    assert end is not None and end["sg"][0]["m"]["text"] == "Shop now"


@pytest.mark.parametrize(
    ("prompt", "title"),
    [
        ('a 20 second video titled "Spring Collection"', "Spring Collection"),
        ("a video with the title “Big Summer Sale” and music", "Big Summer Sale"),
        ("Title: Grand Opening. 15 seconds.", "Grand Opening"),
        ("make a slideshow titled Family Trip, with music", "Family Trip"),
        ("「夏日促销」30秒", "夏日促销"),
        ("标题：新品上市，竖屏", "新品上市"),
        ("'Cozy Mornings' slideshow", "Cozy Mornings"),
    ],
)
def test_quoted_or_named_title_wins_over_the_job_name(prompt: str, title: str) -> None:
    draft = make(prompt, PRODUCTS)
    assert draft["m"]["title"] == title
    assert text_track(draft, "title")["sg"][0]["m"]["text"] == title  # type: ignore[index]


def test_the_daemons_example_prompt() -> None:
    draft = make("a 20-second montage of these photos with calm music and the title Summer", PRODUCTS)
    assert draft["d"] == 20000 and draft["m"]["title"] == "Summer"
    assert audio_track(draft)["sg"][0]["m"]["mood"] == "calm"  # type: ignore[index]


def test_job_toml_override_sentences_win_over_the_prompt() -> None:
    prompt = (
        "turn these photos into a 30-second landscape video with music\nAspect 9:16. Duration 20 seconds."
    )
    draft = make(prompt, PRODUCTS)
    assert (draft["d"], draft["m"]["aspect"]) == (20000, "9:16")
    assert make("Duration 7.5 seconds.", PRODUCTS)["d"] == 7500


def test_a_second_video_is_not_one_second_long() -> None:
    assert parse("make a second video").duration_s is None


def test_prompt_pasted_with_its_quotes_is_read_as_a_prompt_not_a_title() -> None:
    draft = make(
        '"turn these photos into a 30-second promotional video with music and transitions"', PRODUCTS
    )
    assert draft["d"] == 30000 and draft["m"]["title"] == "Acme Spring Sale"


def test_a_quoted_title_does_not_switch_settings() -> None:
    draft = make('title "No Music Festival", with music, 12 seconds', PRODUCTS)
    assert audio_track(draft) is not None and draft["m"]["title"] == "No Music Festival"


def test_captions_come_from_file_names() -> None:
    draft = make(
        "combine these images into a 30-second video with background music and text overlays", PRODUCTS
    )
    captions = text_track(draft, "caption")
    assert captions is not None
    assert [s["m"]["text"] for s in captions["sg"]] == ["Red Mug", "Blue Mug", "Teapot", "Saucer", "Gift Box"]
    assert all(s["m"]["position"] == "bottom" for s in captions["sg"])
    assert captions["sg"][0]["st"] == 0, "the first photo's caption shows under the title"


@pytest.mark.parametrize(
    ("name", "caption"),
    [
        ("IMG_1234.JPG", None), ("DSC0001.jpg", None), ("DSC_0042.jpg", None), ("PXL_20240101_123456789.jpg", None),
        ("20230704_181512.jpg", None), ("WhatsApp Image 2024-01-01 at 10.00.00.jpeg", None), ("p1.jpg", None),
        ("GOPR0001.MP4", None), ("3f9c2e1a-77aa-4bb0-9c1e-0a1b2c3d4e5f.jpg", None), ("12.png", None), ("clip.mp4", None), ("Video 2.mov", None),
        ("01_red-mug.jpg", "Red Mug"), ("sunset_at_the_beach.jpg", "Sunset at the Beach"),
        ("Teapot (1).jpg", "Teapot"), ("café-latte.jpg", "Café Latte"),
    ],
)  # fmt: skip
def test_camera_file_names_never_become_captions(name: str, caption: str | None) -> None:
    assert caption_from_name(name) == caption


def test_camera_named_photos_take_captions_from_the_pasted_description() -> None:
    media = [photo(f"IMG_{1000 + i}.jpg") for i in range(3)]
    prompt = "Make a 12-second video with captions. Handmade in Lisbon. Dishwasher safe. Ships in two days."
    captions = text_track(make(prompt, media), "caption")
    assert captions is not None
    assert [s["m"]["text"] for s in captions["sg"]] == [
        "Handmade in Lisbon",
        "Dishwasher safe",
        "Ships in two days",
    ]


def test_camera_named_photos_without_description_get_no_captions_and_the_reply_says_why() -> None:
    media = [photo(f"IMG_{1000 + i}.jpg") for i in range(3)]
    result = direct("a video with captions", media, None, title_hint="trip")
    assert result.draft is not None and text_track(result.draft, "caption") is None
    assert "No captions" in result.reply


@pytest.mark.parametrize(
    ("prompt", "grade"),
    [
        ("warm tones", "warm"), ("in black and white", "bw"), ("B&W please", "bw"), ("monochrome", "bw"),
        ("黑白", "bw"), ("vibrant and colorful", "vibrant"), ("punchy", "vibrant"), ("cinematic look", "cinematic"),
        ("a film look", "cinematic"), ("cool tones", "cool"), ("a short video", None),
    ],
)  # fmt: skip
def test_style_words_pick_the_colour_grade(prompt: str, grade: str | None) -> None:
    assert make(prompt, PRODUCTS)["m"]["grade"] == grade


@pytest.mark.parametrize(
    ("prompt", "mood"),
    [
        ("with energetic music", "upbeat"), ("fun background music", "upbeat"), ("calm music", "calm"),
        ("relaxing soundtrack", "calm"), ("gentle BGM", "calm"), ("lo-fi beats", "lofi"), ("chill music", "lofi"),
        ("epic music", "cinematic"), ("dramatic soundtrack", "cinematic"), ("promo with music", "upbeat"),
        ("舒缓的背景音乐", "calm"), ("配乐要欢快", "upbeat"),
    ],
)  # fmt: skip
def test_mood_words_pick_the_generated_music(prompt: str, mood: str) -> None:
    music = audio_track(make(prompt, PRODUCTS))
    assert music is not None and music["sg"][0]["m"] == {**music["sg"][0]["m"], "src": None, "mood": mood}


@pytest.mark.parametrize(
    "prompt", ["no music", "without music", "silent video", "无音乐", "不要音乐", "a video, no music please"]
)
def test_no_music_is_honoured_even_with_a_song_in_the_job(prompt: str) -> None:
    assert audio_track(make(prompt, [*PRODUCTS, song("track.mp3", 90)])) is None


def test_the_jobs_own_song_is_used_looped_and_named() -> None:
    media = [*PRODUCTS, song("02 summer_vibes.mp3", 8.0), song("10 other.mp3", 60)]
    draft = make("30 seconds", media)
    music = audio_track(draft)
    assert music is not None and music["m"] == {"name": "Summer Vibes", "role": "bgm", "volume": 0.8}
    seg = music["sg"][0]
    assert seg["m"]["src"] == "id-02 summer_vibes.mp3" and seg["m"]["loop"] is True
    assert seg["d"] == 30000 and seg["m"]["fade_out_ms"] > 0


def test_no_music_unless_asked_or_given() -> None:
    assert audio_track(make("a slideshow", PRODUCTS)) is None


def test_clips_keep_their_sound_ducked_under_music() -> None:
    draft = make("combine these clips with music", CLIPS)
    shots = segments(video_track(draft))
    assert [s["m"]["keep_audio"] for s in shots] == [True, True, False]
    assert audio_track(draft)["m"]["volume"] == 0.35  # type: ignore[index]
    assert video_track(draft)["m"]["name"] == "3 clips"


def test_clips_play_at_their_own_length_when_no_length_is_asked() -> None:
    draft = make("combine these clips", CLIPS)
    assert 14_500 <= draft["d"] <= 15_000
    assert [s["m"]["in_ms"] for s in segments(video_track(draft))] == [0, 0, 0]


def test_long_clips_are_trimmed_to_fit_the_asked_length() -> None:
    media = [clip("a.mp4", 40), clip("b.mp4", 40)]
    draft = make("a 20 second video", media)
    shots = segments(video_track(draft))
    assert draft["d"] == 20000 and all(s["m"]["in_ms"] > 0 for s in shots)


def test_short_clips_repeat_to_fill_a_long_request() -> None:
    draft = make("make it 60 seconds", CLIPS)
    assert draft["d"] == 60000
    assert len(segments(video_track(draft))) > 3


def test_clips_and_photos_are_named_on_the_video_track() -> None:
    draft = make("a video", [*CLIPS, *PRODUCTS[:2]])
    assert video_track(draft)["m"]["name"] == "3 clips, 2 photos"


def test_too_many_photos_for_a_short_video_are_dropped_and_the_reply_says_so() -> None:
    media = [photo(f"{i}.jpg") for i in range(30)]
    result = direct("a 6 second video", media, None, title_hint="x")
    assert result.draft is not None and result.draft["d"] == 6000
    assert_contract(result.draft, media)
    assert "Used the first" in result.reply


def test_720p_on_request() -> None:
    for aspect, size in (("16:9", (1280, 720)), ("9:16", (720, 1280)), ("1:1", (720, 720))):
        draft = make(f"{aspect}, 720p", PRODUCTS)
        assert (draft["m"]["width"], draft["m"]["height"]) == size


# ---------------------------------------------------------------- text to video


def test_prompt_only_job_builds_title_cards_about_the_subject() -> None:
    result = direct(
        "A 20-second video about a new running shoe, upbeat music, 1080p, landscape format.",
        [],
        None,
        title_hint="shoe",
    )
    draft = result.draft
    assert draft is not None and result.cost == GENERATION_COST
    assert_contract(draft, [])
    assert draft["m"]["title"] == "New Running Shoe" and draft["d"] == 20000
    cards = segments(video_track(draft))
    assert 3 <= len(cards) <= 6 and all(c["m"]["kind"] == "card" for c in cards)
    texts = [s["m"]["text"] for t in tracks(draft) if t["tt"] == TRACK_TEXT for s in segments(t)]
    assert len(texts) == len(cards) and texts[0] == "New Running Shoe"
    assert audio_track(draft)["sg"][0]["m"]["mood"] == "upbeat"  # type: ignore[index]
    assert video_track(draft)["m"]["name"] == f"{len(cards)} title cards"


def test_prompt_only_job_turns_description_sentences_into_cards() -> None:
    prompt = (
        "Create a 15-second explainer video from this product description: Our mugs are handmade in Lisbon. "
        "They keep coffee hot for hours. Dishwasher safe. — output in 1080p landscape"
    )
    draft = make(prompt, [], hint="mugs")
    texts = [s["m"]["text"] for t in tracks(draft) if t["tt"] == TRACK_TEXT for s in segments(t)]
    assert texts[1:] == [
        "Our mugs are handmade in Lisbon",
        "They keep coffee hot for hours",
        "Dishwasher safe",
    ]
    assert draft["d"] == 15000 and draft["m"]["aspect"] == "16:9"


def test_prompt_only_colours_follow_the_style() -> None:
    warm = make(
        "Generate a 20-second MP4 video promoting a coffee shop, vertical 9:16 format, warm tones, no voiceover",
        [],
    )
    cool = make("a 20-second video about a glacier hike, cool tones", [])
    assert warm["m"]["title"] == "Coffee Shop" and warm["m"]["aspect"] == "9:16"
    assert segments(video_track(warm))[0]["m"]["colors"] != segments(video_track(cool))[0]["m"]["colors"]


def test_prompt_only_chinese() -> None:
    draft = make("做一个关于咖啡店的30秒竖屏视频，配乐舒缓", [])
    assert draft["m"]["title"] == "咖啡店" and draft["d"] == 30000 and draft["m"]["aspect"] == "9:16"
    assert audio_track(draft)["sg"][0]["m"]["mood"] == "calm"  # type: ignore[index]


def test_prompt_only_chinese_filler_cards_are_chinese() -> None:
    texts = [
        s["m"]["text"]
        for t in tracks(make("关于咖啡店的视频，十秒", []))
        if t["tt"] == TRACK_TEXT
        for s in segments(t)
    ]
    assert texts[0] == "咖啡店" and all(not any(c.isascii() and c.isalpha() for c in t) for t in texts)


def test_music_only_job_makes_title_cards_over_the_song() -> None:
    media = [song("theme.mp3", 30)]
    draft = make("a 10 second video about our podcast", media)
    assert all(s["m"]["kind"] == "card" for s in segments(video_track(draft)))
    assert audio_track(draft)["sg"][0]["m"]["src"] == "id-theme.mp3"  # type: ignore[index]


def test_message_without_media_or_subject_asks_for_them_and_costs_nothing() -> None:
    result = direct("turn these photos into a video", [], None, title_hint="project")
    assert result.draft is None and result.cost == 0
    assert "photos or clips" in result.reply


# ---------------------------------------------------------------- edits


@pytest.fixture
def promo() -> dict[str, Any]:
    return make(
        "turn these photos into a 30-second promotional video with music and transitions", [*PRODUCTS, LOGO]
    )


MEDIA = [*PRODUCTS, LOGO]


def test_edit_length(promo: dict[str, Any]) -> None:
    draft, reply = edit("make it 15 seconds", MEDIA, promo)
    assert draft["d"] == 15000 and reply.startswith("Changed the length to 15 seconds.")
    shorter, _ = edit("shorter", MEDIA, promo)
    assert shorter["d"] == 20000
    longer, _ = edit("make it longer", MEDIA, promo)
    assert longer["d"] == 45000
    swapped, _ = edit("swap the duration from 30 seconds to 10", MEDIA, promo)
    assert swapped["d"] == 10000


@pytest.mark.parametrize(
    ("message", "aspect"),
    [
        ("switch to vertical", "9:16"),
        ("make it square", "1:1"),
        ("switch from landscape to 9:16", "9:16"),
        ("改成竖屏", "9:16"),
    ],
)
def test_edit_shape(promo: dict[str, Any], message: str, aspect: str) -> None:
    draft, reply = edit(message, MEDIA, promo)
    assert (
        draft["m"]["aspect"] == aspect
        and (draft["m"]["width"], draft["m"]["height"]) == SIZES[(aspect, 1080)]
    )
    assert draft["d"] == 30000, "other settings stay"
    width, height = SIZES[(aspect, 1080)]
    said = (
        f"已改为{aspect}（{width}x{height}）。"
        if message == "改成竖屏"
        else f"Switched to {aspect} ({width}x{height})."
    )
    assert reply.startswith(said), "the reply is in the message's language"


def test_edit_music(promo: dict[str, Any]) -> None:
    silent, reply = edit("remove the music", MEDIA, promo)
    assert audio_track(silent) is None and reply.startswith("Removed the music.")
    back, reply = edit("add music", MEDIA, silent)
    assert audio_track(back) is not None and reply.startswith("Added an upbeat music bed.")
    calm, reply = edit("make the music calmer", MEDIA, promo)
    assert audio_track(calm)["sg"][0]["m"]["mood"] == "calm" and "calm" in reply  # type: ignore[index]
    louder, reply = edit("music louder", MEDIA, promo)
    assert audio_track(louder)["m"]["volume"] == 0.95 and "95%" in reply  # type: ignore[index]


def test_edit_title_and_captions(promo: dict[str, Any]) -> None:
    titled, reply = edit("change the title to 'Spring Drop'", MEDIA, promo)
    assert titled["m"]["title"] == "Spring Drop" and reply.startswith("Changed the title to “Spring Drop”.")
    captioned, reply = edit("add captions", MEDIA, titled)
    assert text_track(captioned, "caption") is not None and "caption" in reply
    plain, reply = edit("remove the captions", MEDIA, captioned)
    assert text_track(plain, "caption") is None and reply.startswith("Removed the captions.")
    assert plain["m"]["title"] == "Spring Drop"


def test_edit_transitions_and_look(promo: dict[str, Any]) -> None:
    slid, reply = edit("use slide transitions", MEDIA, promo)
    assert slid["m"]["transition"] == "slideleft" and "slide transitions" in reply
    cut, reply = edit("no transitions", MEDIA, slid)
    assert cut["m"]["transition"] is None and cut["m"]["transition_ms"] == 0 and cut["d"] == 30000
    grey, reply = edit("black and white", MEDIA, cut)
    assert grey["m"]["grade"] == "bw" and reply.startswith("Applied a black-and-white look.")
    colour, _ = edit("back to colour, remove the black and white", MEDIA, grey)
    assert colour["m"]["grade"] is None


def test_edit_faster_pace_cuts_more_often_at_the_same_length(promo: dict[str, Any]) -> None:
    fast, reply = edit("faster pace", MEDIA, promo)
    assert fast["d"] == 30000 and "faster" in reply
    assert len(segments(video_track(fast))) > len(segments(video_track(promo)))


def test_edit_chinese(promo: dict[str, Any]) -> None:
    draft, _ = edit("改成15秒，去掉音乐", MEDIA, promo)
    assert draft["d"] == 15000 and audio_track(draft) is None


def test_edits_of_a_prompt_only_video(promo: dict[str, Any]) -> None:
    cards = make("A 20-second video about a new running shoe, upbeat music, 1080p, landscape format.", [])
    draft, _ = edit("switch from landscape to 9:16 and make it 10 seconds", [], cards)
    assert (
        draft["m"]["aspect"] == "9:16" and draft["d"] == 10000 and draft["m"]["title"] == "New Running Shoe"
    )


@pytest.mark.parametrize("message", ["make it look better", "hello", "thanks!", "what can you do?"])
def test_message_asking_for_nothing_understood_changes_nothing_and_lists_examples(
    promo: dict[str, Any], message: str
) -> None:
    result = direct(message, MEDIA, promo, title_hint="x")
    assert result.draft is None and result.cost == 0
    assert "make it 15 seconds" in result.reply and "switch to vertical" in result.reply


def test_edit_that_matches_the_current_video_costs_nothing(promo: dict[str, Any]) -> None:
    result = direct("make it 30 seconds, 16:9", MEDIA, promo, title_hint="x")
    assert result.draft is None and result.cost == 0 and "nothing changed" in result.reply


def test_export_request_after_a_draft_costs_nothing(promo: dict[str, Any]) -> None:
    result = direct("export", MEDIA, promo, title_hint="x")
    assert result.draft is None and result.cost == 0


def test_edit_of_a_draft_without_a_stored_plan_reads_the_documented_keys(promo: dict[str, Any]) -> None:
    foreign = {**promo, "m": {k: v for k, v in promo["m"].items() if k != "plan"}}
    draft, _ = edit("make it square", MEDIA, foreign)
    assert draft["m"]["aspect"] == "1:1" and draft["d"] == 30000 and draft["m"]["transition"] == "fade"
    assert audio_track(draft) is not None and draft["m"]["title"] == "Acme Spring Sale"


def test_edit_of_a_draft_with_unknown_values_falls_back_to_defaults(promo: dict[str, Any]) -> None:
    odd = {
        **promo,
        "m": {**promo["m"], "plan": {**promo["m"]["plan"], "aspect": "4:5", "pace": "warp", "mood": 7}},
    }
    draft, _ = edit("make it 12 seconds", MEDIA, odd)
    assert draft["d"] == 12000 and draft["m"]["aspect"] == "16:9"


def test_new_uploads_join_the_video_on_the_next_edit(promo: dict[str, Any]) -> None:
    more = [*MEDIA, photo("6_spoon.jpg")]
    draft, _ = edit("make it 20 seconds", more, promo)
    assert video_track(draft)["m"]["name"] == "6 photos"


# ---------------------------------------------------------------- timing invariants, widely


@pytest.mark.parametrize("seconds", [3, 6, 7.3, 10, 15, 20, 30, 45, 60, 90])
@pytest.mark.parametrize(
    "media_set",
    [
        [photo("a.jpg")],
        PRODUCTS,
        [*PRODUCTS, LOGO],
        CLIPS,
        [clip("tiny.mp4", 0.6), clip("short.mp4", 1.2)],
        [*CLIPS, *PRODUCTS, LOGO, song("s.mp3", 12)],
        [photo(f"{i}.jpg") for i in range(25)],
        [],
    ],
    ids=["one", "photos", "logo", "clips", "tiny-clips", "mixed", "many", "text"],
)
@pytest.mark.parametrize(
    "style", ["with transitions", "hard cuts", "fade to black, fast pace", "slow pace, dissolve"]
)
def test_every_draft_keeps_the_timing_contract(
    seconds: float, media_set: list[MediaItem], style: str
) -> None:
    draft = make(f"a {seconds}-second video about summer, {style}, captions, music", media_set)
    assert draft["d"] == round(seconds * 1000)


def test_probed_real_files_make_a_draft_whose_sources_resolve(tmp_path: Path) -> None:
    names = ["2.jpg", "10.jpg", "logo.png"]
    Image.new("RGB", (32, 18), "red").save(tmp_path / "2.jpg")
    Image.new("RGB", (32, 18), "blue").save(tmp_path / "10.jpg")
    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(tmp_path / "logo.png")
    media = [probe(tmp_path / n, f"m{i}", n) for i, n in enumerate(names)]
    draft = make("8 seconds, square", media)
    assert [s["m"]["src"] for s in segments(video_track(draft))] == ["m0", "m1", None]
    assert draft["m"]["logo"]["src"] == "m2"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("a 6-second 360p preview", (640, 360)),
        ("a 6-second vertical preview at 640x360", (360, 640)),
        ("a 6-second 320x180 video", (320, 180)),
        ("make it square, 180p, 6 seconds", (180, 180)),
    ],
)
def test_preview_resolutions_give_small_quick_renders(text: str, size: tuple[int, int]) -> None:
    direction = direct(text, [], None, title_hint="preview")
    assert direction.draft is not None
    assert (direction.draft["m"]["width"], direction.draft["m"]["height"]) == size
    assert f"{min(size)}p" in direction.reply


# -- replies in the message's language ---------------------------------------------------------------


def test_a_chinese_prompt_gets_a_chinese_reply_naming_what_was_made() -> None:
    made = direct("一分钟的竖屏视频，要背景音乐和字幕", MEDIA, None, title_hint="acme")
    said, summary = made.reply.split("\n\n")
    assert said.startswith("已制作一段60秒的9:16视频，素材为5张照片，包含")
    assert "欢快风格的背景音乐" in said and "5条字幕" in said and "你的标志（作为水印和片尾卡）" in said
    assert said.endswith("。") and "Made" not in said
    assert summary.startswith("Timeline (")  # the summary keeps the API's English format


def test_each_edit_replies_in_the_language_of_its_own_message() -> None:
    made = direct("一分钟的竖屏视频，要背景音乐和字幕", MEDIA, None, title_hint="acme")
    chinese = direct("改成15秒，去掉音乐", MEDIA, made.draft, title_hint="acme")
    assert chinese.reply.split("\n\n")[0] == "时长改为15秒。已去掉音乐。"
    english = direct("make it 20 seconds", MEDIA, made.draft, title_hint="acme")
    assert english.reply.startswith("Changed the length to 20 seconds.")
    confused = direct("你好", MEDIA, made.draft, title_hint="acme")
    assert confused.draft is None and confused.reply.startswith(
        "这条消息里没有找到要修改的地方。我可以修改时长"
    )


@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_example_in_the_help_is_a_change_the_director_understands(language: str) -> None:
    examples = re.findall(r"“([^”]+)”", say(language, "help"))
    assert len(examples) >= 12
    for example in examples:
        assert parse(example).asks_for_anything(), example
