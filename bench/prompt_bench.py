"""The local director's time per message on adversarial prompts, at 8, 16, 32 and 64 kB.

    python bench/prompt_bench.py [--sizes 8,16,32,64] [--give-up-s 30]

Each input of tests/adversarial.py goes through ``direct()`` (the parse and the draft the local
backend makes of one message, no media) at each size; the best of three runs is printed. Linear
work doubles from one column to the next; a quadratic pattern quadruples. An input whose time
passes ``--give-up-s`` is not tried at the larger sizes (a super-linear one would run for hours).
Speed figures come from here, never from timed tests.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.adversarial: the inputs the tests use too

from nemowatch.local.director import direct  # noqa: E402
from tests.adversarial import ADVERSARIAL  # noqa: E402


def seconds_for(text: str, runs: int = 3) -> float:
    """The best of ``runs`` timings of the director on one message (one run when it is slow)."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        direct(text, [], None, title_hint="bench")
        best = min(best, time.perf_counter() - start)
        if best > 1.0:
            break
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,16,32,64", help="message sizes in kB (1000 bytes)")
    parser.add_argument("--give-up-s", type=float, default=30.0, help="skip larger sizes after this")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'input':24s}" + "".join(f"{s:>9d} kB" for s in sizes))
    for name, (_attacks, make) in ADVERSARIAL.items():
        row = f"{name:24s}"
        for size in sizes:
            text = make(size * 1000)
            elapsed = seconds_for(text)
            row += f"{elapsed * 1000:>9.1f} ms"
            if elapsed > args.give_up_s:
                row += "  (gave up)"
                break
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
