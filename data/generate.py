"""Write the sample data set through the storage layer: ``python data/generate.py --days 75``.

Same as ``mlbatch generate``; kept here so the data folder says where its data comes from.
"""

import sys

from mlbatch.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
