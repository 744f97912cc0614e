"""Helpers for tests that start child processes and interrupt them."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """A `preexec_fn` that gives the child Ctrl-C's default action. A suite started with SIGINT
    ignored (a background job of a non-interactive shell) passes that on to its children, and a
    Python started that way never turns SIGINT into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
