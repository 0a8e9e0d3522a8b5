"""Data parallelism inside one run: 2 CPU processes (gloo) learn as 1 process on the same global batch."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

from lib.common import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(tmp_path, name, batch_size, procs):
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    script = str(ROOT / "tests" / "ddp_train.py")
    if procs == 1:
        cmd = [sys.executable, script]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={procs}",
            "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}",
            script,
        ]
    subprocess.run(
        cmd + [str(batch_size), str(out)], env=env, cwd=ROOT, check=True, timeout=300, capture_output=True
    )
    return json.loads(out.read_text())


def test_two_processes_train_like_one_on_the_same_global_batch(tmp_path):
    one = _train(tmp_path, "one", batch_size=8, procs=1)
    two = _train(tmp_path, "two", batch_size=4, procs=2)  # 2 x 4 = the same global batch of 8
    assert len(one["lr"]) == len(two["lr"]) == 4  # 16 items, batch 8, 2 epochs: steps from the loader
    np.testing.assert_allclose(two["lr"], one["lr"])  # the schedule counts this process's steps
    assert min(one["lr"]) > 0
    np.testing.assert_allclose(two["loss"], one["loss"], atol=1e-4)
    np.testing.assert_allclose(two["w"], one["w"], atol=1e-5)
    assert two["dev"] == one["dev"] and len(one["dev"]) == 3  # numeric dev scored by generation, each epoch
