"""``python -m tgsip.sandbox``."""

import sys

from tgsip.sandbox.cli import main

sys.exit(main())
