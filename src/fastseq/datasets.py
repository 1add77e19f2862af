"""Generated data sets with known answers, used by the tests, ``fastseq demo`` and the benchmarks.

- :func:`make_agreement` -- subject-verb number agreement across nested relative clauses, a
  long-range dependency task that a memoryless model cannot solve;
- :func:`make_least_squares` -- least squares designs (well/ill-conditioned, polynomial, wide,
  sparse) with their exact solution.
"""
import numbers

import numpy as np
from scipy import linalg, sparse
from sklearn.utils import check_random_state

__all__ = ["make_agreement", "make_least_squares", "decode_agreement", "AGREEMENT_VOCABULARY",
           "AGREEMENT_ADJECTIVES", "LEAST_SQUARES_KINDS"]

# ---- the agreement task ------------------------------------------------------------------------
# Nouns come in (singular, plural) pairs; "who" introduces a relative clause after an animate
# noun, "that" after an inanimate one. Relative-clause verbs are transitive and agree with the
# subject of their own clause. The sentence stops right before the main verb ("was"/"were"),
# whose form -- the label -- is decided by the FIRST noun only.
_ANIMATE = (("professor", "professors"), ("student", "students"), ("author", "authors"),
            ("dog", "dogs"), ("teacher", "teachers"))
_INANIMATE = (("book", "books"), ("song", "songs"), ("car", "cars"), ("letter", "letters"))
_VERBS = (("admires", "admire"), ("likes", "like"), ("sees", "see"), ("writes", "write"),
          ("praises", "praise"))
AGREEMENT_ADJECTIVES = ("old", "famous", "small", "new", "red", "quiet")
"""Adjectives that may stand before a noun (never the noun that fixes the verb's number)."""

AGREEMENT_VOCABULARY = tuple(
    ["the", "that", "who"]
    + [w for pair in _ANIMATE + _INANIMATE for w in pair]
    + [w for pair in _VERBS for w in pair]
    + list(AGREEMENT_ADJECTIVES))
"""Token strings, indexed by token id (the one-hot column)."""

_ID = {w: i for i, w in enumerate(AGREEMENT_VOCABULARY)}


def _int_range(value, name, low):
    """``value`` as an inclusive (lo, hi) int range: an int means lo == hi."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        lo = hi = int(value)
    elif (isinstance(value, tuple) and len(value) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        lo, hi = int(value[0]), int(value[1])
    else:
        raise TypeError(f"{name} must be an int or a (min, max) tuple of ints, got {value!r}")
    if lo < low or hi < lo:
        raise ValueError(f"{name} must satisfy {low} <= min <= max, got {value!r}")
    return lo, hi


def _agreement_sentence(rng, subject_plural, depth, n_fillers):
    """Token list of one sentence (centre-embedded object relatives) and its clause numbers.

    Structure for depth 2 (N = noun phrase "the [adj...] noun", V = verb)::

        N0 that/who N1 that/who N2 V2 V1   -> main verb agrees with N0

    N1..Nd are distractors of random number, independent of the label; V_i agrees with N_i.
    ``n_fillers`` adjectives are spread at random over the d + 1 noun phrases.
    """
    numbers_ = [subject_plural] + [int(b) for b in rng.integers(0, 2, size=depth)]
    adjective_slots = np.bincount(rng.integers(0, depth + 1, size=n_fillers), minlength=depth + 1)
    tokens = []
    for i in range(depth + 1):
        # N0 (the object of V1) may be anything; N1..Nd are subjects of transitive verbs: animate.
        pool = _ANIMATE + _INANIMATE if i == 0 else _ANIMATE
        pair = pool[rng.integers(0, len(pool))]
        tokens.append("the")
        tokens.extend(AGREEMENT_ADJECTIVES[j] for j in rng.integers(0, len(AGREEMENT_ADJECTIVES),
                                                           size=adjective_slots[i]))
        tokens.append(pair[numbers_[i]])
        if i < depth:
            tokens.append("who" if pair in _ANIMATE else "that")
    # Verbs close the clauses innermost first: V_d ... V_1, each agreeing with its own subject.
    for i in range(depth, 0, -1):
        tokens.append(_VERBS[rng.integers(0, len(_VERBS))][numbers_[i]])
    return tokens


def make_agreement(n_samples=1000, *, depth=2, n_fillers=0, output="onehot", dtype=np.float64,
                   random_state=None, return_vocabulary=False):
    """Generate the long-range subject-verb agreement task.

    Each sample is a sentence in the spirit of "The book that the professor who the students
    admire likes ___ very popular": a subject noun, then ``depth`` nested (centre-embedded)
    relative clauses, each introducing a distractor noun of random number and, innermost first,
    a verb agreeing with *its own* subject. The sentence stops right before the main verb; the
    label is the form the main verb must take, i.e. the number of the FIRST noun
    (0 = singular "was", 1 = plural "were").

    Everything after the first noun is independent of the label: the last noun, the last verb
    and any window of the last few tokens are at chance, so a model must carry the subject's
    number across the whole sentence (``2 + 4 * depth + n_fillers`` tokens) past the distractors.
    Adjectives ("fillers") spread at random before the nouns lengthen the dependency.

    What is *not* at chance: anything that sees the whole sentence at once. Every verb is matched
    to one noun, so the bag-of-words statistic (#singular nouns - #singular verbs) equals the
    subject's number, and an MLP on the flattened one-hot sentence learns it too. The task
    separates models by what they can carry *through time*, so compare sequence models against a
    feed-forward network over a fixed window of the last tokens (as ``fastseq demo`` does).

    Parameters
    ----------
    n_samples : int, default=1000
        Number of sentences.
    depth : int or (int, int), default=2
        Number of nested relative clauses (>= 1), or an inclusive range drawn per sentence.
    n_fillers : int or (int, int), default=0
        Number of adjectives per sentence (>= 0), or an inclusive range drawn per sentence.
    output : {"onehot", "ids"}, default="onehot"
        One-hot float sequences or integer token ids (indices into the vocabulary).
    dtype : numpy float dtype, default=np.float64
        Dtype of the one-hot arrays.
    random_state : int, RandomState instance or None, default=None
        Seed for the draws; the same seed gives the same data set.
    return_vocabulary : bool, default=False
        Also return the vocabulary (a tuple of token strings indexed by token id).

    Returns
    -------
    X : ndarray or list of ndarray
        If every sentence has the same length (``depth`` and ``n_fillers`` are ints): an array of
        shape ``(n_samples, T, V)`` (one-hot) or ``(n_samples, T)`` (ids). Otherwise a list of
        ``(T_i, V)`` (one-hot) or ``(T_i,)`` (ids) arrays.
    y : ndarray of shape (n_samples,), dtype int64
        Number of the main subject: 0 singular, 1 plural. Balanced in expectation.
    vocabulary : tuple of str
        Only if ``return_vocabulary``; equals :data:`AGREEMENT_VOCABULARY`.

    Examples
    --------
    >>> from fastseq.datasets import make_agreement, decode_agreement
    >>> X, y = make_agreement(4, depth=2, random_state=0)
    >>> X.shape
    (4, 10, 37)
    >>> sentence = decode_agreement(X[0])
    >>> len(sentence.split())
    10
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    depth_lo, depth_hi = _int_range(depth, "depth", 1)
    fill_lo, fill_hi = _int_range(n_fillers, "n_fillers", 0)
    if output not in ("onehot", "ids"):
        raise ValueError(f"output must be 'onehot' or 'ids', got {output!r}")
    dtype = np.dtype(dtype)
    if output == "onehot" and dtype.kind != "f":
        raise TypeError(f"dtype must be a float dtype for one-hot output, got {dtype}")
    rng = check_random_state(random_state)
    # One Generator seeded from the RandomState keeps sklearn's random_state semantics.
    gen = np.random.default_rng(rng.randint(0, 2**31 - 1))

    y = gen.integers(0, 2, size=n_samples).astype(np.int64)
    sequences = []
    for plural in y:
        d = int(gen.integers(depth_lo, depth_hi + 1))
        f = int(gen.integers(fill_lo, fill_hi + 1))
        tokens = _agreement_sentence(gen, int(plural), d, f)
        sequences.append(np.array([_ID[t] for t in tokens], dtype=np.int64))

    vocab_size = len(AGREEMENT_VOCABULARY)

    def encode(ids):
        if output == "ids":
            return ids
        onehot = np.zeros((ids.shape[0], vocab_size), dtype=dtype)
        onehot[np.arange(ids.shape[0]), ids] = 1
        return onehot

    if depth_lo == depth_hi and fill_lo == fill_hi:
        ids = np.stack(sequences)
        if output == "ids":
            X = ids
        else:
            X = np.zeros(ids.shape + (vocab_size,), dtype=dtype)
            np.put_along_axis(X, ids[..., None], 1, axis=2)
    else:
        X = [encode(ids) for ids in sequences]
    if return_vocabulary:
        return X, y, AGREEMENT_VOCABULARY
    return X, y


def decode_agreement(x):
    """Sentence string of one sample of :func:`make_agreement` (one-hot ``(T, V)`` or ids
    ``(T,)``)."""
    x = np.asarray(x)
    ids = x.argmax(axis=-1) if x.ndim == 2 else x
    return " ".join(AGREEMENT_VOCABULARY[i] for i in ids)


# ---- least squares designs ---------------------------------------------------------------------
LEAST_SQUARES_KINDS = ("well", "ill", "polynomial", "wide", "sparse")


def _orthogonal_complement_noise(X, g):
    """``g`` minus its projection onto range(X): r with Xᵀr = 0, so adding r to y = Xβ keeps β the
    exact least squares solution while making the residual non-zero."""
    if sparse.issparse(X):
        # Dense p x p Gram matrix is fine for the sizes used here; two rounds of refinement
        # bring Xᵀr down to rounding level for a well-conditioned sparse design.
        cho = linalg.cho_factor((X.T @ X).toarray())
        r = g.copy()
        for _ in range(3):
            r = r - X @ linalg.cho_solve(cho, X.T @ r)
        return r
    q, _ = linalg.qr(X, mode="economic")
    r = g - q @ (q.T @ g)
    return r - q @ (q.T @ r)  # second projection: orthogonal to rounding level


def make_least_squares(kind, n_samples, n_features, *, noise=0.0, cond=1e8, degree=None,
                       density=0.01, random_state=None):
    """Generate a least squares problem ``min ||X b - y||`` with its exact solution.

    Parameters
    ----------
    kind : {"well", "ill", "polynomial", "wide", "sparse"}
        - ``"well"``: Gaussian design, condition number ~ (1 + sqrt(p/n)) / (1 - sqrt(p/n)).
        - ``"ill"``: nearly collinear columns (singular values log-spaced from 1 to ``1/cond``)
          on wildly different scales (each column multiplied by 10**U(-3, 3)).
        - ``"polynomial"``: Vandermonde matrix of the monomials 1, t, ..., t**(p-1) at n points
          of [0, 1] (condition number grows like 10**(0.4 p) and more): high-degree fitting,
          where the normal equations lose every digit.
        - ``"wide"``: Gaussian, meant for ``n_features > n_samples``: XᵀX is p x p and singular,
          forming it is the wrong choice; ``beta_true`` is the minimum-norm solution.
        - ``"sparse"``: CSR matrix with the given ``density`` (each column gets at least one
          non-zero so the design has full rank).
    n_samples, n_features : int
        Shape of ``X``.
    noise : float, default=0.0
        Norm of the residual relative to ``||X beta_true||``. The noise is orthogonal to the
        column space of X, so ``beta_true`` stays the exact least squares solution while the
        residual is non-zero (which is what separates QR from the normal equations). Must be 0
        when ``n_features >= n_samples`` (the column space is everything).
    cond : float, default=1e8
        Condition number of the collinear part of ``"ill"`` (before column scaling).
    degree : None
        Reserved: the polynomial degree is ``n_features - 1``.
    density : float, default=0.01
        Fraction of non-zeros for ``"sparse"``.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), or CSR matrix for ``"sparse"``
    y : ndarray of shape (n_samples,)
    beta_true : ndarray of shape (n_features,)
        The minimum-norm least squares solution of ``(X, y)`` (unique when X has full column
        rank), exact up to the rounding of ``y`` (expect a forward error ~ cond(X) * 1e-16).

    Examples
    --------
    >>> import numpy as np
    >>> from fastseq.datasets import make_least_squares
    >>> X, y, beta = make_least_squares("well", 100, 5, noise=0.1, random_state=0)
    >>> bool(np.allclose(np.linalg.lstsq(X, y, rcond=None)[0], beta))
    True
    """
    if kind not in LEAST_SQUARES_KINDS:
        raise ValueError(f"kind must be one of {LEAST_SQUARES_KINDS}, got {kind!r}")
    for name, v in (("n_samples", n_samples), ("n_features", n_features)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not (isinstance(noise, numbers.Real) and np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite real >= 0, got {noise!r}")
    if noise > 0 and n_features >= n_samples:
        raise ValueError(f"noise must be 0 when n_features ({n_features}) >= n_samples "
                         f"({n_samples}): every y is then fitted exactly")
    if degree is not None:
        raise ValueError("degree is set by n_features (degree = n_features - 1); pass None")
    if not (isinstance(cond, numbers.Real) and cond >= 1):
        raise ValueError(f"cond must be a real >= 1, got {cond!r}")
    if not (isinstance(density, numbers.Real) and 0 < density <= 1):
        raise ValueError(f"density must be in (0, 1], got {density!r}")
    rng = np.random.default_rng(check_random_state(random_state).randint(0, 2**31 - 1))
    n, p = int(n_samples), int(n_features)

    if kind in ("well", "wide"):
        X = rng.standard_normal((n, p))
    elif kind == "ill":
        k = min(n, p)
        u, _ = linalg.qr(rng.standard_normal((n, k)), mode="economic")
        v, _ = linalg.qr(rng.standard_normal((p, k)), mode="economic")
        s = np.logspace(0, -np.log10(cond), k)
        X = (u * s) @ v.T
        X *= 10.0 ** rng.uniform(-3, 3, size=p)
    elif kind == "polynomial":
        t = np.sort(rng.uniform(0, 1, size=n))
        X = np.vander(t, p, increasing=True)
    else:  # sparse
        X = sparse.random(n, p, density=density, format="lil", random_state=rng,
                          data_rvs=rng.standard_normal)
        # One guaranteed non-zero per column, spread over the rows: full rank for n >= p.
        cols = np.arange(p)
        X[cols % n, cols] = rng.standard_normal(p) + np.sign(rng.standard_normal(p)) * 2.0
        X = sparse.csr_matrix(X)
        X.sort_indices()

    if p > n:
        # Minimum-norm solution lies in the row space: beta = Xᵀ z solves X beta = y exactly.
        beta_true = X.T @ rng.standard_normal(n)
        beta_true = np.asarray(beta_true).ravel()
    else:
        beta_true = rng.standard_normal(p)
        if kind == "ill":
            # Undo the column scaling in beta so each column contributes comparably to y.
            beta_true = beta_true / np.linalg.norm(X, axis=0)
    y = np.asarray(X @ beta_true).ravel()
    if noise > 0:
        r = _orthogonal_complement_noise(X, rng.standard_normal(n))
        y = y + r * (noise * np.linalg.norm(y) / np.linalg.norm(r))
    return X, y, beta_true
