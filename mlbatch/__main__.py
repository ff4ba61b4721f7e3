"""``python -m mlbatch``: the ``mlbatch`` command, for a checkout on ``PYTHONPATH`` without the console script."""

import sys

from mlbatch.cli import main

sys.exit(main())
