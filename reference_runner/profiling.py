"""The profiler windows: a kernel-level time breakdown, and allocator events.

Both windows are bounded (a few steps after warm-up), their steps are flagged `profiled` and
left out of the throughput statistics, and the kernel window runs with the profiler's default
options only: record_shapes, profile_memory and with_stack each cost 70-200 %. The allocator
window that follows turns profile_memory on, because that is the only way to see allocator
calls on a CPU.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import torch
from torch.profiler import ProfilerActivity, profile, record_function
from trainmark.spec import models

# First match wins; the order puts the specific names before the generic ones.
KERNEL_CATEGORIES: list[tuple[str, re.Pattern]] = [
    (
        "communication",
        re.compile(r"nccl|gloo|c10d|all_?reduce|allgather|all_gather|reduce_scatter|broadcast", re.IGNORECASE),
    ),
    ("attention", re.compile(r"attention|flash|fmha|sdpa|scaled_dot_product", re.IGNORECASE)),
    ("optimizer", re.compile(r"_foreach_|adam|multi_tensor|optimizer", re.IGNORECASE)),
    ("normalization", re.compile(r"layer_?norm|rms_?norm|batch_?norm|group_?norm", re.IGNORECASE)),
    ("matmul", re.compile(r"aten::(mm|addmm|bmm|matmul|linear|baddbmm)$|gemm|xmma|cutlass|cublas", re.IGNORECASE)),
    (
        "data_movement",
        re.compile(
            r"copy|memcpy|memset|aten::(cat|stack|contiguous|index|index_select|gather|scatter|"
            r"embedding|embedding_dense_backward|clone|fill_|zero_|zeros|empty|_to_copy|to|"
            r"cumsum|arange|masked_fill)",
            re.IGNORECASE,
        ),
    ),
    ("elementwise", re.compile(r"aten::|elementwise|vectorized|reduce_kernel", re.IGNORECASE)),
]


def kernel_category(name: str) -> str:
    """The breakdown category of an operator or kernel name."""
    for category, pattern in KERNEL_CATEGORIES:
        if pattern.search(name):
            return category
    return "other"


def profiler_tool() -> str:
    return f"torch.profiler {torch.__version__.split('+')[0]}"


class KernelWindow:
    """Profiles steps [first_step, first_step + steps) with default options."""

    def __init__(self, first_step: int, steps: int, on_cuda: bool) -> None:
        self.first_step = first_step
        self.steps = steps
        self.on_cuda = on_cuda
        self._profile: profile | None = None

    def covers(self, step: int) -> bool:
        return self.first_step <= step < self.first_step + self.steps

    def before_step(self, step: int) -> None:
        if step == self.first_step and self.steps:
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.on_cuda else [])
            self._profile = profile(activities=activities)
            self._profile.__enter__()

    def after_step(self, step: int) -> bool:
        """True when the window closed after this step."""
        if self._profile is not None and step == self.first_step + self.steps - 1:
            self._profile.__exit__(None, None, None)
            return True
        return False

    def breakdown(self, rank: int, device: int) -> models.KernelBreakdown | None:
        """The window's time per category (self time, so nested operators are not counted twice)."""
        if self._profile is None:
            return None
        totals: dict[str, float] = {}
        calls: dict[str, int] = {}
        top: list[tuple[float, str, str, int]] = []
        for average in self._profile.key_averages():
            if self.on_cuda:
                if average.device_type != torch.autograd.DeviceType.CUDA:
                    continue
                seconds = average.self_device_time_total / 1e6
            else:
                seconds = average.self_cpu_time_total / 1e6
            if seconds <= 0:
                continue
            category = kernel_category(average.key)
            totals[category] = totals.get(category, 0.0) + seconds
            calls[category] = calls.get(category, 0) + average.count
            top.append((seconds, average.key, category, average.count))
        total = sum(totals.values())
        top.sort(reverse=True)
        return models.KernelBreakdown(
            rank=rank,
            device=device,
            tool=profiler_tool() + (" (CUPTI)" if self.on_cuda else ""),
            time_basis=models.KernelTimeBasis.device_self_time
            if self.on_cuda
            else models.KernelTimeBasis.cpu_self_time,
            first_step=self.first_step,
            steps=self.steps,
            total_time_s=total,
            categories=[
                models.KernelCategoryTime(
                    category=models.KernelCategory(name), time_s=totals.get(name, 0.0), calls=calls.get(name, 0)
                )
                for name in (
                    "matmul",
                    "attention",
                    "normalization",
                    "elementwise",
                    "optimizer",
                    "data_movement",
                    "communication",
                    "other",
                )
            ],
            top_kernels=[
                models.KernelTime(
                    name=name[:200], category=models.KernelCategory(category), time_s=seconds, calls=count
                )
                for seconds, name, category, count in top[:10]
            ],
        )


CLOCK_MARKER = "trainmark: clock marker"
"""The name of the trace event AllocationWindow places at a known time.time_ns()."""


@dataclass
class AllocationWindow:
    """Profiles steps [first_step, first_step + steps) with profile_memory for allocator events."""

    first_step: int
    steps: int
    on_cuda: bool
    step_spans: list[tuple[int, int, int]] = field(default_factory=list)  # (step, start_ns, end_ns)
    _profile: profile | None = None
    _wall_start_ns: int = 0

    def covers(self, step: int) -> bool:
        return self.first_step <= step < self.first_step + self.steps

    def before_step(self, step: int) -> None:
        if step == self.first_step and self.steps:
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.on_cuda else [])
            self._profile = profile(activities=activities, profile_memory=True)
            self._profile.__enter__()
            # The clock marker: a trace event whose time.time_ns() is known, to map the profiler's
            # clock onto trainmark's. (The trace's own start is no such point: it falls at the end of
            # __enter__, which can take seconds, and mapping from a reading taken before it put every
            # event that much before its step: the window then counted no allocation at all.)
            before_ns = time.time_ns()
            with record_function(CLOCK_MARKER):
                pass
            self._wall_start_ns = (before_ns + time.time_ns()) // 2  # the marker's midpoint, within microseconds

    def after_step(self, step: int, start_ns: int, end_ns: int) -> None:
        if self.covers(step) and self._profile is not None:
            self.step_spans.append((step, start_ns, end_ns))
            if step == self.first_step + self.steps - 1:
                self._profile.__exit__(None, None, None)

    def events(self, rank: int, device: int) -> list[models.AllocatorEvent]:
        """Allocator calls of the window as trace records, on trainmark's clock."""
        if self._profile is None or not self.step_spans:
            return []
        results = self._profile.profiler.kineto_results
        marker = next(event for event in results.events() if event.name() == CLOCK_MARKER)
        marker_ns = (marker.start_ns() + marker.end_ns()) // 2
        offset = self._wall_start_ns - marker_ns  # the profiler's clock -> time.time_ns()
        wanted = torch.autograd.DeviceType.CUDA if self.on_cuda else torch.autograd.DeviceType.CPU
        records = []
        for event in results.events():
            if event.name() != "[memory]" or event.device_type() != wanted or event.nbytes() == 0:
                continue
            moment = event.start_ns() + offset
            step = next((s for s, start, end in self.step_spans if start <= moment <= end), None)
            records.append(
                models.AllocatorEvent(
                    time_unix_ns=moment,
                    rank=rank,
                    device=device,
                    step=step,
                    action=models.AllocatorAction.alloc if event.nbytes() > 0 else models.AllocatorAction.free,
                    size_bytes=abs(event.nbytes()),
                )
            )
        records.sort(key=lambda record: record.time_unix_ns)
        return records

    def allocations_per_step(self, events: list[models.AllocatorEvent]) -> float | None:
        """Allocator calls per step inside the window."""
        steps = len(self.step_spans)
        if not steps:
            return None
        return sum(1 for event in events if event.action == "alloc" and event.step is not None) / steps
