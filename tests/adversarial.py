"""Messages built to be slow for the local director's patterns, at any size up to the message limit.

tests/test_bounded.py feeds each one to the director at the limit; bench/prompt_bench.py times
them at 8 to 64 kB. Each names the pattern it once made super-linear (or the loop that re-scanned
the text), so a regression shows up as that input's time growing faster than its size.
"""

from __future__ import annotations

from collections.abc import Callable


def fill(unit: str, size: int, head: str = "", tail: str = "") -> str:
    """``head``, then ``unit`` repeated, then ``tail``: at most ``size`` UTF-8 bytes in all."""
    room = size - len(head.encode()) - len(tail.encode())
    return head + unit * (room // len(unit.encode())) + tail


# name → (what it attacks, the message at a given size in bytes)
ADVERSARIAL: dict[str, tuple[str, Callable[[int], str]]] = {
    "spaces": (
        'the " - " split of a sentence',
        lambda n: fill(" ", n, "make a video", "with music"),
    ),
    "newlines after title": (
        "title: three whitespace runs in a row",
        lambda n: fill("\n", n, "the title", "."),
    ),
    "newlines after 标题": ("标题: two whitespace runs", lambda n: fill("\n", n, "标题", "。")),
    "spaces after duration": ("duration N: two whitespace runs", lambda n: fill(" ", n, "duration", "x")),
    "spaces after aspect": ("aspect 9:16: two whitespace runs", lambda n: fill(" ", n, "aspect", "x")),
    "spaces after from 1": ("from A to B: two runs", lambda n: fill(" ", n, "from 1", "x")),
    "repeated transition": ("transition ... zoom in a clause", lambda n: fill("transition ", n)),
    "open brackets": ("[placeholder] without a closing ]", lambda n: fill("[", n)),
    "open angle brackets": ("<placeholder> without a closing >", lambda n: fill("<", n)),
    "digits": ("Chinese durations: a start in every digit", lambda n: fill("1", n)),
    "chinese numerals": ("Chinese durations: a start in every numeral", lambda n: fill("一", n)),
    "cjk": ("Chinese text", lambda n: fill("中文视频", n)),
    "per-shot durations": (
        "each photo for N seconds: a re-scan per duration",
        lambda n: fill("3 seconds each ", n),
    ),
    "per-shot before": ("each photo for N seconds", lambda n: fill("each photo for 2 seconds ", n)),
    "punctuation": ("sentence split", lambda n: fill(".,;!?:", n)),
    "chinese punctuation": ("sentence split", lambda n: fill("。！？；", n)),
    "quotes": ("quoted titles", lambda n: fill('"', n)),
    "curly quotes": ("quoted titles", lambda n: fill("“", n)),
    "single quotes": ("quoted titles", lambda n: fill(" 'x", n)),
    "letter a": ("one endless word", lambda n: fill("a", n)),
    "keywords": (
        "every setting at once",
        lambda n: fill("music video title captions fade 30 seconds vertical warm promo logo ", n),
    ),
    "dashes": ('the " - " split', lambda n: fill(" - a", n)),
    "huge number": ("a number too long for a float", lambda n: fill("1", n, "", " seconds")),
    "description": ("text: a pasted description", lambda n: fill("Fresh bread daily. ", n, "text: ")),
    "long web address": (
        "the end card's address, compared with every line",
        lambda n: fill("yx yx yx. ", n, "visit a.b/" + "xy" * (n // 4) + " "),
    ),
}
