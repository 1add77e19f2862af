"""scikit-learn's estimator checks on every fastseq estimator.

Each estimator area appends its instances to ESTIMATORS; expected failures go in
EXPECTED_FAILED with the reason.
"""
import pytest

sklearn_checks = pytest.importorskip("sklearn.utils.estimator_checks")

ESTIMATORS = []
EXPECTED_FAILED = {}

# ---- least squares (issue 2) ----
from fastseq import LinearRegression  # noqa: E402

ESTIMATORS += [LinearRegression(), LinearRegression(solver="qr", alpha=0.5)]

# ---- neural networks (fastseq.neural_network) ----
from fastseq import MLPClassifier, MLPRegressor  # noqa: E402

ESTIMATORS += [MLPClassifier(learning_rate_init=0.01, max_iter=2000, random_state=0),
               MLPRegressor(learning_rate_init=0.01, max_iter=2000, random_state=0)]
_MLP_MULTILABEL_REASON = (
    "the check fits random (unlearnable) multilabel targets: the training loss keeps falling by "
    "more than tol while the net memorises them, so max_iter is reached and the "
    "ConvergenceWarning becomes an error under filterwarnings=error; output formats are tested "
    "in tests/test_mlp.py::test_tasks_and_output_shapes")
EXPECTED_FAILED["MLPClassifier"] = {
    f"check_classifiers_multilabel_output_format_{m}": _MLP_MULTILABEL_REASON
    for m in ("predict", "predict_proba", "decision_function")}


def _expected_failed(estimator):
    return EXPECTED_FAILED.get(type(estimator).__name__, {})


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_has_checks(estimator):
    assert ESTIMATORS


if ESTIMATORS:
    @sklearn_checks.parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed)
    def test_sklearn_compatible_estimator(estimator, check):
        check(estimator)
