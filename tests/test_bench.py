"""`make bench` at smoke size: every row's equality assertion (fast path == baseline) runs and holds."""

import pytest

from lib import bench


@pytest.fixture(autouse=True)
def small_peak(monkeypatch):
    """The report's form, not this machine's peak, is under test: one small GEMM shape instead of the
    student's (the bf16 peak alone takes half a minute on a CPU without bf16 units)."""
    monkeypatch.setattr(bench, "SHAPES", ((64, 64, 64),))
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
    assert "bound 1.33x" in bench.bf16_bound(p) and "cpu" not in p  # 1 / (0.5 + 0.5 / 2)
    assert bench.bf16_bound({"fast_s": 1.0}) == ""  # no profile, no bound
