"""`python -m cloud_agent`: the same as the `cloud-agent` command."""

from __future__ import annotations

import sys

from cloud_agent.cli import main

sys.exit(main())
