#!/usr/bin/env python3
"""A small neural network in place of the logistic regression, alone and mixed with a lexical
model, tried on the same features, folds and cutoff rule as `train.py` (training data only; the
evaluation sets play no part).

    B=target/release/infergate; M=models/all-MiniLM-L6-v2
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy scipy scikit-learn xxhash
    python3 crates/semantic/data/injection/src/augment.py /tmp/inj-aug.jsonl
    $B semantic features --model-dir $M --windows 600:300:8 --out /tmp/inj-c.jsonl
    $B semantic features --model-dir $M --windows 600:300:8 --input /tmp/inj-aug.jsonl --out /tmp/inj-a.jsonl
    MLP_WRITE=1 MLP_CONFIGS="256:1e-3;256:1e-3:1:400:0:0.2;512:1e-3" \
        LEX_CONFIGS="1:0.2,0.3,0.4,0.5;3:0.2,0.3,0.4,0.5;10:0.2,0.3,0.4,0.5" \
        /tmp/venv/bin/python crates/semantic/data/injection/src/train_mlp.py \
        /tmp/inj-aug.jsonl 600:300:8=/tmp/inj-c.jsonl,/tmp/inj-a.jsonl

(about 9 minutes on 2 cores; deterministic. That is the run that wrote the shipped
classifier.json, `clf-v6-2026-11-5`, on corpus v6, and before it `clf-v5-2026-11-5` and
`clf-v4-2026-11-5` on corpora v5 and v4; the same without LEX_CONFIGS wrote
`clf-v4-2026-11-4`, and v3's `clf-v3-2026-11-4` came from "256:1e-3;512:1e-3;256:1e-2;512:1e-3:3".)

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

Lexical model (LEX_CONFIGS): a multinomial logistic regression (scikit-learn, L2, inverse
strength C) over `lexical.py`'s hashed character 3- to 5-grams of the same rows, its weights
rounded to i8 with a scale per class (as the gateway stores them). Mixed with a network, a row's
class probabilities are (1 - MIX) x the network's + MIX x the lexical model's, then the text's
score is the highest attack probability over the text and its windows as above. Why: the
encoder reads English; the words of an extraction request in Gaelic or Zulu reach it as word
pieces it never learnt, and a model over the characters themselves learns them.

Environment: MLP_CONFIGS="H:L2[:E[:ITERS[:BALANCE[:DROP]]]];..." (default "256:1e-3";
BALANCE b > 0 weighs each row by (n / its class's count)^b; DROP is the input dropout rate),
LEX_CONFIGS="C:MIX[,MIX...];..." (default none: the networks alone; every network is also tried
mixed with each), MLP_OUT (a JSON file for the results), MLP_WRITE=1 (choose among the logistic
regression, the networks and the mixtures by train.py's rule — the lexical model alone is only a
reference; when a network wins, refit it, and its lexical model, on the whole corpus and write
../classifier.json with a `hidden` layer and a `lexical` part).
"""
import json
import os
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

import lexical
import train as T

SPEC = "600:300:8"
CONFIGS = [c for c in os.environ.get("MLP_CONFIGS", "256:1e-3").split(";") if c]
# "C:MIX[,MIX...];..." — the lexical model's inverse L2 strength and its shares of the mixture
LEX = [c for c in os.environ.get("LEX_CONFIGS", "").split(";") if c]
LEX_BITS = 16
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


def softmax(L):
    L = L - L.max(1, keepdims=True)
    P = np.exp(L)
    return P / P.sum(1, keepdims=True)


def mlp_dist(X, net):
    """Class probabilities of each row of X."""
    W1, b1, W2, b2 = net
    return softmax(np.maximum(X @ W1 + b1, 0) @ W2 + b2)


def fit_lex(L, y, C):
    """The lexical model (lexical.py's features): a multinomial logistic regression with inverse
    L2 strength C, its weights stored as i8 times a scale per class, as the gateway reads them.
    Returns (i8 weights, scales, biases)."""
    m = LogisticRegression(C=C, max_iter=3000).fit(L, y)
    assert list(m.classes_) == list(range(len(T.CLASSES)))
    scale = np.abs(m.coef_).max(1) / 127.0
    scale[scale == 0] = 1.0
    q = np.round(m.coef_ / scale[:, None]).astype(np.int8)
    return q, scale, m.intercept_


def lex_dist(L, lex):
    q, scale, b = lex
    return softmax(np.asarray(L @ (q * scale[:, None]).T) + b)


def item_score(d, P, PW):
    """Highest attack probability over each item's whole text (rows of P) and windows (PW)."""
    p = 1.0 - P[:, 0]
    np.maximum.at(p, d.w_owner, 1.0 - PW[:, 0])
    return p


def out_of_fold(d, fit, mats=None):
    """Each item's and window's class probabilities from the model trained without the item's
    fold: `fit(X, y, fold)` returns a function from a feature matrix to its rows' class
    probabilities. `mats`: other features of the same rows, as in `Data.train_set`."""
    X, WX, _ = mats or (d.X, d.WX, d.AX)
    P = np.zeros((len(T.items), len(T.CLASSES)))
    PW = np.zeros((len(d.w_owner), len(T.CLASSES)))
    for f in range(T.FOLDS):
        tr, te = T.fold != f, T.fold == f
        aug_ok = np.array([f not in s for s in T.aug_folds])
        Xt, y = d.train_set(tr, True, aug_ok, mats)
        dist = fit(Xt, y, f)
        wte = te[d.w_owner]
        P[te] = dist(X[te])
        PW[wte] = dist(WX[wte])
    return P, PW


def main():
    d = T.Data(SPEC, "none", "mean")
    any_rule = d.any_rule
    log(f"{len(T.items)} corpus items, {len(T.aug_items)} augmented; features {d.X.shape[1]}")
    results = []
    # the shipped logistic regression, refitted per fold the same way (the reference row)
    P, PW = out_of_fold(d, lambda X, y, f: (lambda W, b: lambda Z: softmax(Z @ W + b))(*T.fit(X, y, 1e-3)))
    results.append(evaluate("logistic regression, L2 1e-3", item_score(d, P, PW), any_rule))
    lex_runs = []
    if LEX:
        mats = tuple(lexical.matrix(t, LEX_BITS) for t in (d.texts, d.wtexts, d.atexts))
        log(f"lexical features: {mats[0].shape[1]} buckets")
        for c in sorted({float(cfg.split(":")[0]) for cfg in LEX}):
            lex_runs.append((c, out_of_fold(d, lambda X, y, f: (lambda m: lambda Z: lex_dist(Z, m))(fit_lex(X, y, c)), mats)))
            results.append(evaluate(f"lexical alone, C={c}", item_score(d, *lex_runs[-1][1]), any_rule))
            results[-1]["reference"] = True
    for cfg in CONFIGS:
        ens, kw = parse_config(cfg)

        def fit(X, y, f):
            net = merge([fit_mlp(X, y, seed=1000 * f + e, **kw) for e in range(ens)])
            return lambda Z: mlp_dist(Z, net)
        P, PW = out_of_fold(d, fit)
        name = (f"MLP H={kw['hidden']} L2={kw['l2']} E={ens} iters={kw['iters']} "
                f"balance={kw['balance']} drop={kw['drop']}")
        results.append(evaluate(name, item_score(d, P, PW), any_rule))
        results[-1]["config"] = cfg
        for lex_cfg in LEX:
            c, mixes = lex_cfg.split(":")
            (LP, LPW), = [r for k, r in lex_runs if k == float(c)]
            for mix in (float(m) for m in mixes.split(",")):
                p = item_score(d, (1 - mix) * P + mix * LP, (1 - mix) * PW + mix * LPW)
                results.append(evaluate(f"{name} + lexical C={c} mix={mix}", p, any_rule))
                results[-1].update(config=cfg, lexical={"C": float(c), "mix": mix})
    if OUT:
        with open(OUT, "w") as fh:
            json.dump(results, fh, indent=1)
    if os.environ.get("MLP_WRITE") == "1":
        write(d, results)


def write(d, results):
    """train.py's rule over every row (the logistic regression included; the lexical model alone
    is a reference, not a candidate): within the budget, the best worst-category recall, then the
    best recall. A network that wins (with its lexical model, if it has one) is refitted on the
    whole corpus (with all augmented items) and written to ../classifier.json."""
    best = max((r for r in results if not r.get("reference")), key=T.rank)
    log("chosen:", best["name"])
    if "config" not in best:
        log("the logistic regression wins; classifier.json is left as it is")
        return
    ens, kw = parse_config(best["config"])
    everything = np.ones(len(T.items), dtype=bool)
    X, y = d.train_set(everything, True)
    W1, b1, W2, b2 = merge([fit_mlp(X, y, seed=100 + e, **kw) for e in range(ens)])
    lex = None
    if "lexical" in best:
        mats = tuple(lexical.matrix(t, LEX_BITS) for t in (d.texts, d.wtexts, d.atexts))
        q, scale, bias = fit_lex(d.train_set(everything, True, None, mats)[0], y, best["lexical"]["C"])
        lex = {"bits": LEX_BITS, "ngrams": list(lexical.NGRAMS), "mix": best["lexical"]["mix"],
               "C": best["lexical"]["C"], "bias": [float(f"{v:.6g}") for v in bias],
               "scale": [float(f"{v:.6g}") for v in scale],
               "weights": lexical.pack(q)}
    r6 = lambda v: float(f"{v:.6g}")  # noqa: E731
    old = json.load(open(T.OUT))
    keys = ("recall", "fp", "recall_by_category", "fp_by_category", "nested_recall", "nested_fp")
    out = {k: v for k, v in old.items() if k != "lexical"}
    if lex:
        out["lexical"] = lex
    out.update({
        # -4: a network; -5: a network mixed with a lexical model
        "version": f"clf-{T.corpus_version}-{5 if lex else 4}",
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
                    "networks (ReLU, E networks side by side with their logits averaged), each alone and mixed with a "
                    "lexical model (character n-grams, src/lexical.py), src/train_mlp.py",
            "rows": len(T.items),
            "augmented_items": len(T.aug_items),
            "training_rows_final": int(len(y)),
            "chosen": {"model": "mlp", "config": best["config"], "hidden": kw["hidden"], "l2": kw["l2"],
                       "networks": ens, "iters": kw["iters"], "balance": kw["balance"], "drop": kw["drop"],
                       "windows": SPEC, "attack_windows": "none", "augment": True, "cutoff": best["cutoff"],
                       "lexical": best.get("lexical")},
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
