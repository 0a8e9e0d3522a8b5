"""Distilling LLM knowledge into small students: two papers, one small library.

Modules (nanoGPT-style: each idea in one short file):
  common      paths, the one-line user error, atomic cached artefacts, seeding
  config      presets smoke / offline / paper
  data        one example schema, loaders for every dataset, deterministic pool/dev/test splits
  fixtures    synthetic data in each package's real file format (smoke preset, tests)
  models      model registry (package GGUF -> cached safetensors, hub ids, tiny random) and the LM wrapper
  evaluation  option log-likelihood and chain-of-thought accuracy, bootstrap intervals
  plotting    shared figure style
  teachers    LM / simulated / OpenAI-compatible teachers, cached demonstrations (paper A)
  signals     self-consistency and TA confidence (paper A)
  training    multi-task fine-tuning with weights and dev selection (both papers)
  ta_loop     paper A: plain vs one-stage vs two-stage TA-in-the-loop
  attribution influential words through captum, ground-truth analysis (paper B)
  rationales  paper B students: FT, DSS, influential tokens, input hints
  report      improvement tables and the README results section
  reproduce   make reproduce: every notebook through papermill
  bench       make bench: hot paths against their obvious baselines
"""
