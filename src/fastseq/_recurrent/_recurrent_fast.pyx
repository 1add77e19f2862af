"""Cython drivers of the LSTM and Elman RNN kernels (private; public API in fastseq.ops).

Layout. Sequences are sorted by length, longest first (`perm[j]` is the batch index of sorted row
j), and every per-step quantity is stored "packed" and time-major like PyTorch's PackedSequence:
step t owns rows [off_t, off_t + n_t) of an (N, width) array, N = sum of lengths, n_t = number of
sequences still running at t (`batch_sizes[t]`, non-increasing). The running sequences at step t
are therefore a contiguous prefix of the sorted batch and of step t-1's block, so each step works
on a shrinking row block and no flop is spent on padding.

Elman RNN (BLAS products, C elementwise steps):
- the input projection of ALL steps is one GEMM:   z = x_packed @ w_ih.T              (N, H)
- the recurrence is one GEMM per step:             z[t] += h_{t-1}[:n_t] @ w_hh.T
- backward's weight gradients are one GEMM each over all steps:
                                                   dw_ih = dz.T @ x_packed,
                                                   dw_hh = dz.T @ h_in,  dx = dz @ w_ih
`h_in` (N + B, H) holds in block t the state h_{t-1} entering step t (block 0 = h0); step t
writes its n_t new states at block t+1's start, the rows past n_{t+1} (sequences that just
finished) spill into block t+2's area, are copied to h_n, and are overwritten by step t+1. The
extra B rows take the last step's spill.

LSTM: the time loops are C on weights packed once per call; see the LSTM section below.
Everything after argument unpacking runs without the GIL; all workspaces are per call (large
ones from fastseq._lib._workspace, which reuses memory across calls).
"""
from cython cimport floating
from libc.stddef cimport ptrdiff_t
from libc.string cimport memcpy, memset

from fastseq._lib._blas cimport _gemm_rm, _gemv
from fastseq._lib._kernels cimport (
    FS_ISA_BEST, FS_ISA_PORTABLE, FS_ISA_AVX2, FS_ISA_AVX512, FS_TILE_MR, fs_tile_nr, fs_tile,
    fs_tile_isa, fs_packed_size, fs_pack_rows, fs_pack_lstm_gates, fs_all_finite,
    fs_column_sums, fs_scatter_rows, fs_rnn_forward_step, fs_rnn_backward_step,
    fs_lstm_forward_seq, fs_lstm_backward_seq, fs_lstm_weight_grads)

import numpy as np

from fastseq._lib import _workspace


# The C enum of instruction-set levels (csrc/lib/dispatch.h), for the `isa` arguments below.
ISA_BEST = FS_ISA_BEST
ISA_PORTABLE = FS_ISA_PORTABLE
ISA_AVX2 = FS_ISA_AVX2
ISA_AVX512 = FS_ISA_AVX512


def tile_isa(int isa=0):
    """The tile-kernel ISA fs_tile_kernel_*(isa) resolves to: ISA_PORTABLE, ISA_AVX2 (AVX2+FMA) or
    ISA_AVX512 (isa: one of these to force it, or ISA_BEST)."""
    return fs_tile_isa(isa)


def packed_matmul(const floating[:, ::1] a, const floating[:, ::1] b, int isa=0,
                  bint trans_a=False):
    """a @ b (a.T @ b if trans_a) through fs_pack_rows + the tile kernels (tests vs NumPy)."""
    cdef Py_ssize_t M = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t K = a.shape[0] if trans_a else a.shape[1], N = b.shape[1]
    cdef Py_ssize_t lda = a.shape[1]
    cdef Py_ssize_t nr = fs_tile_nr(<floating>0)
    cdef Py_ssize_t r0, j0, r, mr, nj
    if b.shape[0] != K or M == 0 or K == 0 or N == 0:
        raise ValueError(f"packed_matmul needs non-empty (M, K) @ (K, N), got ({M}, {K}) "
                         f"@ ({b.shape[0]}, {N})")
    dtype = np.float32 if floating is float else np.float64
    cdef floating[::1] bp = np.empty(fs_packed_size(K, N, nr), dtype)
    cdef floating[::1] tbuf = np.empty(FS_TILE_MR * nr, dtype)
    out_arr = np.empty((M, N), dtype)
    cdef floating[:, ::1] out = out_arr
    cdef const floating *a0
    with nogil:
        fs_pack_rows(K, N, &b[0, 0], N, &bp[0])
        j0 = 0
        while j0 < N:
            nj = min(nr, N - j0)
            r0 = 0
            while r0 < M:
                mr = min(<Py_ssize_t>FS_TILE_MR, M - r0)
                a0 = &a[0, r0] if trans_a else &a[r0, 0]
                fs_tile(isa, trans_a, <int>mr, <int>nj, K, a0, lda, &bp[(j0 // nr) * K * nr],
                        &tbuf[0])
                for r in range(mr):
                    memcpy(&out[r0 + r, j0], &tbuf[r * nr], nj * sizeof(floating))
                r0 += FS_TILE_MR
            j0 += nr
    return out_arr


def all_finite(const floating[::1] a):
    """True if every value of the flat view `a` is finite (no temporary array)."""
    cdef bint ok
    with nogil:
        ok = fs_all_finite(a.shape[0], &a[0])
    return ok


# ---- shared pieces ----------------------------------------------------------------------------
# OpenBLAS runs a gemv on two threads once m*n >= 2304*4; for the one-row (streaming) step the
# product is a few microseconds, less than the hand-off to a second thread (and far less on a
# busy machine), so one-row products are issued in column blocks below that size.
DEF GEMV_BLOCK_ELEMS = 8192


cdef inline void _recurrent_product(bint add, Py_ssize_t n, Py_ssize_t width, Py_ssize_t H,
                                    const floating *h, const floating *w_hh,
                                    floating *out) noexcept nogil:
    # out(n, width) (+)= h(n, H) @ w_hh(width, H).T ; a single row goes through gemv.
    cdef floating beta = 1.0 if add else 0.0
    cdef char trans = b'T'
    cdef Py_ssize_t r0, rows, block
    if n == 1:
        block = max(1, GEMV_BLOCK_ELEMS // H)
        r0 = 0
        while r0 < width:
            rows = min(block, width - r0)
            # out[r0:r0+rows] (+)= w_hh[r0:r0+rows] @ h  (row-major w_hh block = column-major
            # (H, rows) matrix, transposed by BLAS)
            _gemv(trans, <int>H, <int>rows, 1.0, w_hh + r0 * H, <int>H, h, 1, beta, out + r0, 1)
            r0 += rows
    else:
        _gemm_rm(False, True, <int>n, <int>width, <int>H, 1.0, h, <int>H, w_hh, <int>H,
                 beta, out, <int>width)


cdef inline void _backprop_product(Py_ssize_t n, Py_ssize_t width, Py_ssize_t H,
                                   const floating *dz, const floating *w_hh,
                                   floating *dh) noexcept nogil:
    # dh(n, H) = dz(n, width) @ w_hh(width, H)
    cdef char no_trans = b'N'
    cdef Py_ssize_t r0, rows, block
    if n == 1:
        block = max(1, GEMV_BLOCK_ELEMS // H)
        r0 = 0
        while r0 < width:
            rows = min(block, width - r0)
            # dh (+)= w_hh[r0:r0+rows].T @ dz[r0:r0+rows]
            _gemv(no_trans, <int>H, <int>rows, 1.0, w_hh + r0 * H, <int>H, dz + r0, 1,
                  <floating>(0.0 if r0 == 0 else 1.0), dh, 1)
            r0 += rows
    else:
        _gemm_rm(False, False, <int>n, <int>H, <int>width, 1.0, dz, <int>width, w_hh, <int>H,
                 0.0, dh, <int>H)


cdef inline void _pack_input(Py_ssize_t T, Py_ssize_t D, const floating *x,
                             const Py_ssize_t *perm, const Py_ssize_t *batch_sizes,
                             floating *x_packed) noexcept nogil:
    # x_packed[off_t + j] = x[perm[j], t]  for j < n_t
    cdef Py_ssize_t t, j, off = 0
    for t in range(T):
        for j in range(batch_sizes[t]):
            memcpy(x_packed + (off + j) * D, x + (perm[j] * T + t) * D, D * sizeof(floating))
        off += batch_sizes[t]


cdef inline void _unpack_rows(Py_ssize_t T, Py_ssize_t D, const floating *packed,
                              const Py_ssize_t *perm, const Py_ssize_t *batch_sizes,
                              floating *out) noexcept nogil:
    # out[perm[j], t] = packed[off_t + j]  for j < n_t (padding left as it is: zero)
    cdef Py_ssize_t t, off = 0
    for t in range(T):
        fs_scatter_rows(0, batch_sizes[t], D * sizeof(floating), packed + off * D, out + t * D,
                        T * D * sizeof(floating), <const ptrdiff_t *>perm)
        off += batch_sizes[t]


cdef inline void _initial_state(Py_ssize_t B, Py_ssize_t H, const floating *state,
                                const Py_ssize_t *perm, floating *out,
                                Py_ssize_t ld) noexcept nogil:
    # out[j, :H] = state[perm[j]] (sorted order), or zeros when there is no state (rows ld apart)
    cdef Py_ssize_t j
    for j in range(B):
        if state == NULL:
            memset(out + j * ld, 0, H * sizeof(floating))
        else:
            memcpy(out + j * ld, state + perm[j] * H, H * sizeof(floating))


# ---- LSTM -------------------------------------------------------------------------------------
# The time loops are C (fs_lstm_forward_seq / fs_lstm_backward_seq, csrc/recurrent/recurrent.c)
# on weights packed once per call (csrc/lib/packed.h): forward, one tile product
# [x_t | h_{t-1}] @ [w_ih | w_hh]^T
# per step fused with the gate math; backward, one tile product dgates_t @ [w_hh | w_ih] per step
# giving [dh_{t-1} | dx_t]. A team of threads splits the batch's sequences (no per-step
# synchronisation). x_packed and h_in share one (N, D + H) array `xh` (row j = [x_t, h_{t-1}] of
# packed row j): the forward's tile input, and the weight gradients of w_ih and w_hh are ONE
# product dgates.T @ xh per chunk of steps (transposed-A tiles, fs_lstm_weight_grads). No BLAS
# call at all: OpenBLAS's worker thread spins after each GEMM, and on two cores that slowed the
# team's threads 1.5-2x (2-thread forward+backward ran slower than on one thread).
def lstm_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[::1] bias, h0, c0,
                 const Py_ssize_t[::1] perm, const Py_ssize_t[::1] batch_sizes,
                 floating[:, :, ::1] y, floating[:, ::1] h_n, floating[:, ::1] c_n,
                 floating[:, ::1] xh, floating[:, ::1] gates, floating[:, ::1] cells,
                 floating[:, ::1] c_init, int isa=0):
    """Fill y, h_n, c_n and the cache arrays (xh = [x_packed | h_in], gates, cells, c_init).

    h0/c0: (B, H) arrays of x's dtype or None (zeros). y must be zero-filled if ragged.
    isa: tile kernels to use (0 = best for this CPU; tests force the others, see packed.h)."""
    cdef Py_ssize_t B = x.shape[0], T = x.shape[1], D = x.shape[2], H = w_hh.shape[1]
    cdef Py_ssize_t G4 = 4 * H, L = D + H
    cdef const floating[:, ::1] h0v, c0v
    cdef const floating *h0p = NULL
    cdef const floating *c0p = NULL
    cdef const ptrdiff_t *pp = <const ptrdiff_t *>&perm[0]
    cdef const ptrdiff_t *bs = <const ptrdiff_t *>&batch_sizes[0]
    if h0 is not None:
        h0v = h0
        h0p = &h0v[0, 0]
    if c0 is not None:
        c0v = c0
        c0p = &c0v[0, 0]
    dtype = np.float32 if floating is float else np.float64
    cdef floating[:, ::1] w_cat = np.concatenate((w_ih, w_hh), axis=1,
                                                 out=_workspace.empty((G4, L), dtype))
    cdef floating[::1] w_packed = _workspace.empty(fs_packed_size(L, G4, fs_tile_nr(<floating>0)),
                                                   dtype)
    with nogil:
        _initial_state(B, H, h0p, &perm[0], &xh[0, D], L)
        _initial_state(B, H, c0p, &perm[0], &c_init[0, 0], H)
        fs_pack_lstm_gates(H, L, &w_cat[0, 0], &w_packed[0])
        fs_lstm_forward_seq(T, D, H, bs, &gates[0, 0], &bias[0], &w_packed[0],
                            &c_init[0, 0], &cells[0, 0], &x[0, 0, 0], &xh[0, 0],
                            &y[0, 0, 0], pp, &h_n[0, 0], &c_n[0, 0], isa, 0)


# Backward runs in chunks of whole steps holding about this many bytes of dgates, so each chunk
# turns into weight gradients (fs_lstm_weight_grads) while it is in cache, and no (N, 4H) dgates
# array is allocated (a fresh 10+ MB array per call was a third of the small shapes' time in page
# faults).
DEF DGATES_CHUNK_BYTES = 2 << 20


def lstm_backward(const floating[:, ::1] w_ih, const floating[:, ::1] w_hh,
                  const Py_ssize_t[::1] perm, const Py_ssize_t[::1] batch_sizes,
                  const floating[:, ::1] xh, const floating[:, ::1] gates,
                  const floating[:, ::1] cells, const floating[:, ::1] c_init,
                  const floating[:, :, ::1] dy, dh_n, dc_n,
                  floating[:, :, ::1] dx, floating[:, ::1] dw_ih, floating[:, ::1] dw_hh,
                  floating[::1] dbias, floating[:, ::1] dh0, floating[:, ::1] dc0, int isa=0):
    """Backpropagation through time from the cache arrays; dx must be zero-filled if ragged."""
    cdef Py_ssize_t B = dy.shape[0], T = dy.shape[1], H = w_hh.shape[1], D = w_ih.shape[1]
    cdef Py_ssize_t G4 = 4 * H, N = xh.shape[0], L = D + H, k, t0, t1, rows
    cdef Py_ssize_t target = max(B, DGATES_CHUNK_BYTES // (G4 * sizeof(floating)))
    cdef const floating[:, ::1] dhv, dcv
    cdef const floating *dh_np = NULL
    cdef const floating *dc_np = NULL
    cdef const ptrdiff_t *pp = <const ptrdiff_t *>&perm[0]
    cdef const ptrdiff_t *bs = <const ptrdiff_t *>&batch_sizes[0]
    if dh_n is not None:
        dhv = dh_n
        dh_np = &dhv[0, 0]
    if dc_n is not None:
        dcv = dc_n
        dc_np = &dcv[0, 0]
    dtype = np.float32 if floating is float else np.float64
    cdef floating[:, ::1] dgates = _workspace.empty((min(N, target), G4), dtype)
    cdef floating[:, ::1] dh = np.empty((B, H), dtype)     # dL/dh_t reaching step t from t+1
    cdef floating[:, ::1] dc = np.empty((B, H), dtype)     # dL/dc_t reaching step t from t+1
    # [w_hh | w_ih] packed: one tile product per step gives [dh_{t-1} | dx_t]
    cdef floating[:, ::1] w_cat = np.concatenate((w_hh, w_ih), axis=1,
                                                 out=_workspace.empty((G4, L), dtype))
    cdef floating[::1] w_packed = _workspace.empty(
        fs_packed_size(G4, H + D, fs_tile_nr(<floating>0)), dtype)
    cdef floating[:, ::1] dw_cat = _workspace.zeros((G4, L), dtype)
    cdef floating[::1] xh_packed = _workspace.empty(
        fs_packed_size(min(N, target), L, fs_tile_nr(<floating>0)), dtype)
    with nogil:
        # Rows j >= n_{t+1} keep dh_n / dc_n until their last step t: nothing later touches them.
        _initial_state(B, H, dh_np, &perm[0], &dh[0, 0], H)
        _initial_state(B, H, dc_np, &perm[0], &dc[0, 0], H)
        memset(&dbias[0], 0, G4 * sizeof(floating))
        fs_pack_rows(G4, H + D, &w_cat[0, 0], H + D, &w_packed[0])
        t1 = T
        while t1 > 0:
            # the chunk: steps [t0, t1), at least one, about `target` rows
            t0 = t1 - 1
            rows = batch_sizes[t0]
            while t0 > 0 and rows + batch_sizes[t0 - 1] <= target:
                t0 -= 1
                rows += batch_sizes[t0]
            fs_lstm_backward_seq(T, t0, t1, H, D, bs, &gates[0, 0], &cells[0, 0], &c_init[0, 0],
                                 &dy[0, 0, 0], pp, &w_packed[0], &dh[0, 0], &dc[0, 0],
                                 &dgates[0, 0], &dx[0, 0, 0], &xh[0, 0], &xh_packed[0], isa, 0)
            # [dw_ih | dw_hh] += dgates_chunk.T @ xh[chunk rows] (packed by the call above),
            # dbias += its column sums
            fs_lstm_weight_grads(rows, H, D, &dgates[0, 0], &xh_packed[0], &dw_cat[0, 0],
                                 &dbias[0], isa, 0)
            t1 = t0
        for k in range(G4):
            memcpy(&dw_ih[k, 0], &dw_cat[k, 0], D * sizeof(floating))
            memcpy(&dw_hh[k, 0], &dw_cat[k, D], H * sizeof(floating))
        fs_scatter_rows(0, B, H * sizeof(floating), &dh[0, 0], &dh0[0, 0],
                        H * sizeof(floating), pp)
        fs_scatter_rows(0, B, H * sizeof(floating), &dc[0, 0], &dc0[0, 0],
                        H * sizeof(floating), pp)


cdef inline void _weight_gradients(Py_ssize_t N, Py_ssize_t D, Py_ssize_t H, Py_ssize_t width,
                                   const floating *dz, const floating *x_packed,
                                   const floating *h_in, const floating *w_ih,
                                   floating *dw_ih, floating *dw_hh, floating *dbias,
                                   floating *dx_packed) noexcept nogil:
    # dw_ih = dz.T @ x_packed          (width, D), all steps in one product
    _gemm_rm(True, False, <int>width, <int>D, <int>N, 1.0, dz, <int>width, x_packed, <int>D,
             0.0, dw_ih, <int>D)
    # dw_hh = dz.T @ h_in[:N]          (width, H); h_in block t is h_{t-1}, block 0 is h0
    _gemm_rm(True, False, <int>width, <int>H, <int>N, 1.0, dz, <int>width, h_in, <int>H,
             0.0, dw_hh, <int>H)
    # dx_packed = dz @ w_ih            (N, D)
    _gemm_rm(False, False, <int>N, <int>D, <int>width, 1.0, dz, <int>width, w_ih, <int>D,
             0.0, dx_packed, <int>D)
    # dbias = dz.sum(axis=0)
    fs_column_sums(N, width, dz, dbias)


# ---- Elman RNN --------------------------------------------------------------------------------
def rnn_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                const floating[:, ::1] w_hh, const floating[::1] bias, h0, bint relu,
                const Py_ssize_t[::1] perm, const Py_ssize_t[::1] batch_sizes,
                floating[:, :, ::1] y, floating[:, ::1] h_n,
                floating[:, ::1] x_packed, floating[:, ::1] hidden, floating[:, ::1] h_in):
    """Fill y, h_n and the cache arrays (x_packed, hidden = h_t packed, h_in)."""
    cdef Py_ssize_t B = x.shape[0], T = x.shape[1], D = x.shape[2], H = w_hh.shape[1]
    cdef Py_ssize_t N = x_packed.shape[0]
    cdef Py_ssize_t t, n, n_next, off = 0
    cdef const floating[:, ::1] h0v
    cdef const floating *h0p = NULL
    cdef const ptrdiff_t *pp = <const ptrdiff_t *>&perm[0]
    cdef bint has_h0 = h0 is not None
    if has_h0:
        h0v = h0
        h0p = &h0v[0, 0]
    with nogil:
        _pack_input(T, D, &x[0, 0, 0], &perm[0], &batch_sizes[0], &x_packed[0, 0])
        # hidden = x_packed @ w_ih.T   (pre-activations of all steps; bias added per step)
        _gemm_rm(False, True, <int>N, <int>H, <int>D, 1.0, &x_packed[0, 0], <int>D,
                 &w_ih[0, 0], <int>D, 0.0, &hidden[0, 0], <int>H)
        _initial_state(B, H, h0p, &perm[0], &h_in[0, 0], H)
        for t in range(T):
            n = batch_sizes[t]
            n_next = batch_sizes[t + 1] if t + 1 < T else 0
            if t > 0 or has_h0:
                # hidden[t] += h_{t-1}[:n] @ w_hh.T
                _recurrent_product(True, n, H, H, &h_in[off, 0], &w_hh[0, 0], &hidden[off, 0])
            fs_rnn_forward_step(n, H, &hidden[off, 0], &bias[0], relu, &h_in[off + n, 0],
                                &y[0, t, 0], T * H, pp)
            if n_next < n:
                fs_scatter_rows(n_next, n, H * sizeof(floating), &hidden[off, 0], &h_n[0, 0],
                                H * sizeof(floating), pp)
            off += n


def rnn_backward(const floating[:, ::1] w_ih, const floating[:, ::1] w_hh, bint relu,
                 const Py_ssize_t[::1] perm, const Py_ssize_t[::1] batch_sizes,
                 const floating[:, ::1] x_packed, const floating[:, ::1] hidden,
                 const floating[:, ::1] h_in, const floating[:, :, ::1] dy, dh_n,
                 floating[:, :, ::1] dx, floating[:, ::1] dw_ih, floating[:, ::1] dw_hh,
                 floating[::1] dbias, floating[:, ::1] dh0):
    """Backpropagation through time for the Elman RNN; dx must be zero-filled if ragged."""
    cdef Py_ssize_t B = dy.shape[0], T = dy.shape[1], H = w_hh.shape[1], D = w_ih.shape[1]
    cdef Py_ssize_t N = x_packed.shape[0]
    cdef Py_ssize_t t, n, off = N
    cdef const floating[:, ::1] dhv
    cdef const floating *dh_np = NULL
    cdef const ptrdiff_t *pp = <const ptrdiff_t *>&perm[0]
    if dh_n is not None:
        dhv = dh_n
        dh_np = &dhv[0, 0]
    dtype = np.float32 if floating is float else np.float64
    cdef floating[:, ::1] dz = _workspace.empty((N, H), dtype)
    cdef floating[:, ::1] dx_packed = _workspace.empty((N, D), dtype)
    cdef floating[:, ::1] dh = np.empty((B, H), dtype)
    with nogil:
        _initial_state(B, H, dh_np, &perm[0], &dh[0, 0], H)
        for t in range(T - 1, -1, -1):
            n = batch_sizes[t]
            off -= n
            fs_rnn_backward_step(n, H, &hidden[off, 0], relu, &dy[0, t, 0], T * H, pp,
                                 &dh[0, 0], &dz[off, 0])
            # dh[:n] = dz[t] @ w_hh
            _backprop_product(n, H, H, &dz[off, 0], &w_hh[0, 0], &dh[0, 0])
        _weight_gradients(N, D, H, H, &dz[0, 0], &x_packed[0, 0], &h_in[0, 0], &w_ih[0, 0],
                          &dw_ih[0, 0], &dw_hh[0, 0], &dbias[0], &dx_packed[0, 0])
        _unpack_rows(T, D, &dx_packed[0, 0], &perm[0], &batch_sizes[0], &dx[0, 0, 0])
        fs_scatter_rows(0, B, H * sizeof(floating), &dh[0, 0], &dh0[0, 0],
                        H * sizeof(floating), pp)
