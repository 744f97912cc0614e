"""The scorer's running totals of a time-ordered stream, fed in batches by the validator."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st
from trainmark.scorer import rubric
from trainmark.scorer.traces import NS, Stream, TraceDigest
from trainmark.spec import models

from tests.bundles import EXAMPLES

START_S, END_S = 1_000, 2_000
GPU_BUNDLE = EXAMPLES / "valid" / "gpu-h100-gpt2"


def _stream(gap_threshold_s: float | None = None) -> Stream:
    return Stream("runs/run-1/power.jsonl", "run-1", (START_S * NS, END_S * NS), gap_threshold_s)


def test_a_stream_counts_steps_back_repeats_gaps_and_strays():
    base = START_S * NS
    offsets_s = [0, 0.5, 0.5, 0.2, 3.2, 5_000]  # a repeat at line 3, a step back at line 4, two long gaps
    stream = _stream(gap_threshold_s=1.0)
    stream.add_times([base + round(offset * NS) for offset in offsets_s], [1, 2, 3, 4, 5, 6])
    assert (stream.count, stream.duplicates, stream.first_duplicate_line) == (6, 1, 3)
    assert (stream.backwards, stream.first_backwards_line) == (1, 4)
    assert stream.gaps.count == 3  # 0.5 s, 3.0 s and 4,996.8 s: only forward steps are gaps
    assert stream.gaps_over == 2 and abs(stream.gap_time_over_s - 4_999.8) < 1e-6
    assert abs(stream.max_gap_s - 4_996.8) < 1e-6
    assert 5_000 > END_S - START_S + rubric.WINDOW_SLACK_S and stream.outside_window == 1
    assert (stream.first_ns, stream.last_ns) == (base, base + 5_000 * NS)


def test_a_stream_without_a_declared_rate_has_no_gaps():
    stream = _stream()
    stream.add_times([START_S * NS, (START_S + 100) * NS], [1, 2])
    assert stream.gaps.count == 0 and stream.gaps_over == 0 and stream.achieved_rate_hz == 1 / 100


@given(
    offsets=st.lists(st.integers(-50, 1_500), max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=6),
    threshold=st.sampled_from([None, 0.5]),
)
def test_any_split_into_batches_gives_the_same_totals(offsets, cuts, threshold):
    times = [START_S * NS + offset * NS // 10 for offset in offsets]
    lines = list(range(1, len(times) + 1))
    whole, one_by_one, split = _stream(threshold), _stream(threshold), _stream(threshold)
    whole.add_times(times, lines)
    for time_ns, line in zip(times, lines):
        one_by_one.add_times([time_ns], [line])
    bounds = [0, *sorted(cut for cut in cuts if cut <= len(times)), len(times)]
    for begin, end in zip(bounds, bounds[1:]):
        split.add_times(times[begin:end], lines[begin:end])
    assert dataclasses.asdict(whole) == dataclasses.asdict(one_by_one) == dataclasses.asdict(split)


def test_steps_of_two_ranks_in_one_batch_go_to_their_own_streams():
    manifest = models.Manifest.model_validate_json((GPU_BUNDLE / "manifest.json").read_bytes())
    entries = {entry.path: entry for entry in manifest.files}
    steps = {
        rank: [
            models.StepRecord.model_validate_json(line)
            for line in (GPU_BUNDLE / f"runs/run-1/steps.rank{rank}.jsonl").read_bytes().splitlines()
        ]
        for rank in (0, 1)
    }
    apart, together = TraceDigest(), TraceDigest()
    for digest in (apart, together):
        digest.begin(manifest)
    for rank in (0, 1):
        apart.begin_file(entries[f"runs/run-1/steps.rank{rank}.jsonl"])(steps[rank], list(range(1, 61)))
    mixed = [record for pair in zip(steps[0], steps[1]) for record in pair]
    together.begin_file(entries["runs/run-1/steps.rank0.jsonl"])(mixed, [1 + index // 2 for index in range(120)])
    assert sorted(together.steps) == sorted(apart.steps) == [("run-1", 0), ("run-1", 1)]
    for key, stream in apart.steps.items():
        assert dataclasses.replace(together.steps[key], file=stream.file) == stream


def test_interleaved_samples_of_one_file_go_to_their_own_streams():
    # The example's power file interleaves two devices and two channels, line by line.
    manifest = models.Manifest.model_validate_json((GPU_BUNDLE / "manifest.json").read_bytes())
    entry = next(entry for entry in manifest.files if entry.path == "runs/run-1/power.rank0.jsonl")
    samples = [
        models.PowerSample.model_validate_json(line) for line in (GPU_BUNDLE / entry.path).read_bytes().splitlines()
    ]
    whole, one_by_one = TraceDigest(), TraceDigest()
    for digest in (whole, one_by_one):
        digest.begin(manifest)
    whole.begin_file(entry)(samples, list(range(1, len(samples) + 1)))
    observe = one_by_one.begin_file(entry)
    for line, sample in enumerate(samples, start=1):
        observe([sample], [line])
    assert len(whole.samples) == 4 and whole.samples == one_by_one.samples
    assert all(stream.count == len(samples) // 4 for stream in whole.samples.values())
