"""Loops NumPy has no single call for, compiled with Numba on their first call.

Importing Numba costs about 0.4 s, which every process that loads the project's definitions would
pay, most of them never running a kernel; so ``kernel`` defers the compilation (or the read from
Numba's on-disk cache) to the first call. Compiled kernels release the GIL, so callers may run
them in threads.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, wraps


def kernel(loop: Callable) -> Callable:
    """``loop`` (plain Python over NumPy arrays), compiled with ``numba.njit`` when first called."""

    @cache
    def compiled() -> Callable:
        import numba

        return numba.njit(nogil=True, cache=True)(loop)

    @wraps(loop)
    def call(*args):
        return compiled()(*args)

    return call
