"""NumPy references for the least-squares kernels (readable, not fast)."""
import numpy as np
import scipy.sparse.linalg as spla

# ==== CGLS reference (fastseq.ops.cgls) ======================================================
# Textbook two-pass preconditioned CGLS: q = A p, then A^T q, every iteration. Same stopping rules
# as the compiled solver (scipy lsqr's S1/S2/S3 with LSQR's running estimates rebuilt from the CG
# coefficients), no residual replacement, one right-hand side at a time.


def _cgls_operator(A, sample_weight, column_offset):
    """matvec/rmatvec of A_c = diag(sqrt(w)) (A - 1 mu^T) without forming it."""
    A = spla.aslinearoperator(A)
    n, p = A.shape
    sw = np.ones(n) if sample_weight is None else np.sqrt(np.asarray(sample_weight, float))
    mu = np.zeros(p) if column_offset is None else np.asarray(column_offset, float)

    def matvec(v):
        return sw * (A.matvec(v) - mu @ v)

    def rmatvec(u):
        u = sw * u
        return A.rmatvec(u) - mu * u.sum()

    return matvec, rmatvec, sw


def cgls_reference(A, b, *, damp=0.0, x0=None, atol=1e-8, btol=1e-8, conlim=1e8,
                   max_iter=None, precondition=True, sample_weight=None, column_offset=None):
    """Preconditioned CGLS for ``min ||W^{1/2}(A_c x - b)||^2 + damp^2 ||x||^2`` (1-D or 2-D b).

    Returns a dict with ``x`` and, per column, ``istop``, ``n_iter``, ``r1norm``, ``r2norm``,
    ``anorm``, ``acond``, ``arnorm``, ``xnorm`` (scalars for 1-D b, lists otherwise).
    """
    b = np.asarray(b, dtype=np.float64)
    if b.ndim == 2:
        cols = [cgls_reference(A, b[:, j], damp=damp,
                               x0=None if x0 is None else np.asarray(x0)[:, j], atol=atol,
                               btol=btol, conlim=conlim, max_iter=max_iter,
                               precondition=precondition, sample_weight=sample_weight,
                               column_offset=column_offset) for j in range(b.shape[1])]
        out = {key: [c[key] for c in cols] for key in cols[0] if key != "x"}
        out["x"] = np.stack([c["x"] for c in cols], axis=1)
        return out
    matvec, rmatvec, sw = _cgls_operator(A, sample_weight, column_offset)
    n, p = spla.aslinearoperator(A).shape
    bw = sw * b
    eps = np.finfo(np.float64).eps
    max_iter = 2 * p if max_iter is None else max_iter
    ctol = 1.0 / conlim
    # Jacobi preconditioner on N = A_c^T A_c + damp^2 I: d_j = 1/sqrt(N_jj) (0 for a zero column)
    if precondition and not isinstance(A, spla.LinearOperator):
        # N_jj = sum_i w_i (a_ij - mu_j)^2 + damp^2, from weighted column sums (A not copied
        # beyond the element-wise square)
        w = sw**2
        mu = np.zeros(p) if column_offset is None else np.asarray(column_offset, float)
        sq = A.multiply(A) if hasattr(A, "multiply") else np.asarray(A) ** 2
        colsumsq = np.asarray(sq.T @ w).ravel()
        colsum = np.asarray(A.T @ w).ravel()
        centred = np.maximum(colsumsq - 2 * mu * colsum + mu**2 * w.sum(), 0.0)
        centred[centred <= 1e-12 * (colsumsq + mu**2 * w.sum())] = 0.0
        diag = centred + damp**2
        d = np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 0.0)
    else:
        d = np.ones(p)
    dinv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)

    x = np.zeros(p) if x0 is None else np.array(x0, dtype=np.float64)
    bnorm = np.linalg.norm(bw)
    r = bw - matvec(x)
    s = rmatvec(r) - damp**2 * x          # normal-equation residual
    z = d**2 * s
    gamma = s @ z
    pvec = z.copy()
    out = dict(x=x, istop=0, n_iter=0, r1norm=np.linalg.norm(r),
               r2norm=np.sqrt(r @ r + damp**2 * x @ x), anorm=0.0, acond=0.0,
               arnorm=np.sqrt(gamma), xnorm=np.linalg.norm(dinv * x))
    if bnorm == 0:
        out.update(x=np.zeros(p), r1norm=0.0, r2norm=0.0, arnorm=0.0, xnorm=0.0)
        return out
    if out["r2norm"] == 0 or gamma == 0:
        return out
    anorm2 = ddnorm = 0.0
    alpha_prev = beta_prev = 0.0
    itn = istop = 0
    while istop == 0:
        itn += 1
        q = matvec(pvec)
        delta = q @ q + damp**2 * pvec @ pvec
        alpha = gamma / delta
        x = x + alpha * pvec
        r = r - alpha * q
        s = rmatvec(r) - damp**2 * x
        # Lanczos tridiagonal T_k of D N D: T_ii = 1/alpha_i + beta_{i-1}/alpha_{i-1};
        # anorm^2 = trace(T_k), acond^2 = trace(T_k) trace(T_k^{-1}) (LSQR's estimates).
        anorm2 += 1.0 / alpha + (beta_prev / alpha_prev if alpha_prev else 0.0)
        ddnorm += np.sum((dinv * pvec) ** 2) / delta
        alpha_prev = alpha
        z = d**2 * s
        gamma_new = s @ z
        # lsqr's tests (later ones win)
        rnorm = np.sqrt(r @ r + damp**2 * x @ x)
        arnorm = np.sqrt(gamma_new)
        anorm = np.sqrt(anorm2)
        acond = anorm * np.sqrt(ddnorm)
        xnorm = np.linalg.norm(dinv * x)
        test1 = rnorm / bnorm
        test2 = arnorm / (anorm * rnorm + eps)
        test3 = 1.0 / (acond + eps)
        t1 = test1 / (1 + anorm * xnorm / bnorm)
        rtol = btol + atol * anorm * xnorm / bnorm
        if itn >= max_iter:
            istop = 7
        if 1 + test3 <= 1:
            istop = 6
        if 1 + test2 <= 1:
            istop = 5
        if 1 + t1 <= 1:
            istop = 4
        if test3 <= ctol:
            istop = 3
        if test2 <= atol:
            istop = 2
        if test1 <= rtol:
            istop = 1
        beta = gamma_new / gamma
        pvec = z + beta * pvec
        gamma, beta_prev = gamma_new, beta
    out.update(x=x, istop=istop, n_iter=itn, r1norm=np.linalg.norm(r), r2norm=rnorm,
               anorm=anorm, acond=acond, arnorm=arnorm, xnorm=xnorm)
    return out
# ==== end CGLS reference =====================================================================


# ==== LinearRegression reference (fastseq.LinearRegression) ==================================
# Householder QR with column equilibration on the explicitly centered, weighted design, with the
# ridge handled as the augmented system [X; sqrt(alpha) I] beta ~ [y; 0]. Forms every copy the
# compiled solver avoids; it is the accuracy yardstick ("QR with column scaling") of the tests.


def lstsq_qr_scaled(X, y, *, sample_weight=None, fit_intercept=True, alpha=0.0):
    """Return ``(coef (p,) or (p, k), intercept)`` of weighted ridge least squares by QR.

    ``min sum_i w_i ||y_i - x_i coef - intercept||^2 + alpha ||coef||^2`` (intercept free).
    """
    import scipy.linalg as sl

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    Y = y.reshape(len(y), -1)
    n, p = X.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if fit_intercept:
        xmean = w @ X / w.sum()
        ymean = w @ Y / w.sum()
    else:
        xmean, ymean = np.zeros(p), np.zeros(Y.shape[1])
    sw = np.sqrt(w)[:, None]
    A = sw * (X - xmean)
    B = sw * (Y - ymean)
    if alpha > 0:
        A = np.vstack([A, np.sqrt(alpha) * np.eye(p)])
        B = np.vstack([B, np.zeros((p, Y.shape[1]))])
    d = np.linalg.norm(A, axis=0)
    d[d == 0] = 1.0
    Q, R = sl.qr(A / d, mode="economic")
    coef = sl.solve_triangular(R, Q.T @ B) / d[:, None]
    intercept = ymean - xmean @ coef
    if y.ndim == 1:
        return coef[:, 0], float(intercept[0])
    return coef, intercept
