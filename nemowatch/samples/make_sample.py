"""Draw the sample job's photos: four procedural landscapes, so the repo ships no third-party images.

Run once (``python -m nemowatch.samples.make_sample``); the JPEGs it writes are committed. Each scene is
a sky gradient, a sun or moon with a glow, layered mountain ridges fading into haze and a lake
that mirrors them — enough texture for transitions, Ken Burns motion and colour grades to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

WIDTH, HEIGHT = 1280, 720
HERE = Path(__file__).resolve().parent / "promo"
Color = tuple[int, int, int]


@dataclass(frozen=True)
class Scene:
    """One photo: its palette, where the sun sits and whether stars show."""

    name: str
    sky_top: Color
    sky_bottom: Color
    sun: Color
    sun_xy: tuple[float, float]  # fractions of width/height
    ridges: tuple[Color, ...]  # far to near
    stars: bool = False
    seed: int = 0


SCENES = (
    Scene(
        "01-dawn.jpg",
        (40, 52, 110),
        (250, 170, 120),
        (255, 230, 180),
        (0.72, 0.36),
        ((150, 110, 140), (105, 75, 115), (65, 45, 85), (32, 24, 52)),
        seed=1,
    ),
    Scene(
        "02-noon.jpg",
        (40, 120, 210),
        (190, 225, 250),
        (255, 252, 235),
        (0.25, 0.18),
        ((120, 160, 190), (70, 125, 120), (40, 95, 70), (22, 60, 40)),
        seed=2,
    ),
    Scene(
        "03-dusk.jpg",
        (60, 30, 90),
        (255, 120, 60),
        (255, 200, 90),
        (0.45, 0.40),
        ((170, 80, 90), (120, 50, 75), (75, 30, 60), (35, 15, 35)),
        seed=3,
    ),
    Scene(
        "04-night.jpg",
        (5, 8, 30),
        (30, 50, 100),
        (235, 240, 255),
        (0.8, 0.2),
        ((45, 60, 100), (30, 42, 75), (18, 26, 50), (8, 12, 28)),
        stars=True,
        seed=4,
    ),
)


def _gradient(top: Color, bottom: Color, height: int) -> np.ndarray:
    """A vertical colour gradient, ``height`` × WIDTH × 3 floats."""
    t = np.linspace(0.0, 1.0, height)[:, None, None] ** 0.8
    rows = (1 - t) * np.array(top, float) + t * np.array(bottom, float)
    return np.repeat(rows, WIDTH, axis=1)


def _ridge(rng: np.random.Generator, base: float, rough: float) -> np.ndarray:
    """A mountain skyline (y per column) from summed random sine octaves: smooth yet irregular."""
    x = np.linspace(0, 1, WIDTH)
    y = np.full(WIDTH, base)
    for octave in range(1, 6):
        freq = 2**octave * rng.uniform(0.7, 1.3)
        y += rough / octave**1.3 * np.sin(2 * np.pi * freq * x + rng.uniform(0, 2 * np.pi))
    return y * HEIGHT


def draw(scene: Scene) -> Image.Image:
    """Render one scene to an RGB image."""
    rng = np.random.default_rng(scene.seed)
    horizon = int(HEIGHT * 0.72)
    img = _gradient(scene.sky_top, scene.sky_bottom, HEIGHT)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(float)
    if scene.stars:
        stars = rng.random((HEIGHT, WIDTH)) > 0.9985
        img[stars] = 255 * rng.uniform(0.5, 1.0, (int(stars.sum()), 1))
    sx, sy = scene.sun_xy[0] * WIDTH, scene.sun_xy[1] * HEIGHT
    dist = np.hypot(xx - sx, yy - sy)
    glow = np.exp(-dist / 140)[..., None] * 0.55 + (dist < 38)[..., None] * 1.0
    img = img * (1 - np.clip(glow, 0, 1)) + np.array(scene.sun, float) * np.clip(glow, 0, 1)
    haze = np.array(scene.sky_bottom, float)
    for i, color in enumerate(scene.ridges):
        skyline = _ridge(rng, 0.42 + 0.08 * i, 0.05 + 0.02 * i)
        mask = yy >= skyline[None, :]
        # Far ridges take on the haze colour (aerial perspective); shading darkens each toward its foot.
        mix = 0.55 * (1 - i / len(scene.ridges))
        shade = np.clip((yy - skyline.min()) / (HEIGHT * 0.35), 0, 1)[..., None] * 0.35
        layer = ((1 - mix) * np.array(color, float) + mix * haze) * (1 - shade)
        img = np.where(mask[..., None], layer, img)
    # The lake: the scene above the horizon mirrored, darkened, with horizontal ripples.
    depth = HEIGHT - horizon
    mirror = img[horizon - depth : horizon][::-1].copy()
    ripple = (np.sin(np.arange(depth)[:, None] * 0.9 + xx[:depth] * 0.02) * 3).astype(int)
    cols = np.clip(np.arange(WIDTH)[None, :] + ripple, 0, WIDTH - 1)
    mirror = mirror[np.arange(depth)[:, None], cols] * 0.72
    img[horizon:] = mirror
    img += rng.normal(0, 2.0, img.shape)  # a little grain, as a real photo has
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    return out.filter(ImageFilter.GaussianBlur(0.6))


def main() -> None:
    """Write every scene as a JPEG under 150 KB into nemowatch/samples/promo/."""
    HERE.mkdir(parents=True, exist_ok=True)
    for scene in SCENES:
        path = HERE / scene.name
        for quality in (85, 78, 70, 60):
            draw(scene).save(path, "JPEG", quality=quality, optimize=True, progressive=True)
            if path.stat().st_size < 150_000:
                break
        print(f"{path} {path.stat().st_size // 1000} KB")


if __name__ == "__main__":
    main()
