"""Functional API of fastseq's compiled kernels (NumPy arrays in, NumPy arrays out).

- least squares: ``cgls`` (conjugate-gradient least squares, ``fastseq.linear_model._cgls``);
- recurrent cells, batch-first: ``lstm_forward``/``lstm_backward``, ``rnn_forward``/
  ``rnn_backward`` (``fastseq._recurrent.cells``);
- the recurrent layer stack (layers x directions x inter-layer dropout over any registered cell):
  ``recurrent_stack_forward``/``recurrent_stack_backward`` (``fastseq._recurrent.stack``).
"""
from fastseq._recurrent.cells import (
    LSTMCache,
    RNNCache,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)
from fastseq._recurrent.stack import (
    CellSpec,
    StackTape,
    recurrent_stack_backward,
    recurrent_stack_forward,
)
from fastseq.linear_model._cgls import CGLSResult, cgls

__all__ = [
    "CGLSResult", "cgls",
    "LSTMCache", "RNNCache", "lstm_forward", "lstm_backward", "rnn_forward", "rnn_backward",
    "CellSpec", "StackTape", "recurrent_stack_forward", "recurrent_stack_backward",
]
