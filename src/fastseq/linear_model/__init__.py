"""Least squares: closed-form ``LinearRegression`` (Cholesky / QR / CGLS), mini-batch
``SGDRegressor`` and the CGLS solver behind ``fastseq.ops.cgls``."""
from fastseq.linear_model._cgls import CGLSResult, cgls
from fastseq.linear_model._lstsq import LinearRegression
from fastseq.linear_model._sgd import SGDRegressor

__all__ = ["LinearRegression", "SGDRegressor", "CGLSResult", "cgls"]
