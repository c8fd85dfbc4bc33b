"""``python -m devkit.local demo|local ...``: see devkit/local/cli.py."""

import sys

from devkit.local.cli import main

sys.exit(main())
