"""Notebook 05's two steps (lib.recipe): the screen picks on dev alone, the confirm step runs the picked
recipe on every seed with gold and shuffled labels."""

import pandas as pd

from lib import config, data, recipe

from .conftest import needs_assets


def _screen_runs():
    rows = [  # (student, dataset, recipe, pretrained dev, best trained dev, test acc)
        ("lm", "commonsense_qa", "n=16 lr=0.003 linear", 0.2, 0.5, 0.1),
        ("lm", "commonsense_qa", "n=16 lr=0.003 constant", 0.2, 0.6, 0.0),  # best dev, worst test
        ("lm", "strategyqa", "n=16 lr=0.003 linear", 0.5, 0.4, 0.9),
        ("lm", "strategyqa", "n=16 lr=0.003 constant", 0.5, 0.4, 0.2),  # a tie: the first stays
    ]
    return pd.DataFrame(
        [
            {"student": s, "dataset": d, "recipe": r, "zero_shot_dev": z, "best_dev": b, "test_acc": t}
            | {"best_epoch": 1.0, "steps": 8}
            for s, d, r, z, b, t in rows
        ]
    )


def test_the_screen_picks_the_best_dev_recipe_and_never_reads_test():
    t = recipe.screen_table(_screen_runs())
    picked = t[t.picked].set_index("dataset").recipe.to_dict()
    assert picked == {"commonsense_qa": "n=16 lr=0.003 constant", "strategyqa": "n=16 lr=0.003 linear"}
    assert "test_acc" not in t


def test_confirm_runs_the_picked_recipe_on_every_seed_with_gold_and_shuffled_labels():
    P = config.params("smoke", "b", "encoder", "recipe", "run")
    cells = recipe.confirm_cells(P, recipe.screen_table(_screen_runs()))
    assert len(cells) == 2 * len(P.recipe_seeds) * 2
    assert {(d, r.name) for d, r, _, _ in cells} == {
        ("commonsense_qa", "n=16 lr=0.003 constant"),
        ("strategyqa", "n=16 lr=0.003 linear"),
    }
    assert {(lab, s) for _, _, lab, s in cells} == {
        (lab, s) for lab in ("gold", "shuffled") for s in P.recipe_seeds
    }


def test_the_screen_grid_runs_every_recipe_once_and_the_encoder_where_it_applies():
    P = config.params("smoke", "b", "encoder", "recipe", "run")
    cells = recipe.screen_cells(P)
    lm = [c for c in cells if c[1].student == "lm"]
    enc = [c for c in cells if c[1].student == "encoder"]
    assert len(lm) == len(P.datasets) * len(P.n_train) * len(P.lrs) * len(P.schedules)
    assert len(enc) == len(P.datasets) * len(P.n_train) * len(P.encoder_lrs)  # no math dataset in smoke's
    assert not recipe.trains_on("encoder", "mathqa", data.load_splits("mathqa", "smoke")["pool"][0])
    assert all(lab == "gold" and s == P.recipe_seeds[0] for _, _, lab, s in cells)


def test_a_preset_sharing_runs_reuses_their_cache_entries(monkeypatch, tmp_path):
    """A preset in config.SHARES_RUNS (as offline_full shares offline's) computes none of the runs the
    shared preset has computed."""
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    monkeypatch.setitem(config.PRESETS, "smoke_more", config.PRESETS["smoke"])
    monkeypatch.setitem(config.SHARES_RUNS, "smoke_more", "smoke")
    P = config.params("smoke", "b", "encoder", "recipe", "run", lrs=[3e-3], schedules=["linear"])
    cells = [c for c in recipe.screen_cells(P) if c[1].student == "lm"][:1]
    first = recipe.run(P, cells)
    from lib import training

    monkeypatch.setattr(
        training, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed"))
    )
    again = recipe.run(config.params("smoke_more", "b", "encoder", "recipe", "run"), cells)
    assert again.test_acc.tolist() == first.test_acc.tolist()


def test_bf16_training_check_trains_each_learned_recipe_both_ways_in_separate_cache_entries(
    monkeypatch, tmp_path
):
    """Step 3: the chosen LM recipe on every seed, trained in fp32 and in bf16 (never one cache entry for
    both), a table that pairs them; not run at fp32 precision."""
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    P = config.params("smoke", "b", "encoder", "recipe", "run", recipe_seeds=[0, 1])
    chosen = pd.DataFrame(
        [
            {
                "student": "lm",
                "dataset": "commonsense_qa",
                "recipe": "n=16 lr=0.003 linear",
                "verdict": "learns",
            },
            {
                "student": "lm",
                "dataset": "strategyqa",
                "recipe": "-",
                "verdict": "the student does not learn it",
            },
            {"student": "encoder", "dataset": "commonsense_qa", "recipe": "n=16 lr=0.001 constant"}
            | {"verdict": "learns"},
        ]
    )
    P.precision = "fp32"
    assert recipe.precision_check(P, chosen) is None
    P.precision = "bf16"
    runs = recipe.precision_check(P, chosen)
    for labels in ("gold", "shuffled"):
        r = runs[runs.labels == labels]
        assert sorted(r.groupby("training").seed.apply(list).items()) == [("bf16", [0, 1]), ("fp32", [0, 1])]
    assert (runs.dataset == "commonsense_qa").all()
    # two precisions x two label sets x two seeds
    assert len(list((tmp_path / "artifacts" / "finetune").glob("*.json"))) == 8
    from lib import report

    t = report.precision_table(runs)
    assert len(t) == 1 and {
        "dev_fp32_ep0",
        "dev_bf16_ep2",
        "diff_pts",
        "mde_pts",
        "verdict",
    } <= set(t)
    gold = runs[runs.labels == "gold"]
    fp, bf = (gold[gold.training == k].sort_values("seed") for k in ("fp32", "bf16"))
    assert t.test_fp32.iloc[0] == fp.test_acc.mean() and t.test_bf16.iloc[0] == bf.test_acc.mean()
    # under each precision, gold against shuffled labels: the recipe table's comparison on those runs
    for prec in ("fp32", "bf16"):
        own = report.comparison_within(runs[runs.training == prec], ["dataset"], "labels", "shuffled")
        assert t[f"knowledge_{prec}_pts"].iloc[0] == own.diff_pts.iloc[0]
        assert t[f"knowledge_{prec}"].iloc[0] == own.verdict.iloc[0]
    assert t.dev_fp32_ep0.iloc[0] == t.dev_bf16_ep0.iloc[0]  # the pretrained student, scored the same way


def test_a_grid_with_nothing_to_choose_runs_the_confirm_step_inside_the_screen(monkeypatch, tmp_path):
    """One recipe per student and dataset: the screen's grid holds the confirm step's runs, so both Ray
    workers stay busy, and the confirm step computes nothing. With two recipes the screen runs alone."""
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path))
    one = dict(students=["lm"], n_train=[16], lrs=[3e-3], schedules=["linear"], recipe_seeds=[0, 1])
    P = config.params("smoke", "b", "encoder", "recipe", "run", datasets=["commonsense_qa"], **one)
    grids = []
    real = recipe.run
    monkeypatch.setattr(recipe, "run", lambda P, cells, **kw: grids.append(cells) or real(P, cells, **kw))
    screen = recipe.screen(P)
    assert len(screen) == 1 and screen.picked.all()
    confirm = recipe.confirm_cells(P, screen)
    assert sorted(map(repr, grids[0])) == sorted(map(repr, confirm))
    from lib import training

    monkeypatch.setattr(
        training, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed"))
    )
    assert len(recipe.run(P, confirm)) == len(confirm)
    grids.clear()
    P.lrs = [3e-3, 1e-3]
    fake = [
        {"student": "lm", "dataset": d, "recipe": r.name, "zero_shot_dev": 0.2, "best_dev": 0.3}
        for d, r, _, _ in recipe.screen_cells(P)
    ]
    monkeypatch.setattr(
        recipe,
        "run",
        lambda P, cells, **kw: grids.append(cells) or pd.DataFrame(fake).assign(best_epoch=1, steps=4),
    )
    recipe.screen(P)
    assert grids == [recipe.screen_cells(P)]


@needs_assets
def test_paper_bs_ft_and_shuffled_runs_are_notebook_05s_runs_at_offline(monkeypatch):
    """At offline every paper-B dataset is one of notebook 05's, at the same recipe and splits: B's ft and
    shuffled runs train exactly as 05's gold and shuffled-label runs, so they are one cache entry each."""
    import inspect

    from lib import rationales as RB
    from lib import training

    sig, calls = inspect.signature(training.finetune_and_test), []

    def record(*args, **kw):
        bound = sig.bind(*args, **kw)
        bound.apply_defaults()
        calls.append(bound.arguments)
        return {"test_acc": 0.0, "correct": "", "trained": True, "steps": 1}

    monkeypatch.setattr(training, "finetune_and_test", record)
    monkeypatch.setattr(RB, "finetune_and_test", record)
    monkeypatch.delenv("DISTILL_PRESET", raising=False)  # make test sets it to smoke
    P05 = config.params("offline", "b", "encoder", "recipe", "run")
    Pb = config.params("offline", "b", "run")
    assert set(Pb.datasets) <= set(P05.datasets)
    for d in Pb.datasets:
        splits = data.load_splits(d, "offline", caps=Pb.caps)
        (r,) = [r for r in recipe.recipes(P05, "lm") if r.n == len(splits["pool"])]
        for labels, method in (("gold", "ft"), ("shuffled", "shuffled")):
            calls.clear()
            recipe.run(P05, [(d, r, labels, 0)])
            RB.run(method, d, splits, config.b_run(Pb), seed=0)
            assert calls[0] == calls[1], (d, method)
