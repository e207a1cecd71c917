"""``python -m lossdsl``: the ``lossdsl`` command (see :mod:`lossdsl.cli`)."""

import sys

from lossdsl.cli import main

if __name__ == "__main__":
    sys.exit(main())
