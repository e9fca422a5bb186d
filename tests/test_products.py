"""The dense product the neighbour baselines use: SciPy's sums, bit for bit, whatever the chunking."""

import numpy as np
import pytest
import scipy.sparse as sp

from sbr_dagster.models.products import carried_product, dense_product, leading_product


def _random_csr(rng: np.random.Generator, shape: tuple[int, int], density: float) -> sp.csr_matrix:
    matrix = sp.random(*shape, density=density, format="csr", random_state=rng)
    matrix.data = rng.standard_normal(matrix.nnz) * 10.0 ** rng.integers(-6, 6, matrix.nnz)
    return matrix


def test_equals_scipy_bit_for_bit_and_per_row_chunks() -> None:
    rng = np.random.default_rng(0)
    left, right = _random_csr(rng, (70, 300), 0.2), _random_csr(rng, (300, 90), 0.3)
    dense = dense_product(left, right)
    assert np.array_equal(dense, (left @ right).toarray())
    assert np.array_equal(np.vstack([dense_product(left[i : i + 7], right) for i in range(0, 70, 7)]), dense)


def test_keeps_the_left_entry_order_and_rejects_bad_shapes() -> None:
    # Entries 1e16, 1, -1e16 in this order sum to 0 in float64; sorted they would not.
    left = sp.csr_matrix((np.array([1e16, 1.0, -1e16]), np.array([2, 0, 1]), np.array([0, 3])), shape=(1, 3))
    right = sp.csr_matrix(np.ones((3, 1)))
    assert dense_product(left, right)[0, 0] == (1e16 + 1.0) - 1e16
    with pytest.raises(ValueError, match="do not multiply"):
        dense_product(left, sp.csr_matrix(np.ones((2, 1))))


def test_carried_rows_equal_the_direct_product_for_integer_values() -> None:
    rng = np.random.default_rng(1)
    left = sp.random(60, 200, density=0.1, format="csr", random_state=rng)
    left.data = rng.integers(1, 10**9, left.nnz).astype(np.float64)  # V-SKNN's integer overlaps
    # Consecutive rows sharing most entries, as one session's predictions do.
    left = sp.vstack([left[i // 3] + sp.random(1, 200, density=0.02, random_state=rng) for i in range(60)])
    left.data = np.round(left.data * 7)
    right = sp.random(200, 50, density=0.3, format="csr", random_state=rng)
    right.data[:] = 1.0
    direct = dense_product(left.tocsr(), right.tocsr())
    carry = rng.random(60) < 0.8
    assert np.array_equal(carried_product(left.tocsr(), right.tocsr(), carry), direct)
    assert np.array_equal(carried_product(left.tocsr(), right.tocsr(), np.zeros(60, bool)), direct)
    with pytest.raises(ValueError, match="do not multiply"):
        carried_product(left.tocsr(), sp.csr_matrix(np.ones((2, 1))), carry)


def test_leading_columns_are_the_first_nonzero_columns_of_the_product() -> None:
    rng = np.random.default_rng(2)
    left = sp.random(40, 120, density=0.05, format="csr", random_state=rng)
    left.data = rng.integers(1, 5, left.nnz).astype(np.float64)  # positive, as overlaps are
    left = (sp.diags((np.arange(40) != 7).astype(np.float64)) @ left).tocsr()  # row 7 shares nothing
    left.eliminate_zeros()
    right = sp.random(120, 300, density=0.05, format="csr", random_state=rng)
    right.data[:] = 1.0
    second = rng.standard_normal(left.nnz)
    for width in (1, 5, 300):
        rows, slots, columns, values, found = leading_product(left, right, width, second)
        product = (left @ right).toarray()
        weighted = dense_product(sp.csr_matrix((second, left.indices, left.indptr), shape=left.shape), right)
        expected = [np.flatnonzero(row)[:width] for row in product]
        assert np.array_equal(rows, np.repeat(np.arange(40), [e.size for e in expected]))
        assert np.array_equal(columns, np.concatenate(expected))
        assert np.array_equal(slots, np.concatenate([np.arange(e.size) for e in expected]))
        assert np.array_equal(values, product[rows, columns])
        assert np.array_equal(found, weighted[rows, columns])  # the same sums, bit for bit
    assert leading_product(left, right, 3)[4] is None
    with pytest.raises(ValueError, match="do not multiply"):
        leading_product(left, sp.csr_matrix(np.ones((2, 1))), 3)
