"""``python -m module.local demo|local ...``: see module/local/cli.py."""

import sys

from module.local.cli import main

sys.exit(main())
