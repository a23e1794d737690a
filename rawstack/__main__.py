"""``python -m rawstack``: the same as the ``rawstack`` command."""

import sys

from rawstack.cli import main

sys.exit(main())
