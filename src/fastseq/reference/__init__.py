"""Readable NumPy reference implementations of every fastseq kernel.

These are the documentation of what each compiled kernel computes; tests and benchmarks compare
the kernels against them. They favour clarity over speed (but stay vectorised over the batch).
One module per area: ``linear`` (least squares), ``recurrent`` (RNN/LSTM), ``nn`` (dense layers,
losses, optimizers).
"""
