"""Measure a data-parallel loop (DDP) started by torchrun: every rank writes its traces, rank 0 the manifest.

    torchrun --standalone --nproc-per-node 2 examples/torchrun_loop.py --out bundles/ddp
    trainmark repeat -n 3 --out bundles/ddp -- torchrun --standalone --nproc-per-node 2 examples/torchrun_loop.py

gloo on CPUs, nccl on GPUs; the data are synthetic (nothing is downloaded).
"""

import argparse
import os

import torch
import torch.distributed as dist

import trainmark

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default=None, help="the bundle folder (not needed under trainmark repeat)")
parser.add_argument("--steps", type=int, default=40)
parser.add_argument("--batch-size", type=int, default=32, help="samples per step per process")
parser.add_argument("--idle-seconds", type=float, default=5.0)
args = parser.parse_args()

dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
rank = dist.get_rank()
device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if torch.cuda.is_available() else torch.device("cpu")
seed = int(os.environ.get("TRAINMARK_SEED", "0"))
torch.manual_seed(seed)  # the same initial weights on every rank
torch.set_num_threads(1)
model = torch.nn.parallel.DistributedDataParallel(
    torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).to(device)
)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
teacher = torch.nn.Linear(32, 10).to(device)
data = torch.Generator().manual_seed(1234 + rank)  # each rank its own shard of the stream

with trainmark.track(
    model=model,
    batch_size=args.batch_size,
    submitter="examples/torchrun_loop.py",
    out=args.out,
    seed=seed,
    dataset="synthetic: N(0, 1) inputs labelled by a fixed random linear teacher",
    idle_seconds=args.idle_seconds,
) as run:
    for _ in range(args.steps):
        with run.step() as step:
            inputs = torch.randn(args.batch_size, 32, generator=data).to(device)
            with step.phase("forward"):
                loss = torch.nn.functional.cross_entropy(model(inputs), teacher(inputs).argmax(dim=1))
            with step.phase("backward"):
                loss.backward()  # DDP all-reduces the gradients here
            with step.phase("optimizer"):
                opt.step()
                opt.zero_grad()
            step.loss = loss.item()
dist.destroy_process_group()
