"""fastseq: fast CPU least squares, MLPs, RNNs and LSTMs.

Compiled kernels (C in ``csrc/``, Cython drivers calling BLAS through SciPy) under
scikit-learn estimators.
"""
__version__ = "0.1.0"

from fastseq import ops  # noqa: E402
from fastseq.linear_model import LinearRegression, SGDRegressor  # noqa: E402
from fastseq.neural_network import (  # noqa: E402
    LSTMClassifier,
    LSTMRegressor,
    MLPClassifier,
    MLPRegressor,
    RNNClassifier,
    RNNRegressor,
)

__all__ = ["__version__", "ops", "LinearRegression", "SGDRegressor", "MLPClassifier",
           "MLPRegressor", "RNNClassifier", "RNNRegressor", "LSTMClassifier", "LSTMRegressor"]
