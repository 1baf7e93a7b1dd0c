"""`python -m hierarchy …` is the `hierarchy` command."""

from __future__ import annotations

from hierarchy.cli import main

raise SystemExit(main())
