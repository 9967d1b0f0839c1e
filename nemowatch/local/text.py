"""Overlay stills made with Pillow: titles, captions and end-card text, and the logo in two sizes.

ffmpeg only composites these PNGs (with alpha fades), so typography is Pillow's job:
bundled DejaVu fonts (see fonts/LICENSE-DejaVu.txt), soft shadows for titles over
photos and a translucent box behind captions so they stay legible on any picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path(__file__).with_name("fonts")
BOLD_FONT = FONT_DIR / "DejaVuSans-Bold.ttf"
REGULAR_FONT = FONT_DIR / "DejaVuSans.ttf"


@dataclass(frozen=True)
class Placed:
    """A PNG with transparency and where its top-left corner goes in the frame."""

    path: Path
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class TextStyle:
    """Typography for one text role, sizes as fractions of the frame's shorter side."""

    font: Path
    size: float
    tracking: float  # extra letter spacing, fraction of the font size
    boxed: bool  # translucent box (captions) instead of a soft shadow (titles)
    upper: bool


STYLES: dict[str, TextStyle] = {
    "title": TextStyle(BOLD_FONT, 0.105, 0.04, boxed=False, upper=False),
    "endcard": TextStyle(BOLD_FONT, 0.07, 0.03, boxed=False, upper=False),
    "caption": TextStyle(REGULAR_FONT, 0.05, 0.0, boxed=True, upper=False),
}


@lru_cache(maxsize=32)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def _wrap(text: str, font: ImageFont.FreeTypeFont, tracking_px: float, max_width: float) -> list[str]:
    """Greedy word wrap; explicit newlines are kept."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}".strip()
            if current and _line_width(candidate, font, tracking_px) > max_width:
                lines.append(current)
                current = word
            else:
                current = candidate
        lines.append(current)
    return [line for line in lines if line] or [""]


def _line_width(line: str, font: ImageFont.FreeTypeFont, tracking_px: float) -> float:
    return font.getlength(line) + tracking_px * max(0, len(line) - 1)


def _draw_line(
    draw: ImageDraw.ImageDraw,
    x: float,
    y: float,
    line: str,
    font: ImageFont.FreeTypeFont,
    tracking_px: float,
    fill: tuple[int, ...],
) -> None:
    """Draw a line letter by letter when tracked (Pillow has no letter-spacing option)."""
    if not tracking_px:
        draw.text((x, y), line, font=font, fill=fill)
        return
    for char in line:
        draw.text((x, y), char, font=font, fill=fill)
        x += font.getlength(char) + tracking_px


def render_text(
    text: str,
    role: str,
    position: str,
    frame_w: int,
    frame_h: int,
    out: Path,
    *,
    anchor_y: float | None = None,
) -> Placed:
    """Render ``text`` for a role ("title", "caption", "endcard") into a tight RGBA PNG at ``out``.

    ``position`` is "center" or "bottom"; ``anchor_y`` (a fraction of the frame height)
    overrides the vertical centre, which the end card uses to sit under a large logo.
    """
    style = STYLES.get(role, STYLES["title"])
    short = min(frame_w, frame_h)
    size = max(10, round(short * style.size))
    font = _font(style.font, size)
    tracking = size * style.tracking
    content = text.upper() if style.upper else text
    lines = _wrap(content, font, tracking, frame_w * 0.84)
    # Shrink long titles until the widest line fits, rather than overflowing the frame.
    while size > 10 and max(_line_width(line, font, tracking) for line in lines) > frame_w * 0.9:
        size = int(size * 0.9)
        font = _font(style.font, size)
        tracking = size * style.tracking
        lines = _wrap(content, font, tracking, frame_w * 0.84)

    ascent, descent = font.getmetrics()
    line_h = int((ascent + descent) * 1.12)
    text_w = int(max(_line_width(line, font, tracking) for line in lines)) + 1
    text_h = line_h * len(lines)
    pad = max(4, int(size * (0.45 if style.boxed else 0.6)))  # room for the box or the shadow blur
    width, height = text_w + 2 * pad, text_h + 2 * pad
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))

    if style.boxed:
        box = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        ImageDraw.Draw(box).rounded_rectangle(
            (0, 0, width - 1, height - 1), radius=max(2, size // 3), fill=(8, 10, 14, 150)
        )
        image.alpha_composite(box)
    else:
        # Two shadows: a wide soft glow for contrast on busy photos and a tight drop shadow for depth.
        for radius, alpha, dy in ((size * 0.35, 110, 0), (size * 0.06, 150, size * 0.04)):
            shadow = Image.new("RGBA", (width, height), (0, 0, 0, 0))
            draw = ImageDraw.Draw(shadow)
            for i, line in enumerate(lines):
                lx = pad + (text_w - _line_width(line, font, tracking)) / 2
                _draw_line(draw, lx, pad + i * line_h + dy, line, font, tracking, (0, 0, 0, alpha))
            image.alpha_composite(shadow.filter(ImageFilter.GaussianBlur(max(1.0, radius))))

    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        lx = pad + (text_w - _line_width(line, font, tracking)) / 2
        _draw_line(draw, lx, pad + i * line_h, line, font, tracking, (255, 255, 255, 255))
    image.save(out)

    x = (frame_w - width) // 2
    if anchor_y is not None:
        y = int(frame_h * anchor_y - height / 2)
    elif position == "bottom":
        y = frame_h - height - int(frame_h * 0.07)
    else:
        y = (frame_h - height) // 2
    return Placed(out, x, max(0, min(frame_h - height, y)), width, height)


def render_logo(src: Path, frame_w: int, frame_h: int, out_dir: Path) -> tuple[Placed, Placed]:
    """The logo as a corner watermark (about 11% of the width, slightly see-through) and large for an end card."""
    with Image.open(src) as opened:
        opened.load()
        logo = opened.convert("RGBA")
    landscape = frame_w >= frame_h

    def fit(max_w: float, max_h: float) -> Image.Image:
        scale = min(max_w / logo.width, max_h / logo.height)
        size = (max(2, round(logo.width * scale)), max(2, round(logo.height * scale)))
        return logo.resize(size, Image.Resampling.LANCZOS)

    mark = fit(frame_w * (0.11 if landscape else 0.2), frame_h * 0.12)
    alpha = mark.getchannel("A").point(lambda a: int(a * 0.85))  # watermark, not a sticker
    mark.putalpha(alpha)
    margin = round(min(frame_w, frame_h) * 0.035)
    mark_path = out_dir / "logo-mark.png"
    mark.save(mark_path)
    watermark = Placed(mark_path, frame_w - mark.width - margin, margin, mark.width, mark.height)

    big = fit(frame_w * (0.32 if landscape else 0.55), frame_h * (0.36 if landscape else 0.24))
    big_path = out_dir / "logo-big.png"
    big.save(big_path)
    endcard = Placed(
        big_path, (frame_w - big.width) // 2, int(frame_h * 0.42 - big.height / 2), big.width, big.height
    )
    return watermark, endcard
