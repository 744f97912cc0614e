"""The reference runner (`trainmark.reference_runner`): real PyTorch training that measures itself.

Presets and knobs (`config`), the instrumented training loop run once per run in its own
process (`loop`, launched by `launch`, through `torchrun` for several processes), the sensors
behind record/replay interfaces (`sensors`, `devices`, `sampler`), the system and software probe
(`metadata`), FLOP counting and the profiler window (`profiling`), summaries (`summary`),
calibration and sweeps. docs/runner.md describes what it measures and how.
"""
