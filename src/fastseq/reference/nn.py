"""Readable NumPy reference of the dense-network kernels (``fastseq.neural_network._mlp_fast``,
``csrc/neural_network/mlp.c``).

Conventions (scikit-learn's MLP): weights ``W_l`` have shape (fan_in, fan_out), a layer is
``a_l = f(a_{l-1} @ W_l + b_l)``; the output layer and loss come in canonical pairs whose gradient
w.r.t. the output pre-activation is ``prediction - target``:

- ``"squared_error"``: identity output, ``0.5 * mean((z - y)**2)`` over samples and outputs;
- ``"binary_log_loss"``: sigmoid output, binary cross-entropy, mean over samples, sum over outputs;
- ``"log_loss"``: softmax output, cross-entropy, mean over samples.

The objective adds ``alpha / (2 n) * sum ||W_l||^2`` (weights only, n = batch rows).
"""
import numpy as np
from scipy.special import expit


def activation(z, name):
    if name == "identity":
        return z.copy()
    if name == "logistic":
        return expit(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    raise ValueError(name)


def activation_derivative_from_output(a, name):
    """f'(z) written with a = f(z)."""
    if name == "identity":
        return np.ones_like(a)
    if name == "logistic":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    if name == "relu":
        return (a > 0).astype(a.dtype)
    raise ValueError(name)


def output_activation(z, loss):
    if loss == "squared_error":
        return z.copy()
    if loss == "binary_log_loss":
        return expit(z)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def loss_sum_and_delta(z, y, loss):
    """Loss summed over all entries and its gradient w.r.t. z (unscaled)."""
    p = output_activation(z, loss)
    if loss == "squared_error":
        total = 0.5 * np.sum((z - y) ** 2)
    elif loss == "binary_log_loss":
        # softplus(z) - y z, written stably
        total = np.sum(np.logaddexp(0, z) - y * z)
    else:
        lse = np.logaddexp.reduce(z, axis=1, keepdims=True)
        total = np.sum(y * (lse - z))
    return float(total), p - y


def loss_normaliser(loss, n, n_outputs):
    return 1.0 / (n * n_outputs) if loss == "squared_error" else 1.0 / n


def forward(coefs, intercepts, X, act):
    """Activations of every layer; the last entry is the output pre-activation z_L."""
    acts = [X]
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        z = acts[-1] @ W + b
        acts.append(activation(z, act) if i < len(coefs) - 1 else z)
    return acts


def loss_and_grad(coefs, intercepts, X, Y, act, loss, alpha=0.0, return_input_grad=False):
    """Objective (mean loss + L2) and its gradients, by plain backpropagation (and d/dX)."""
    n = X.shape[0]
    acts = forward(coefs, intercepts, X, act)
    total, delta = loss_sum_and_delta(acts[-1], Y, loss)
    norm = loss_normaliser(loss, n, Y.shape[1])
    delta = delta * norm
    obj = total * norm + 0.5 * alpha * sum(np.sum(W * W) for W in coefs) / n
    gW, gb = [None] * len(coefs), [None] * len(coefs)
    for layer in range(len(coefs) - 1, -1, -1):
        gW[layer] = acts[layer].T @ delta + (alpha / n) * coefs[layer]
        gb[layer] = delta.sum(axis=0)
        if layer > 0:
            delta = (delta @ coefs[layer].T) * activation_derivative_from_output(acts[layer], act)
    if return_input_grad:
        return obj, gW, gb, delta @ coefs[0].T
    return obj, gW, gb


def sgd_step(w, velocity, g, lr, momentum, nesterov, decay=0.0, n_decay=None, gscale=1.0):
    """scikit-learn's SGDOptimizer step on flat arrays (returns new w, new velocity)."""
    n_decay = w.size if n_decay is None else n_decay
    g = gscale * g + decay * np.where(np.arange(w.size) < n_decay, w, 0)
    v = momentum * velocity - lr * g
    step = momentum * v - lr * g if nesterov else v
    return w + step, v


def adam_step(w, m1, m2, g, t, lr, beta1, beta2, eps, decay=0.0, n_decay=None, gscale=1.0):
    """scikit-learn's AdamOptimizer step number t (1-based)."""
    n_decay = w.size if n_decay is None else n_decay
    g = gscale * g + decay * np.where(np.arange(w.size) < n_decay, w, 0)
    m1 = beta1 * m1 + (1 - beta1) * g
    m2 = beta2 * m2 + (1 - beta2) * g * g
    lr_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    return w - lr_t * m1 / (np.sqrt(m2) + eps), m1, m2


def clip_scale(g, max_norm):
    """Factor that rescales g to global norm max_norm when it is larger (1 otherwise)."""
    norm = np.sqrt(np.sum(g.astype(np.float64) ** 2))
    return 1.0 if max_norm is None or norm <= max_norm else max_norm / norm


def train_epoch(coefs, intercepts, X, Y, act, loss, batch_size, lr, alpha=0.0, solver="adam",
                momentum=0.9, nesterov=True, beta1=0.9, beta2=0.999, eps=1e-8):
    """One epoch of mini-batch training in plain NumPy (no shuffling, fresh optimizer state),
    updating coefs/intercepts in place; returns scikit-learn's epoch loss (mean over samples of
    the batch objectives). The baseline of the benchmarks."""
    n = X.shape[0]
    params = coefs + intercepts
    s1 = [np.zeros_like(p) for p in params]
    s2 = [np.zeros_like(p) for p in params]
    acc, t = 0.0, 0
    for s in range(0, n, batch_size):
        xb, yb = X[s:s + batch_size], Y[s:s + batch_size]
        obj, gW, gb = loss_and_grad(coefs, intercepts, xb, yb, act, loss, alpha)
        acc += obj * xb.shape[0]
        t += 1
        lr_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        for i, (p, g) in enumerate(zip(params, gW + gb)):
            if solver == "adam":
                s1[i] = beta1 * s1[i] + (1 - beta1) * g
                s2[i] = beta2 * s2[i] + (1 - beta2) * g * g
                p -= lr_t * s1[i] / (np.sqrt(s2[i]) + eps)
            else:
                s1[i] = momentum * s1[i] - lr * g
                p += momentum * s1[i] - lr * g if nesterov else s1[i]
    return acc / n
