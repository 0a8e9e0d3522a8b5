"""Train the tiny student once, as one process or as one rank of `torch.distributed.run` (tests/test_ddp.py).

argv: per-process batch size, output JSON. Rank 0 writes the step-wise lr, the loss averaged over ranks,
the dev curve and the first trained weights."""

import json
import os
import sys

import torch
import torch.distributed as dist

from lib import data, training
from lib.config import Train
from lib.models import load_model

torch.set_num_threads(1)
batch_size, out = int(sys.argv[1]), sys.argv[2]
s = data.load_splits("gsm8k", "smoke", caps={"pool": 16, "dev": 4, "test": 4})
items = training.make_items(s["pool"], [e.answer for e in s["pool"]], [e.rationale for e in s["pool"]])
lm = load_model("tiny-llama")
cfg = Train(epochs=2, lr=3e-3, batch_size=batch_size, schedule="linear", eval_batch_size=16, bf16=False)
hist = training.train(training.lm_student(lm, items), cfg, seed=0, dev=s["dev"], progress=False)
loss = torch.tensor(hist["loss"])
if dist.is_available() and dist.is_initialized():
    dist.all_reduce(loss)
    loss /= dist.get_world_size()
weights = torch.cat([p.detach().flatten() for p in lm.model.parameters()])[:4000]
if os.environ.get("RANK", "0") == "0":
    with open(out, "w") as f:
        json.dump({"lr": hist["lr"], "loss": loss.tolist(), "dev": hist["dev_acc"], "w": weights.tolist()}, f)
