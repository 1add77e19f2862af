"""Networks trained by backprop: MLPs, Elman RNNs and LSTMs as scikit-learn estimators, and the
training engine they share."""
from fastseq.neural_network._mlp import MLPClassifier, MLPRegressor
from fastseq.neural_network._recurrent import (
                                               LSTMClassifier,
                                               LSTMRegressor,
                                               RNNClassifier,
                                               RNNRegressor,
)
from fastseq.neural_network._training import DivergenceWarning

__all__ = ["MLPClassifier", "MLPRegressor", "RNNClassifier", "RNNRegressor", "LSTMClassifier",
           "LSTMRegressor", "DivergenceWarning"]
