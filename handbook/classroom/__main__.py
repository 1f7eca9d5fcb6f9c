"""``python -m handbook.classroom``: see :mod:`handbook.classroom`."""

import sys

from handbook.classroom import main

sys.exit(main())
