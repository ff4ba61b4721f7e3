"""Batch scoring and periodic retraining of scikit-learn models, orchestrated by Prefect (see the README).

Importing the package makes jemalloc pyarrow's allocator for this process,
unless ``ARROW_DEFAULT_MEMORY_POOL`` is already set or pyarrow is already
imported. Why: scoring allocates and frees batch-sized buffers all night;
with pyarrow's default (mimalloc) the scoring path kept 60-80 MB more
resident at the same throughput on the 1M-row benchmark
(``bench/bench_score.py``). The variable is read once, when pyarrow loads,
so it has to be set here, before any module imports pyarrow.
"""

import os as _os

_os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
