"""Distilling LLM knowledge into small students: two papers, one small library.

The parts, and what each may import from lib (tests/test_imports.py enforces every rule below):

  shared foundation (imports only the modules listed before it)
    common       paths, the one-line user error, atomic cached artefacts, seeding
    config       every default of every experiment, the presets, the notebook parameter helper
    lm           the LM wrapper: encode, prompt ids, batches, score, score options, generate, loss;
                 imports nothing of lib, and nothing else touches token ids or logits
    fixtures     synthetic data in each package's real file format (smoke preset, tests)
    data         one example schema, loaders for every dataset, deterministic pool/dev/test splits
    models       registry (package GGUF -> cached safetensors, hub ids, tiny random) -> lm.LM
    prompts      prompt formats and answer parsing
    stats        intervals, minimum detectable effects, the verdict vocabulary
    evaluation   zero-shot accuracy (notebook 00)
    teachers     LM / simulated / OpenAI-compatible teachers, cached demonstrations
    training     the one training loop with dev selection (fit), multi-task items, LM students
    plotting     shared figure style
    runner       a notebook's runs in-process or as Ray tasks
  paper A core: signals (self-consistency, TA confidence), ta_loop (plain / one-stage / two-stage)
  paper B core: attribution (captum, ground truth), rationales (FT / DSS / tokens / hint), encoder
  where the two meet: weak_teacher (paper B's tokens weighted by paper A's TA, notebook 25)
  reading results: report (the papers' numbers, tables, verdicts, generated READMEs)
  front door: reproduce (make reproduce), bench (make bench), check_paper (make check-paper)

Paper A's core and paper B's core never import each other; only weak_teacher, report and the front door
may import both. There is no import cycle.

How a parameter travels, e.g. paper A's budget:
  notebook 12 parameters cell  `budget = None`  (papermill: -p budget 32)
  -> config.params(preset, "a", budget=budget)   None filled from PRESETS[preset]["a"]["budget"]
  -> config.ta_run(P)                             the frozen TARun of one run (a dataclass, no bag of kwargs)
  -> ta_loop.run(method, dataset, splits, cfg)    reads cfg.budget; every field is part of the cache key
  -> report.save_runs / report.table_a_main        12_A_runs.csv, 12_A_main_table.csv in results/<preset>/
"""
