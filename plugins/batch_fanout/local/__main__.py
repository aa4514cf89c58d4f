"""``python -m batch_fanout.local``: the ``batch-fanout local`` command group."""

from __future__ import annotations

import sys

from batch_fanout.local.cli import main

if __name__ == "__main__":
    sys.exit(main())
