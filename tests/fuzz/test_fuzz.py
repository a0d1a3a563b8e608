"""Fuzz every target in fuzz/registry.py: success with a well-formed result, or only the errors the target allows,
worded as it must be. Never another exception type, a hang, a wrong-sized result or a partial output file.

Targets join through the registry, not through this file. A crash (a segfault in a kernel) kills the pytest
process, which fails the run by itself; a call that never returns to Python is stopped by faulthandler.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import os
import resource
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings

from fuzz.core import Case, Target
from fuzz.registry import REGISTRY

# A call stuck in C code never sees SIGALRM's Python-level exception; after this many times its limit,
# faulthandler prints every thread's stack and exits the process, so CI fails instead of waiting 20 minutes.
HARD_LIMIT_FACTOR = 3
ALARM_REPEAT_S = 0.5
# Examples per target, as a multiple of the hypothesis profile's max_examples. Calls take milliseconds: at the
# ci profile's 25 the 18 targets took 5 s, too few draws to meet the rarer combinations (the partial-CSV bug needs
# a network, a --csv and a --json into a missing folder: about 1 draw in 30); 4x is 100 per target.
EXAMPLES_FACTOR = 20


# Address space one call may add to the process. The largest legitimate call here (a 2^22-element expanded
# input and its 16 MiB result, or a full network report) stays under 200 MiB; 2 GiB is 10x that, and a runaway
# (a layer list of 10^9 entries, an int64 tensor of 2^40 elements) hits it within a second as a MemoryError or
# torch's allocation error, instead of swapping a shared machine for minutes.
MEMORY_HEADROOM = 2 * 1024**3


class Hang(BaseException):
    """Raised by the alarm inside a call past its time limit. A BaseException, so the target's own
    `except Exception` cannot swallow it."""


def _alarm(signum, frame):
    raise Hang


def _terminal(config: pytest.Config):
    """Where a stack dump reaches the CI log: pytest's own copy of stderr, taken before output capture started
    (the captured file descriptor 2 is discarded when the process exits); sys.stderr without that plugin."""
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key

        return config.stash[fault_handler_stderr_fd_key]
    except (ImportError, KeyError):
        return sys.stderr


def _address_space() -> int:
    """Bytes of virtual memory the process maps now (Linux /proc; 0 where it is unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _run(case: Case, workdir: Path, timeout_s: float, terminal):
    """(result, None) or (None, error) of one call, within `timeout_s` seconds and MEMORY_HEADROOM bytes."""
    limits = resource.getrlimit(resource.RLIMIT_AS)
    mapped = _address_space()
    if mapped:
        cap = mapped + MEMORY_HEADROOM
        resource.setrlimit(
            resource.RLIMIT_AS, (cap if limits[1] == resource.RLIM_INFINITY else min(cap, limits[1]), limits[1])
        )
    previous = signal.signal(signal.SIGALRM, _alarm)
    # Repeats every ALARM_REPEAT_S: an alarm that lands in a gc callback (hypothesis times garbage collection)
    # is reported as unraisable and lost, and a one-shot timer would then never stop the call.
    signal.setitimer(signal.ITIMER_REAL, timeout_s, ALARM_REPEAT_S)
    faulthandler.dump_traceback_later(HARD_LIMIT_FACTOR * timeout_s, exit=True, file=terminal)
    try:
        return case.call(workdir), None
    except Hang:
        signal.setitimer(signal.ITIMER_REAL, 0)
        pytest.fail(f"hang: still running after {timeout_s:g} s: {case!r}", pytrace=False)
    except BaseException as error:  # classified by the caller: some types are allowed, others are bugs
        return None, error
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, limits)


def _judge_error(target: Target, case: Case, error: BaseException) -> None:
    if isinstance(error, KeyboardInterrupt):
        raise error
    if not isinstance(error, target.errors):
        allowed = ", ".join(t.__name__ for t in target.errors) or "none (errors must be handled inside)"
        raise AssertionError(
            f"{type(error).__name__} escaped (allowed: {allowed}): {error!s:.300}\n  case: {case!r}"
        ) from error
    if case.on_error is not None:
        case.on_error(error)
        return
    message = str(error)
    assert any(name in message for name in case.names), (
        f"{type(error).__name__} names none of {case.names}: {message!r}\n  case: {case!r}"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="the per-call time limit uses SIGALRM")
@pytest.mark.parametrize("target", REGISTRY, ids=[t.name for t in REGISTRY])
def test_fuzz(target: Target, pytestconfig: pytest.Config):
    terminal = _terminal(pytestconfig)
    examples = max(1, round(settings.default.max_examples * EXAMPLES_FACTOR * target.scale))

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=target.cases)
    def fuzz(case: Case) -> None:
        with tempfile.TemporaryDirectory(prefix="accelkit-fuzz-") as tmp:
            result, error = _run(case, Path(tmp), target.timeout_s, terminal)
            if error is not None:
                _judge_error(target, case, error)
            else:
                case.check(result)

    for case in target.examples:
        fuzz = example(case=case)(fuzz)
    fuzz()


def test_registry_covers_every_public_entry_point():
    # The public ops and simulator entry points each have a target, so a new one cannot be forgotten silently.
    from accelkit import ops

    names = {t.name for t in REGISTRY}
    for op in ops.__all__:
        assert f"ops.{op}" in names, f"accelkit.ops.{op} has no fuzz target in fuzz/registry.py"
    if importlib.util.find_spec("accelkit.nn") is not None:
        from accelkit import nn

        for module in nn.__all__:
            assert f"nn.{module}" in names, f"accelkit.nn.{module} has no fuzz target in fuzz/registry.py"
    for entry in ("Gemm", "Conv", "Hardware", "simulate", "simulate_layer", "networks"):
        assert f"sim.{entry}" in names, f"accelkit.sim.{entry} has no fuzz target"
    for parser in ("file.scalesim_cfg", "file.topology_conv", "file.topology_gemm", "cli.sim", "cli.scalesim"):
        assert parser in names, f"{parser} has no fuzz target"
