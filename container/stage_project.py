"""Copy one installed distribution's files (and any extra paths) under a staging root, absolute paths kept.

The Containerfile's runtime stage copies the dependencies' environment from
the ``deps`` stage, which only the lock changes, and then this staged tree:
so a code change re-copies the project's few files, not the whole environment.

    python stage_project.py DISTRIBUTION STAGE [EXTRA_PATH ...]
"""

from __future__ import annotations

import shutil
import sys
from importlib.metadata import distribution
from pathlib import Path


def stage(name: str, root: Path, extra: list[Path]) -> int:
    """Copy the files ``name``'s RECORD lists, plus ``extra``, to ``root`` + their absolute path; return the count."""
    dist = distribution(name)
    paths = [Path(dist.locate_file(f)).resolve() for f in dist.files or []] + [p.resolve() for p in extra]
    count = 0
    for path in paths:
        if path.is_file():
            target = root / path.relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            count += 1
    return count


def main(argv: list[str]) -> int:
    """Stage the distribution ``argv[0]`` under ``argv[1]``; further arguments are extra files."""
    name, root, *extra = argv
    print(f"staged {stage(name, Path(root), [Path(p) for p in extra])} files of {name} under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
