"""RNN/LSTM estimators: whole-network finite differences per configuration, masking of ragged
batches, inspection, the long-range agreement task (LSTM vs Elman RNN), estimator contract."""
import pickle

import numpy as np
import pytest
import threadpoolctl
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score

from fastseq import LSTMClassifier, LSTMRegressor, RNNClassifier, RNNRegressor
from fastseq.datasets import make_agreement
from fastseq.neural_network import DivergenceWarning
from fastseq.neural_network._sequences import check_sequences
from fastseq.ops import lstm_forward
from fastseq.reference.testing import central_differences

quiet = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # per-step GEMMs are tiny: threaded BLAS only adds synchronisation (severe on a loaded box)
    with threadpoolctl.threadpool_limits(1):
        yield


def _ragged(rng, n=3, lengths=(4, 2, 3), F=2):
    return [rng.normal(size=(t, F)) for t in lengths[:n]]


CONFIGS = [
    # (estimator, kwargs, target kind)
    (LSTMClassifier, dict(), "seq-binary"),
    (LSTMClassifier, dict(bidirectional=True), "seq-multiclass"),
    (LSTMClassifier, dict(num_layers=2), "step-multiclass"),
    (LSTMRegressor, dict(num_layers=2, bidirectional=True), "seq-reg"),
    (LSTMRegressor, dict(bidirectional=True), "step-reg"),
    (RNNClassifier, dict(num_layers=2, bidirectional=True), "step-binary"),
    (RNNRegressor, dict(nonlinearity="relu"), "seq-reg"),
    (RNNRegressor, dict(num_layers=2), "step-reg"),
]


def _targets(kind, rng, X):
    n = len(X)
    if kind == "seq-binary":
        return np.array([0, 1, 1])
    if kind == "seq-multiclass":
        return np.array([0, 2, 1])
    if kind == "seq-reg":
        return rng.normal(size=(n, 2))
    if kind == "step-binary":
        return [rng.integers(0, 2, len(x)) for x in X]
    if kind == "step-multiclass":
        return [np.arange(len(x)) % 3 for x in X]
    return [rng.normal(size=(len(x), 2)) for x in X]


@quiet
@pytest.mark.parametrize("Est,kw,kind", CONFIGS,
                         ids=[f"{E.__name__}-{k}-{'-'.join(kw) or 'plain'}"
                              for E, kw, k in CONFIGS])
def test_whole_network_gradients_match_finite_differences(rng, Est, kw, kind):
    X = _ragged(rng)
    y = _targets(kind, rng, X)
    est = Est(hidden_size=2, alpha=0.3, max_iter=1, random_state=0, **kw).fit(X, y)
    est._params[...] = rng.normal(scale=0.7, size=est._params.shape)
    Xp, lengths, _ = check_sequences(X)
    Y = est._encode_targets(y, Xp, lengths, True, False, None)
    _, grad = est._loss_grad(X, Y)
    fd = central_differences(lambda: est._loss_grad(X, Y)[0], est._params, eps=1e-6)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)


@quiet
@pytest.mark.parametrize("Est", [LSTMRegressor, RNNRegressor])
def test_ragged_batches_are_masked(rng, Est):
    # a sequence's prediction must not depend on the other sequences of its batch or padding
    X = [rng.normal(size=(t, 3)) for t in (7, 2, 5, 1)]
    est = Est(hidden_size=4, num_layers=2, bidirectional=True, max_iter=2,
              random_state=0).fit(X, rng.normal(size=4))
    together = est.predict(X)
    alone = np.array([est.predict([x])[0] for x in X])
    np.testing.assert_allclose(together, alone, rtol=1e-12, atol=1e-12)
    # per-step: values at padded positions of a padded 2-D y do not change training
    y_steps = [rng.normal(size=len(x)) for x in X]
    padded_a, padded_b = np.zeros((4, 7)), np.full((4, 7), 1e3)
    for i, v in enumerate(y_steps):
        padded_a[i, : len(v)] = padded_b[i, : len(v)] = v
    kw = dict(hidden_size=3, num_layers=2, bidirectional=True, max_iter=3, random_state=0)
    step = Est(**kw).fit(X, y_steps)
    a, b = Est(**kw).fit(X, padded_a), Est(**kw).fit(X, padded_b)
    assert step.loss_curve_ == a.loss_curve_ == b.loss_curve_
    assert np.array_equal(a._params, b._params) and np.array_equal(step._params, a._params)
    pred = step.predict(X)
    assert [p.shape for p in pred] == [(len(x),) for x in X]
    # score on the padded array counts only the valid steps
    assert step.score(X, padded_b) == step.score(X, y_steps)


@quiet
def test_inspect_hidden_states_and_gates(rng):
    X = _ragged(rng, lengths=(5, 3, 4))
    est = LSTMClassifier(hidden_size=3, bidirectional=True, num_layers=2, max_iter=2,
                         random_state=0).fit(X, [0, 1, 0])
    s = est.inspect(X)
    assert list(s["lengths"]) == [5, 3, 4]
    assert len(s["hidden"]) == 2 and s["hidden"][0].shape == (3, 5, 6)
    for key in ("input_gate", "forget_gate", "output_gate"):
        g = s[key][1]
        assert g.shape == (3, 5, 6)
        valid = np.arange(5)[None, :] < s["lengths"][:, None]
        assert ((g[valid] > 0) & (g[valid] < 1)).all() and (g[~valid] == 0).all()
    # layer 0, forward direction, equals the functional kernel on the same weights
    cells, _, _ = est._unpack(est._params, est._layout_)
    Xp, lengths, _ = check_sequences(X)
    y0 = lstm_forward(Xp, *cells[0][0], lengths=lengths)[0]
    np.testing.assert_allclose(s["hidden"][0][:, :, :3], y0, rtol=1e-12)
    rnn = RNNClassifier(hidden_size=2, max_iter=1).fit(X, [0, 1, 0])
    assert "forget_gate" not in rnn.inspect(X)


def test_lstm_solves_long_range_agreement_where_rnn_is_at_chance():
    # subject-verb agreement across 2 nested clauses and 20 fillers (30 tokens): the label is the
    # number of the FIRST noun; everything after it is at chance.
    X, y = make_agreement(600, depth=2, n_fillers=20, random_state=0)
    Xt, yt = make_agreement(400, depth=2, n_fillers=20, random_state=1)
    budget = dict(hidden_size=16, max_iter=20, learning_rate_init=0.01, random_state=0)
    with pytest.warns(Warning):  # ConvergenceWarning: fixed budget of 20 epochs for both
        lstm = LSTMClassifier(**budget).fit(X, y)
    with pytest.warns(Warning):
        rnn = RNNClassifier(**budget).fit(X, y)
    assert lstm.score(Xt, yt) > 0.95
    assert abs(rnn.score(Xt, yt) - 0.5) < 0.1


@quiet
def test_input_forms_agree(rng):
    X3 = rng.normal(size=(20, 6, 1))
    y = (X3[:, :, 0].sum(axis=1) > 0).astype(int)
    kw = dict(hidden_size=4, max_iter=3, random_state=0, shuffle=False)
    a = RNNClassifier(**kw).fit(X3, y)
    b = RNNClassifier(**kw).fit(X3[:, :, 0], y)          # 2-D univariate
    c = RNNClassifier(**kw).fit(list(X3[:, :, 0]), y)     # list of 1-D sequences
    assert a.loss_curve_ == b.loss_curve_ == c.loss_curve_
    assert a.n_features_in_ == 1


@quiet
def test_reproducible_pickle_clone_cross_val(rng):
    X, y = make_agreement(60, depth=1, random_state=0)
    a = LSTMClassifier(hidden_size=4, max_iter=3, dropout=0.0, random_state=3).fit(X, y)
    b = LSTMClassifier(hidden_size=4, max_iter=3, dropout=0.0, random_state=3).fit(X, y)
    assert a.loss_curve_ == b.loss_curve_ and np.array_equal(a._params, b._params)
    again = pickle.loads(pickle.dumps(a))
    assert np.array_equal(again.predict_proba(X), a.predict_proba(X))
    assert not hasattr(clone(a), "_params")
    assert cross_val_score(LSTMClassifier(hidden_size=4, max_iter=2, random_state=0), X, y,
                           cv=2).shape == (2,)


@quiet
def test_early_stopping_and_partial_fit(rng):
    X, y = make_agreement(80, depth=1, random_state=0)
    est = LSTMClassifier(hidden_size=4, early_stopping=True, n_iter_no_change=2, max_iter=30,
                         random_state=0).fit(X, y)
    assert est.best_validation_score_ == max(est.validation_scores_)
    inc = RNNClassifier(hidden_size=3)
    inc.partial_fit(X, y, classes=[0, 1])
    inc.partial_fit(X, y)
    assert len(inc.loss_curve_) == 2
    with pytest.raises(ValueError, match=r"labels \[5\]"):
        inc.partial_fit(X, np.where(y == 0, 5, y))


def test_divergence_is_reported():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5, 2))
    y = rng.normal(size=40)
    est = RNNRegressor(hidden_size=8, solver="sgd", learning_rate_init=1e5,
                       max_grad_norm=None, max_iter=50, tol=0.0, n_iter_no_change=1000,
                       random_state=0)
    with pytest.warns(DivergenceWarning):
        est.fit(X, y)
    assert np.isfinite(est._params).all() and np.isfinite(est.predict(X)).all()


@quiet
@pytest.mark.parametrize("Est", [LSTMClassifier, LSTMRegressor, RNNClassifier, RNNRegressor])
def test_bad_input(rng, Est):
    X = rng.normal(size=(6, 4, 2))
    y = np.array([0, 1, 0, 1, 1, 0])
    X0 = X.copy()
    est = Est(hidden_size=2, max_iter=1)
    with pytest.raises(NotFittedError):
        est.predict(X)
    bad = X.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad, y)
    with pytest.raises(ValueError, match="3-D"):
        est.fit(X[:, :, :, None], y)
    with pytest.raises(ValueError, match="empty"):
        est.fit(np.zeros((0, 4, 2)), y[:0])
    with pytest.raises(ValueError, match="empty sequence"):
        est.fit([X[0], X[1][:0]], y[:2])
    with pytest.raises(ValueError, match="same number of features"):
        est.fit([X[0], X[1][:, :1]], y[:2])
    with pytest.raises(ValueError, match="6 sequences|has 5"):
        est.fit(X, y[:5])
    with pytest.raises(ValueError, match="Complex"):
        est.fit(X + 1j, y)
    est.fit(X, y)
    with pytest.raises(ValueError, match="features per time step"):
        est.predict(X[:, :, :1])
    assert np.array_equal(X, X0)


@quiet
@pytest.mark.parametrize("first,second", [(False, True), (True, False)])
def test_warm_start_switching_early_stopping(rng, first, second):
    # bookkeeping initialised for the first fit's rule must not break the other rule
    X = rng.normal(size=(30, 4, 2))
    y = rng.normal(size=30)
    est = RNNRegressor(hidden_size=3, max_iter=2, early_stopping=first, validation_fraction=0.2,
                       random_state=0).fit(X, y)
    est.set_params(warm_start=True, early_stopping=second)
    est.fit(X, y)
    assert len(est.loss_curve_) == 4
    if second:
        assert est.best_validation_score_ == max(est.validation_scores_)
    else:
        assert est.best_loss_ == min(est.loss_curve_[2:])


@quiet
def test_partial_fit_with_early_stopping_flag(rng):
    X = rng.normal(size=(20, 4, 2))
    y = rng.integers(0, 2, 20)
    est = LSTMClassifier(hidden_size=3, early_stopping=True, random_state=0)
    est.partial_fit(X, y, classes=[0, 1])
    est.partial_fit(X, y)
    assert len(est.loss_curve_) == 2 and est.best_loss_ == min(est.loss_curve_)


@pytest.mark.parametrize("Est", [RNNRegressor, LSTMRegressor])
def test_divergence_in_a_deep_network_is_reported(Est):
    # An overflow inside a stacked network (relu RNN activations reaching inf feed the second
    # layer) must stop training with a DivergenceWarning and finite weights, not escape as a
    # ValueError about an intermediate layer's input.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5, 2))
    y = rng.normal(size=40) * 1000
    kw = dict(nonlinearity="relu") if Est is RNNRegressor else {}
    est = Est(hidden_size=8, num_layers=2, bidirectional=True, solver="sgd",
              learning_rate_init=1e3, max_grad_norm=None, max_iter=50, tol=0.0,
              n_iter_no_change=1000, random_state=0, **kw)
    with pytest.warns(DivergenceWarning):
        est.fit(X, y)
    assert np.isfinite(est._params).all()


@quiet
def test_regressor_multioutput_y_as_list_of_rows(rng):
    # y.tolist() of a per-sequence (n, K) target is that target, not per-step targets
    X = rng.normal(size=(12, 5, 2))
    Y = rng.normal(size=(12, 3))
    kw = dict(hidden_size=3, max_iter=2, random_state=0)
    a = LSTMRegressor(**kw).fit(X, Y)
    b = LSTMRegressor(**kw).fit(X, Y.tolist())
    assert a.loss_curve_ == b.loss_curve_ and b.predict(X).shape == (12, 3)


@quiet
def test_classifier_score_with_padded_per_step_labels(rng):
    X = [rng.normal(size=(t, 2)) for t in (5, 3, 4, 5)]
    labels = [(x[:, 0] > 0).astype(int) for x in X]
    padded = np.full((4, 5), 1)
    for i, v in enumerate(labels):
        padded[i, : len(v)] = v
    clf = LSTMClassifier(hidden_size=3, max_iter=2, random_state=0).fit(X, padded)
    assert clf.score(X, padded) == clf.score(X, labels)


@quiet
def test_warm_start_rejects_a_changed_architecture_with_the_same_size(rng):
    # one bidirectional layer of 3 units and two unidirectional layers of 3 units have the same
    # number of parameters: the old weights must not be silently reinterpreted
    X = rng.normal(size=(20, 4, 2))
    y = rng.normal(size=20)
    est = RNNRegressor(hidden_size=3, bidirectional=True, max_iter=1, random_state=0).fit(X, y)
    est.set_params(warm_start=True, bidirectional=False, num_layers=2)
    assert est._layout(2, 1).n_params == est._params.size
    with pytest.raises(ValueError, match="architecture"):
        est.fit(X, y)


@quiet
def test_early_stopping_restores_the_best_validation_weights(rng):
    X = rng.normal(size=(60, 5, 2))
    y = X[:, :, 0].sum(axis=1) + rng.normal(scale=0.5, size=60)
    est = RNNRegressor(hidden_size=4, early_stopping=True, validation_fraction=0.3,
                       n_iter_no_change=2, learning_rate_init=0.05, max_iter=60,
                       random_state=0)
    seen = []
    score = est._score_padded

    def recording_score(buf, layout, Xv, lv, Yv):
        seen.append((Xv, lv, Yv))
        return score(buf, layout, Xv, lv, Yv)

    est._score_padded = recording_score  # instance attribute: records the validation split
    est.fit(X, y)
    scores = est.validation_scores_
    assert scores[-1] < max(scores)  # the last epoch is worse: restoring matters
    assert est.best_validation_score_ == max(scores)
    assert score(est._params, est._layout_, *seen[-1]) == est.best_validation_score_


@quiet
@pytest.mark.parametrize("Est", [LSTMRegressor, RNNRegressor])
def test_dropout_gradient_matches_finite_differences_for_a_fixed_mask(rng, Est):
    # the same seed draws the same inverted-dropout masks, so the objective is a deterministic
    # function of the weights and its gradient includes the mask on the backward path
    X = _ragged(rng, lengths=(4, 2, 3))
    y = rng.normal(size=3)
    est = Est(hidden_size=2, num_layers=2, bidirectional=True, dropout=0.5, max_iter=1,
              random_state=0).fit(X, y)
    p = est._params
    p[...] = rng.normal(scale=0.7, size=p.shape)
    Xp, lengths, _ = check_sequences(X)
    Y = est._encode_targets(y, Xp, lengths, True, False, None)

    def objective(grads):
        return est._batch_loss_grad(p, grads, est._layout_, Xp, lengths, Y,
                                    np.random.RandomState(5))[1]

    grad = np.empty_like(p)
    objective(grad)
    scratch = np.empty_like(p)
    fd = central_differences(lambda: objective(scratch), p, eps=1e-6)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)
    # and the masks matter: without dropout the objective differs
    assert est._batch_loss_grad(p, scratch, est._layout_, Xp, lengths, Y)[1] != objective(grad)


@quiet
def test_no_dropout_at_predict_time(rng):
    X = rng.normal(size=(10, 4, 2))
    y = rng.normal(size=10)
    est = LSTMRegressor(hidden_size=3, num_layers=2, dropout=0.5, max_iter=2,
                        random_state=0).fit(X, y)
    with_dropout_param = est.predict(X)
    est.set_params(dropout=0.0)
    np.testing.assert_array_equal(with_dropout_param, est.predict(X))


@quiet
def test_inspect_backward_direction_is_aligned_to_input_time(rng):
    X = _ragged(rng, lengths=(5, 2, 4))
    est = LSTMClassifier(hidden_size=3, bidirectional=True, num_layers=2, max_iter=1,
                         random_state=0).fit(X, [0, 1, 1])
    s = est.inspect(X)
    H = 3
    # h_t = o_t * tanh(c_t) at every valid step, layer and direction (states and gates agree)
    for layer in range(2):
        for i, x in enumerate(X):
            L = len(x)
            np.testing.assert_allclose(
                s["hidden"][layer][i, :L],
                s["output_gate"][layer][i, :L] * np.tanh(s["cell_state"][layer][i, :L]),
                rtol=1e-12, atol=1e-14)
    # layer 0's backward direction = the public kernel run on each sequence reversed alone,
    # its time axis flipped back: it starts at the sequence's own last valid step
    cells, _, _ = est._unpack(est._params, est._layout_)
    w_ih, w_hh, bias = cells[0][1]
    for i, x in enumerate(X):
        y = lstm_forward(x[::-1][None], w_ih, w_hh, bias)[0][0]
        np.testing.assert_allclose(s["hidden"][0][i, : len(x), H:], y[::-1], rtol=1e-12,
                                   atol=1e-14)


def test_hidden_size_beyond_32bit_blas_is_rejected():
    # 4 * hidden_size rows of the LSTM weights must fit BLAS's 32-bit ints
    with pytest.raises(ValueError, match="32-bit BLAS"):
        LSTMRegressor(hidden_size=2**29).fit(np.zeros((3, 2, 1)), np.zeros(3))


@quiet
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_partial_fit_continues_the_optimizer_state(rng, solver):
    # k unshuffled partial_fit calls = fit with max_iter=k: Adam's moments and step count (or
    # SGD's velocity) carry over between calls, bit for bit
    X = rng.normal(size=(30, 4, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    kw = dict(hidden_size=3, shuffle=False, random_state=0, solver=solver, tol=0.0)
    full = LSTMClassifier(max_iter=3, **kw).fit(X, y)
    inc = LSTMClassifier(**kw)
    for _ in range(3):
        inc.partial_fit(X, y, classes=[0, 1])
    assert inc.loss_curve_ == full.loss_curve_ and inc.n_iter_ == 3 and inc.t_ == full.t_
    assert np.array_equal(inc._params, full._params)


@quiet
def test_classifier_output_sequence_is_respected_for_a_list_y(rng):
    # output="sequence" with y as a list of 1-element rows: one label per sequence (the list
    # form used to force per-step targets regardless of `output`)
    from sklearn.exceptions import DataConversionWarning
    X = rng.normal(size=(12, 4, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    kw = dict(hidden_size=3, max_iter=2, random_state=0, output="sequence")
    a = LSTMClassifier(**kw).fit(X, y)
    with pytest.warns(DataConversionWarning):
        b = LSTMClassifier(**kw).fit(X, [[v] for v in y])
    assert a.loss_curve_ == b.loss_curve_ and b.predict(X).shape == (12,)
