"""scikit-learn's estimator checks on every fastseq estimator.

Each estimator area appends its instances to ESTIMATORS; expected failures go in
EXPECTED_FAILED with the reason.
"""
import pytest

sklearn_checks = pytest.importorskip("sklearn.utils.estimator_checks")

ESTIMATORS = []
EXPECTED_FAILED = {}

# ---- SGDRegressor (fastseq.sgd) ----
from fastseq import SGDRegressor  # noqa: E402

ESTIMATORS.append(SGDRegressor())
EXPECTED_FAILED["SGDRegressor"] = {
    "check_sample_weight_equivalence_on_dense_data":
        "stochastic: a weight of 2 and a repeated sample give the same objective but different "
        "SGD iterates (shuffling and mini-batches differ); sklearn's SGDRegressor fails it too",
    "check_sample_weight_equivalence_on_sparse_data":
        "stochastic: same reason as check_sample_weight_equivalence_on_dense_data",
    "check_regressor_multioutput":
        "the default schedule (invscaling, eta0=0.01, batch_size=32) takes 7 steps per epoch on "
        "this unscaled 200-sample problem with targets ~1e2 and hits max_iter (ConvergenceWarning, "
        "an error here); multi-output fits are tested in tests/test_sgd.py",
}
# These three checks train on unscaled features with mean 100 (||x||^2 ~ 2e4): eta0=0.01 makes SGD
# diverge, which fastseq reports as a ValueError instead of returning garbage coefficients
# (sklearn's SGDRegressor clips the residual and carries on). Covered in tests/test_sgd.py by
# test_reproducible_bit_for_bit, test_partial_fit_checks and test_bad_input.
for _check in ("check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in"):
    EXPECTED_FAILED["SGDRegressor"][_check] = (
        "features with mean 100 make the default eta0=0.01 diverge: fastseq raises a clear "
        "divergence ValueError")

# ---- least squares (issue 2) ----
from fastseq import LinearRegression  # noqa: E402

ESTIMATORS += [LinearRegression(), LinearRegression(solver="qr", alpha=0.5),
               LinearRegression(solver="cholesky", fit_intercept=False, alpha=1.0)]
_N_ITER_NONE = ("n_iter_ is None for the direct solvers by design (fastseq's API: n_iter_ counts "
                "CGLS iterations only)")
EXPECTED_FAILED["LinearRegression"] = {
    "check_non_transformer_estimators_n_iter": _N_ITER_NONE,
}


def _expected_failed(estimator):
    failed = dict(EXPECTED_FAILED.get(type(estimator).__name__, {}))
    if type(estimator).__name__ == "LinearRegression" and estimator.solver == "qr":
        reason = ("solver='qr' needs dense X (Householder QR of a sparse X would densify it); "
                  "sparse X uses 'auto'/'cgls'/'cholesky'")
        failed.update({c: reason for c in ("check_estimator_sparse_tag",
                                           "check_sample_weight_equivalence_on_sparse_data")})
    return failed


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_has_checks(estimator):
    assert ESTIMATORS


if ESTIMATORS:
    @sklearn_checks.parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed)
    def test_sklearn_compatible_estimator(estimator, check):
        check(estimator)
