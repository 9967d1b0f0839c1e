"""``python -m nemowatch``."""

from __future__ import annotations

import sys

from nemowatch.cli import main

if __name__ == "__main__":
    sys.exit(main())
