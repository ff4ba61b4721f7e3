"""Trim an installed virtual environment for the runtime image (run in the Containerfile's build stage).

Removes what nothing imports at run time: the packages' own test suites
(directories named ``tests``), C/C++/Cython sources and headers (only a
compiler reads them, and the image has none), and replaces byte-identical
copies of one file in one directory (wheels cannot hold symbolic links, so
``libfoo.so``, ``libfoo.so.1`` and ``libfoo.so.1.2`` arrive as three copies)
by relative symbolic links to one of them.

    python slim.py /opt/mlbatch
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections import defaultdict
from pathlib import Path

SOURCE_SUFFIXES = {".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".pyx", ".pxd", ".pxi"}
# below this a duplicate is not worth a link (and tiny files are often deliberately separate copies)
MIN_DEDUP_BYTES = 1 << 20


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def remove_tests(site: Path) -> int:
    """Delete every ``tests`` package directory under ``site``; return the bytes freed."""
    freed = 0
    for d in sorted(site.rglob("tests"), key=lambda p: len(p.parts)):
        if d.is_dir() and not d.is_symlink() and d.exists():
            freed += sum(f.stat().st_size for f in d.rglob("*") if f.is_file() and not f.is_symlink())
            shutil.rmtree(d)
    return freed


def remove_sources(site: Path) -> int:
    """Delete C/C++/Cython sources and headers; return the bytes freed."""
    freed = 0
    for f in site.rglob("*"):
        if f.suffix in SOURCE_SUFFIXES and f.is_file() and not f.is_symlink():
            freed += f.stat().st_size
            f.unlink()
    for d in sorted((p for p in site.rglob("include") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(p.is_file() for p in d.rglob("*")):
            shutil.rmtree(d)
    return freed


def link_duplicates(root: Path) -> int:
    """Replace identical large files in one directory by relative links to the one with the longest name."""
    groups: dict[tuple[Path, int, str], list[Path]] = defaultdict(list)
    for f in root.rglob("*"):
        if f.is_file() and not f.is_symlink() and f.stat().st_size >= MIN_DEDUP_BYTES:
            groups[(f.parent, f.stat().st_size, _digest(f))].append(f)
    freed = 0
    for (_, size, _), files in groups.items():
        if len(files) < 2:
            continue
        keep = max(files, key=lambda p: (len(p.name), p.name))
        for f in files:
            if f != keep:
                f.unlink()
                f.symlink_to(keep.name)
                freed += size
    return freed


def main(argv: list[str]) -> int:
    """Trim the venv named by ``argv[0]`` and print what each step freed."""
    venv = Path(argv[0])
    [site] = list(venv.glob("lib/python3*/site-packages"))
    for name, step in [("tests", remove_tests), ("sources", remove_sources), ("duplicates", link_duplicates)]:
        print(f"slim: {name}: {step(site) / 1e6:.0f} MB freed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
