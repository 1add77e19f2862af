"""Recurrent ops (private): the cells' forward/backward kernels behind ``fastseq.ops`` and the
layer stack the sequence estimators are built on."""
