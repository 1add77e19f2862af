import os

import numpy as np
import pytest


def pytest_report_header(config):
    import threadpoolctl

    import fastseq

    lines = [f"fastseq {fastseq.__version__} from {os.path.dirname(fastseq.__file__)}"]
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") == "blas":
            lines.append(
                f"BLAS: {info.get('internal_api')} {info.get('version')} "
                f"({info.get('architecture')}, {info.get('num_threads')} threads) "
                f"{info.get('filepath')}"
            )
    return lines


@pytest.fixture
def seed():
    """Base random seed; override with FASTSEQ_SEED=<int> to explore other draws."""
    return int(os.environ.get("FASTSEQ_SEED", "0"))


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)
