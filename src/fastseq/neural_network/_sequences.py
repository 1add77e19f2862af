"""Sequence input handling shared by the sequence estimators: one sample = one sequence.

X comes as an ``(n, T, F)`` array, an ``(n, T)`` array of univariate sequences, or a list of
``(T_i, F)`` / ``(T_i,)`` arrays (ragged); :func:`check_sequences` validates it and pads it once
to ``(n, T_max, F)`` with the lengths, which the kernels receive so no work is spent on padding.
"""
import numpy as np
import scipy.sparse as sp


def check_sequences(X, *, n_features=None, dtype=None):
    """Validate sequences; return ``(X_padded (n, T, F) C-contiguous float, lengths (n,) intp,
    ragged_input)``. Raises ValueError/TypeError naming the problem."""
    if sp.issparse(X):
        raise TypeError("sparse input is not supported: pass dense sequences (an (n, T, F) or "
                        "(n, T) array, or a list of (T_i, F) arrays)")
    ragged_input = isinstance(X, (list, tuple)) and len(X) > 0 and not np.isscalar(X[0])
    if ragged_input:
        seqs = [np.asarray(s) for s in X]
        shapes = {s.ndim for s in seqs}
        if not shapes <= {1, 2} or len(shapes) != 1:
            raise ValueError("X as a list must hold (T_i, n_features) or (T_i,) arrays, got "
                             f"arrays with ndim {sorted(shapes)}")
        seqs = [s[:, None] if s.ndim == 1 else s for s in seqs]
        if len({s.shape[1] for s in seqs}) != 1:
            raise ValueError("all sequences in X must have the same number of features, got "
                             f"{sorted({s.shape[1] for s in seqs})}")
        lengths = np.array([s.shape[0] for s in seqs], dtype=np.intp)
        if lengths.min() < 1:
            raise ValueError("X contains an empty sequence (length 0)")
        kinds = {s.dtype.kind for s in seqs}
        dt = np.result_type(*[s.dtype for s in seqs])
    else:
        arr = np.asarray(X)
        if arr.dtype.kind == "O":
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"X has dtype object with non-numeric entries ({exc})") from None
        if arr.ndim not in (2, 3):
            raise ValueError("Reshape your data: X must be a 3-D array (n_samples, n_timesteps, "
                             "n_features), a 2-D array (n_samples, n_timesteps) of univariate "
                             "sequences, or a list of (T_i, n_features) arrays; got shape "
                             f"{arr.shape}")
        if arr.ndim == 2:
            if arr.shape[1] == 0 and arr.shape[0] > 0:
                raise ValueError(f"X has no time steps: 0 feature(s) (shape={arr.shape}) while "
                                 "a minimum of 1 is required.")
            arr = arr[:, :, None]
        seqs = None
        kinds = {arr.dtype.kind}
        dt = arr.dtype
        lengths = np.full(arr.shape[0], arr.shape[1], dtype=np.intp)
    if "c" in kinds:
        raise ValueError("Complex data not supported: X must be real")
    if not kinds <= set("fiub"):
        raise TypeError(f"X must be numeric, got dtype {dt}")
    if dtype is None:
        dtype = dt if dt in (np.float32, np.float64) else np.float64
    if seqs is not None:
        n, T, F = len(seqs), int(lengths.max()), seqs[0].shape[1]
        out = np.zeros((n, T, F), dtype=dtype)
        for i, s in enumerate(seqs):  # one copy per sequence (padding), not a numerical loop
            out[i, : s.shape[0]] = s
    else:
        out = np.ascontiguousarray(arr, dtype=dtype)  # never written to: X stays untouched
    if out.shape[0] == 0 or out.shape[1] == 0 or out.shape[2] == 0:
        raise ValueError(f"X is empty (padded shape {out.shape})")
    if not np.isfinite(out).all():
        raise ValueError("X contains NaN or infinity")
    if n_features is not None and out.shape[2] != n_features:
        raise ValueError(f"X has {out.shape[2]} features per time step, but this estimator was "
                         f"fitted with {n_features}")
    return out, lengths, ragged_input


def _valid_steps(y, pred):
    """Per-step targets as one entry per sequence, cut to its predicted steps: a padded
    (n, T[, K]) array y (accepted by fit with ragged X) loses its padding."""
    if isinstance(y, (list, tuple)):
        return y
    y = np.asarray(y)
    return [y[i, : len(p)] for i, p in enumerate(pred)]
