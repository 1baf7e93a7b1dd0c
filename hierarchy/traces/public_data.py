"""Where the public trace slices of the repository live (data/public/, sources in its README).

The developer tools that fit and check the workload model read them by default; `--data DIR`
points them at another copy, such as the full-size traces.
"""

from __future__ import annotations

from pathlib import Path

PUBLIC_DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "public"
