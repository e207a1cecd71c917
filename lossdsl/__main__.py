"""``python -m lossdsl``: the ``lossdsl`` command (see :mod:`lossdsl.tools.cli`)."""

import sys

from lossdsl.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
