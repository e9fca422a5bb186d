"""Sparse times sparse into dense rows, summed in the left operand's entry order.

The neighbour baselines spend most of their time in products whose result is used dense (every
item's score, every train session's overlap). SciPy's ``A @ B`` runs two passes (one to size its
sparse result, one to fill it) and then ``.toarray()`` a third; this one pass writes the dense rows
directly. The sums are those of SciPy's kernel term for term (each row's terms in the order of its
entries in ``left``, each ``value * right_value`` rounded, then added, no fused multiply-add), so
results are bit for bit the same and do not depend on how rows are chunked. A Numba kernel, it
releases the GIL, so chunks can run in threads.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from sbr_dagster.kernels import kernel


def dense_product(left: sp.csr_matrix, right: sp.csr_matrix) -> np.ndarray:
    """``(left @ right).toarray()`` in float64, in one pass."""
    if left.shape[1] != right.shape[0]:
        raise ValueError(f"shapes {left.shape} and {right.shape} do not multiply")
    return _run(left, right, np.zeros(left.shape[0], dtype=np.bool_))


@kernel
def _carried(indptr, indices, data, carry, right_indptr, right_indices, right_data, out):
    """The one product loop: rows not carried sum their terms in ``left``'s entry order."""
    for row in range(out.shape[0]):
        target = out[row]
        if not (carry[row] and row > 0):
            for entry in range(indptr[row], indptr[row + 1]):
                inner, value = indices[entry], data[entry]
                for other in range(right_indptr[inner], right_indptr[inner + 1]):
                    target[right_indices[other]] += value * right_data[other]
            continue
        target[:] = out[row - 1]
        # Merge the two rows' sorted entries: add what changed (new less old).
        a, a_end, b, b_end = indptr[row - 1], indptr[row], indptr[row], indptr[row + 1]
        while a < a_end or b < b_end:
            if b >= b_end or (a < a_end and indices[a] < indices[b]):
                inner, value = indices[a], -data[a]
                a += 1
            elif a >= a_end or indices[b] < indices[a]:
                inner, value = indices[b], data[b]
                b += 1
            else:
                inner, value = indices[b], data[b] - data[a]
                a += 1
                b += 1
            if value != 0:
                for other in range(right_indptr[inner], right_indptr[inner + 1]):
                    target[right_indices[other]] += value * right_data[other]


def carried_product(left: sp.csr_matrix, right: sp.csr_matrix, carry: np.ndarray) -> np.ndarray:
    """``dense_product`` where a row flagged in ``carry`` is the previous row's result plus (its
    left row less the previous one) times ``right``: far fewer terms when consecutive rows share
    most entries (one session's predictions). Exact only for integer values whose every partial
    sum stays below 2**53; the caller checks that, and then any order of the sum gives the same."""
    if left.shape[1] != right.shape[0]:
        raise ValueError(f"shapes {left.shape} and {right.shape} do not multiply")
    left.sum_duplicates()  # in place: the merge needs each row's columns sorted and distinct
    return _run(left, right, np.asarray(carry, dtype=np.bool_))


def _run(left: sp.csr_matrix, right: sp.csr_matrix, carry: np.ndarray) -> np.ndarray:
    out = np.zeros((left.shape[0], right.shape[1]), dtype=np.float64)
    _carried(
        left.indptr,
        left.indices,
        np.asarray(left.data, dtype=np.float64),
        carry,
        right.indptr,
        right.indices,
        np.asarray(right.data, dtype=np.float64),
        out,
    )
    return out


def leading_product(
    left: sp.csr_matrix, right: sp.csr_matrix, width: int, second: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The first ``width`` nonzero columns of every row of ``left @ right``, in one pass.

    What a neighbour method wants of its sparse overlaps: the most recent candidate sessions (the
    lowest columns) of each prediction, never the whole sparse product, which SciPy would size,
    fill and then need sorted. ``second`` is another data array on ``left``'s entries (STAN's
    position weights), summed over the same columns. Returns flat ``(rows, slots, columns,
    values, second_values)`` sorted by row, then column; ``slots`` is each column's rank in its row.
    Sums run in ``left``'s entry order, as ``dense_product``'s do, so both give the same values.
    """
    if left.shape[1] != right.shape[0]:
        raise ValueError(f"shapes {left.shape} and {right.shape} do not multiply")
    reached = np.concatenate([[0], np.cumsum(np.diff(right.indptr)[left.indices])])
    reach = reached[left.indptr[1:]] - reached[left.indptr[:-1]]  # an upper bound on each row's columns
    size = int(np.minimum(reach, width).sum())
    rows, slots, columns = (np.empty(size, dtype=np.int64) for _ in range(3))
    values, second_values = np.empty(size), np.empty(size if second is not None else 0)
    data = np.asarray(left.data, dtype=np.float64)
    used = _leading(
        left.indptr, left.indices, data, data if second is None else np.asarray(second, dtype=np.float64),
        second is not None, right.indptr, right.indices, np.asarray(right.data, dtype=np.float64),
        right.shape[1], width, rows, slots, columns, values, second_values,
    )  # fmt: skip
    kept = slice(0, used)
    found = second_values[kept] if second is not None else None
    return rows[kept], slots[kept], columns[kept], values[kept], found


@kernel
def _leading(
    indptr, indices, data, second, has_second, right_indptr, right_indices, right_data, n_columns, width,
    rows, slots, columns, values, second_values,
):  # fmt: skip
    """One dense accumulator row, reset after each row by the list of columns it touched."""
    total = np.zeros(n_columns)
    total_second = np.zeros(n_columns if has_second else 1)
    touched = np.empty(n_columns, dtype=np.int64)
    marked = np.zeros(n_columns, dtype=np.bool_)
    used = 0
    for row in range(indptr.size - 1):
        n_touched = 0
        for entry in range(indptr[row], indptr[row + 1]):
            inner, value = indices[entry], data[entry]
            for other in range(right_indptr[inner], right_indptr[inner + 1]):
                column = right_indices[other]
                if not marked[column]:
                    marked[column] = True
                    touched[n_touched] = column
                    n_touched += 1
                total[column] += value * right_data[other]
                if has_second:
                    total_second[column] += second[entry] * right_data[other]
        chosen = np.sort(touched[:n_touched])
        slot = 0
        for column in chosen:
            if slot < width and total[column] != 0:
                rows[used], slots[used], columns[used], values[used] = row, slot, column, total[column]
                if has_second:
                    second_values[used] = total_second[column]
                used += 1
                slot += 1
            total[column] = 0.0
            marked[column] = False
            if has_second:
                total_second[column] = 0.0
    return used
