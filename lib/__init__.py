"""Distilling LLM knowledge into small students: two papers, one small library.

The parts, and what each may import from lib (tests/test_imports.py enforces every rule below):

  shared foundation (imports only the modules listed before it)
    common       paths, the one-line user error, atomic cached artefacts, seeding
    config       every default of every experiment, the presets, the notebook parameter helper
    provenance   which commit, configuration and input CSVs each rendered file came from; staleness
    phases       where a notebook's time goes: seconds, tokens, GFLOP per phase, the machine's GEMM peak
    lm           the LM wrapper: encode, prompt ids, batches, score, score options, generate, loss;
                 imports only phases, and nothing else touches token ids or logits
    fixtures     synthetic data in each package's real file format (smoke preset, tests)
    data         one example schema, loaders for every dataset, deterministic pool/dev/test splits
    models       registry (package GGUF -> cached safetensors, hub ids, tiny random) -> lm.LM
    prompts      prompt formats and answer parsing
    stats        crossed seed x question intervals, minimum detectable effects, the verdict vocabulary
    evaluation   zero-shot accuracy (notebook 00)
    teachers     LM / simulated / OpenAI-compatible teachers, cached demonstrations
    training     the one train-then-test of every student (train_and_test: fit with dev selection, then
                 test once, one result schema), multi-task items, the LM student
    plotting     shared figure style
    runner       a notebook's runs in-process or as Ray tasks
  paper A core: signals (self-consistency, TA confidence), ta_loop (plain / one-stage / two-stage)
  paper B core: attribution (captum, ground truth), rationales (FT / DSS / tokens / hint), encoder
  where the two meet: weak_teacher (paper B's tokens weighted by paper A's TA, notebook 25),
                      recipe (notebook 05: which training recipe makes each student learn, gold vs shuffled),
                      premises (notebook 06: where each paper's premises can hold, on pool and dev questions)
  reading results: report (the papers' numbers, tables, verdicts, generated READMEs)
  front door: reproduce (make reproduce), bench (make bench), check_paper (make check-paper),
              coverage (make coverage: how often the comparison intervals hold, by simulation),
              plan (make plan: every hot path of a preset at full scale on the meta device, and its cost)

Paper A's core and paper B's core never import each other; only weak_teacher, report and the front door
may import both. There is no import cycle.

Settings reach a run one way: config.params resolves a notebook's parameters against its preset once (the
precision `auto` becomes fp32 or bf16 there, the teacher's settings become a TeacherSettings), a run config
(TARun, BRun, EncoderRun, each holding one Train) carries them, and the run's cache key is that object. No
function below a notebook re-reads a preset, and no environment variable below config decides a result
($DISTILL_CACHE and $DISTILL_DEVICE say where files and tensors live).

How a parameter travels (tests/test_config.py follows both):
  paper A's lr: notebook 12 `lr`-> config.params(preset, "a")          PRESETS[preset]["a"]["lr"] fills a None
    -> config.ta_run(P)                  TARun.train.lr (a frozen Train inside the frozen TARun)
    -> ta_loop.run(method, dataset, splits, cfg, seed=s)   cache key: asdict(cfg)
    -> training.train_and_test(student, cfg.train, seed, dev, test)  -> fit(lr=cfg.lr)
  paper B's alpha: notebook 21 `alpha` -> config.params(preset, "b") -> config.b_run(P): BRun.alpha
    -> rationales.run(method, dataset, splits, cfg, seed=s)   make_items(alpha=cfg.alpha); key: asdict(cfg)
    -> training.finetune_and_test(..., cfg=cfg.train) -> training.train_and_test
  -> report.save_runs / report.table_a_main / table_b_main   12_A_runs.csv, 21_B_runs.csv in results/<preset>/
"""
