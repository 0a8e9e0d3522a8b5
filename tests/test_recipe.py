"""Notebook 05's two steps (lib.recipe): the screen picks on dev alone, the confirm step runs the picked
recipe on every seed with gold and shuffled labels."""

import pandas as pd

from lib import config, data, recipe


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
