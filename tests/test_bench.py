"""`make bench` at smoke size: every row's equality assertion (fast path == baseline) runs and holds."""

import pytest
import torch

from lib import bench, phases


@pytest.fixture(autouse=True)
def small_peak(monkeypatch):
    """The report's form, not this machine's peak, is under test: one small GEMM shape instead of the
    student's (the bf16 peak alone takes half a minute on a CPU without bf16 units)."""
    monkeypatch.setattr(phases, "SHAPES", ((64, 64, 64),))
    cached = bench.peak_ratio  # a test may replace it; its cache must not keep the small shape's ratio
    cached.cache_clear()
    yield
    cached.cache_clear()


def test_bench_rows_assert_equal_outputs_and_write_the_report(tmp_path):
    assert bench.main(["--preset", "smoke", "--repeats", "1", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "bench_smoke.md").read_text()
    for name in (
        "attribution_saliency",
        "attribution_ig",
        "self_consistency",
        "sc_prefill_sharing",
        "option_scoring",
        "ta_confidence",
        "train_step",
        "bucketed_batches",
        "bf16_option_scoring",
        "bf16_generation",
        "bf16_saliency",
        "bf16_train_step",
    ):
        assert f"| {name} |" in md


def test_bench_profile_subset_reports_gemm_share_and_rejects_unknown_rows(tmp_path, capsys):
    assert (
        bench.main(
            [
                "--preset",
                "smoke",
                "--repeats",
                "1",
                "--rows",
                "bf16_option_scoring",
                "--profile",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    md = (tmp_path / "bench_smoke_profile.md").read_text()
    assert (
        "| bf16_option_scoring |" in md
        and "GEMM share of CPU time: fast" in md
        and "CPU s outside GEMMs" in md
        and "sped up by the peak ratio" in md
        and "| ta_confidence |" not in md
    )
    assert "Load average (1 min)" in md  # a shared CPU shows in the report
    assert bench.main(["--preset", "smoke", "--rows", "bf16_option_scoring,nope"]) == 2
    assert "unknown bench row(s) ['nope']" in capsys.readouterr().err


def test_bf16_bound_is_amdahls_law_over_the_gemm_share(monkeypatch):
    monkeypatch.setattr(bench, "peak_ratio", lambda: 2.0)
    # the fp32 path: 5 s in GEMMs of 10 s wall (8 s inside ops, 2 s outside any)
    p = {"fast_s": 1.0, "base_s": 10.0, "cpu": ({"gemm": 3.0, "total": 9.0}, {"gemm": 5.0, "total": 8.0})}
    assert bench.bf16_bound(p) == pytest.approx(4 / 3) and "cpu" not in p  # 1 / (0.5 + 0.5 / 2)
    assert "bound 1.33x" in p["profile"]
    assert bench.bf16_bound({"fast_s": 1.0}) is None  # no profile, no bound


def test_a_batching_rows_bound_is_its_baselines_gemm_flops_at_the_measured_peak(monkeypatch):
    """The most batching can gain: the baseline's wall time over the time its GEMM FLOPs take at the peak."""
    monkeypatch.setattr(bench, "matmul_peak", lambda dtype=None: 1e11)  # 100 GFLOP/s
    p = {"fast_s": 1.0, "base_s": 10.0, "cpu": ({"gemm_flop": 1e11}, {"gemm_flop": 4e11}), "profile": "x"}
    bench.batching_bound(p)  # 0.4 TFLOP at 100 GFLOP/s = 4 s of the baseline's 10 s: at most 2.5x
    assert (
        p["profile"].startswith("bound 2.50x (the baseline's 0.40 TFLOP of GEMMs take 4.0 s")
        and "cpu" not in p
    )
    q = {"fast_s": 1.0, "base_s": 10.0}
    bench.batching_bound(q)
    assert "profile" not in q  # no profile, no bound


def test_the_profiler_counts_a_matmuls_flops():
    a, b = torch.randn(64, 32), torch.randn(32, 16)
    assert bench.cpu_profile(lambda: a @ b)["gemm_flop"] == 2 * 64 * 32 * 16


def test_a_bf16_rows_target_is_ninety_percent_of_its_bound_on_this_machine(monkeypatch):
    """The same row meets on a machine whose bf16 units allow its ratio and misses on one that allows more."""
    timing = {"fast_s": 1.0, "base_s": 2.0}  # bf16 twice as fast as fp32
    for peak_ratio, verdict in ((2.0, "meets"), (4.0, "misses")):
        monkeypatch.setattr(bench, "peak_ratio", lambda r=peak_ratio: r)
        p = {**timing, "cpu": ({"gemm": 0.5, "total": 1.0}, {"gemm": 2.0, "total": 2.0})}  # all GEMM in fp32
        r = bench.row("bf16_option_scoring", "x", n=1, target=bench.amdahl_target(bench.bf16_bound(p)), **p)
        assert r["target"] == pytest.approx(0.9 * peak_ratio, abs=0.01) and r["verdict"].startswith(verdict)


def test_train_steps_ratio_is_its_share_of_the_measured_peak(tmp_path):
    assert (
        bench.main(["--preset", "smoke", "--repeats", "1", "--rows", "train_step", "--out", str(tmp_path)])
        == 0
    )
    line = next(
        x for x in (tmp_path / "bench_smoke_profile.md").read_text().splitlines() if "| train_step |" in x
    )
    cells = [c.strip() for c in line.split("|")[1:-1]]
    fast, base, ratio, target = map(float, (cells[4], cells[5], cells[6], cells[7]))
    # the cells are rounded to two decimals: their quotient may be off by that much
    assert ratio == pytest.approx(base / fast, rel=0.02, abs=0.01 * (1 + ratio) / fast)
    assert target == 0.5 and "GFLOP/s against" in cells[9]
