"""One contract, two back ends: every test runs on local disk and on S3 (moto's HTTP server).

The registry and publication rely on these guarantees instead of a database,
so they are tested through the public ``Storage`` interface only: a layout
written on one back end must read the same on the other, and the two
conditional writes must let exactly one of several racing writers win.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from mlbatch.errors import ConflictError, ObjectNotFoundError, ParameterError
from mlbatch.storage import Storage

ROUNDS = 8


# ---- objects, listing, JSON ------------------------------------------------------------------------------
def test_exists_list_and_list_dirs_show_the_same_layout(storage: Storage):
    storage.write_bytes("lake/b/one.bin", b"1")
    storage.write_bytes("lake/c/deep/two.bin", b"22")
    storage.write_bytes("lake/top.bin", b"333")
    storage.write_bytes("elsewhere/x.bin", b"x")

    assert storage.exists("lake/b/one.bin")
    assert not storage.exists("lake/b/none.bin")
    assert not storage.exists("lake/b")  # a directory is not an object
    listed = storage.list("lake")
    assert [(o.key, o.size) for o in listed] == [
        ("lake/b/one.bin", 1),
        ("lake/c/deep/two.bin", 2),
        ("lake/top.bin", 3),
    ]
    assert all(o.etag for o in listed)
    assert storage.list_dirs("lake") == ["b", "c"]
    assert storage.list_dirs("lake/c") == ["deep"]
    assert storage.list_dirs("missing") == []
    assert storage.list("missing") == []
    assert storage.list("lake/top.bin") == []  # a prefix names a directory, never an object


def test_write_returns_the_token_that_read_versioned_returns(storage: Storage):
    token = storage.write_bytes("v/obj.bin", b"payload")
    data, read_token = storage.read_versioned("v/obj.bin")
    assert data == b"payload"
    assert read_token == token
    assert storage.read_bytes("v/obj.bin") == b"payload"


def test_json_round_trip(storage: Storage):
    obj = {"version": 3, "metrics": {"roc_auc": 0.81}, "tags": ["a", "b"]}
    token = storage.write_json("registry/m/card.json", obj)
    assert storage.read_json("registry/m/card.json") == obj
    assert storage.read_json_versioned("registry/m/card.json") == (obj, token)


def test_reading_a_missing_object_names_the_key(storage: Storage):
    with pytest.raises(ObjectNotFoundError, match=re.escape("nothing/here.json")) as err:
        storage.read_bytes("nothing/here.json")
    assert err.value.uri == storage.uri("nothing/here.json")
    with pytest.raises(ObjectNotFoundError, match=re.escape("nothing/src.bin")):
        storage.copy("nothing/src.bin", "nothing/dst.bin")


def test_copy_delete_and_delete_prefix(storage: Storage):
    storage.write_bytes("src/a.bin", b"a")
    storage.copy("src/a.bin", "dst/sub/a.bin")
    assert storage.read_bytes("dst/sub/a.bin") == b"a"
    assert storage.read_bytes("src/a.bin") == b"a"

    storage.delete("src/a.bin")
    assert not storage.exists("src/a.bin")
    storage.delete("src/a.bin")  # deleting a missing key is not an error

    for i in range(3):
        storage.write_bytes(f"tree/p/{i}.bin", b"x")
    storage.write_bytes("tree/keep.bin", b"k")
    assert storage.delete_prefix("tree/p") == 3
    assert [o.key for o in storage.list("tree")] == ["tree/keep.bin"]
    assert storage.list_dirs("tree") == []  # no empty directory left behind on disk either


def test_upload_file_and_staged_file(storage: Storage, tmp_path: Path):
    local = tmp_path / "report.html"
    local.write_bytes(b"<html></html>")
    storage.upload_file(local, "reports/r.html")
    assert storage.read_bytes("reports/r.html") == b"<html></html>"
    with pytest.raises(ConflictError):
        storage.upload_file(local, "reports/r.html", if_none_match=True)

    with storage.staged_file("staged/ok.txt") as path:
        Path(path).write_text("done")
    assert storage.read_bytes("staged/ok.txt") == b"done"

    with pytest.raises(RuntimeError, match="writer failed"), storage.staged_file("staged/failed.txt") as path:
        Path(path).write_text("half")
        raise RuntimeError("writer failed")
    assert not storage.exists("staged/failed.txt")  # an error discards the staged file

    with pytest.raises(ConflictError), storage.staged_file("staged/ok.txt", if_none_match=True) as path:
        Path(path).write_text("second")
    assert storage.read_bytes("staged/ok.txt") == b"done"


# ---- Parquet ---------------------------------------------------------------------------------------------
def _day_table(day: int) -> pa.Table:
    return pa.table({"id": [day * 10 + i for i in range(4)], "x": [0.5 * i for i in range(4)], "s": list("abcd")})


def test_write_parquet_and_read_a_hive_partition_with_pruned_columns(storage: Storage):
    keys = []
    for day in (1, 2, 3):
        key = f"raw/t/dt=2026-01-0{day}/part-00000.parquet"
        storage.write_parquet(key, _day_table(day))
        keys.append(key)
    assert storage.list_dirs("raw/t") == ["dt=2026-01-01", "dt=2026-01-02", "dt=2026-01-03"]

    table = storage.read_table(
        keys, columns=["id", "dt"], filter=ds.field("dt") == "2026-01-02", partition_base="raw/t"
    )
    assert table.column_names == ["id", "dt"]
    assert table.column("id").to_pylist() == [20, 21, 22, 23]
    assert set(table.column("dt").to_pylist()) == {"2026-01-02"}

    # a partition the filter excludes is never opened: a corrupt file there does not matter
    storage.write_bytes("raw/t/dt=2026-01-09/part-00000.parquet", b"not parquet at all")
    pruned = storage.read_table(
        [*keys, "raw/t/dt=2026-01-09/part-00000.parquet"],
        columns=["id"],
        filter=ds.field("dt") == "2026-01-03",
        partition_base="raw/t",
    )
    assert pruned.column("id").to_pylist() == [30, 31, 32, 33]
    with pytest.raises(pa.ArrowInvalid):  # ...while selecting it does open it
        storage.read_table(
            [*keys, "raw/t/dt=2026-01-09/part-00000.parquet"],
            filter=ds.field("dt") == "2026-01-09",
            partition_base="raw/t",
        )

    plain = storage.read_table(keys[:1], columns=["x"], filter=ds.field("id") > 11)
    assert plain.column_names == ["x"]
    assert plain.column("x").to_pylist() == [1.0, 1.5]


def test_parquet_file_streams_zstd_row_groups(storage: Storage):
    storage.write_parquet("p/one.parquet", _day_table(7))
    pf = storage.parquet_file("p/one.parquet")
    assert pf.metadata.num_rows == 4
    assert pf.schema_arrow.names == ["id", "x", "s"]
    assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
    assert next(pf.iter_batches(batch_size=2, columns=["s"])).column(0).to_pylist() == ["a", "b"]


def test_parquet_file_reads_named_text_columns_as_dictionaries(storage: Storage):
    storage.write_parquet("p/one.parquet", pa.table({"x": [0.5, 1.0, 1.5, 2.0], "s": ["a", "b", None, "a"]}))
    pf = storage.parquet_file("p/one.parquet", dictionary=["s", "x", "absent"])  # x is numeric, absent is absent
    assert pf.schema_arrow.field("s").type == pa.dictionary(pa.int32(), pa.string())
    assert pf.schema_arrow.field("x").type == pa.float64()
    batch = next(pf.iter_batches(batch_size=4, columns=["s", "x"]))
    assert batch.column(0).dictionary.to_pylist() == ["a", "b"]
    assert batch.column(0).to_pylist() == ["a", "b", None, "a"]
    assert storage.parquet_file("p/one.parquet").schema_arrow.field("s").type == pa.string()


def test_parquet_file_holds_a_bounded_buffer_per_column_not_the_whole_row_group(storage: Storage, tmp_path: Path):
    """The scoring reader's memory must not grow with the writer's row-group size (see ``parquet_file``)."""
    values = np.random.default_rng(0).random(3_000_000)  # 24 MB of incompressible doubles in one row group
    pq.write_table(pa.table({"x": values}), tmp_path / "big.parquet", row_group_size=len(values), use_dictionary=False)
    assert pq.ParquetFile(tmp_path / "big.parquet").metadata.row_group(0).column(0).total_compressed_size > 23e6
    storage.upload_file(tmp_path / "big.parquet", "p/big.parquet")

    def allocated() -> int:
        """Bytes held by every pyarrow allocator: a scoring run earlier in this process may have switched the
        default one (``apply_memory_pool``), and a reader can keep allocating from the pool it started with."""
        pools = [pa.system_memory_pool()]
        for make in (pa.jemalloc_memory_pool, pa.mimalloc_memory_pool):
            with contextlib.suppress(NotImplementedError):  # a pyarrow build without that allocator
                pools.append(make())
        return sum(p.bytes_allocated() for p in pools)

    def held_while_streaming() -> int:
        before = allocated()
        batches = storage.parquet_file("p/big.parquet").iter_batches(batch_size=1024, columns=["x"])
        assert next(batches).column(0).to_pylist() == values[:1024].tolist()
        held = allocated() - before
        rest = np.concatenate([b.column(0).to_numpy() for b in batches])  # refill after refill, nothing lost
        assert np.array_equal(rest, values[1024:])
        return held

    # the buffer (64 KiB local, 8 MiB on S3) and a 1 MB page, decompressed
    assert held_while_streaming() < storage.read_buffer_size + 3e6
    storage.read_buffer_size = 0  # the control: one read of the whole column chunk
    assert held_while_streaming() > 23e6


# ---- conditional writes ----------------------------------------------------------------------------------
def test_create_only_fails_when_the_object_exists(storage: Storage):
    storage.write_bytes("reg/v1/card.json", b"first", if_none_match=True)
    with pytest.raises(ConflictError, match="already exists") as err:
        storage.write_bytes("reg/v1/card.json", b"second", if_none_match=True)
    assert err.value.uri == storage.uri("reg/v1/card.json")
    assert storage.read_bytes("reg/v1/card.json") == b"first"


def test_compare_and_swap_fails_when_changed_or_vanished_since_read(storage: Storage):
    storage.write_bytes("reg/alias.json", b"v1")
    _, token = storage.read_versioned("reg/alias.json")
    storage.write_bytes("reg/alias.json", b"v2 by someone else")
    with pytest.raises(ConflictError, match="changed since it was read"):
        storage.write_bytes("reg/alias.json", b"v3", if_match=token)
    assert storage.read_bytes("reg/alias.json") == b"v2 by someone else"

    _, token = storage.read_versioned("reg/alias.json")
    new_token = storage.write_bytes("reg/alias.json", b"v3", if_match=token)
    assert storage.read_versioned("reg/alias.json") == (b"v3", new_token)

    storage.delete("reg/alias.json")
    with pytest.raises(ConflictError, match="vanished"):
        storage.write_bytes("reg/alias.json", b"v4", if_match=new_token)
    assert not storage.exists("reg/alias.json")


def _race(write: Callable[[bytes], None], round_: int, writers: int) -> tuple[list[bytes], list[BaseException]]:
    """``writers`` threads released together by a barrier; returns the payloads that won and every error.

    Payloads differ per round: both tokens are content hashes (SHA-256 on disk, the MD5 ETag on
    S3), so rewriting identical bytes would leave the token unchanged and let a stale CAS pass.
    """
    barrier = threading.Barrier(writers)
    won: list[bytes] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(payload: bytes) -> None:
        barrier.wait()
        try:
            write(payload)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                won.append(payload)

    threads = [threading.Thread(target=writer, args=(b"r%d-w%d" % (round_, i),)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, errors


# Two writers is the everyday case; eight widen the race window enough that a check-then-write
# implementation is caught (measured: it double-won 2-3 of 8 rounds with eight, none with two).
WRITERS = [2, 8]


@pytest.mark.parametrize("writers", WRITERS)
def test_concurrent_create_only_writers_exactly_one_wins(storage: Storage, writers: int):
    storage.exists("race/warm-up")  # build the client before the threads share it
    for round_ in range(ROUNDS):
        key = f"race/create/{round_}.json"
        won, errors = _race(lambda data, key=key: storage.write_bytes(key, data, if_none_match=True), round_, writers)
        assert len(won) == 1, f"round {round_}: winners {won}, errors {errors}"
        assert [type(e) for e in errors] == [ConflictError] * (writers - 1), f"round {round_}: {errors}"
        assert storage.read_bytes(key) == won[0]


@pytest.mark.parametrize("writers", WRITERS)
def test_concurrent_cas_writers_from_the_same_token_exactly_one_wins(storage: Storage, writers: int):
    key = "race/alias.json"
    storage.write_bytes(key, b"start")
    for round_ in range(ROUNDS):
        _, token = storage.read_versioned(key)
        won, errors = _race(lambda data, token=token: storage.write_bytes(key, data, if_match=token), round_, writers)
        assert len(won) == 1, f"round {round_}: winners {won}, errors {errors}"
        assert [type(e) for e in errors] == [ConflictError] * (writers - 1), f"round {round_}: {errors}"
        assert storage.read_bytes(key) == won[0]


# ---- keys ------------------------------------------------------------------------------------------------
ESCAPING_KEYS = ["../outside.bin", "a/../../outside.bin", "/etc/passwd", "a/./b.bin", "a//b.bin", "a\\..\\b.bin", ""]


@pytest.mark.parametrize("key", ESCAPING_KEYS)
def test_keys_that_could_escape_the_root_are_refused(storage: Storage, key: str, tmp_path: Path):
    with pytest.raises(ParameterError, match="invalid storage key"):
        storage.write_bytes(key, b"x")
    with pytest.raises(ParameterError, match="invalid storage key"):
        storage.read_bytes(key)
    with pytest.raises(ParameterError, match="invalid storage key"), storage.staged_file(key):
        pass
    assert not (tmp_path / "outside.bin").exists()
    assert storage.list("") == []
