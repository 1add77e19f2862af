"""Functional API of fastseq's compiled kernels (NumPy arrays in, NumPy arrays out).

Each area adds its functions in its own block below, imported from its private module.
"""

# ---- least squares: conjugate-gradient least squares (CGLS) --------------------------------
from fastseq.linear_model._cgls import CGLSResult, cgls  # noqa: E402,F401

# ---- recurrent: LSTM and Elman RNN forward/backward (batch-first; see fastseq._recurrent.cells) ----
from fastseq._recurrent.cells import (  # noqa: F401
    LSTMCache,
    RNNCache,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)

# ---- recurrent: the layer stack (layers x directions x dropout; see fastseq._recurrent.stack) ----
from fastseq._recurrent.stack import (  # noqa: E402,F401
    CellSpec,
    StackTape,
    recurrent_stack_backward,
    recurrent_stack_forward,
)

__all__ = [
    "CGLSResult", "cgls",
    "LSTMCache", "RNNCache", "lstm_forward", "lstm_backward", "rnn_forward", "rnn_backward",
    "CellSpec", "StackTape", "recurrent_stack_forward", "recurrent_stack_backward",
]
