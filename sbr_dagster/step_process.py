"""What the parallel executor's fork server imports once, before it forks a process for each step.

Each step then starts with the code already loaded (a spawned process pays ~2 s of imports), and
with TensorFlow limited to the step's share of the cores: two trainings of one thread each train
about 50% more events per second in all than one of two threads, whose threads idle a fifth to a
third of a step (README, "Steps in parallel"). Thread counts do not change results: TF's kernels are
deterministic per op, whatever the threads (tests/test_parallel_steps.py). Several TensorFlow
processes can share one GPU only if each grows its memory instead of taking it all at start.

Imported only by the fork server; variables already set by the user win. On Linux the fork server
dies with the run's process and each step with the fork server, at once (SIGKILL): a run killed
outright (SIGKILL, a closed terminal) leaves no step writing into the lake behind it, as a run in
one process would.
"""

import ctypes
import os
import signal
import sys

from sbr_dagster import settings

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_SERVER = os.getpid()
_forking = [0]  # the process about to fork


def _die_with(parent: int) -> None:
    """SIGKILL this process as soon as ``parent``, the process that started it, ends."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the signal was armed
        os._exit(1)


def _note_forking() -> None:
    _forking[0] = os.getpid()


def _step_dies_with_the_server() -> None:
    if _forking[0] == _SERVER:  # not a child of a step's own: that is the step's business
        _die_with(_SERVER)


if sys.platform == "linux":
    _die_with(os.getppid())
    os.register_at_fork(before=_note_forking, after_in_child=_step_dies_with_the_server)

_THREADS = str(settings.threads_per_step())
for _name, _value in {
    "TF_NUM_INTRAOP_THREADS": _THREADS,
    "TF_NUM_INTEROP_THREADS": _THREADS,
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
}.items():
    os.environ.setdefault(_name, _value)

from sbr_dagster import definitions  # noqa: E402

definitions.defs()  # imports every module the code location needs; each step builds its own definitions
