"""Kernels compile on their first call, not when the project loads."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from sbr_dagster.kernels import kernel


def test_loading_the_definitions_does_not_import_numba():
    code = (
        "import sys\n"
        "from sbr_dagster.defs.pipeline import build_definitions\n"
        "build_definitions()\n"
        "import sbr_dagster.models.neighbours, sbr_dagster.data.timeline\n"
        "print('numba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_kernel_computes_what_its_loop_says():
    def doubled(values, out):
        for i in range(values.size):
            out[i] = 2 * values[i]

    compiled = kernel(doubled)
    out = np.zeros(3)
    compiled(np.array([1.0, 2.5, -4.0]), out)
    assert out.tolist() == [2.0, 5.0, -8.0]
    assert compiled.__name__ == "doubled"
