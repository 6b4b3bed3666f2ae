"""``python -m tgsip`` is the ``tgsip`` command."""

import sys

from tgsip.cli import main

sys.exit(main())
