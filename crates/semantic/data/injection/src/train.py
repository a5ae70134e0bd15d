#!/usr/bin/env python3
"""Train the injection classifier on the training corpus only, and write ../classifier.json.

    target/release/infergate semantic features --model-dir models/all-MiniLM-L6-v2 \
        --out /tmp/injection-features.jsonl
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy
    /tmp/venv/bin/python crates/semantic/data/injection/src/train.py /tmp/injection-features.jsonl

The features are exactly what the gateway computes at run time (`infergate semantic features`
calls the same code): the all-MiniLM-L6-v2 embedding of the text, which rules fire on it (0/1,
in rule order) and ln(1 + chars) / 8. The model is a multinomial logistic regression (classes:
benign and the five attack categories), L2-regularised, fitted by full-batch Adam on
standardised features; the standardisation is folded into the weights, so inference is one dot
product per class on raw features.

Model selection uses the training corpus alone: its items are split by group (a template and its
fillings, a document with and without its injection) into 5 folds; every candidate (L2 strength) is trained on four folds and scored on the fifth. For each candidate the cutoff
is the lowest attack probability at which the out-of-fold false positives — of rules OR
classifier, as the guardrail decides — stay within FP_BUDGET overall and within 2 x FP_BUDGET in
every benign category; the candidate with the best worst-category recall at its cutoff wins, then
it is refitted on the whole corpus. (Candidates whose out-of-fold false positives exceed
the budget even at the highest cutoff come last.) The evaluation sets play no part.
"""
import hashlib
import json
import os
import sys

import numpy as np

FEATURES = sys.argv[1]
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "classifier.json")
CLASSES = ["benign", "indirect_injection", "instruction_override", "obfuscation", "prompt_leak",
           "roleplay_jailbreak"]
RULES = ["ignore-previous-instructions", "ignore-instructions-other-languages", "instructions-revoked",
         "new-instructions", "disable-safety", "reveal-system-prompt", "system-prompt-request",
         "dan-persona", "no-restrictions-persona", "jailbreak-template-markers", "encoded-instructions",
         "embedded-assistant-directive", "note-to-the-model"]
FP_BUDGET = 0.05
FOLDS = 5
SEED = 20261123

rows = [json.loads(l) for l in open(FEATURES) if l.strip()]
corpus_version = json.loads(open(os.path.join(os.path.dirname(OUT), "corpus.jsonl")).readline())["version"]
emb = np.array([r["embedding"] for r in rows], dtype=np.float64)
hits = np.array([r["rules"] for r in rows], dtype=np.float64)
assert hits.shape[1] == len(RULES), hits.shape
extra = np.log1p(np.array([r["chars"] for r in rows], dtype=np.float64))[:, None] / 8.0
X = np.hstack([emb, hits, extra])
y = np.array([CLASSES.index(r["category"] if r["label"] == "attack" else "benign") for r in rows])
cats = [r["category"] for r in rows]
is_attack = y != 0
any_rule = hits.sum(1) > 0
fold = np.array([int(hashlib.sha256(f"{SEED}:{r['group']}".encode()).hexdigest(), 16) % FOLDS for r in rows])
print(f"{len(rows)} rows, {is_attack.sum()} attacks, {(~is_attack).sum()} benign; "
      f"rules fire on {any_rule[is_attack].mean():.1%} of attacks, {any_rule[~is_attack].mean():.1%} of benign")


def fit(X, y, l2, balanced, iters=1000, lr=0.05):
    mu, sd = X.mean(0), X.std(0)
    sd[sd < 1e-8] = 1.0
    Z = (X - mu) / sd
    n, d = Z.shape
    k = len(CLASSES)
    Y = np.eye(k)[y]
    if balanced:
        # benign and attack weigh the same in total; attack classes share their half equally
        w_row = np.where(y == 0, 0.5 / max((y == 0).sum(), 1), 0.0)
        for c in range(1, k):
            m = y == c
            if m.any():
                w_row[m] = 0.5 / (k - 1) / m.sum()
        w_row *= n
    else:
        w_row = np.ones(n)
    W = np.zeros((d, k))
    b = np.zeros(k)
    mW, vW, mb, vb = np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b)
    for t in range(1, iters + 1):
        L = Z @ W + b
        L -= L.max(1, keepdims=True)
        P = np.exp(L)
        P /= P.sum(1, keepdims=True)
        G = (P - Y) * w_row[:, None] / n
        gW = Z.T @ G + l2 * W
        gb = G.sum(0)
        for p, g, m, v in ((W, gW, mW, vW), (b, gb, mb, vb)):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    # fold the standardisation into raw-feature weights
    Wr = W / sd[:, None]
    br = b - (mu / sd) @ W
    return Wr, br


def attack_prob(X, W, b):
    L = X @ W + b
    L -= L.max(1, keepdims=True)
    P = np.exp(L)
    P /= P.sum(1, keepdims=True)
    return 1.0 - P[:, 0]


def figures(flag):
    per_cat = {c: float(flag[is_attack & (np.array(cats) == c)].mean()) for c in CLASSES[1:]}
    benign_cats = sorted({c for c, a in zip(cats, is_attack) if not a})
    per_benign = {c: float(flag[(~is_attack) & (np.array(cats) == c)].mean()) for c in benign_cats}
    return dict(recall=float(flag[is_attack].mean()), fp=float(flag[~is_attack].mean()),
                recall_by_category={k: round(v, 4) for k, v in per_cat.items()},
                fp_by_category={k: round(v, 4) for k, v in per_benign.items()})


def cutoff(p):
    """Lowest cutoff (on a 0.01 grid) within the FP budget, overall and per benign category."""
    benign_cats = sorted({c for c, a in zip(cats, is_attack) if not a})
    ca = np.array(cats)
    for t in list(np.arange(0.05, 0.991, 0.01)) + [0.995, 0.999]:
        flag = any_rule | (p >= t)
        if flag[~is_attack].mean() > FP_BUDGET:
            continue
        if any(flag[(~is_attack) & (ca == c)].mean() > 2 * FP_BUDGET for c in benign_cats):
            continue
        return round(float(t), 3)
    return 0.999


candidates = []
for l2 in (1e-4, 1e-3):
    for balanced in (False,):
        p = np.zeros(len(rows))
        for f in range(FOLDS):
            tr, te = fold != f, fold == f
            W, b = fit(X[tr], y[tr], l2, balanced)
            p[te] = attack_prob(X[te], W, b)
        t = cutoff(p)
        fig = figures(any_rule | (p >= t))
        cand = dict(l2=l2, balanced=balanced, cutoff=t, **fig)
        print(json.dumps({k: cand[k] for k in ("l2", "balanced", "cutoff", "recall", "fp")}),
              "worst", min(fig["recall_by_category"].values()))
        candidates.append(cand)

# Baseline on the same folds: rules + nearest neighbour (the v1 method), threshold 0.6, margin 0.04.
near = np.zeros(len(rows), dtype=bool)
for f in range(FOLDS):
    tr, te = fold != f, fold == f
    A, B = emb[tr & is_attack], emb[tr & ~is_attack]
    sa, sb = (emb[te] @ A.T).max(1), (emb[te] @ B.T).max(1)
    near[te] = (sa >= 0.6) & (sa - sb >= 0.04)
baselines = {"rules only": figures(any_rule), "rules + nearest neighbour (0.6, 0.04)": figures(any_rule | near)}
for k, v in baselines.items():
    print(k, round(v["recall"], 4), round(v["fp"], 4))

best = max(candidates, key=lambda c: (c["fp"] <= FP_BUDGET and max(c["fp_by_category"].values()) <= 2 * FP_BUDGET,
                                      min(c["recall_by_category"].values()), c["recall"], -c["fp"]))
print("chosen", best["l2"], best["balanced"], best["cutoff"])
W, b = fit(X, y, best["l2"], best["balanced"])
weights = [[float(f"{v:.6g}") for v in list(W[:, k]) + [b[k]]] for k in range(len(CLASSES))]
out = {
    "version": f"clf-{corpus_version}-1",
    "corpus_version": corpus_version,
    "model": "all-MiniLM-L6-v2",
    "classes": CLASSES,
    "embedding_dim": emb.shape[1],
    "rules": RULES,
    "extra": ["log_chars"],
    "threshold": best["cutoff"],
    "weights": weights,
    "selection": {
        "rule": f"5-fold group cross-validation on the training corpus; cutoff = lowest with out-of-fold "
                f"false positives <= {FP_BUDGET:.1%} overall and <= {2 * FP_BUDGET:.1%} per benign category; "
                f"among candidates within that budget, the best worst-category recall",
        "rows": len(rows),
        "chosen": {k: best[k] for k in ("l2", "balanced", "cutoff")},
        "out_of_fold": {k: best[k] for k in ("recall", "fp", "recall_by_category", "fp_by_category")},
        "candidates": [{k: c[k] for k in ("l2", "balanced", "cutoff", "recall", "fp")} for c in candidates],
        "baselines_out_of_fold": {k: {"recall": round(v["recall"], 4), "fp": round(v["fp"], 4)}
                                  for k, v in baselines.items()},
    },
}
with open(OUT, "w") as f:
    json.dump(out, f, separators=(",", ":"))
    f.write("\n")
print("wrote", OUT)
