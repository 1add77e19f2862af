"""The compiled kernels run the code paths the build and the CPU call for.

The CPU's own feature list (/proc/cpuinfo) is the oracle for which instruction-set copies the
dispatcher picks; `.ci/run`'s portable build sets FASTSEQ_EXPECT_PORTABLE=1, and then no ISA copy
and no OpenMP thread may run, whatever the CPU has (so that step cannot silently re-test the
normal build)."""
import os
import platform

import pytest

from fastseq._recurrent import _recurrent_fast
from fastseq.linear_model import _cgls_fast

PORTABLE = os.environ.get("FASTSEQ_EXPECT_PORTABLE") == "1"


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def test_portable_build_runs_portable_code_only():
    if not PORTABLE:
        pytest.skip("normal build (FASTSEQ_EXPECT_PORTABLE is not set)")
    for isa in (_recurrent_fast.ISA_BEST, _recurrent_fast.ISA_AVX2, _recurrent_fast.ISA_AVX512):
        assert _recurrent_fast.tile_isa(isa) == _recurrent_fast.ISA_PORTABLE
    assert _cgls_fast.max_threads() == 1


def test_dispatch_picks_the_cpus_best_level():
    flags = _cpu_flags()
    if PORTABLE or flags is None or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("needs the normal build on an x86-64 Linux CPU")
    if {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        want = _recurrent_fast.ISA_AVX512
    elif {"avx2", "fma"} <= flags:
        want = _recurrent_fast.ISA_AVX2
    else:
        want = _recurrent_fast.ISA_PORTABLE
    assert _recurrent_fast.tile_isa(_recurrent_fast.ISA_BEST) == want
