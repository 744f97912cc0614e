"""Measure a Lightning fit with trainmark's TrainmarkCallback: a small MLP on synthetic data.

trainmark repeat -n 3 --out bundles/lightning -- python examples/lightning_loop.py
"""

import argparse
import os

import lightning
import torch

from trainmark.integrations.lightning import TrainmarkCallback

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default=None, help="the bundle folder (not needed under trainmark repeat)")
parser.add_argument("--steps", type=int, default=40)
parser.add_argument("--idle-seconds", type=float, default=5.0)
args = parser.parse_args()


class Classifier(lightning.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        return torch.nn.functional.cross_entropy(self.net(inputs), targets)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


seed = int(os.environ.get("TRAINMARK_SEED", "0"))
lightning.seed_everything(seed, verbose=False)
torch.set_num_threads(1)
generator = torch.Generator().manual_seed(1234)
inputs = torch.randn(4096, 32, generator=generator)
targets = torch.nn.Linear(32, 10)(inputs).argmax(dim=1).detach()
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, targets), batch_size=64)

callback = TrainmarkCallback(
    submitter="examples/lightning_loop.py",
    out=args.out,
    seed=seed,
    dataset="synthetic: N(0, 1) inputs labelled by a fixed random linear teacher",
    idle_seconds=args.idle_seconds,
)
trainer = lightning.Trainer(
    max_steps=args.steps,
    accelerator="cpu",
    devices=1,
    callbacks=[callback],
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(Classifier(), loader)
