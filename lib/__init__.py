"""Distilling LLM knowledge into small students: two papers, one small library.

Modules (nanoGPT-style: each idea in one short file):
  common      paths, the one-line user error, atomic cached artefacts, seeding
  config      presets smoke / offline / paper
  data        one example schema, loaders for every dataset, deterministic pool/dev/test splits
  fixtures    synthetic data in each package's real file format (smoke preset, tests)
  models      model registry (package GGUF -> cached safetensors, hub ids, tiny random) and the LM wrapper
  evaluation  option log-likelihood and chain-of-thought accuracy, bootstrap intervals
  plotting    shared figure style
"""
