"""Generated data sets: determinism, labels checked by an independent parser, shapes, and the
claim that matters for the agreement task -- shallow heuristics are at chance."""
import numpy as np
import pytest
from scipy import linalg, sparse

from fastseq.datasets import (
    AGREEMENT_VOCABULARY,
    LEAST_SQUARES_KINDS,
    decode_agreement,
    make_agreement,
    make_least_squares,
)

# Written independently of the generator: English morphology of this toy grammar.
ADJECTIVES = {"old", "famous", "small", "new", "red", "quiet"}
FUNCTION_WORDS = {"the", "that", "who"}


def parse(sentence):
    """Return the number (0 sg / 1 pl) the main verb must take, checking the grammar on the way.

    Centre embedding is a stack: every noun is pushed; every verb closes the innermost open
    clause, so it pops the most recent noun and must agree with it (singular verbs end in "s",
    plural nouns end in "s"). Exactly one noun -- the main subject -- must remain.
    """
    words = sentence.split()
    stack = []
    expect_noun = False
    for w in words:
        if w == "the":
            expect_noun = True
        elif w in ADJECTIVES:
            assert expect_noun, sentence
        elif w in FUNCTION_WORDS:
            assert stack and not expect_noun, sentence
        elif expect_noun:
            stack.append(int(w.endswith("s")))
            expect_noun = False
        else:  # a verb
            assert len(stack) >= 2, f"verb {w!r} with no open clause in {sentence!r}"
            subject = stack.pop()
            assert int(not w.endswith("s")) == subject, f"{w!r} disagrees in {sentence!r}"
    assert len(stack) == 1, sentence
    return stack[0]


def test_agreement_labels_match_independent_parser():
    X, y = make_agreement(300, depth=(1, 4), n_fillers=(0, 5), random_state=3)
    assert [parse(decode_agreement(x)) for x in X] == list(y)


def test_agreement_deterministic_with_random_state():
    a = make_agreement(50, depth=3, n_fillers=2, random_state=7)
    b = make_agreement(50, depth=3, n_fillers=2, random_state=7)
    c = make_agreement(50, depth=3, n_fillers=2, random_state=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_agreement_shapes_and_outputs():
    V = len(AGREEMENT_VOCABULARY)
    X, y, vocab = make_agreement(20, depth=2, n_fillers=3, dtype=np.float32, random_state=0,
                                 return_vocabulary=True)
    assert vocab == AGREEMENT_VOCABULARY
    assert X.shape == (20, 2 + 4 * 2 + 3, V) and X.dtype == np.float32
    np.testing.assert_array_equal(X.sum(axis=2), 1)  # exactly one token per step
    assert y.shape == (20,) and set(np.unique(y)) <= {0, 1}
    ids, y2 = make_agreement(20, depth=2, n_fillers=3, output="ids", random_state=0)
    assert ids.shape == (20, 13) and ids.dtype.kind == "i"
    np.testing.assert_array_equal(ids, X.argmax(axis=2))
    np.testing.assert_array_equal(y, y2)

    ragged, _ = make_agreement(30, depth=(1, 3), n_fillers=(0, 4), random_state=0)
    assert isinstance(ragged, list) and len(ragged) == 30
    lengths = {x.shape[0] for x in ragged}
    assert len(lengths) > 1 and min(lengths) >= 6 and max(lengths) <= 2 + 12 + 4
    assert all(x.shape[1] == V for x in ragged)


@pytest.mark.parametrize("kwargs, error", [
    (dict(n_samples=0), ValueError), (dict(depth=0), ValueError),
    (dict(depth=(3, 2)), ValueError), (dict(depth=1.5), TypeError),
    (dict(n_fillers=-1), ValueError), (dict(output="words"), ValueError),
    (dict(dtype=np.int32), TypeError),
])
def test_agreement_bad_parameters(kwargs, error):
    with pytest.raises(error):
        make_agreement(**{"n_samples": 5, **kwargs})


def _lookup_table_accuracy(train_keys, y_train, test_keys, y_test):
    """Best memorised predictor of y from a discrete feature: majority label per key."""
    table = {}
    for k, label in zip(train_keys, y_train):
        table.setdefault(k, []).append(label)
    majority = {k: int(np.mean(v) > 0.5) for k, v in table.items()}
    default = int(np.mean(y_train) > 0.5)
    return np.mean([majority.get(k, default) == label for k, label in zip(test_keys, y_test)])


def test_agreement_shallow_heuristics_at_chance():
    n = 6000
    ids, y = make_agreement(n, depth=2, n_fillers=2, output="ids", random_state=11)
    words = [[AGREEMENT_VOCABULARY[i] for i in row] for row in ids]
    half = n // 2
    # Standard error of an accuracy at chance over 3000 samples is ~0.009: allow 4 sigma.
    tol = 0.04

    # Majority class.
    assert abs(np.mean(y[half:] == int(np.mean(y[:half]) > 0.5)) - 0.5) < tol
    # The last noun seen (and the last verb): plural iff it ends in "s" / does not.
    last_noun = [int([w for i, w in enumerate(s) if i > 0 and s[i - 1] == "the"
                      or (i > 1 and s[i - 1] in ADJECTIVES and w not in ADJECTIVES)][-1]
                     .endswith("s")) for s in words]
    assert abs(np.mean(np.array(last_noun) == y) - 0.5) < tol
    last_verb = [int(not s[-1].endswith("s")) for s in words]
    assert abs(np.mean(np.array(last_verb) == y) - 0.5) < tol
    # Any memoryless window: the best lookup table on the last 4 tokens.
    keys = [tuple(row[-4:]) for row in ids]
    acc = _lookup_table_accuracy(keys[:half], y[:half], keys[half:], y[half:])
    assert abs(acc - 0.5) < tol
    # ...whereas the first noun (position 1 without fillers before it) decides everything.
    first_noun = [int([w for w in s if w not in ADJECTIVES and w not in FUNCTION_WORDS][0]
                      .endswith("s")) for s in words]
    np.testing.assert_array_equal(first_noun, y)
    # The labels are balanced.
    assert abs(y.mean() - 0.5) < tol


# ---- least squares -----------------------------------------------------------------------------
SHAPES = {"well": (400, 30), "ill": (300, 20), "polynomial": (200, 10), "wide": (60, 300),
          "sparse": (500, 40)}


@pytest.mark.parametrize("kind", LEAST_SQUARES_KINDS)
def test_least_squares_exact_solution(kind):
    n, p = SHAPES[kind]
    noise = 0.0 if p >= n else 0.5
    X, y, beta = make_least_squares(kind, n, p, noise=noise, random_state=0)
    assert X.shape == (n, p) and y.shape == (n,) and beta.shape == (p,)
    assert sparse.issparse(X) == (kind == "sparse")
    Xd = X.toarray() if sparse.issparse(X) else X
    # LAPACK's SVD-based solver gives the minimum-norm least squares solution.
    reference, *_ = linalg.lstsq(Xd, y, lapack_driver="gelsd")
    cond = np.linalg.cond(Xd)
    assert np.linalg.norm(reference - beta) <= 1e-13 * max(cond, 10) * np.linalg.norm(beta)
    # Normal equations hold at beta (the residual is orthogonal to the columns).
    residual = y - Xd @ beta
    scale = np.linalg.norm(Xd, axis=0) * np.linalg.norm(y)
    assert np.all(np.abs(Xd.T @ residual) <= 1e-12 * scale)
    if noise:
        ratio = np.linalg.norm(residual) / np.linalg.norm(Xd @ beta)
        assert ratio == pytest.approx(noise, rel=1e-6)


def test_least_squares_kinds_have_their_character():
    cond = {k: np.linalg.cond(make_least_squares(k, *SHAPES[k], random_state=1)[0].toarray()
                              if k == "sparse" else make_least_squares(k, *SHAPES[k],
                                                                       random_state=1)[0])
            for k in ("well", "ill", "polynomial")}
    assert cond["well"] < 10
    assert cond["ill"] > 1e8 and cond["polynomial"] > 1e5
    X, _, _ = make_least_squares("sparse", 2000, 100, density=0.02, random_state=0)
    assert isinstance(X, sparse.csr_matrix) or X.format == "csr"
    assert 0.015 < X.nnz / (2000 * 100) < 0.03


def test_least_squares_deterministic_and_validated():
    a = make_least_squares("ill", 50, 5, noise=0.1, random_state=4)
    b = make_least_squares("ill", 50, 5, noise=0.1, random_state=4)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="kind"):
        make_least_squares("tall", 10, 2)
    with pytest.raises(ValueError, match="noise"):
        make_least_squares("wide", 10, 20, noise=0.1)
    with pytest.raises(ValueError, match="n_features"):
        make_least_squares("well", 10, 0)
