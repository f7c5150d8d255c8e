"""``python -m vggt_mapper.cli``: the ``vggt-mapper`` command without the console script."""

from __future__ import annotations

import sys

from vggt_mapper.cli.entry_points import main

sys.exit(main())
