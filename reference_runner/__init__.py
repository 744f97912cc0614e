"""The reference runner (`trainmark.reference_runner`): real PyTorch training that measures itself.

Presets and knobs (`config`), the training loop run once per run in its own process (`loop`,
launched by `launch`, through `torchrun` for several processes), the one measurement path that
the loop and `trainmark.track` (`track`) share (`instruments`, with `stepping` for the steps and
`measurements` for what each rank measured), the sensors behind record/replay interfaces
(`sensors`, `devices`, `sampler`), the system and software probe (`metadata`), FLOP counting and
the profiler windows (`model`, `profiling`), summaries (`summary`), calibration and sweeps.
docs/runner.md describes what it measures and how.
"""
