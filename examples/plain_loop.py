"""Measure a plain PyTorch training loop with trainmark.track: a small MLP on synthetic data.

    trainmark repeat -n 3 --out bundles/mlp -- python examples/plain_loop.py
    python examples/plain_loop.py --out bundles/mlp-one-run

Nothing is downloaded; the data are drawn from a fixed random teacher network.
"""

import argparse
import os

import torch

import trainmark

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default=None, help="the bundle folder (not needed under trainmark repeat)")
parser.add_argument("--steps", type=int, default=40)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--idle-seconds", type=float, default=5.0)
args = parser.parse_args()

seed = int(os.environ.get("TRAINMARK_SEED", "0"))  # trainmark repeat gives each run its own seed
torch.manual_seed(seed)
torch.set_num_threads(1)
model = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
teacher = torch.nn.Linear(32, 10)
data = torch.Generator().manual_seed(1234)  # the same data for every run

with trainmark.track(
    model=model,
    batch_size=args.batch_size,
    submitter="examples/plain_loop.py",
    out=args.out,
    seed=seed,
    dataset="synthetic: N(0, 1) inputs labelled by a fixed random linear teacher",
    idle_seconds=args.idle_seconds,
) as run:
    for _ in range(args.steps):
        with run.step(samples=args.batch_size) as step:
            with step.phase("data_loading"):
                inputs = torch.randn(args.batch_size, 32, generator=data)
                targets = teacher(inputs).argmax(dim=1)
            with step.phase("forward"):
                loss = torch.nn.functional.cross_entropy(model(inputs), targets)
            with step.phase("backward"):
                loss.backward()
            with step.phase("optimizer"):
                opt.step()
                opt.zero_grad()
            step.loss = loss.item()
