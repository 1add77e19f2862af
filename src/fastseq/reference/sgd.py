"""NumPy reference for one epoch of mini-batch SGD on the squared loss
(fastseq.linear_model._sgd_fast).

Objective (per epoch, sklearn's vocabulary), with sample weights s_i and outputs k:

    (1/n) sum_i 0.5 s_i ||W x_i + b - y_i||^2  +  0.5 alpha ||W||_F^2     (penalty="l2")

For each mini-batch B of the permutation (|B| = m), at update number t (1-based):

    r_i = W x_i + b - y_i                 (i in B, weights before the update)
    eta = schedule(t)
    W  <- (1 - eta alpha) W - (eta / m) sum_i s_i r_i x_i^T
    b  <- b - (eta / m) sum_i s_i r_i
    t  <- t + 1

With batch_size=1 this is exactly sklearn's plain SGD for SGDRegressor (squared_error, l2), apart
from sklearn's clipping of |r| at 1e12 and its 0.01 intercept decay on sparse input.
The compiled kernel keeps W = scale * V to make the shrinkage O(1); here W is kept explicitly,
so the two agree to rounding.
"""
import numpy as np
import scipy.sparse as sp


def optimal_init(alpha):
    """t0 of sklearn's 'optimal' schedule for the squared loss (Bottou's heuristic).

    typw = sqrt(1 / sqrt(alpha)); eta0 = typw / max(1, |dloss(-typw, 1)|) = typw for the squared
    loss (dloss(p, y) = p - y = -typw - 1 < 0, so the max is 1); t0 = 1 / (eta0 alpha).
    """
    typw = float(np.sqrt(1.0 / np.sqrt(alpha)))
    return 1.0 / (typw * alpha)


def learning_rate_at(t, *, learning_rate, eta0, power_t, alpha):
    """eta for update number t (1-based), as in sklearn's _plain_sgd."""
    if learning_rate == "optimal":
        return 1.0 / (alpha * (optimal_init(alpha) + t - 1.0))
    if learning_rate == "invscaling":
        return eta0 / t**power_t
    return eta0  # constant (and 'adaptive', whose current rate is passed as eta0)


def sgd_epoch_reference(X, Y, sample_weight, perm, coef, intercept, *, batch_size, learning_rate,
                        eta0, power_t, alpha, penalty="l2", fit_intercept=True, t=1.0,
                        average=0, avg_coef=None, avg_intercept=None, n_seen=0, n_avg=0):
    """One epoch of mini-batch SGD; returns a dict of the updated state (inputs are not modified).

    X : (n, p) ndarray or CSR; Y : (n, k); coef : (k, p); intercept : (k,); perm : (n,) order of
    the samples. Arithmetic stays in X's dtype (float32 or float64); the loss sums in float64.
    average : 0 for no averaging, else averaging starts once `average` samples have been seen.
    Returns keys coef, intercept, t, n_seen, n_avg, avg_coef, avg_intercept, loss (the sum over
    the epoch of 0.5 s_i ||r_i||^2, each evaluated before its update).
    """
    dtype = X.dtype
    W = np.array(coef, dtype=dtype)
    b = np.array(intercept, dtype=dtype)
    avg_W = None if avg_coef is None else np.array(avg_coef, dtype=dtype)
    avg_b = None if avg_intercept is None else np.array(avg_intercept, dtype=dtype)
    loss = 0.0
    n = perm.shape[0]
    for start in range(0, n, batch_size):
        rows = perm[start:start + batch_size]
        m = rows.shape[0]
        Xb = X[rows]
        prediction = Xb @ W.T
        if sp.issparse(prediction):
            prediction = prediction.toarray()
        residual = np.asarray(prediction) + b - Y[rows]
        s = sample_weight[rows]
        loss += float(0.5 * np.sum(s.astype(np.float64) * np.sum(
            residual.astype(np.float64) ** 2, axis=1)))
        g = s[:, None] * residual                       # d loss_i / d prediction_i
        # a Python float, so float32 arithmetic stays float32 (NEP 50)
        eta = float(learning_rate_at(t, learning_rate=learning_rate, eta0=eta0, power_t=power_t,
                                     alpha=alpha))
        if penalty == "l2":
            W = max(0.0, 1.0 - eta * alpha) * W
        gradient = np.asarray(Xb.T @ g).T               # sum_i g_i x_i^T, (k, p)
        W = W - (eta / m) * gradient
        if fit_intercept:
            b = b - (eta / m) * g.sum(axis=0)
        t += 1.0
        n_seen += m
        if average and n_seen >= average:
            n_avg += 1
            avg_W = avg_W + (W - avg_W) / n_avg
            avg_b = avg_b + (b - avg_b) / n_avg
    return dict(coef=W, intercept=b, t=t, n_seen=n_seen, n_avg=n_avg, avg_coef=avg_W,
                avg_intercept=avg_b, loss=loss)
