"""The committed results agree with themselves: no render older than its inputs (lib.provenance), the README
headline and notebook 30's tables equal what lib.report computes from the CSVs now, and run_times.md times
only runs of the current configuration. Checked on results/offline, and on small folders built here, each
with a violation planted that the check must report."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lib import provenance, report, reproduce
from lib.common import ROOT, stable_hash

PRESET = "offline"
COMMITTED = ROOT / "results" / PRESET
NOTEBOOKS = ROOT / "notebooks"
has_provenance = pytest.mark.skipif(
    not (COMMITTED / provenance.FILE).exists(),
    reason="results/offline was rendered before provenance was recorded (no provenance.json): "
    "`make reproduce` re-renders it with one",
)


# ---------------------------------------------------------------- checks on a results folder


def table_mismatches(folder: Path, preset: str, tmp_path: Path, monkeypatch) -> list[str]:
    """Notebook 30's tables (30_table_*.md) that differ from lib.report's rendering of the folder's CSVs,
    rendered into a copy of the folder (report writes them beside the CSVs it reads)."""
    copy = tmp_path / "rerendered" / preset
    shutil.copytree(folder, copy)
    monkeypatch.setattr(report, "results_dir", lambda p: copy)
    new = report.write_markdown(preset)
    old = lambda p: (folder / p.name).read_text() if (folder / p.name).exists() else None
    return sorted(p.name for p in new.values() if p.read_text() != old(p))


def without_machine(text: str) -> str:
    """A results README without the line part that names the machine it was generated on."""
    return re.sub(r"machine: [^;\n]*?(?=;|\.\n|\.$)", "machine: -", text, flags=re.M)


def run_times_problems(folder: Path, preset: str) -> list[str]:
    log, md = folder / "run_log.csv", folder / "run_times.md"
    problems = []
    if "config_hash" not in pd.read_csv(log, nrows=0).columns:
        problems.append("run_log.csv records no configuration per run")
    if not md.exists() or md.read_text() != reproduce.run_times(log, preset):
        problems.append("run_times.md is not the run log's times of the current configuration")
    return problems


# ---------------------------------------------------------------- the committed results/offline


@has_provenance
def test_no_committed_render_is_older_than_its_inputs_or_from_another_configuration():
    problems = provenance.check(COMMITTED, PRESET)
    assert not problems, "\n".join(map(str, problems))


@has_provenance
def test_committed_tables_of_notebook_30_are_the_rendering_of_the_csvs(tmp_path, monkeypatch):
    assert table_mismatches(COMMITTED, PRESET, tmp_path, monkeypatch) == []


@has_provenance
def test_readme_headline_is_computed_from_the_committed_csvs(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    report.update_readme(readme)  # the copy only: the check writes nothing in the repo
    assert readme.read_text() == (ROOT / "README.md").read_text(), "`make readme` rewrites the headline"


@has_provenance
def test_results_readme_is_computed_from_the_committed_csvs():
    got = without_machine((COMMITTED / "README.md").read_text())
    assert got == without_machine(report.results_readme(PRESET) + "\n"), "`make readme` rewrites it"


@has_provenance
def test_committed_run_times_come_only_from_runs_of_the_current_configuration():
    assert run_times_problems(COMMITTED, PRESET) == []


# ---------------------------------------------------------------- folders built here, violations planted


def notebook_run(nb: str) -> dict:
    """What lib.reproduce records of a run of a real notebook at PRESET, now."""
    commit, dirty = provenance.commit()
    cfg = provenance.config_hash(NOTEBOOKS / nb, PRESET)
    return {"commit": commit, "dirty": dirty, "config_hash": cfg, "fingerprint": "f"}


def synthetic_results(root: Path, monkeypatch) -> Path:
    """results/offline in small: notebook 21 writes its table; notebook 30 reads it (through read_csv, as
    notebook 30 and lib.report do) and writes its table and executed copy; both recorded as lib.reproduce
    records them."""
    folder = root / PRESET
    folder.mkdir(parents=True)
    (folder / "21_B_main_table.csv").write_text("dataset,method,seeds\ncommonsense_qa,tokens,3\n")
    (folder / "21_B_main_table.ipynb").write_text("{}")
    outputs = ["21_B_main_table.csv", "21_B_main_table.ipynb"]
    provenance.record(folder, "21_B_main_table.ipynb", outputs, {}, **notebook_run("21_B_main_table.ipynb"))
    log = root / "reads.jsonl"
    monkeypatch.setenv(provenance.READS_ENV, str(log))
    seeds = provenance.read_csv(folder / "21_B_main_table.csv").seeds[0]
    provenance.read_csv(folder / "24_B_encoder_table.csv")  # not written yet: read as absent
    monkeypatch.delenv(provenance.READS_ENV)
    (folder / "30_table_B.md").write_text(f"| seeds |\n|---|\n| {seeds} |\n")
    (folder / "30_improvement_tables.ipynb").write_text("{}")
    outputs = ["30_table_B.md", "30_improvement_tables.ipynb"]
    run = notebook_run("30_improvement_tables.ipynb")
    provenance.record(folder, "30_improvement_tables.ipynb", outputs, provenance.reads(log, folder), **run)
    return folder


def test_a_synthetic_folder_records_what_each_render_was_computed_from(tmp_path, monkeypatch):
    folder = synthetic_results(tmp_path, monkeypatch)
    assert provenance.check(folder, PRESET) == []
    prov = json.loads((folder / provenance.FILE).read_text())
    e = prov["30_table_B.md"]
    assert e["notebook"] == "30_improvement_tables.ipynb" and len(e["commit"]) == 40
    assert e["inputs"] == {
        "21_B_main_table.csv": provenance.sha256(folder / "21_B_main_table.csv"),
        "24_B_encoder_table.csv": None,
    }
    assert e["sha256"] == provenance.sha256(folder / "30_table_B.md")
    assert set(e) == {
        "notebook",
        "commit",
        "dirty",
        "config_hash",
        "fingerprint",
        "sha256",
        "inputs",
        "written_at",
    }


@pytest.mark.parametrize(
    "source",
    ["synthetic", pytest.param("committed", marks=has_provenance)],
)
def test_notebook_30_is_stale_once_notebook_21s_table_changes(source, tmp_path, monkeypatch):
    if source == "synthetic":
        folder = synthetic_results(tmp_path, monkeypatch)
    else:
        folder = tmp_path / PRESET
        shutil.copytree(COMMITTED, folder)
    csv = folder / "21_B_main_table.csv"
    csv.write_text(
        csv.read_text().replace(",3", ",5", 1) + "planted,row,5\n"
    )  # notebook 21 reran, 30 did not
    problems = provenance.check(folder, PRESET)
    assert provenance.stale_notebooks(problems) == {"30_improvement_tables.ipynb"}, problems
    stale = {p.file for p in problems if p.kind == "stale"}
    assert {"30_improvement_tables.ipynb", "30_table_B.md"} <= stale
    assert [p.file for p in problems if p.kind == "modified"] == ["21_B_main_table.csv"]


def test_an_input_that_appears_after_the_read_makes_the_reader_stale(tmp_path, monkeypatch):
    folder = synthetic_results(tmp_path, monkeypatch)
    (folder / "24_B_encoder_table.csv").write_text("dataset\nx\n")  # notebook 24 ran after notebook 30
    problems = provenance.check(folder, PRESET)
    assert provenance.stale_notebooks(problems) == {"30_improvement_tables.ipynb"}
    assert {p.kind for p in problems} == {"stale", "no provenance"}  # and 24's table has no record yet


def test_renders_without_record_or_from_another_configuration_are_reported(tmp_path, monkeypatch):
    folder = synthetic_results(tmp_path, monkeypatch)
    prov = json.loads((folder / provenance.FILE).read_text())
    prov["21_B_main_table.csv"]["config_hash"] = "an-older-one"  # computed before the preset changed
    (folder / provenance.FILE).write_text(json.dumps(prov))
    (folder / "21_B_old_figure.png").write_bytes(b"png")  # a file no recorded run wrote
    problems = provenance.check(folder, PRESET)
    kinds = {(p.kind, p.file, p.notebook) for p in problems}
    assert kinds == {
        ("other configuration", "21_B_main_table.csv", "21_B_main_table.ipynb"),
        ("no provenance", "21_B_old_figure.png", "21_B_main_table.ipynb"),
    }
    (folder / provenance.FILE).unlink()  # a folder rendered before provenance was recorded
    problems = provenance.check(folder, PRESET)
    assert {p.kind for p in problems} == {"no provenance"}
    assert {p.file for p in problems} == set(provenance.rendered(folder))


def test_a_notebook_that_no_longer_exists_makes_its_renders_another_configuration(tmp_path, monkeypatch):
    folder = synthetic_results(tmp_path, monkeypatch)
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    shutil.copy(NOTEBOOKS / "30_improvement_tables.ipynb", nbdir)  # notebook 21 removed
    problems = provenance.check(folder, PRESET, nbdir)
    assert {p.notebook for p in problems if p.kind == "other configuration"} == {"21_B_main_table.ipynb"}


def test_the_committed_folder_is_checked_file_by_file(tmp_path):
    """Whatever results/offline holds now: a copy without provenance.json has every render reported."""
    folder = tmp_path / PRESET
    shutil.copytree(COMMITTED, folder, ignore=shutil.ignore_patterns(provenance.FILE))
    problems = provenance.check(folder, PRESET)
    assert {p.file for p in problems} == set(provenance.rendered(folder)) and problems
    assert {p.kind for p in problems} == {"no provenance"}
    assert {p.notebook for p in problems if p.file.startswith("21_")} == {"21_B_main_table.ipynb"}


def test_notebook_30_tables_that_differ_from_the_csvs_rendering_are_reported(tmp_path, monkeypatch):
    folder = tmp_path / "copy" / PRESET
    shutil.copytree(COMMITTED, folder)
    monkeypatch.setattr(report, "results_dir", lambda p: folder)
    report.write_markdown(PRESET)  # rendered from these CSVs: nothing differs
    monkeypatch.undo()
    assert table_mismatches(folder, PRESET, tmp_path / "a", monkeypatch) == []
    for f in folder.glob("21_B_*.csv"):  # notebook 21's CSVs gone: table B now says "not run"
        f.unlink()
    assert table_mismatches(folder, PRESET, tmp_path / "b", monkeypatch) == ["30_table_B.md"]


def test_run_times_use_only_runs_of_the_current_configuration(tmp_path):
    now = provenance.config_hash(NOTEBOOKS / "21_B_main_table.ipynb", PRESET)
    log = tmp_path / "run_log.csv"
    header = ",".join(reproduce.LOG_HEADER)
    row = lambda s, n, cfg: f"t,{PRESET},21_B_main_table.ipynb,{s},100,{n},{cfg},fp"
    log.write_text(
        f"{header}\n{row(3000, 9, now)}\n{row(20, 0, now)}\n{row(900, 5, 'an-older-one')}\n"
        f"t,{PRESET},21_B_main_table.ipynb,800,100,4,,\n"  # logged before runs recorded their configuration
        f"t,{PRESET},99_gone.ipynb,5,100,0,x,fp\n"  # a notebook that no longer exists
    )
    cw = provenance.cold_warm(log)
    assert cw == {"21_B_main_table.ipynb": (3000.0, 20.0, 100.0)}
    (tmp_path / "run_times.md").write_text(reproduce.run_times(log, PRESET))
    assert run_times_problems(tmp_path, PRESET) == []
    old = log.read_text().replace(f",{now},", ",an-older-one,")  # every run under another configuration
    log.write_text(old)
    assert run_times_problems(tmp_path, PRESET) == [
        "run_times.md is not the run log's times of the current configuration"
    ]
    assert "| 21_B_main_table.ipynb |" not in reproduce.run_times(log, PRESET)
    assert reproduce.estimates(log)["21_B_main_table.ipynb"] == 800  # a guess: the last cold run of any


def test_notebooks_and_lib_report_read_other_notebooks_csvs_through_provenance(tmp_path, monkeypatch):
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        assert "read_csv(" not in provenance.code_of(nb), f"{nb.name}: read results with read_result"
    log = tmp_path / "reads.jsonl"
    monkeypatch.setenv(provenance.READS_ENV, str(log))
    monkeypatch.setattr(report, "results_dir", lambda p: tmp_path)
    report.tables(PRESET)  # what notebook 30 displays and writes
    read = provenance.reads(log, tmp_path)
    assert {"21_B_main_table.csv", "21_B_runs.csv"} & set(read), "route lib.report._read through read_csv"


# ---------------------------------------------------------------- make reproduce records and reruns


def test_reproduce_records_provenance_reruns_readers_of_changed_inputs_and_removes_leftovers(
    tmp_path, monkeypatch
):
    from tests.test_reliability import FakeRepo

    repo = FakeRepo(tmp_path, monkeypatch)
    # the notebook alone: this test changes inputs, not code
    monkeypatch.setattr(reproduce, "fingerprint", lambda nb, preset: stable_hash([nb.read_text(), preset]))
    out = repo.out
    write21 = lambda rows: repo.write(
        "21_b.ipynb", f"import pathlib\npathlib.Path({str(out)!r}, '21_b.csv').write_text('n\\n{rows}\\n')"
    )
    write21(3)
    read = "from lib.provenance import read_csv\nt = read_csv({!r})\n".format(str(out / "21_b.csv"))
    repo.write("30_c.ipynb", read + f"open({str(out / '30_c.md')!r}, 'w').write(f'seeds {{t.n[0]}}')")
    assert repo.ran() == ["21_b.ipynb", "30_c.ipynb"]
    prov = provenance.load(out)
    assert set(prov) == {"21_b.csv", "21_b.ipynb", "30_c.md", "30_c.ipynb"}
    assert prov["30_c.md"]["inputs"] == {"21_b.csv": provenance.sha256(out / "21_b.csv")}
    assert prov["21_b.csv"]["inputs"] == {} and prov["21_b.csv"]["notebook"] == "21_b.ipynb"
    assert provenance.check(out, "smoke", repo.nbdir) == []
    logged = pd.read_csv(out / "run_log.csv", dtype=str)
    assert logged.config_hash.tolist() == [
        provenance.config_hash(repo.nbdir / n, "smoke") for n in logged.notebook
    ]
    assert repo.ran() == []

    (out / "21_b.csv").write_text("n\n5\n")  # notebook 21's table changed behind notebook 30's back
    assert provenance.stale_notebooks(provenance.check(out, "smoke", repo.nbdir)) == {"30_c.ipynb"}
    assert repo.ran() == ["30_c.ipynb"]  # 21 is up to date; 30 read an earlier table
    assert (out / "30_c.md").read_text() == "seeds 5"
    assert [p.kind for p in provenance.check(out, "smoke", repo.nbdir)] == ["modified"]  # the hand edit

    (out / "21_b_from_an_earlier_run.png").write_bytes(b"png")
    write21(4)  # notebook 21 changes: it reruns and writes its table again, and 30 reruns after it
    assert repo.ran() == ["21_b.ipynb", "30_c.ipynb"]
    assert not (out / "21_b_from_an_earlier_run.png").exists()  # left by an earlier run: removed
    assert provenance.check(out, "smoke", repo.nbdir) == [] and (out / "30_c.md").read_text() == "seeds 4"


def test_offline_trains_in_bf16_only_where_offline_fulls_bf16_check_allows_it():
    """The `run` section's bf16_training of offline is on only where the rule report.bf16_training_learns
    applies to notebook 05's bf16 check at offline_full (six seeds on every candidate dataset) allows it;
    fp32 training needs no evidence. Read from the committed results/offline_full."""
    from lib.config import get_preset

    allowed, why = report.bf16_training_learns("offline_full")
    assert allowed or not get_preset("offline")["run"]["bf16_training"], why
