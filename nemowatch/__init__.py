"""nemowatch: a watch-folder daemon that turns job folders into finished videos through NemoVideo."""

from __future__ import annotations

__version__ = "0.1.0"
