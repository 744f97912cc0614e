"""Measure a Hugging Face Trainer run with trainmark's TrainmarkCallback: a one-layer GPT-2 built from a config.

    trainmark repeat -n 3 --out bundles/gpt2 -- python examples/hf_trainer.py

Nothing is downloaded: the model is GPT2Config(n_layer=1, n_embd=32, ...) with random weights and
the data are random token sequences.
"""

import argparse
import os
import tempfile

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments, set_seed

from trainmark.integrations.transformers import TrainmarkCallback

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default=None, help="the bundle folder (not needed under trainmark repeat)")
parser.add_argument("--steps", type=int, default=40)
parser.add_argument("--idle-seconds", type=float, default=5.0)
args = parser.parse_args()

seed = int(os.environ.get("TRAINMARK_SEED", "0"))
set_seed(seed)
torch.set_num_threads(1)
SEQUENCE = 32
model = GPT2LMHeadModel(
    GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=128, n_positions=SEQUENCE, bos_token_id=0, eos_token_id=0)
)
tokens = torch.randint(0, 128, (256, SEQUENCE), generator=torch.Generator().manual_seed(1234))
data = [{"input_ids": row, "labels": row} for row in tokens]

with tempfile.TemporaryDirectory() as scratch:
    training = TrainingArguments(
        output_dir=scratch,
        per_device_train_batch_size=8,
        max_steps=args.steps,
        learning_rate=1e-3,
        seed=seed,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    callback = TrainmarkCallback(
        submitter="examples/hf_trainer.py",
        out=args.out,
        sequence_length=SEQUENCE,
        dataset="random token sequences (torch.randint, seed 1234)",
        architecture_family="decoder_transformer",
        idle_seconds=args.idle_seconds,
    )
    Trainer(model=model, args=training, train_dataset=data, callbacks=[callback]).train()
