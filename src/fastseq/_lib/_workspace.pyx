"""Reused memory for the recurrent ops' per-call arrays (private).

Why: an LSTM call allocates a few large arrays (the cache it returns, backward's workspaces),
and each is freed again a moment later, typically at the next batch. glibc serves such sizes
with fresh mmap'd pages or trims them back to the kernel on free, so every call paid the page
faults and page zeroing of all its arrays again (measured: 38% of the CPU time of a loop of
(50, 32, 32, 64) float32 forward+backward calls was kernel time; the same call ran 1.8x faster
with glibc told to keep its memory). A library must not retune the process's malloc, so this
module keeps its own.

`empty(shape, dtype)` returns an ordinary writable ndarray whose memory is a `_Block`. When the
last array viewing a block dies, the block goes back to a small pool instead of the system, and
the next request of a similar size (the block at most 1.25 times the request) gets it with its
pages still mapped. A block is reused only after every view of it is gone (the array's `base`
keeps the block alive), so no two live arrays ever share memory. Small requests go to NumPy (its
allocator is fast there).

How much it keeps: idle blocks total at most max(64 MiB, the most pooled memory that was live
at once since blocks last expired), i.e. no more than the program has shown it needs (a training
loop's batch reuses the previous batch's blocks), oldest dropped first. A block left idle for
5 s is freed at the next call of `empty` (any size) or the next block returned; there is no
background thread, so a program that stops calling keeps its idle blocks until it calls again or
calls `release()`. Blocks of 4 MiB and more are 2 MiB aligned and marked MADV_HUGEPAGE, as NumPy
does for its own large arrays. All pool state is touched only with the GIL held and without
calling back into Python, so it is consistent even when a collection frees blocks in the middle
of a request.
"""
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES
from libc.stdlib cimport free

import numpy as np

cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

cdef extern from "<sys/mman.h>" nogil:
    int madvise(void *addr, size_t length, int advice)
    int MADV_HUGEPAGE

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec *tp)
    int CLOCK_MONOTONIC

DEF MIN_BYTES = 256 << 10        # below this, NumPy's own allocation is cheaper than a block
DEF POOL_BYTES = 64 << 20        # idle memory the pool may always hold
DEF POOL_SLOTS = 32
DEF HUGE_BYTES = 4 << 20         # NumPy's threshold for MADV_HUGEPAGE
DEF HUGE_ALIGN = 2 << 20
DEF PAGE = 4096

cdef void *_slot_ptr[POOL_SLOTS]
cdef size_t _slot_size[POOL_SLOTS]
cdef double _slot_since[POOL_SLOTS]
cdef int _nslots = 0             # slots [0, _nslots) hold idle blocks, oldest first
cdef size_t _idle = 0            # their total size
cdef size_t _live = 0            # bytes of blocks held by arrays
cdef size_t _peak = 0            # the most _live has been
cdef double _idle_seconds = 5.0  # an idle block older than this is freed


cdef double _now() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


cdef void _remove_slot(int k) noexcept:
    global _nslots, _idle
    cdef int j
    _idle -= _slot_size[k]
    _nslots -= 1
    for j in range(k, _nslots):
        _slot_ptr[j] = _slot_ptr[j + 1]
        _slot_size[j] = _slot_size[j + 1]
        _slot_since[j] = _slot_since[j + 1]


cdef void _expire(double now) noexcept:
    """Free the blocks idle for longer than _idle_seconds (they are the oldest); then the high
    mark restarts from what is held now, so a burst long past does not keep raising the cap."""
    global _peak
    cdef bint freed = False
    while _nslots > 0 and now - _slot_since[0] > _idle_seconds:
        free(_slot_ptr[0])
        _remove_slot(0)
        freed = True
    if freed:
        _peak = _live + _idle


cdef void _give_back(void *ptr, size_t size) noexcept:
    """Keep a block whose last view died (or free it if it does not fit)."""
    global _nslots, _idle, _live
    cdef size_t cap = _peak if _peak > POOL_BYTES else POOL_BYTES
    cdef double now = _now()
    _live -= size
    _expire(now)
    if size > cap:
        free(ptr)
        return
    while _nslots > 0 and (_nslots == POOL_SLOTS or _idle + size > cap):
        free(_slot_ptr[0])
        _remove_slot(0)
    _slot_ptr[_nslots] = ptr
    _slot_size[_nslots] = size
    _slot_since[_nslots] = now
    _nslots += 1
    _idle += size


cdef void *_take(size_t nbytes, size_t *size) noexcept:
    """An idle block of nbytes..1.25*nbytes bytes (the smallest such), or a new one; NULL if
    the system has no memory."""
    global _live, _peak
    cdef int k, best = -1
    cdef void *ptr = NULL
    cdef size_t align = HUGE_ALIGN if nbytes >= HUGE_BYTES else PAGE
    _expire(_now())
    for k in range(_nslots):
        if nbytes <= _slot_size[k] <= nbytes + nbytes // 4 and (
                best < 0 or _slot_size[k] < _slot_size[best]):
            best = k
    if best >= 0:
        ptr = _slot_ptr[best]
        size[0] = _slot_size[best]
        _remove_slot(best)
    else:
        size[0] = (nbytes + align - 1) // align * align
        if posix_memalign(&ptr, align, size[0]) != 0:
            return NULL
        if align == HUGE_ALIGN:
            madvise(ptr, size[0], MADV_HUGEPAGE)   # advice only: failure changes nothing
    _live += size[0]
    if _live > _peak:
        _peak = _live
    return ptr


cdef class _Block:
    """Memory of pooled arrays; returns itself to the pool when the last view dies."""
    cdef void *ptr
    cdef size_t size
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __getbuffer__(self, Py_buffer *buf, int flags):
        buf.buf = self.ptr
        buf.obj = self
        buf.len = self.shape[0]
        buf.readonly = 0
        buf.itemsize = 1
        buf.format = NULL
        if flags & PyBUF_FORMAT:
            buf.format = b"B"
        buf.ndim = 1
        buf.shape = self.shape if flags & PyBUF_ND else NULL
        buf.strides = self.strides if flags & PyBUF_STRIDES == PyBUF_STRIDES else NULL
        buf.suboffsets = NULL
        buf.internal = NULL

    def __releasebuffer__(self, Py_buffer *buf):
        pass

    def __dealloc__(self):
        if self.ptr != NULL:
            _give_back(self.ptr, self.size)


def empty(shape, dtype):
    """Like np.empty(shape, dtype) (C order), from the pool when the array is large."""
    dtype = np.dtype(dtype)
    if isinstance(shape, int):
        shape = (shape,)
    count = 1
    for n in shape:
        count *= n
    nbytes = count * dtype.itemsize
    _expire(_now())
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    cdef _Block block = _Block.__new__(_Block)
    cdef size_t size
    block.ptr = _take(nbytes, &size)
    if block.ptr == NULL:
        raise MemoryError(f"cannot allocate {nbytes} bytes")
    block.size = size
    block.shape[0] = nbytes
    block.strides[0] = 1
    return np.frombuffer(block, dtype=dtype, count=count).reshape(shape)


def zeros(shape, dtype):
    """Like np.zeros(shape, dtype), from the pool when the array is large."""
    out = empty(shape, dtype)
    out.fill(0)
    return out


def idle_bytes():
    """Bytes held idle by the pool."""
    return _idle


def release():
    """Free every idle block now (tests; memory-tight callers)."""
    while _nslots > 0:
        free(_slot_ptr[0])
        _remove_slot(0)


def _set_idle_seconds(double seconds):
    """The idle time after which a block is freed; returns the previous value (tests)."""
    global _idle_seconds
    old = _idle_seconds
    _idle_seconds = seconds
    return old
