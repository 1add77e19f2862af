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


def _expected_failed(estimator):
    return EXPECTED_FAILED.get(type(estimator).__name__, {})


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_has_checks(estimator):
    assert ESTIMATORS


if ESTIMATORS:
    @sklearn_checks.parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed)
    def test_sklearn_compatible_estimator(estimator, check):
        check(estimator)
