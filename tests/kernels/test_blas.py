"""The BLAS door (_blas.pxd) checked through the row-major GEMM helper against NumPy."""
import numpy as np
import pytest

from fastseq._lib import _gemm, _status
from fastseq._lib.validation import check_blas_dims, check_float_array


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-13)])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 7, 5), (64, 33, 17), (1, 100, 1)])
def test_gemm_matches_numpy(rng, dtype, rtol, m, k, n):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = _gemm.gemm(a, b)
    assert c.dtype == dtype
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=rtol, atol=rtol * np.sqrt(k))


def test_gemm_rejects_mismatch(rng):
    with pytest.raises(ValueError):
        _gemm.gemm(np.ones((2, 3)), np.ones((2, 3)))


def test_status_messages():
    assert "singular" in _status.status_message(2)
    assert _status.status_message(999) == "unknown fastseq status"


def test_check_float_array_errors():
    with pytest.raises(TypeError, match="complex"):
        check_float_array(np.ones(3, complex), "x")
    with pytest.raises(TypeError, match="dtype"):
        check_float_array(np.array(["a"]), "x")
    with pytest.raises(ValueError, match="NaN"):
        check_float_array([1.0, np.nan], "x")
    with pytest.raises(ValueError, match="empty"):
        check_float_array(np.ones((0, 3)), "x")
    with pytest.raises(ValueError, match="2-D"):
        check_float_array(np.ones(3), "x", ndim=2)
    with pytest.raises(ValueError, match="ragged"):
        check_float_array([[1.0], [1.0, 2.0]], "x")
    with pytest.raises(ValueError, match="32-bit"):
        check_blas_dims(n=2**31)
    x = np.arange(6).reshape(2, 3)
    out = check_float_array(x, "x")
    assert out.dtype == np.float64 and x.dtype.kind == "i"
