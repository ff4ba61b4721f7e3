"""``python -m mlbatch.cli``: the same command as ``mlbatch``."""

import sys

from mlbatch.cli import main

sys.exit(main())
