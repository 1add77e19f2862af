"""``fastseq demo``: fastseq's main job on generated data, in under two minutes on two cores.

1. Least squares: the closed forms (normal equations by Cholesky, Householder QR), CGLS and SGD
   side by side with NumPy's SVD-based ``lstsq`` -- coefficient error against the exact answer,
   normal-equation residual and time -- on well-conditioned, ill-conditioned, polynomial, wide
   (p > n: forming XᵀX is the wrong choice) and sparse designs.
2. Sequences: a feed-forward network (MLP over the last tokens), an Elman RNN and an LSTM on the
   long-range agreement task of :func:`fastseq.datasets.make_agreement`; only the LSTM carries
   the subject's number across the sentence. The LSTM's forget-gate activations along one
   sentence are plotted (PNG with matplotlib, otherwise a text sparkline).

Everything printed is also written to ``<out>/demo.txt`` and ``<out>/demo.json``.
"""
import json
import os
import platform
import sys
import time
import warnings

import numpy as np

import fastseq
from fastseq.datasets import (
    AGREEMENT_ADJECTIVES,
    AGREEMENT_VOCABULARY,
    decode_agreement,
    make_agreement,
    make_least_squares,
)

_SPARK = "▁▂▃▄▅▆▇█"


class _Tee:
    """Print to stdout and keep a copy for demo.txt."""

    def __init__(self):
        self.lines = []

    def __call__(self, text=""):
        print(text, flush=True)
        self.lines.append(text)


def _estimator(name):
    """A fastseq estimator class, or None with the reason when this build does not have it."""
    cls = getattr(fastseq, name, None)
    return cls, (None if cls is not None else
                 f"fastseq.{name} is not available in this build (its branch has not landed)")


def _make(cls, **params):
    """Instantiate with the params this estimator accepts (names follow scikit-learn)."""
    accepted = cls().get_params()
    return cls(**{k: v for k, v in params.items() if k in accepted})


def _fmt_time(seconds):
    return f"{seconds * 1e3:7.1f} ms" if seconds < 1 else f"{seconds:7.2f} s "


# ---- 1. least squares ----------------------------------------------------------------------------
def _designs(quick):
    # (label, kind, n, p, kwargs, noise)
    if quick:
        return [("well", "well", 3000, 60, {}, 0.1),
                ("ill (cond 1e6, scaled)", "ill", 1000, 30, {"cond": 1e6}, 0.1),
                ("polynomial (deg 11)", "polynomial", 1000, 12, {}, 0.0),
                ("wide (p > n)", "wide", 100, 500, {}, 0.0),
                ("sparse CSR 1%", "sparse", 10000, 200, {"density": 0.01}, 0.1)]
    return [("well", "well", 20000, 300, {}, 0.1),
            ("ill (cond 1e6, scaled)", "ill", 10000, 100, {"cond": 1e6}, 0.1),
            ("polynomial (deg 13)", "polynomial", 4000, 14, {}, 0.0),
            ("wide (p > n)", "wide", 250, 1500, {}, 0.0),
            ("sparse CSR 0.5%", "sparse", 100000, 1000, {"density": 0.005}, 0.1)]


def _solvers(kind):
    """(label, factory) pairs; the factory returns a fit function X, y -> (coef, note)."""
    LinearRegression, _ = _estimator("LinearRegression")
    SGDRegressor, _ = _estimator("SGDRegressor")
    out = []
    if kind != "sparse":
        def svd(X, y):
            return np.linalg.lstsq(X, y, rcond=None)[0], "NumPy reference"
        out.append(("numpy lstsq (SVD)", svd))

        def naive(X, y):
            from scipy import linalg
            # The textbook closed form: solve (XᵀX) b = Xᵀy by Cholesky, no safeguards.
            return linalg.solve(X.T @ X, X.T @ y, assume_a="pos"), "textbook, no safeguards"
        out.append(("numpy XᵀX + Cholesky", naive))
    else:
        def lsqr(X, y):
            from scipy.sparse.linalg import lsqr as scipy_lsqr
            res = scipy_lsqr(X, y, atol=1e-12, btol=1e-12, iter_lim=10 * X.shape[1])
            return res[0], f"SciPy reference, {res[2]} it"
        out.append(("scipy lsqr", lsqr))
    if LinearRegression is not None:
        solvers = ["cgls"] if kind == "sparse" else ["cholesky", "qr", "cgls"]
        names = {"cholesky": "Cholesky (normal eq.)", "qr": "Householder QR", "cgls": "CGLS"}
        for solver in solvers + ["auto"]:
            def fit(X, y, solver=solver):
                model = LinearRegression(fit_intercept=False, solver=solver, tol=1e-12,
                                         max_iter=(4 * min(X.shape)) if solver == "cgls" else None)
                model.fit(X, y)
                note = f"solver_={model.solver_}"
                if getattr(model, "n_iter_", None):
                    note += f", {model.n_iter_} it"
                return model.coef_, note
            out.append((names.get(solver, "auto"), fit))
    if kind == "wide":
        try:
            from fastseq.ops import cgls
        except ImportError:
            cgls = None
        if cgls is not None:
            def plain_cgls(X, y):
                res = cgls(X, y, atol=1e-12, btol=1e-12, precondition=False,
                           max_iter=4 * min(X.shape))
                return res.x, f"precondition=False, {int(res.n_iter)} it"
            out.append(("ops.cgls, no precond.", plain_cgls))
    if SGDRegressor is not None and kind in ("well", "sparse"):
        # Step-size schedules tuned per design (SGD needs tuning; the closed forms do not).
        schedule = ({"learning_rate": "invscaling", "eta0": 0.01} if kind == "well"
                    else {"learning_rate": "adaptive", "eta0": 0.05})

        def sgd(X, y):
            model = _make(SGDRegressor, penalty=None, alpha=0.0, fit_intercept=False,
                          max_iter=30, tol=None, batch_size=32, random_state=0, **schedule)
            model.fit(X, y)
            return model.coef_, (f"{model.n_iter_} epochs, {schedule['learning_rate']} "
                                 f"eta0={schedule['eta0']}")
        out.append(("SGDRegressor", sgd))
    return out


def least_squares_part(say, quick, seed):
    results = []
    LinearRegression, missing = _estimator("LinearRegression")
    if missing:
        say(f"  note: {missing}; showing the references only")
    say("  fastseq rows: LinearRegression(solver=...), SGDRegressor, ops.cgls; references: NumPy, "
        "SciPy")
    say(f"  {'design':<24}{'n x p':>13}  {'solver':<24}{'time':>10}  {'coef err':>9}  "
        f"{'normal-eq res':>13}  note")
    for label, kind, n, p, kwargs, noise in _designs(quick):
        X, y, beta = make_least_squares(kind, n, p, noise=noise, random_state=seed, **kwargs)
        Xty_norm = np.linalg.norm(X.T @ y)
        first = True
        for solver_label, fit in _solvers(kind):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                t0 = time.perf_counter()
                try:
                    coef, note = fit(X, y)
                    error = None
                except Exception as exc:  # a solver failing is a result worth showing
                    coef, note, error = None, "", f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - t0
            warned = [str(w.message).split(".")[0][:60] for w in caught
                      if not issubclass(w.category, DeprecationWarning)]
            shape = f"{n} x {p}" if first else ""
            name = label if first else ""
            first = False
            if coef is None:
                say(f"  {name:<24}{shape:>13}  {solver_label:<24}{_fmt_time(elapsed):>10}  "
                    f"failed: {error[:70]}")
                results.append({"design": label, "solver": solver_label, "time": elapsed,
                                "error": error})
                continue
            coef = np.asarray(coef, dtype=np.float64).ravel()
            coef_err = float(np.linalg.norm(coef - beta) / np.linalg.norm(beta))
            residual = np.asarray(y - X @ coef).ravel()
            normal_res = float(np.linalg.norm(X.T @ residual) / Xty_norm)
            if warned:
                note += ("; " if note else "") + "warning: " + warned[0]
            say(f"  {name:<24}{shape:>13}  {solver_label:<24}{_fmt_time(elapsed):>10}  "
                f"{coef_err:9.1e}  {normal_res:13.1e}  {note}")
            results.append({"design": label, "kind": kind, "n": n, "p": p,
                            "solver": solver_label, "time": elapsed, "coef_error": coef_err,
                            "normal_residual": normal_res, "note": note})
        say()
    say("  coef err = ||b - beta|| / ||beta|| against the exact (minimum-norm) answer; "
        "normal-eq res = ||Xᵀ(y - Xb)|| / ||Xᵀy||.")
    say("  - The textbook normal equations (XᵀX + Cholesky) square the condition number, error "
        "~ cond² eps: on the")
    say("    polynomial design they lose every digit; fastseq's 'cholesky' detects it "
        "(condition estimate) and falls back to QR.")
    say("  - Wide (p > n): XᵀX is p x p and singular -- forming it costs n p² flops for nothing; "
        "CGLS needs a few passes")
    say("    over X. Its Jacobi (column-scaled) iteration lands on an exact solution that is "
        "minimum-norm in the scaled")
    say("    variables (residual ~1e-12, coef err vs the minimum-norm answer large); plain CGLS "
        "from 0 gives the minimum norm.")
    say("  - CGLS needs ~cond iterations: on the ill-conditioned and polynomial designs use the "
        "direct solvers.")
    return results


# ---- 2. sequences ------------------------------------------------------------------------------
def _agreement_config(quick):
    # T = 2 + 4 * depth + n_fillers tokens. At T = 26 the Elman RNN's gradient through the
    # distractors vanishes while the LSTM learns the task in a few epochs; the length sweep
    # shows the same RNN does learn the rule when the dependency is short.
    common = dict(depth=2, n_fillers=16, hidden=16, window=4)
    if quick:
        return dict(common, n_train=1000, n_test=500, epochs=10, sweep_fillers=(0, 8))
    return dict(common, n_train=3000, n_test=1000, epochs=20, sweep_fillers=(0, 4, 8, 12, 24))


def _last_noun_accuracy(ids, y):
    """Accuracy of predicting the label from the number of the last noun seen (the word after
    "the" and its adjectives; plural nouns end in "s")."""
    hits = []
    for row, label in zip(ids, y):
        numbers, expect_noun = [], False
        for word in (AGREEMENT_VOCABULARY[i] for i in row):
            if word == "the":
                expect_noun = True
            elif expect_noun and word not in AGREEMENT_ADJECTIVES:
                numbers.append(int(word.endswith("s")))
                expect_noun = False
        hits.append(numbers[-1] == label)
    return float(np.mean(hits))


def _fit_report(say, key, label, model, X_train, y_train, X_test, y_test):
    say(f"  training {label} ...")
    t0 = time.perf_counter()
    model.fit(X_train, y_train)
    elapsed = time.perf_counter() - t0
    acc_train = float(np.mean(model.predict(X_train) == y_train))
    acc_test = float(np.mean(model.predict(X_test) == y_test))
    say(f"  {label:<44} train acc {acc_train:5.3f}   test acc {acc_test:5.3f}   "
        f"({elapsed:.1f} s)")
    return {"key": key, "model": label, "train_accuracy": acc_train, "test_accuracy": acc_test,
            "time": elapsed}


def forget_gates(model, x):
    """Forget-gate activations (T, H) of a fitted fastseq.LSTMClassifier along one sequence
    ``x`` (T, V), from the estimator's ``inspect`` (first layer)."""
    return np.asarray(model.inspect(x[None])["forget_gate"][0][0])


def plot_forget_gates(gates, words, path):
    """Heat map of the forget gates (units x time) with the mean over units on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T, H = gates.shape
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(max(6, 0.45 * T), 5.5), sharex=True,
                                   gridspec_kw={"height_ratios": [1, 2.5]})
    ax0.plot(range(T), gates.mean(axis=1), marker="o")
    ax0.set_ylabel("mean f_t")
    ax0.set_ylim(0, 1)
    ax0.set_title("LSTM forget gates along one sentence (1 = keep the cell state)")
    im = ax1.imshow(gates.T, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                    interpolation="nearest")
    ax1.set_ylabel("hidden unit")
    ax1.set_xticks(range(T))
    ax1.set_xticklabels(words, rotation=60, ha="right", fontsize=8)
    fig.colorbar(im, ax=[ax0, ax1], shrink=0.6, label="forget gate")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_length_sweep(sweep, chance, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for key, accs in sweep.items():
        ts = sorted(accs)
        ax.plot(ts, [accs[t] for t in ts], marker="o",
                label="Elman RNN" if key == "rnn" else "LSTM")
    ax.axhline(chance, color="gray", linestyle="--", label="chance")
    ax.set_xlabel("sentence length T (tokens)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0.4, 1.02)
    ax.set_title("Number agreement across nested clauses")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sparkline(values):
    values = np.clip(np.asarray(values, dtype=np.float64), 0, 1)
    return "".join(_SPARK[min(int(v * len(_SPARK)), len(_SPARK) - 1)] for v in values)


def sequence_part(say, quick, seed, out_dir):
    cfg = _agreement_config(quick)
    results = {"config": cfg, "models": []}
    gen = dict(depth=cfg["depth"], n_fillers=cfg["n_fillers"], dtype=np.float32)
    X_train, y_train = make_agreement(cfg["n_train"], random_state=seed, **gen)
    X_test, y_test = make_agreement(cfg["n_test"], random_state=seed + 1, **gen)
    T, V = X_train.shape[1:]
    example = decode_agreement(X_test[0])
    say(f"  task: {cfg['n_train']} training / {cfg['n_test']} test sentences, T = {T} tokens, "
        f"vocabulary {V}; e.g.")
    say(f"    \"{example} ___\"  -> {'were' if y_test[0] else 'was'}")
    say("  The main verb agrees with the FIRST noun; later nouns and verbs are random "
        "distractors.")
    chance = float(max(np.mean(y_test), 1 - np.mean(y_test)))
    last_noun = _last_noun_accuracy(X_test.argmax(axis=2), y_test)
    results["chance"] = chance
    results["last_noun_accuracy"] = last_noun
    say(f"  {'chance (majority class)':<44} {'':15} test acc {chance:5.3f}")
    say(f"  {'last-noun heuristic':<44} {'':15} test acc {last_noun:5.3f}")

    w = cfg["window"]
    MLP, missing = _estimator("MLPClassifier")
    if missing:
        say(f"  MLP: {missing}")
    else:
        mlp = _make(MLP, hidden_layer_sizes=(64,), max_iter=cfg["epochs"], random_state=seed,
                    learning_rate_init=1e-2, verbose=True, tol=0.0, n_iter_no_change=1000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter is expected
            results["models"].append(_fit_report(
                say, "mlp", f"MLP on the last {w} tokens (no memory)", mlp,
                X_train[:, -w:].reshape(len(X_train), -1), y_train,
                X_test[:, -w:].reshape(len(X_test), -1), y_test))

    def recurrent(cls, verbose=True):
        return _make(cls, hidden_size=cfg["hidden"], max_iter=cfg["epochs"],
                     learning_rate_init=1e-2, batch_size=32, random_state=seed, verbose=verbose,
                     tol=0.0, n_iter_no_change=1000)

    lstm_model = None
    H = cfg["hidden"]
    for key, name, label in (("rnn", "RNNClassifier", f"Elman RNN (hidden {H})"),
                             ("lstm", "LSTMClassifier", f"LSTM (hidden {H})")):
        cls, missing = _estimator(name)
        if missing:
            say(f"  {label}: {missing}")
            continue
        model = recurrent(cls)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter is expected
            results["models"].append(_fit_report(say, key, label, model, X_train, y_train,
                                                 X_test, y_test))
        if key == "lstm":
            lstm_model = model
    # Accuracy against sentence length: the same models on shorter/longer sentences.
    sweep = {}
    main_acc = {m["key"]: m["test_accuracy"] for m in results["models"]}
    for f in cfg["sweep_fillers"]:
        sizes = dict(gen, n_fillers=f)
        Xs_train, ys_train = make_agreement(cfg["n_train"], random_state=seed + 2 + f, **sizes)
        Xs_test, ys_test = make_agreement(cfg["n_test"], random_state=seed + 3 + f, **sizes)
        Ts = Xs_train.shape[1]
        line = []
        for key, name in (("rnn", "RNNClassifier"), ("lstm", "LSTMClassifier")):
            cls, missing = _estimator(name)
            if missing:
                continue
            model = recurrent(cls, verbose=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(Xs_train, ys_train)
            acc = float(np.mean(model.predict(Xs_test) == ys_test))
            sweep.setdefault(key, {})[Ts] = acc
            line.append(f"{'Elman RNN' if key == 'rnn' else 'LSTM'} {acc:5.3f}")
        if line:
            say(f"  length sweep: T = {Ts:3d}   test acc   " + "   ".join(line))
    for key in sweep:
        sweep[key][T] = main_acc[key]
    if sweep:
        lengths = sorted({t for accs in sweep.values() for t in accs})
        say(f"  {'test accuracy vs sentence length T':<44}" + "".join(f"{t:>7d}" for t in lengths))
        for key, accs in sweep.items():
            name = "Elman RNN" if key == "rnn" else "LSTM"
            say(f"    {name:<42}" + "".join(f"{accs[t]:7.3f}" for t in lengths))
        results["length_sweep"] = {key: {str(t): a for t, a in sorted(accs.items())}
                                   for key, accs in sweep.items()}
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            pass
        else:
            path = os.path.join(out_dir, "agreement_vs_length.png")
            plot_length_sweep(sweep, chance, path)
            results["length_sweep_plot"] = path
            say(f"  accuracy-vs-length plot: {path}")
    say("  Only a model that carries the first noun's number through time can beat chance: the "
        "last tokens hold no")
    say("  information. The Elman RNN learns the rule over short distances but its gradient "
        "vanishes across the")
    say("  distractors of long sentences; the LSTM's gated cell state keeps it.")

    if lstm_model is not None:
        x = X_test[0]
        words = decode_agreement(x).split()
        try:
            gates = forget_gates(lstm_model, x)
        except Exception as exc:
            say(f"  forget gates: unavailable ({type(exc).__name__}: {exc})")
            gates = None
        if gates is not None:
            results["forget_gates"] = gates.tolist()
            results["forget_gate_words"] = words
            # The unit that stays most open after the subject is the one holding its number.
            first_noun = next(i for i, w in enumerate(words)
                              if w not in AGREEMENT_ADJECTIVES and i > 0)
            keeper = int(np.argmax(gates[first_noun + 1:].mean(axis=0)))
            say(f"  LSTM forget gates along the example, one character per token "
                f"(▁ forget … █ keep), from \"{' '.join(words[:first_noun + 1])} …\":")
            say(f"    {f'mean over {gates.shape[1]} units':<22}" + sparkline(gates.mean(axis=1)))
            say(f"    {f'unit {keeper} (most kept)':<22}" + sparkline(gates[:, keeper]))
            results["forget_gate_keeper_unit"] = keeper
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                say("  matplotlib is not installed: no PNG (pip install \".[plot]\" adds it)")
            else:
                path = os.path.join(out_dir, "lstm_forget_gates.png")
                plot_forget_gates(gates, words, path)
                results["forget_gate_plot"] = path
                say(f"  forget-gate plot: {path}")
    return results


def run_demo(out_dir="fastseq-demo", quick=False, seed=0):
    """Run the demo; return 0 on success."""
    os.makedirs(out_dir, exist_ok=True)
    say = _Tee()
    start = time.perf_counter()
    try:
        import threadpoolctl
        blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
                for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    except Exception:
        blas = []
    from fastseq._cli.bench.machine import cpu_model

    say(f"fastseq {fastseq.__version__} demo{' (quick)' if quick else ''} — generated data, "
        f"seed {seed}")
    say(f"  {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"BLAS: {'; '.join(sorted(set(blas))) or 'unknown'}")
    say()
    say("[1/2] Least squares: closed form vs CGLS vs SGD (coefficient error against the exact "
        "solution)")
    lsq = least_squares_part(say, quick, seed)
    say()
    say("[2/2] Long-range agreement: MLP vs Elman RNN vs LSTM (BLAS limited to 1 thread: these "
        "products are far")
    say("      too small to pay for a thread hand-off, which is ruinous on a shared 2-core "
        "machine)")
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(limits=1, user_api="blas")
    except Exception:  # threadpoolctl is a dependency; keep the demo running regardless
        limits = None
    try:
        seq = sequence_part(say, quick, seed, out_dir)
    finally:
        if limits is not None:
            limits.restore_original_limits()
    total = time.perf_counter() - start
    say()
    say(f"done in {total:.1f} s; results in {os.path.abspath(out_dir)}")
    with open(os.path.join(out_dir, "demo.json"), "w", encoding="utf-8") as f:
        json.dump({"quick": quick, "seed": seed, "least_squares": lsq, "sequences": seq,
                   "seconds": total, "python": sys.version.split()[0]}, f, indent=1)
    with open(os.path.join(out_dir, "demo.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(say.lines) + "\n")
    return 0
