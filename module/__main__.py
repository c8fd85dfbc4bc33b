"""``python -m module ...``: see module/main.py."""

import sys

from module.main import main

sys.exit(main())
