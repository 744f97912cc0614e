"""Callbacks that measure training in frameworks with their own loop, through `trainmark.track`.

- `trainmark.integrations.transformers.TrainmarkCallback` for Hugging Face `Trainer`
  (`pip install 'trainmark[transformers]'`)
- `trainmark.integrations.lightning.TrainmarkCallback` for Lightning's `Trainer`
  (`pip install 'trainmark[lightning]'`)

Each takes what `trainmark.track` takes (the model and the batch size default to what the
framework knows) and writes the same bundle a plain loop would.
"""
