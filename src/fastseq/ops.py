"""Functional API of fastseq's compiled kernels (NumPy arrays in, NumPy arrays out).

Each area adds its functions in its own block below, imported from its private module.
"""

# ---- recurrent: LSTM and Elman RNN forward/backward (batch-first; see fastseq._recurrent_ops) ----
from fastseq._recurrent_ops import (  # noqa: F401
    LSTMCache,
    RNNCache,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)
