"""Input validation shared by the public layer (ops and estimators).

Every public entry point validates here, before anything reaches compiled code: the kernels trust
their inputs (shapes, dtypes, contiguity, finiteness, 32-bit BLAS dimensions).
"""
import numbers

import numpy as np

FLOAT_DTYPES = (np.float64, np.float32)
_BLAS_INT_MAX = 2**31 - 1


def check_float_array(x, name, *, ndim=None, dtype=None, allow_empty=False, finite=True):
    """Return ``x`` as a C-contiguous float32/float64 ndarray, or raise a clear error.

    - complex, object, string and datetime data -> TypeError;
    - integer and bool data are converted to float64 (a copy; the input is never written to);
    - ``dtype`` forces a dtype (e.g. the dtype of the weights), converting if needed;
    - wrong ``ndim`` (an int or a tuple of allowed values), empty arrays (unless allowed) and
      NaN/inf (when ``finite``) -> ValueError naming the argument.
    """
    if isinstance(x, (list, tuple)):
        try:
            arr = np.asarray(x)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"{name} is ragged or malformed: {exc}") from None
    else:
        arr = np.asarray(x)
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} has complex dtype {arr.dtype}; fastseq needs real float32/float64")
    if kind not in "fiub":
        raise TypeError(f"{name} has dtype {arr.dtype}; fastseq needs numeric float32/float64 data")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif arr.dtype not in FLOAT_DTYPES:
        arr = arr.astype(np.float64)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, numbers.Integral) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {want}, got an array of shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if finite and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return np.ascontiguousarray(arr)


def check_blas_dims(**dims):
    """Raise if any dimension or leading dimension would overflow BLAS's 32-bit ints."""
    for name, value in dims.items():
        if value > _BLAS_INT_MAX:
            raise ValueError(
                f"{name}={value} exceeds the 32-bit BLAS limit ({_BLAS_INT_MAX}); split the data")


def check_positive(value, name, *, strict=True, integer=False, allow_none=False):
    """Validate a scalar parameter: positive (or non-negative), optionally integral."""
    if value is None and allow_none:
        return None
    kinds = (numbers.Integral,) if integer else (numbers.Real,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        what = "an int" if integer else "a real number"
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if not np.isfinite(value) or (value <= 0 if strict else value < 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return value


def check_csr_structure(X):
    # The CSR kernels (SGD, CGLS) index the coefficients with X.indices: check them once per call
    # (scipy does not verify them on construction), O(nnz) next to an epoch / a solve.
    indptr, indices = X.indptr, X.indices
    if indptr.shape[0] != X.shape[0] + 1 or indptr[0] != 0 or indptr[-1] != indices.shape[0] \
            or X.data.shape[0] != indices.shape[0] or np.any(np.diff(indptr) < 0):
        raise ValueError("X is a malformed CSR matrix (indptr is not a monotone 0..nnz index)")
    if indices.size and (indices.min() < 0 or indices.max() >= X.shape[1]):
        raise ValueError(f"X is a malformed CSR matrix: column indices outside [0, {X.shape[1]})")
