#!/usr/bin/env python3
"""A small neural network in place of the logistic regression, tried on the same features, folds
and cutoff rule as `train.py` (training data only; the evaluation sets play no part).

    B=target/release/infergate; M=models/all-MiniLM-L6-v2
    python3 crates/semantic/data/injection/src/augment.py /tmp/inj-aug.jsonl
    $B semantic features --model-dir $M --windows 600:300:8 --out /tmp/inj-c.jsonl
    $B semantic features --model-dir $M --windows 600:300:8 --input /tmp/inj-aug.jsonl --out /tmp/inj-a.jsonl
    MLP_WRITE=1 MLP_CONFIGS="256:1e-3;256:1e-3:1:400:0:0.2;512:1e-3" \
        /tmp/venv/bin/python crates/semantic/data/injection/src/train_mlp.py \
        /tmp/inj-aug.jsonl 600:300:8=/tmp/inj-c.jsonl,/tmp/inj-a.jsonl

(about 5 minutes on 2 cores; deterministic. That is the run that wrote the shipped
classifier.json, `clf-v4-2026-11-4`, on corpus v4; v3's `clf-v3-2026-11-4` came from
"256:1e-3;512:1e-3;256:1e-2;512:1e-3:3".)

Why: the logistic regression draws one hyperplane per class through the embedding. Its cutoff is
set by the hard negatives (prompts that talk about instructions, personas and jailbreaks without
being one), which sit next to the attacks on that plane. A hidden layer can bend the boundary.

Model: features standardised as in `train.py` (embedding, the 13 rule hits it reads, log
length), one hidden layer of H ReLU units, softmax over the six classes; cross-entropy plus L2
on both weight matrices; 400 steps of full-batch Adam (learning rate 3e-3). With E > 1, E
networks with different initial weights are merged into one (hidden layers side by side, logits
averaged). Training rows are train.py's for its shipped configuration (600:300:8 windows, no
attack windows, augmented items). A text's score is the highest attack probability over the
text and its windows, and it is flagged when a rule fires or the score reaches the cutoff,
chosen by `train.cutoff` on the out-of-fold scores (and, as a check, on four folds and applied
to the fifth: "nested").

Environment: MLP_CONFIGS="H:L2[:E[:ITERS[:BALANCE[:DROP]]]];..." (default "256:1e-3";
BALANCE b > 0 weighs each row by (n / its class's count)^b; DROP is the input dropout rate),
MLP_OUT (a JSON file for the results), MLP_WRITE=1 (choose among the logistic regression and
the networks by train.py's rule; when a network wins, refit it on the whole corpus and write
../classifier.json with a `hidden` layer).
"""
import json
import os
import sys
import time

import numpy as np

import train as T

SPEC = "600:300:8"
CONFIGS = [c for c in os.environ.get("MLP_CONFIGS", "256:1e-3").split(";") if c]
OUT = os.environ.get("MLP_OUT")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def adam_step(params, grads, state, t, lr):
    for p, g, (m, v) in zip(params, grads, state):
        m *= 0.9
        m += 0.1 * g
        v *= 0.999
        v += 0.001 * g * g
        p -= lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)


def fit_mlp(X, y, hidden, l2, seed, iters=400, lr=3e-3, balance=0.0, drop=0.0):
    """One hidden layer; returns raw-feature weights (standardisation folded into W1). With
    balance b > 0 each row weighs (n / count of its class)^b, normalised to mean 1; with
    drop > 0 each step zeroes that share of the standardised inputs at random (inverted
    dropout: the rest are scaled up, so nothing changes at inference)."""
    mu, sd = X.mean(0), X.std(0)
    sd[sd < 1e-8] = 1.0
    Z = ((X - mu) / sd).astype(np.float32)
    n, d = Z.shape
    k = len(T.CLASSES)
    Y = np.eye(k, dtype=np.float32)[y]
    sw = (n / np.maximum(np.bincount(y, minlength=k), 1))[y] ** balance
    sw = (sw / sw.mean()).astype(np.float32)[:, None]
    rng = np.random.default_rng(seed)
    W1 = (rng.standard_normal((d, hidden)) * np.sqrt(2.0 / d)).astype(np.float32)
    b1 = np.zeros(hidden, dtype=np.float32)
    W2 = (rng.standard_normal((hidden, k)) * np.sqrt(1.0 / hidden)).astype(np.float32)
    b2 = np.zeros(k, dtype=np.float32)
    params = [W1, b1, W2, b2]
    state = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    for t in range(1, iters + 1):
        Zt = Z * ((rng.random(Z.shape) >= drop) / (1.0 - drop)).astype(np.float32) if drop else Z
        A = Zt @ W1 + b1
        Hh = np.maximum(A, 0)
        L = Hh @ W2 + b2
        L -= L.max(1, keepdims=True)
        P = np.exp(L)
        P /= P.sum(1, keepdims=True)
        G = sw * (P - Y) / n
        gW2 = Hh.T @ G + l2 * W2
        gb2 = G.sum(0)
        GH = (G @ W2.T) * (A > 0)
        gW1 = Zt.T @ GH + l2 * W1
        gb1 = GH.sum(0)
        adam_step(params, [gW1, gb1, gW2, gb2], state, t, lr)
    W1r = (W1.astype(np.float64) / sd[:, None])
    b1r = b1.astype(np.float64) - (mu / sd) @ W1.astype(np.float64)
    return W1r, b1r, W2.astype(np.float64), b2.astype(np.float64)


def merge(nets):
    """E networks as one: their hidden layers side by side, their logits averaged."""
    W1 = np.hstack([n[0] for n in nets])
    b1 = np.concatenate([n[1] for n in nets])
    W2 = np.vstack([n[2] for n in nets]) / len(nets)
    b2 = sum(n[3] for n in nets) / len(nets)
    return W1, b1, W2, b2


def mlp_prob(X, net):
    W1, b1, W2, b2 = net
    return T.attack_prob(np.maximum(X @ W1 + b1, 0), W2, b2)


def score(d, net):
    """Highest attack probability over each item's whole text and windows."""
    p = mlp_prob(d.X, net)
    pw = mlp_prob(d.WX, net)
    np.maximum.at(p, d.w_owner, pw)
    return p


def nested(p, any_rule):
    """Cutoff chosen on four folds' out-of-fold scores, applied to the fifth."""
    flag = np.zeros(len(T.items), dtype=bool)
    for f in range(T.FOLDS):
        te = T.fold == f
        t = T.cutoff(p, any_rule, mask=~te)
        flag[te] = any_rule[te] | (p[te] >= t)
    return flag


def summary(name, flag, extra=""):
    fig = T.figures(flag)
    r = fig["recall_by_category"]
    fpc = fig["fp_by_category"]
    log(f"{name}{extra}: recall {fig['recall']:.1%} fp {fig['fp']:.1%} | "
        + " ".join(f"{k[:8]} {v:.1%}" for k, v in r.items()) + " | fp "
        + " ".join(f"{k[:8]} {v:.1%}" for k, v in fpc.items()))
    return fig


def evaluate(name, p, any_rule):
    t = T.cutoff(p, any_rule)
    fig = summary(name, any_rule | (p >= t), f" cutoff {t}")
    nfig = T.figures(nested(p, any_rule))
    log(f"    nested: recall {nfig['recall']:.1%} fp {nfig['fp']:.1%}")
    return dict(name=name, cutoff=t, nested_recall=nfig["recall"], nested_fp=nfig["fp"], **fig)


def parse_config(cfg):
    """"H:L2[:E[:ITERS[:BALANCE[:DROP]]]]" -> (number of networks, fit_mlp's arguments)."""
    parts = cfg.split(":")
    defaults = (None, None, "1", "400", "0", "0")
    h, l2, ens, iters, balance, drop = parts + list(defaults[len(parts):])
    return int(ens), dict(hidden=int(h), l2=float(l2), iters=int(iters), balance=float(balance),
                          drop=float(drop))


def out_of_fold(d, fit):
    """Each item's score from the model `fit(X, y, fold)` trained without its fold."""
    p = np.zeros(len(T.items))
    for f in range(T.FOLDS):
        tr, te = T.fold != f, T.fold == f
        aug_ok = np.array([f not in s for s in T.aug_folds])
        X, y = d.train_set(tr, True, aug_ok)
        p[te] = fit(X, y, f)(te)[te]
    return p


def main():
    d = T.Data(SPEC, "none", "mean")
    any_rule = d.any_rule
    log(f"{len(T.items)} corpus items, {len(T.aug_items)} augmented; features {d.X.shape[1]}")
    results = []
    # the shipped logistic regression, refitted per fold the same way (the reference row)
    def fit_lr(X, y, f):
        W, b = T.fit(X, y, 1e-3)
        return lambda te: d.score(te, W, b)
    p = out_of_fold(d, fit_lr)
    results.append(evaluate("logistic regression (shipped), L2 1e-3", p, any_rule))
    for cfg in CONFIGS:
        ens, kw = parse_config(cfg)

        def fit(X, y, f):
            net = merge([fit_mlp(X, y, seed=1000 * f + e, **kw) for e in range(ens)])
            return lambda te: score(d, net)
        p = out_of_fold(d, fit)
        results.append(evaluate(f"MLP H={kw['hidden']} L2={kw['l2']} E={ens} iters={kw['iters']} "
                                f"balance={kw['balance']} drop={kw['drop']}", p, any_rule))
        results[-1]["config"] = cfg
    if OUT:
        with open(OUT, "w") as fh:
            json.dump(results, fh, indent=1)
    if os.environ.get("MLP_WRITE") == "1":
        write(d, results)


def write(d, results):
    """train.py's rule over every row (the logistic regression included): within the budget, the
    best worst-category recall, then the best recall. An MLP that wins is refitted on the whole
    corpus (with all augmented items) and written to ../classifier.json."""
    best = max(results, key=T.rank)
    log("chosen:", best["name"])
    if "config" not in best:
        log("the logistic regression wins; classifier.json is left as it is")
        return
    ens, kw = parse_config(best["config"])
    X, y = d.train_set(np.ones(len(T.items), dtype=bool), True)
    W1, b1, W2, b2 = merge([fit_mlp(X, y, seed=100 + e, **kw) for e in range(ens)])
    r6 = lambda v: float(f"{v:.6g}")  # noqa: E731
    old = json.load(open(T.OUT))
    keys = ("recall", "fp", "recall_by_category", "fp_by_category", "nested_recall", "nested_fp")
    out = dict(old)
    out.update({
        "version": f"clf-{T.corpus_version}-4",
        "corpus_version": T.corpus_version,
        "token_pooling": [],
        "rules": T.RULES,
        "threshold": best["cutoff"],
        "windows": dict(zip(("chars", "stride", "max"), (int(v) for v in SPEC.split(":")))),
        "hidden": [[r6(v) for v in list(W1[:, j]) + [b1[j]]] for j in range(W1.shape[1])],
        "weights": [[r6(v) for v in list(W2[:, k]) + [b2[k]]] for k in range(len(T.CLASSES))],
        "selection": {
            # the rule of train.py's classifier.json, without the candidates an earlier run added
            "rule": old["selection"]["rule"].split("; candidates:")[0] + "; candidates: the logistic regression and one-hidden-layer "
                    "networks (ReLU, E networks side by side with their logits averaged), src/train_mlp.py",
            "rows": len(T.items),
            "augmented_items": len(T.aug_items),
            "training_rows_final": int(len(y)),
            "chosen": {"model": "mlp", "config": best["config"], "hidden": kw["hidden"], "l2": kw["l2"],
                       "networks": ens, "iters": kw["iters"], "balance": kw["balance"], "drop": kw["drop"],
                       "windows": SPEC, "attack_windows": "none", "augment": True, "cutoff": best["cutoff"]},
            "out_of_fold": {k: best[k] for k in keys},
            "candidates": [{"name": c["name"], **{k: c[k] for k in ("cutoff",) + keys}} for c in results],
        },
    })
    with open(T.OUT, "w") as fh:
        json.dump(out, fh, separators=(",", ":"))
        fh.write("\n")
    log("wrote", T.OUT)


if __name__ == "__main__":
    main()
