"""Compiled engine of the dense networks (MLPClassifier / MLPRegressor) and the optimizer steps
shared by every fastseq network.

A network's parameters live in ONE flat contiguous buffer ``params`` laid out as
``[W_1, ..., W_L, b_1, ..., b_L]`` (``W_l`` row-major ``(sizes[l-1], sizes[l])``, so a layer is
``a_l = f(a_{l-1} @ W_l + b_l)`` as in scikit-learn's ``coefs_``); the gradients live in a second
buffer of the same layout and the optimizer state (velocity, or Adam's two moments) in buffers of
the same layout, so an optimizer step is one fused C loop over the whole network. The first
``n_weights`` entries are the weights (they get L2 decay), the rest are biases.

Workspace (allocated once per fit by the caller, sized for the largest batch B): the activations
of every layer (B x sizes[l] each, l = 1..L), two delta buffers (B x max width), a gather buffer
for the input rows and one for the target rows of a shuffled batch.
"""
from cython cimport floating
from libc.math cimport sqrt, pow, isfinite
from libc.string cimport memcpy

from fastseq._lib._blas cimport _gemm_rm, _nrm2, _dot, _axpy
from fastseq._lib._kernels cimport (
    FS_OK, FS_ERR_NONFINITE, FS_ACT_IDENTITY, FS_ACT_LOGISTIC, FS_ACT_TANH, FS_ACT_RELU,
    FS_LOSS_SQUARED, FS_LOSS_BINARY_XENT, FS_LOSS_SOFTMAX_XENT, FS_SOLVER_SGD, FS_SOLVER_ADAM,
    fs_nn_bias_act, fs_nn_act_backward, fs_nn_colsum, fs_nn_act_backward_colsum,
    fs_nn_gather_rows, fs_nn_loss_grad, fs_nn_output, fs_nn_sgd_step, fs_nn_adam_step)


# The C enums of csrc/neural_network/mlp.h by the names the Python layer uses.
ACTIVATIONS = {"identity": FS_ACT_IDENTITY, "logistic": FS_ACT_LOGISTIC, "tanh": FS_ACT_TANH,
               "relu": FS_ACT_RELU}
LOSSES = {"squared_error": FS_LOSS_SQUARED, "binary_log_loss": FS_LOSS_BINARY_XENT,
          "log_loss": FS_LOSS_SOFTMAX_XENT}
SOLVERS = {"sgd": FS_SOLVER_SGD, "adam": FS_SOLVER_ADAM}
DEFAULT_CHUNK = 4096   # rows per forward pass in predict (bounds the workspace)
# Row blocking of the layer GEMMs (train_epoch's gemm_mnk): OpenBLAS's SkylakeX kernels (which it
# also runs on Cooperlake / Sapphire Rapids and on AVX-512 AMD CPUs) take an unpacked "small
# matrix" path when m*n*k <= 100**3, which on a (200 x 256) @ (256 x 128) layer product is ~15%
# faster per flop than the packed path when the product is done as 7 blocks of 29 rows instead of
# one call. Same flops; only the call pattern changes. Blocks of fewer rows than this are not
# worth it:
cdef enum:
    MIN_BLOCK_ROWS = 8


# ---- network description -----------------------------------------------------------------------
cdef struct Net:
    int n_layers              # L (number of weight matrices)
    const Py_ssize_t *sizes   # L + 1 layer widths, sizes[0] = n_features
    const Py_ssize_t *w_off   # offset of W_l (l = 1..L at index l-1) in params
    const Py_ssize_t *b_off   # offset of b_l in params
    Py_ssize_t batch        # B: rows the workspace was sized for
    Py_ssize_t max_width    # max(sizes[1:])
    int act                 # hidden activation code
    int loss                # output/loss code
    Py_ssize_t gemm_mnk     # > 0: split the big GEMMs into row blocks of at most this m*n*k


cdef inline Py_ssize_t _act_offset(const Net *net, int l) noexcept nogil:
    # activation of layer l (1..L) starts at B * (sizes[1] + ... + sizes[l-1])
    cdef Py_ssize_t off = 0
    cdef int j
    for j in range(1, l):
        off += net.sizes[j]
    return net.batch * off


def workspace_size(const Py_ssize_t[::1] sizes, Py_ssize_t batch):
    """Number of elements the workspace needs for batches of up to ``batch`` rows."""
    cdef Py_ssize_t total = 0, max_width = 0
    cdef int l
    for l in range(1, sizes.shape[0]):
        total += sizes[l]
        max_width = max(max_width, sizes[l])
    # activations + 2 deltas + gathered inputs + gathered targets
    return batch * (total + 2 * max_width + sizes[0] + sizes[sizes.shape[0] - 1])


cdef inline Py_ssize_t _row_block(const Net *net, Py_ssize_t n, Py_ssize_t fan_in,
                                  Py_ssize_t fan_out) noexcept nogil:
    """Rows per GEMM call for a layer product over n rows: all n, or -- when net.gemm_mnk is
    set and fan_in * fan_out * n exceeds it -- near-equal blocks of at most
    gemm_mnk / (fan_in * fan_out) rows (not fewer than MIN_BLOCK_ROWS)."""
    cdef Py_ssize_t cap, n_blocks
    if net.gemm_mnk <= 0:
        return n
    cap = net.gemm_mnk // (fan_in * fan_out)
    if cap >= n or cap < MIN_BLOCK_ROWS:
        return n
    n_blocks = (n + cap - 1) // cap
    return (n + n_blocks - 1) // n_blocks


cdef void _forward(const Net *net, const floating *params, const floating *x, Py_ssize_t n,
                   floating *work) noexcept nogil:
    """Hidden activations a_l = f(a_{l-1} @ W_l + b_l) for l < L and the output pre-activation
    z_L = a_{L-1} @ W_L + b_L, written to the workspace (first n rows of each layer block)."""
    cdef const floating *a_prev = x
    cdef floating *a
    cdef int l
    cdef Py_ssize_t fan_in, fan_out, block, r, rows
    for l in range(1, net.n_layers + 1):
        fan_in = net.sizes[l - 1]
        fan_out = net.sizes[l]
        a = work + _act_offset(net, l)
        block = _row_block(net, n, fan_in, fan_out)
        r = 0
        while r < n:
            rows = min(block, n - r)
            # a[r:r+rows] = a_prev[r:r+rows] @ W_l
            _gemm_rm(False, False, <int>rows, <int>fan_out, <int>fan_in, <floating>1.0,
                     a_prev + r * fan_in, <int>fan_in, params + net.w_off[l - 1], <int>fan_out,
                     <floating>0.0, a + r * fan_out, <int>fan_out)
            # a[r:r+rows] = f(a[r:r+rows] + b_l) while the block is still in cache
            # (identity on the output layer: the loss kernel applies its link)
            fs_nn_bias_act(rows, fan_out, a + r * fan_out, params + net.b_off[l - 1],
                           net.act if l < net.n_layers else 0)
            r += rows
        a_prev = a


cdef int _loss_backward(const Net *net, const floating *params, floating *grads,
                        const floating *x, const floating *y, Py_ssize_t n, floating scale,
                        floating *work, double *loss_sum, floating *dx=NULL) noexcept nogil:
    """After _forward: summed loss and the gradient of (scale * summed loss) w.r.t. every
    parameter, written into grads (same layout as params), and w.r.t. the input x into dx when
    dx is not NULL (a network stacked on top of another, e.g. a recurrent encoder, needs it).
    Returns a fastseq status."""
    cdef int L = net.n_layers, l, status
    cdef Py_ssize_t fan_in, fan_out, block, r, rows
    cdef floating *delta = work + _act_offset(net, L + 1)
    cdef floating *delta_prev = delta + net.batch * net.max_width
    cdef floating *tmp
    cdef const floating *a_prev
    cdef floating *z_out = work + _act_offset(net, L)
    # delta_L = scale * dLoss/dz_L   (prediction - target for the canonical links);
    # grad b_L = delta_L.sum(axis=0) in the same pass
    status = fs_nn_loss_grad(net.loss, n, net.sizes[L], z_out, y, delta, scale, loss_sum,
                             grads + net.b_off[L - 1])
    if status != FS_OK:
        return status
    for l in range(L, 0, -1):
        fan_in = net.sizes[l - 1]
        fan_out = net.sizes[l]
        a_prev = x if l == 1 else work + _act_offset(net, l - 1)
        block = _row_block(net, n, fan_in, fan_out)
        r = 0
        while r < n:
            rows = min(block, n - r)
            # grad W_l = a_prev.T @ delta_l, accumulated over row blocks:
            # grad W_l (+)= a_prev[r:r+rows].T @ delta_l[r:r+rows]
            _gemm_rm(True, False, <int>fan_in, <int>fan_out, <int>rows, <floating>1.0,
                     a_prev + r * fan_in, <int>fan_in, delta + r * fan_out, <int>fan_out,
                     <floating>(0.0 if r == 0 else 1.0), grads + net.w_off[l - 1], <int>fan_out)
            r += rows
        # (grad b_l = delta_l.sum(axis=0) was formed with delta_l)
        if l > 1:
            # delta_{l-1} = (delta_l @ W_l.T) * f'(a_{l-1})
            _gemm_rm(False, True, <int>n, <int>fan_in, <int>fan_out, <floating>1.0,
                     delta, <int>fan_out, params + net.w_off[l - 1], <int>fan_out,
                     <floating>0.0, delta_prev, <int>fan_in)
            # ... and grad b_{l-1} = delta_{l-1}.sum(axis=0), in the same pass
            fs_nn_act_backward_colsum(n, fan_in, delta_prev, a_prev, net.act,
                                      grads + net.b_off[l - 2])
            tmp = delta
            delta = delta_prev
            delta_prev = tmp
        elif dx != NULL:
            # dx = delta_1 @ W_1.T
            _gemm_rm(False, True, <int>n, <int>fan_in, <int>fan_out, <floating>1.0,
                     delta, <int>fan_out, params + net.w_off[0], <int>fan_out,
                     <floating>0.0, dx, <int>fan_in)
    return FS_OK


# scikit-learn's MLP losses: cross-entropies are means over samples (summed over outputs);
# squared error is 0.5 * mean over samples AND outputs, so its gradient carries 1/(n m).
cdef inline double _loss_norm(const Net *net, Py_ssize_t n) noexcept nogil:
    if net.loss == FS_LOSS_SQUARED:
        return 1.0 / (<double>n * net.sizes[net.n_layers])
    return 1.0 / <double>n


cdef Net _make_net(const Py_ssize_t[::1] sizes, const Py_ssize_t[::1] w_off,
                   const Py_ssize_t[::1] b_off, Py_ssize_t batch, int act, int loss):
    cdef Net net
    cdef int l
    net.n_layers = <int>(sizes.shape[0] - 1)
    net.sizes = &sizes[0]
    net.w_off = &w_off[0]
    net.b_off = &b_off[0]
    net.batch = batch
    net.max_width = 0
    for l in range(1, sizes.shape[0]):
        net.max_width = max(net.max_width, sizes[l])
    net.act = act
    net.loss = loss
    net.gemm_mnk = 0
    return net


# ---- Python entry points -----------------------------------------------------------------------
def loss_grad(floating[::1] params, floating[::1] grads, floating[::1] work,
              const floating[:, ::1] X, const floating[:, ::1] Y,
              const Py_ssize_t[::1] sizes, const Py_ssize_t[::1] w_off,
              const Py_ssize_t[::1] b_off, Py_ssize_t n_weights, int act, int loss,
              double alpha, floating[:, ::1] input_grad=None):
    """Objective of one batch, exactly as minimised by training, and its gradient into grads:
    ``loss = mean data loss + alpha / (2 n) * ||W||^2`` (weights: the first n_weights entries of
    params). Returns (status, loss). If ``input_grad`` (shaped like X) is given, d loss / d X is
    written to it. The workspace must be sized for X.shape[0] rows. ``w_off``/``b_off`` are
    offsets into params, so the dense layers may be a part of a larger network's flat buffer."""
    cdef Py_ssize_t n = X.shape[0]
    cdef floating *dx = NULL
    if input_grad is not None:
        if input_grad.shape[0] != X.shape[0] or input_grad.shape[1] != X.shape[1]:
            raise ValueError("input_grad must have the shape of X")
        dx = &input_grad[0, 0]
    cdef Net net = _make_net(sizes, w_off, b_off, n, act, loss)
    cdef double loss_sum = 0.0, sq
    cdef int status
    with nogil:
        _forward(&net, &params[0], &X[0, 0], n, &work[0])
        status = _loss_backward(&net, &params[0], &grads[0], &X[0, 0], &Y[0, 0], n,
                                <floating>_loss_norm(&net, n), &work[0], &loss_sum, dx)
        # sq = ||W||^2 over the weight prefix of the flat buffer
        sq = _dot(<int>n_weights, &params[0], 1, &params[0], 1)
        # grads[:n_weights] += alpha / n * params[:n_weights]
        _axpy(<int>n_weights, <floating>(alpha / n), &params[0], 1, &grads[0], 1)
    return status, loss_sum * _loss_norm(&net, n) + 0.5 * alpha * sq / n


def predict(const floating[::1] params, const floating[:, ::1] X, floating[:, ::1] out,
            floating[::1] work, Py_ssize_t chunk, const Py_ssize_t[::1] sizes,
            const Py_ssize_t[::1] w_off, const Py_ssize_t[::1] b_off, int act, int loss,
            bint apply_output):
    """Network outputs for every row of X into out (probabilities if apply_output, else the
    output pre-activations), in chunks of ``chunk`` rows; work sized for ``chunk`` rows."""
    cdef Py_ssize_t n = X.shape[0], start, rows
    cdef Net net = _make_net(sizes, w_off, b_off, chunk, act, loss)
    cdef Py_ssize_t m = sizes[sizes.shape[0] - 1]
    cdef floating *z
    with nogil:
        start = 0
        while start < n:
            rows = min(chunk, n - start)
            _forward(&net, &params[0], &X[start, 0], rows, &work[0])
            z = &work[0] + _act_offset(&net, net.n_layers)
            if apply_output:
                fs_nn_output(loss, rows, m, z)
            memcpy(&out[start, 0], z, rows * m * sizeof(floating))
            start += rows


def train_epoch(floating[::1] params, floating[::1] grads, floating[::1] state1,
                floating[::1] state2, floating[::1] snapshot, floating[::1] work,
                const floating[:, ::1] X, const floating[:, ::1] Y, order,
                const Py_ssize_t[::1] sizes, const Py_ssize_t[::1] w_off,
                const Py_ssize_t[::1] b_off, Py_ssize_t n_weights, int act, int loss,
                Py_ssize_t batch_size, int solver, double lr, double momentum, bint nesterov,
                double beta1, double beta2, double epsilon, double alpha, double max_grad_norm,
                long long adam_t, Py_ssize_t gemm_mnk=0):
    """One epoch of mini-batch training, entirely in compiled code.

    Batches are rows ``order[s:s+batch_size]`` of X/Y (gathered into the workspace), or the
    contiguous slices X[s:s+batch_size] when ``order`` is None. Per batch: forward, loss, backward,
    gradient clipping by global norm (``max_grad_norm`` > 0), then one fused optimizer step with
    L2 decay ``alpha / batch`` on the weights: SGD(momentum, Nesterov) updates state1 (velocity);
    Adam updates state1/state2 (moments) with the step count ``adam_t``.

    ``gemm_mnk`` > 0 splits each layer's forward product and weight-gradient product into row
    blocks with m*n*k <= gemm_mnk (the weight gradient accumulates over the blocks: the same
    sums, rounded in a different order); 0 = one GEMM call per product.

    Returns ``(status, summed_batch_loss, adam_t, n_updates)`` where summed_batch_loss is
    sum over batches of batch_objective * batch_rows (scikit-learn's accumulated_loss). On a
    non-finite loss, gradient or updated weight, the epoch stops and params are restored to their
    value at the start of the epoch (a finite copy kept in ``snapshot``).
    """
    cdef Py_ssize_t n = X.shape[0], n_params = params.shape[0]
    cdef Py_ssize_t n_in = X.shape[1], n_out = Y.shape[1]
    cdef Net net = _make_net(sizes, w_off, b_off, batch_size, act, loss)
    net.gemm_mnk = gemm_mnk
    cdef const Py_ssize_t[::1] idx
    cdef bint shuffled = order is not None
    if shuffled:
        idx = order
    cdef floating *xbuf = (&work[0] + _act_offset(&net, net.n_layers + 1)
                           + 2 * batch_size * net.max_width)
    cdef floating *ybuf = xbuf + batch_size * n_in
    cdef const floating *xb
    cdef const floating *yb
    cdef Py_ssize_t start, rows, next_rows, n_updates = 0
    cdef double batch_loss, total = 0.0, gnorm, lr_t
    cdef floating gscale, sq
    cdef int status = FS_OK
    with nogil:
        memcpy(&snapshot[0], &params[0], n_params * sizeof(floating))
        # sq = ||W||^2 of the current weights; afterwards every optimizer step returns it for
        # the weights it writes (one pass over the weights per batch instead of two)
        sq = _dot(<int>n_weights, &params[0], 1, &params[0], 1)
        start = 0
        while start < n:
            rows = min(batch_size, n - start)
            if shuffled:
                # x_batch = X[order[start:start+rows]] (and Y); prefetch the next batch's rows
                next_rows = min(batch_size, n - start - rows)
                fs_nn_gather_rows(rows, &idx[0] + start, &X[0, 0], n_in, xbuf,
                                  &idx[0] + start + rows, next_rows)
                fs_nn_gather_rows(rows, &idx[0] + start, &Y[0, 0], n_out, ybuf,
                                  &idx[0] + start + rows, next_rows)
                xb = xbuf
                yb = ybuf
            else:
                xb = &X[start, 0]
                yb = &Y[start, 0]
            _forward(&net, &params[0], xb, rows, &work[0])
            status = _loss_backward(&net, &params[0], &grads[0], xb, yb, rows,
                                    <floating>_loss_norm(&net, rows), &work[0], &batch_loss)
            if status != FS_OK:
                break
            # objective of the batch: mean loss + alpha/(2 rows) ||W||^2, weighted by rows
            total += batch_loss * _loss_norm(&net, rows) * rows + 0.5 * alpha * sq
            gscale = 1
            if max_grad_norm > 0:
                # global gradient norm ||g||_2 (data term) drives clipping (and detects a
                # non-finite gradient before the step; without clipping the optimizer's check
                # of the new weights catches it: a non-finite g makes the new w non-finite)
                gnorm = _nrm2(<int>n_params, &grads[0], 1)
                if not isfinite(gnorm):
                    status = FS_ERR_NONFINITE
                    break
                if gnorm > max_grad_norm:
                    gscale = <floating>(max_grad_norm / gnorm)
            if solver == FS_SOLVER_SGD:
                status = fs_nn_sgd_step(n_params, n_weights, &params[0], &state1[0], &grads[0],
                                        gscale, <floating>(alpha / rows), <floating>lr,
                                        <floating>momentum, nesterov, &sq)
            else:
                adam_t += 1
                lr_t = (lr * sqrt(1.0 - pow(beta2, <double>adam_t))
                        / (1.0 - pow(beta1, <double>adam_t)))
                status = fs_nn_adam_step(n_params, n_weights, &params[0], &state1[0], &state2[0],
                                         &grads[0], gscale, <floating>(alpha / rows),
                                         <floating>lr_t, <floating>beta1, <floating>beta2,
                                         <floating>epsilon, &sq)
            if status != FS_OK:
                break
            n_updates += 1
            start += rows
        if status != FS_OK:
            memcpy(&params[0], &snapshot[0], n_params * sizeof(floating))
    return status, total, adam_t, n_updates


# ---- single kernels, for the tests against the NumPy reference ---------------------------------
def bias_act(floating[:, ::1] z, const floating[::1] b, int act):
    """In place: z = act(z + b)."""
    with nogil:
        fs_nn_bias_act(z.shape[0], z.shape[1], &z[0, 0], &b[0], act)


def act_backward(floating[:, ::1] delta, const floating[:, ::1] a, int act):
    """In place: delta *= act'(z) evaluated from a = act(z)."""
    with nogil:
        fs_nn_act_backward(delta.shape[0], delta.shape[1], &delta[0, 0], &a[0, 0], act)


def colsum(const floating[:, ::1] x, floating[::1] out):
    with nogil:
        fs_nn_colsum(x.shape[0], x.shape[1], &x[0, 0], &out[0])


def act_backward_colsum(floating[:, ::1] delta, const floating[:, ::1] a, int act,
                        floating[::1] bias_grad):
    """In place: delta *= act'(z) (from a = act(z)); bias_grad = delta.sum(axis=0)."""
    if a.shape[0] != delta.shape[0] or a.shape[1] != delta.shape[1]:
        raise ValueError("a must have the shape of delta")
    if bias_grad.shape[0] != delta.shape[1]:
        raise ValueError("bias_grad must have delta.shape[1] entries")
    with nogil:
        fs_nn_act_backward_colsum(delta.shape[0], delta.shape[1], &delta[0, 0], &a[0, 0], act,
                                  &bias_grad[0])


def gather_rows(const Py_ssize_t[::1] idx, const floating[:, ::1] src, floating[:, ::1] dst,
                const Py_ssize_t[::1] next_idx):
    """dst[:len(idx)] = src[idx] (next_idx: rows to prefetch). Indices are checked here."""
    cdef Py_ssize_t n = idx.shape[0], n_next = next_idx.shape[0], i
    if dst.shape[0] < n or dst.shape[1] != src.shape[1]:
        raise ValueError("dst must have at least len(idx) rows and src's columns")
    for i in range(n):
        if idx[i] < 0 or idx[i] >= src.shape[0]:
            raise ValueError("row index out of range")
    for i in range(n_next):
        if next_idx[i] < 0 or next_idx[i] >= src.shape[0]:
            raise ValueError("row index out of range")
    with nogil:
        fs_nn_gather_rows(n, &idx[0] if n else NULL, &src[0, 0], src.shape[1], &dst[0, 0],
                          &next_idx[0] if n_next else NULL, n_next)


def loss_and_delta(int loss, const floating[:, ::1] z, const floating[:, ::1] y,
                   floating[:, ::1] delta, double scale, floating[::1] bias_grad=None):
    """Summed loss and delta = scale * dloss/dz; bias_grad (if given) = delta.sum(axis=0).
    Returns (status, loss_sum)."""
    cdef double loss_sum = 0.0
    cdef int status
    cdef floating *bg = NULL
    if bias_grad is not None:
        if bias_grad.shape[0] != z.shape[1]:
            raise ValueError("bias_grad must have z.shape[1] entries")
        bg = &bias_grad[0]
    with nogil:
        status = fs_nn_loss_grad(loss, z.shape[0], z.shape[1], &z[0, 0], &y[0, 0], &delta[0, 0],
                                 <floating>scale, &loss_sum, bg)
    return status, loss_sum


def output_activation(int loss, floating[:, ::1] z):
    with nogil:
        fs_nn_output(loss, z.shape[0], z.shape[1], &z[0, 0])


def sgd_step(floating[::1] w, floating[::1] velocity, const floating[::1] g, Py_ssize_t n_decay,
             double gscale, double decay, double lr, double momentum, bint nesterov,
             bint return_w_sq=False):
    """Fused SGD(momentum/Nesterov) step over a flat buffer (in place). Returns a status, or
    (status, ||w[:n_decay]||^2 of the new weights) if return_w_sq."""
    cdef int status
    cdef floating w_sq = 0
    with nogil:
        status = fs_nn_sgd_step(w.shape[0], n_decay, &w[0], &velocity[0], &g[0], <floating>gscale,
                                <floating>decay, <floating>lr, <floating>momentum, nesterov, &w_sq)
    if return_w_sq:
        return status, w_sq
    return status


def adam_step(floating[::1] w, floating[::1] m1, floating[::1] m2, const floating[::1] g,
              Py_ssize_t n_decay, double gscale, double decay, double lr, double beta1,
              double beta2, double epsilon, long long t, bint return_w_sq=False):
    """Fused Adam step number t (1-based) over a flat buffer (in place). Returns a status, or
    (status, ||w[:n_decay]||^2 of the new weights) if return_w_sq."""
    cdef int status
    cdef floating w_sq = 0
    cdef double lr_t = lr * sqrt(1.0 - pow(beta2, <double>t)) / (1.0 - pow(beta1, <double>t))
    with nogil:
        status = fs_nn_adam_step(w.shape[0], n_decay, &w[0], &m1[0], &m2[0], &g[0],
                                 <floating>gscale, <floating>decay, <floating>lr_t,
                                 <floating>beta1, <floating>beta2, <floating>epsilon, &w_sq)
    if return_w_sq:
        return status, w_sq
    return status


def grad_norm(const floating[::1] g):
    """Global L2 norm of a flat gradient buffer (BLAS nrm2)."""
    return _nrm2(<int>g.shape[0], &g[0], 1)
