#!/usr/bin/env python3
"""Score the built-in classifier (and rules only, and rules + nearest neighbour) on feature files
written by `infergate semantic features` (the same Rust code the gateway runs for the embedding
and the rule hits; the classifier's arithmetic below is the Rust `Classifier::score`: a softmax
over one dot product per class, after a hidden ReLU layer when the classifier has one, mixed with
the lexical model's class probabilities when it has one). Writes Markdown to stdout.

    for s in blind v1; do python3 - <<EOF ... EOF; done   # see docs/benchmarks/guardrails.md

Arguments: corpus features, blind-set features, v1-set features (each eval file with a `label`;
for a classifier with `token_pooling`, then their three `--tokens` dumps;
written with `--windows` equal to the classifier's `windows`, a text's score is the highest over
it and its windows, as in the gateway).
"""
import json
import sys

import numpy as np

ROOT = __file__.rsplit("/src/", 1)[0]
clf = json.load(open(ROOT + "/classifier.json"))
W = np.array(clf["weights"])
# a hidden layer of ReLU units (train_mlp.py), one row per unit: feature weights, then the bias
WH = np.array(clf["hidden"]) if clf.get("hidden") else None
DEFAULT = clf["threshold"]


def softmax(L):
    L = L - L.max(1, keepdims=True)
    P = np.exp(L)
    return P / P.sum(1, keepdims=True)


# a lexical model (train_mlp.py, lexical.py): its class probabilities are mixed with the network's
LEX = clf.get("lexical")
if LEX:
    sys.path.insert(0, ROOT + "/src")
    import lexical  # noqa: E402
    assert tuple(LEX["ngrams"]) == lexical.NGRAMS, LEX["ngrams"]
    LW = lexical.unpack(LEX, len(W))


def attack_prob(X, texts):
    """X: feature rows with a trailing 1 (the bias input), texts: their texts; each row's
    probability of any attack."""
    if WH is not None:
        X = np.maximum(X @ WH.T, 0)
        X = np.hstack([X, np.ones((len(X), 1))])
    P = softmax(X @ W.T)
    if LEX:
        PL = softmax(np.asarray(lexical.matrix(texts, LEX["bits"]) @ LW.T) + np.array(LEX["bias"]))
        P = (1 - LEX["mix"]) * P + LEX["mix"] * PL
    return 1 - P[:, 0]


POOLING = clf.get("token_pooling", [])


def attach_max(rows, path):
    """Token maxima from a `--tokens` dump (every whole text, then each text's windows)."""
    sys.path.insert(0, ROOT + "/src")
    from train_tokens import read_tokens  # noqa: E402
    seqs = read_tokens(path)
    for r in rows:
        r["embedding"] = r["embedding"] + list(next(seqs).max(0))
    for r in rows:
        for w in r.get("windows", []):
            w["embedding"] = w["embedding"] + list(next(seqs).max(0))


def load(fn, tokens=None):
    rows = [json.loads(l) for l in open(fn) if l.strip()]
    E = np.array([r["embedding"] for r in rows])
    if POOLING:
        attach_max(rows, tokens)
    # the classifier reads the first len(clf["rules"]) rule hits; later rules only flag
    nr = len(clf["rules"])
    X = np.array([r["embedding"] + r["rules"][:nr] + [np.log1p(r["chars"]) / 8, 1.0] for r in rows])
    if LEX and any("text" not in r for r in rows):
        sys.exit(f"{fn}: no texts; the lexical model needs them (rewrite it with this build's `semantic features`)")
    p = attack_prob(X, [r.get("text", "") for r in rows])
    # windows of long texts (feature files written with --windows, as the classifier's spec)
    wins = [(i, w) for i, r in enumerate(rows) for w in r.get("windows", [])]
    if wins:
        WX = np.array([w["embedding"] + w["rules"][:nr] + [np.log1p(w["chars"]) / 8, 1.0] for _, w in wins])
        np.maximum.at(p, [i for i, _ in wins], attack_prob(WX, [w["text"] for _, w in wins]))
    return dict(p=p, rules=np.array([sum(r["rules"]) > 0 for r in rows]),
                att=np.array([r["label"] == "attack" for r in rows]),
                cat=np.array([r["category"] for r in rows]), emb=E)


# with a classifier that reads token maxima: the three `--tokens` dumps after the feature files
toks = sys.argv[4:7] if POOLING else [None] * 3
corpus, blind, v1 = (load(f, t) for f, t in zip(sys.argv[1:4], toks))
A, B = corpus["emb"][corpus["att"]], corpus["emb"][~corpus["att"]]


def nearest(s, t=0.6, m=0.04):
    sa, sb = (s["emb"] @ A.T).max(1), (s["emb"] @ B.T).max(1)
    return (sa >= t) & (sa - sb >= m), sa


def pct(x):
    return f"{100 * x:.1f}%"


def tables(s, flag, by_clf):
    out = [f"**Overall: recall {pct(flag[s['att']].mean())}, false positives {pct(flag[~s['att']].mean())}.**", "",
           "| attack category | prompts | detected | recall | by rules | by classifier |", "|---|---:|---:|---:|---:|---:|"]
    for c in sorted(set(s["cat"][s["att"]])):
        m = s["att"] & (s["cat"] == c)
        out.append(f"| {c} | {m.sum()} | {flag[m].sum()} | {pct(flag[m].mean())} | {s['rules'][m].sum()} | {by_clf[m].sum()} |")
    out += ["", "| benign category | prompts | flagged | false-positive rate |", "|---|---:|---:|---:|"]
    for c in sorted(set(s["cat"][~s["att"]])):
        m = ~s["att"] & (s["cat"] == c)
        out.append(f"| {c} | {m.sum()} | {flag[m].sum()} | {pct(flag[m].mean())} |")
    return out + [""]


def sweep(s):
    acats = sorted(set(s["cat"][s["att"]]))
    bcats = sorted(set(s["cat"][~s["att"]]))
    out = ["| minScore | recall | FP | " + " | ".join(acats + bcats) + " |",
           "|---:|---:|---:|" + "---:|" * (len(acats) + len(bcats))]
    for t in sorted({0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, DEFAULT, 0.999}):
        f = s["rules"] | (s["p"] >= t)
        row = [f"{t}{' (default)' if t == DEFAULT else ''}", pct(f[s["att"]].mean()), pct(f[~s["att"]].mean())]
        row += [pct(f[s["att"] & (s["cat"] == c)].mean()) for c in acats]
        row += [pct(f[~s["att"] & (s["cat"] == c)].mean()) for c in bcats]
        out.append("| " + " | ".join(row) + " |")
    return out + [""]


out = []
for name, s in (("blind", blind), ("v1", v1)):
    by_clf = s["p"] >= DEFAULT
    flag = s["rules"] | by_clf
    near, sa = nearest(s)
    out.append(f"<!-- {name} -->")
    out += tables(s, flag, by_clf)
    out.append(f"Sweep of `minScore` ({name} set; recall per attack category, false positives per benign category):")
    out.append("")
    out += sweep(s)
    out += ["Other detectors on the same set:", "", "| detector | recall | false positives |", "|---|---:|---:|"]
    out.append(f"| rules only | {pct(s['rules'][s['att']].mean())} | {pct(s['rules'][~s['att']].mean())} |")
    for t, m in ((0.5, 0.04), (0.6, 0.04), (0.7, 0.04)):
        f = s["rules"] | nearest(s, t, m)[0]
        out.append(f"| rules + nearest neighbour over corpus {clf['corpus_version']} (v1 method), threshold {t}, margin {m} | "
                   f"{pct(f[s['att']].mean())} | {pct(f[~s['att']].mean())} |")
    out.append("")
    out.append(f"Attacks with a training attack at cosine ≥ 0.95 (near-duplicates): {(sa[s['att']] >= 0.95).sum()}.")
    out.append("")
print("\n".join(out))
