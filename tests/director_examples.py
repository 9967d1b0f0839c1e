"""The example prompts the local director must understand: the "Try saying" lines of the NemoVideo
skills nemowatch's users come from, copied here once so the suite needs nothing beside the checkout.

Each is sent as a whole message with the typical job (five product photos and a logo); the
director must make a draft from every one of them.
"""

from __future__ import annotations

# (the line as a user would type it, the skill whose help suggests it)
TRY_SAYING: tuple[tuple[str, str], ...] = (
    (
        "create five product photos and a logo file into a 1080p MP4",
        "Hug AI Video Maker Free, Video Creator Free and a third skill",
    ),
    (
        "turn these photos into a 30-second promotional video with music and transitions",
        "Hug AI Video Maker Free",
    ),
    (
        "generating videos from photos or clips without manual editing for TikTok creators",
        "Hug AI Video Maker Free",
    ),
    (
        "combine these images into a 30-second video with background music and text overlays",
        "Video Creator Free",
    ),
    (
        "creating short videos from photos or clips without editing software for content creators",
        "Video Creator Free",
    ),
    ("create a 30-second promotional video with music and text overlays", "an untitled video skill"),
    (
        "generating polished videos from images or clips without paid software for small business owners"
        " and social media creators",
        "an untitled video skill",
    ),
    (
        "Generate a 20-second MP4 video promoting a coffee shop, vertical 9:16 format, warm tones, no voiceover",
        "free-ai-video-generator",
    ),
    (
        "Create a 15-second explainer video from this product description: [paste text] — output in 1080p"
        " landscape",
        "free-ai-video-generator",
    ),
    (
        "Turn these 4 product images into a 30-second slideshow video with text overlays and background music",
        "free-ai-video-generator",
    ),
    ("create my video clips or images", "Video Maker"),
    ("export 1080p MP4", "Video Maker"),
    ("combine these clips into a 60-second", "Video Maker"),
)
