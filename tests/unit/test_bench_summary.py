"""The benchmark's summary: the README's table is built from it, so its ratios must mean what the README says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_score.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_score", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(variant: str, rate: float, peak_mb: float) -> dict:
    return {"variant": variant, "rows": 1_000, "seconds": 1_000 / rate, "peak_mb": peak_mb, "process_seconds": 1.0}


def test_x_floor_is_the_median_of_each_rounds_ratio_to_its_own_floor(bench):
    # a lucky floor in round 2 and a lucky flow in round 3: best against best would say 110/120 = 0.92
    rounds = [
        {"predict:onnx": run("predict:onnx", 100, 900), "flow:onnx": run("flow:onnx", 95, 340)},
        {"predict:onnx": run("predict:onnx", 120, 950), "flow:onnx": run("flow:onnx", 90, 350)},
        {"predict:onnx": run("predict:onnx", 105, 920), "flow:onnx": run("flow:onnx", 110, 345)},
    ]
    rows = {r["variant"]: r for r in bench.summarize(rounds)}
    flow = rows["flow:onnx"]
    assert flow["vs_floor"] == pytest.approx(0.95)  # median of 0.95, 0.75, 1.0476
    assert flow["vs_floor_best"] == pytest.approx(110 / 120)
    assert flow["rate"] == pytest.approx(110) and flow["rate_median"] == pytest.approx(95)
    assert flow["peak_mb"] == 350  # the highest of the rounds, not the best run's
    assert rows["predict:onnx"]["vs_floor"] == pytest.approx(1.0)


def test_variants_without_their_floor_or_naive_get_no_ratio(bench):
    rounds = [
        {"io": run("io", 500, 180), "naive": run("naive", 80, 1_000), "flow:sklearn": run("flow:sklearn", 90, 350)}
    ]
    rows = {r["variant"]: r for r in bench.summarize(rounds)}
    assert rows["io"]["vs_floor"] is None and rows["flow:sklearn"]["vs_floor"] is None  # no predict:sklearn ran
    assert rows["flow:sklearn"]["vs_naive_mb"] == pytest.approx(0.35)
    assert rows["flow:sklearn"]["vs_batched"] is None  # nor batched:sklearn
    assert "| flow:sklearn | 1,000 | 90 | 90 | — | — | — | 350 | 0.35 | 0.35 |" in bench.table(
        "native", {"model": "m", "version": 1, "onnx_gate": "-"}, bench.summarize(rounds)
    )


def test_x_batched_pairs_each_round_with_its_engines_batched_run(bench):
    # batched is the model alone in the flow's calls: the flow over it is the share its own work leaves the model
    rates = [(120, 90), (100, 80), (110, 88)]  # (batched, flow) per round
    rounds = [{"batched:onnx": run("batched:onnx", b, 500), "flow:onnx": run("flow:onnx", f, 340)} for b, f in rates]
    rows = {r["variant"]: r for r in bench.summarize(rounds)}
    assert rows["flow:onnx"]["vs_batched"] == pytest.approx(0.8)  # median of 0.75, 0.8, 0.8
    assert rows["batched:onnx"]["vs_batched"] == pytest.approx(1.0)
    assert rows["flow:onnx"]["vs_floor"] is None  # no predict:onnx in these rounds


def test_x_naive_rss_worst_round_pairs_each_peak_with_the_naive_peak_of_its_round(bench):
    # the naive script's own peak varies run to run: highest against highest hides a round where it ran low
    peaks = [(1_000, 340), (950, 345), (1_030, 342)]  # (naive, flow) per round
    rounds = [{"naive": run("naive", 80, n), "flow:onnx": run("flow:onnx", 90, f)} for n, f in peaks]
    rows = {r["variant"]: r for r in bench.summarize(rounds)}
    assert rows["flow:onnx"]["vs_naive_mb"] == pytest.approx(345 / 1_030)
    assert rows["flow:onnx"]["vs_naive_mb_worst"] == pytest.approx(345 / 950)
    assert rows["flow:onnx"]["peaks_mb"] == [340, 345, 342]
    assert rows["naive"]["vs_naive_mb_worst"] == pytest.approx(1.0)
    assert "| 345 | 0.33 | 0.36 |" in bench.table(
        "onehot", {"model": "m", "version": 1, "onnx_gate": "-"}, list(rows.values())
    )


def test_acceptance_checks_each_bound_and_shows_both_memory_statistics(bench):
    # onnx: 2.5x and 2x scikit-learn's rate in the two rounds; scikit-learn's flow is 0.349 of the naive script's
    # highest peak but 0.363 of its low draw in round 2, so only the worst-round check fails
    rounds = [
        {
            "predict:onnx": run("predict:onnx", 400, 1_000),
            "predict:sklearn": run("predict:sklearn", 160, 1_100),
            "flow:onnx": run("flow:onnx", 500, 320),
            "flow:sklearn": run("flow:sklearn", 200, 345),
            "naive": run("naive", 130, 1_000),
        },
        {
            "predict:onnx": run("predict:onnx", 420, 990),
            "predict:sklearn": run("predict:sklearn", 150, 1_050),
            "flow:onnx": run("flow:onnx", 380, 322),
            "flow:sklearn": run("flow:sklearn", 190, 349),
            "naive": run("naive", 128, 960),
        },
    ]
    shapes = {"onehot": {"results": bench.summarize(rounds)}}
    checks = {c["criterion"]: c for c in bench.acceptance(shapes)}
    assert checks["flow:onnx rate / onnx floor (median of rounds)"]["value"] == pytest.approx((1.25 + 380 / 420) / 2)
    assert checks["flow:onnx rate / flow:sklearn rate (median of rounds)"]["value"] == pytest.approx(2.25)
    assert checks["flow:onnx rate / flow:sklearn rate (median of rounds)"]["holds"] is True
    highest = checks["flow:sklearn peak / naive peak (highest over highest)"]
    worst = checks["flow:sklearn peak / naive peak (worst round)"]
    assert highest["value"] == pytest.approx(0.349) and highest["holds"] is True
    assert worst["value"] == pytest.approx(349 / 960) and worst["holds"] is False
    assert not any("rows" in name for name in checks)  # no baseline run: no growth check
    assert "| onehot | flow:sklearn peak / naive peak (worst round) | 0.364 | <= 0.35 | **no** |" in (
        bench.acceptance_table(list(checks.values()))
    )


def test_acceptance_with_a_baseline_run_checks_each_flows_growth(bench):
    def one_round(rows: int, flow_mb: float) -> dict:
        result = run("flow:onnx", 400, flow_mb)
        return {"flow:onnx": {**result, "rows": rows}}

    baseline = {"native": {"results": bench.summarize([one_round(1_000_000, 320)])}}
    flat = {"native": {"results": bench.summarize([one_round(10_000_000, 345)])}}
    grown = {"native": {"results": bench.summarize([one_round(10_000_000, 360)])}}
    name = "flow:onnx peak at 10,000,000 / at 1,000,000 rows"
    check = {c["criterion"]: c for c in bench.acceptance(flat, baseline)}[name]
    assert check["value"] == pytest.approx(345 / 320) and check["holds"] is True
    assert {c["criterion"]: c for c in bench.acceptance(grown, baseline)}[name]["holds"] is False  # 1.125x
    # without predict:onnx and naive in the run, their checks are there but say they were not measured
    floor = {c["criterion"]: c for c in bench.acceptance(flat)}["flow:onnx rate / onnx floor (median of rounds)"]
    assert floor["holds"] is None and "| not measured |" in bench.acceptance_table([floor])
