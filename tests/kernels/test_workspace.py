"""fastseq._lib._workspace: the reused memory behind the recurrent ops' large per-call arrays."""
import gc
import time

import numpy as np
import pytest

from fastseq._lib import _workspace
from fastseq.reference.testing import run_concurrently

BIG = (512, 1024)          # 2 MiB of float32: pooled
SMALL = (8, 8)             # NumPy's own allocation


@pytest.fixture(autouse=True)
def _collect():
    gc.collect()
    yield
    gc.collect()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.intp])
@pytest.mark.parametrize("shape", [BIG, SMALL, 300_000, (3, 200, 700)])
def test_empty_is_a_plain_writable_c_array(shape, dtype):
    a = _workspace.empty(shape, dtype)
    want = (shape,) if isinstance(shape, int) else shape
    assert a.shape == want and a.dtype == dtype
    assert a.flags.c_contiguous and a.flags.writeable and a.flags.aligned
    a[...] = 7
    assert np.all(a == 7)


def test_zeros_are_zero_on_reused_memory():
    a = _workspace.empty(BIG, np.float32)
    a.fill(np.nan)
    del a
    z = _workspace.zeros(BIG, np.float32)
    assert not np.any(z)


def test_memory_is_reused_only_after_every_view_is_gone():
    shape = (513, 1021)    # a size no other test uses, so its block is the best fit below
    a = _workspace.empty(shape, np.float32)
    view = a[10:20]
    view[...] = 1.0
    ptr = a.__array_interface__["data"][0]
    del a
    gc.collect()
    b = _workspace.empty(shape, np.float32)    # the block of `a` is still alive through `view`
    assert not np.shares_memory(b, view)
    b[...] = 2.0
    assert np.all(view == 1.0)
    del view
    gc.collect()
    c = _workspace.empty(shape, np.float32)    # now it comes back, pages still mapped
    assert c.__array_interface__["data"][0] == ptr
    del b, c


def test_a_block_is_reused_only_for_a_similar_size():
    _workspace.release()
    a = _workspace.empty((1 << 20,), np.float32)      # 4 MiB
    ptr = a.__array_interface__["data"][0]
    del a
    b = _workspace.empty((3 << 18,), np.float32)      # 3 MiB: the 4 MiB block is too big for it
    assert b.__array_interface__["data"][0] != ptr
    c = _workspace.empty((7 << 17,), np.float32)      # 3.5 MiB: close enough
    assert c.__array_interface__["data"][0] == ptr
    del b, c


def test_idle_memory_is_bounded_by_what_was_live():
    _workspace.release()
    assert _workspace.idle_bytes() == 0
    blocks = [_workspace.empty((1 << 20,), np.float32) for _ in range(40)]   # 40 x 4 MiB live
    del blocks
    gc.collect()
    # 160 MiB were live at once, so the pool may keep them (up to its 32 slots), no more
    assert 64 << 20 < _workspace.idle_bytes() <= 32 * (4 << 20)
    _workspace.release()
    assert _workspace.idle_bytes() == 0


def test_idle_blocks_expire():
    old = _workspace._set_idle_seconds(0.01)
    try:
        a = _workspace.empty(BIG, np.float32)
        del a
        assert _workspace.idle_bytes() > 0
        time.sleep(0.05)
        b = _workspace.empty((3, 5), np.float32)    # any request, even one NumPy serves
        assert _workspace.idle_bytes() == 0
        del b
    finally:
        _workspace._set_idle_seconds(old)


def test_threads_never_share_a_live_block():
    # four threads each fill their own pooled block with their number and read it back
    errors = []

    def work(k):
        for _ in range(200):
            a = _workspace.empty(BIG, np.float64)
            a.fill(k)
            if not np.all(a == k):
                errors.append(k)

    run_concurrently([lambda k=k: work(k) for k in range(4)])  # re-raises a thread's exception
    assert errors == []
