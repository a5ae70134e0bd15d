#!/usr/bin/env python3
"""Train the injection classifier on the training corpus only, and write ../classifier.json.

    B=target/release/infergate; M=models/all-MiniLM-L6-v2
    python3 crates/semantic/data/injection/src/augment.py /tmp/inj-aug.jsonl
    for spec in 600:300:8 1000:500:8; do n=${spec//:/-}
      $B semantic features --model-dir $M --windows $spec --out /tmp/inj-c-$n.jsonl
      $B semantic features --model-dir $M --windows $spec --input /tmp/inj-aug.jsonl \
          --out /tmp/inj-a-$n.jsonl
    done
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy
    /tmp/venv/bin/python crates/semantic/data/injection/src/train.py /tmp/inj-aug.jsonl \
        600:300:8=/tmp/inj-c-600-300-8.jsonl,/tmp/inj-a-600-300-8.jsonl \
        1000:500:8=/tmp/inj-c-1000-500-8.jsonl,/tmp/inj-a-1000-500-8.jsonl

With `POOLINGS=mean,max` and `--tokens` dumps as third and fourth files of a spec
(`600:300:8=c.jsonl,a.jsonl,c.tok,a.tok`), the candidates also include classifiers that read the
token maximum (the largest value of each final hidden dimension over the text's tokens) after the
embedding; see ../README.md.

The features are exactly what the gateway computes at run time (`infergate semantic features`
calls the same code): the all-MiniLM-L6-v2 embedding of the text, which rules fire on it (0/1,
in rule order) and ln(1 + chars) / 8 — for the whole text and for each window of a long text
(`--windows CHARS:STRIDE:MAX`, cut as the gateway cuts them). The model is a multinomial
logistic regression (classes: benign and the five attack categories), L2-regularised, fitted by
full-batch Adam on standardised features; the standardisation is folded into the weights, so
inference is one dot product per class on raw features. A text's score is the highest attack
probability over the text and its windows.

Training rows: every corpus text (whole), plus windows, labelled as follows — a window of a
benign text is benign; a window of an `indirect_injection` document is an attack when its text
is not part of the same document without the injection (the corpus keeps both in one group),
benign when it is, and left out when the group has no clean copy; a window of any other attack
is an attack of that class (candidate `attack_windows: all`) or left out (`none`); a window of
an augmented document (`augment.py`) is an attack when it holds at least half of the inserted
attack, benign when it holds none of it, left out otherwise.

Model selection uses the training corpus alone: its items are split by group (a template and its
fillings, a document with and without its injection) into 5 folds; every candidate (window
size, L2 strength, attack windows, augmentation) is trained on four folds (and the augmented
items made only from those folds' groups) and scored on the fifth. For each candidate the cutoff
is the lowest attack probability at which the out-of-fold false positives — of rules OR
classifier, as the guardrail decides — stay within FP_BUDGET overall and within 2 x FP_BUDGET in
every benign category; the candidate with the best worst-category recall at its cutoff wins
(then overall recall), then it is refitted on the whole corpus. (Candidates whose out-of-fold
false positives exceed the budget even at the highest cutoff come last.) The evaluation sets
play no part.
"""
import gzip
import hashlib
import json
import os
import sys

import numpy as np
import scipy.sparse as sp

from train_tokens import read_tokens

AUG_JSONL = sys.argv[1]
# "600:300:8" -> "corpus.jsonl,augment.jsonl[,corpus.tokens,augment.tokens]"
SPECS = dict(a.split("=", 1) for a in sys.argv[2:])
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "classifier.json")
CLASSES = ["benign", "indirect_injection", "instruction_override", "obfuscation", "prompt_leak",
           "roleplay_jailbreak"]
RULES = ["ignore-previous-instructions", "ignore-instructions-other-languages", "instructions-revoked",
         "new-instructions", "disable-safety", "reveal-system-prompt", "system-prompt-request",
         "dan-persona", "no-restrictions-persona", "jailbreak-template-markers", "encoded-instructions",
         "embedded-assistant-directive", "note-to-the-model"]
# Rules the classifier reads, the first of the Rust RULES. Rules added after it was trained
# (ignore-the-data, control-markup, forged-system-turn, message-to-the-model) come after these in
# the feature files' `rules`; they count for `any_rule` (they flag) but are not features.
FP_BUDGET = 0.05
FOLDS = 5
SEED = 20261123
L2S = (1e-4, 1e-3)
# token pooling candidates: "mean" = the embedding alone (the shipped classifier), "max" = also the
# maximum of each hidden dimension over the tokens (needs the --tokens dumps)
POOLINGS = tuple(os.environ.get("POOLINGS", "mean").split(","))
KEYS = ("windows", "pooling", "attack_windows", "augment", "l2", "cutoff", "recall", "fp")
ATTACK_WINDOWS = tuple(os.environ.get("ATTACK_WINDOWS", "all,none").split(","))
AUGMENT = (True,)

ROOT = os.path.dirname(OUT)
corpus_lines = [json.loads(l) for l in gzip.open(os.path.join(ROOT, "corpus.jsonl.gz"), "rt", encoding="utf-8") if l.strip()]
corpus_version = corpus_lines[0]["version"]
corpus_items = [r for r in corpus_lines[1:] if r.get("text")]
aug_items = [r for r in (json.loads(l) for l in open(AUG_JSONL) if l.strip()) if r.get("text")]


def fold_of(group):
    return int(hashlib.sha256(f"{SEED}:{group}".encode()).hexdigest(), 16) % FOLDS


def xrow(f, pooled=()):
    return f["embedding"] + list(pooled) + f["rules"][:len(RULES)] + [np.log1p(f["chars"]) / 8.0]


def token_pool(states, pooling):
    """The token-level features of one text (the Rust encoder computes the same)."""
    if pooling == "max":
        return states.max(0)
    return ()


def attach_pooled(feats, path, pooling):
    """Set f["pooled"] (and each window's) from a token dump, in the order `semantic features`
    writes it: every whole text, then each text's windows."""
    seqs = read_tokens(path)
    for f in feats:
        f["pooled"] = token_pool(next(seqs), pooling)
    for f in feats:
        for w in f["windows"]:
            w["pooled"] = token_pool(next(seqs), pooling)
    assert next(seqs, None) is None, path


def label(item):
    return CLASSES.index(item["category"]) if item["label"] == "attack" else 0


XROW = xrow
clean_by_group = {}
for it in corpus_items:
    if it["label"] == "benign":
        clean_by_group.setdefault(it["group"], []).append(it["text"])


def window_labels(item, wins, attack_windows):
    """Label of each window (None: left out), as the module docstring says."""
    y = label(item)
    out = []
    for w in wins:
        t = w["text"]
        if y == 0 and "inserted" not in item:
            out.append(0)
        elif "inserted" in item:
            ins = item["inserted"].strip()
            pos, wpos = item["text"].find(ins), item["text"].find(t)
            if pos < 0 or wpos < 0:
                out.append(None)
                continue
            overlap = max(0, min(pos + len(ins), wpos + len(t)) - max(pos, wpos))
            if overlap == 0:
                out.append(0)
            elif overlap >= 0.5 * min(len(ins), len(t)):
                out.append(y)
            else:
                out.append(None)
        elif item["category"] == "indirect_injection":
            clean = clean_by_group.get(item["group"])
            if not clean:
                out.append(None)
            else:
                out.append(0 if any(t.strip() in c for c in clean) else y)
        else:
            out.append(y if attack_windows == "all" else None)
    return out


def load(spec, pooling):
    files = SPECS[spec].split(",")
    cf, af = files[:2]
    feats = [json.loads(l) for l in open(cf) if l.strip()]
    afeats = [json.loads(l) for l in open(af) if l.strip()]
    if pooling != "mean":
        ct, at = files[2:4]
        attach_pooled(feats, ct, pooling)
        attach_pooled(afeats, at, pooling)
    assert len(feats) == len(corpus_items) and len(afeats) == len(aug_items), (len(feats), len(afeats))
    for f, it in zip(feats, corpus_items):
        assert f["category"] == it["category"] and f["group"] == it["group"]
    return feats, afeats


items = corpus_items
y_items = np.array([label(it) for it in items])
cats = np.array([it["category"] for it in items])
is_attack = y_items != 0
fold = np.array([fold_of(it["group"]) for it in items])
aug_folds = [{fold_of(g) for g in it["sources"]} for it in aug_items]
benign_cats = sorted(set(cats[~is_attack]))


def fit(X, y, l2, iters=600, lr=0.05):
    mu, sd = X.mean(0), X.std(0)
    sd[sd < 1e-8] = 1.0
    Z = ((X - mu) / sd).astype(np.float32)
    n, d = Z.shape
    k = len(CLASSES)
    Y = np.eye(k, dtype=np.float32)[y]
    W = np.zeros((d, k), dtype=np.float32)
    b = np.zeros(k, dtype=np.float32)
    mW, vW, mb, vb = np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b)
    for t in range(1, iters + 1):
        L = Z @ W + b
        L -= L.max(1, keepdims=True)
        P = np.exp(L)
        P /= P.sum(1, keepdims=True)
        G = (P - Y) / n
        gW = Z.T @ G + l2 * W
        gb = G.sum(0)
        for p, g, m, v in ((W, gW, mW, vW), (b, gb, mb, vb)):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    # fold the standardisation into raw-feature weights
    W, b = W.astype(np.float64), b.astype(np.float64)
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
    per_cat = {c: float(flag[is_attack & (cats == c)].mean()) for c in CLASSES[1:]}
    per_benign = {c: float(flag[(~is_attack) & (cats == c)].mean()) for c in benign_cats}
    return dict(recall=float(flag[is_attack].mean()), fp=float(flag[~is_attack].mean()),
                recall_by_category={k: round(v, 4) for k, v in per_cat.items()},
                fp_by_category={k: round(v, 4) for k, v in per_benign.items()})


def cutoff(p, any_rule, mask=None):
    """Lowest cutoff (on a 0.01 grid) within the FP budget, overall and per benign category,
    counting only the items in `mask` (all when None)."""
    benign = ~is_attack if mask is None else ~is_attack & mask
    for t in list(np.arange(0.05, 0.991, 0.01)) + [0.995, 0.999]:
        flag = any_rule | (p >= t)
        if flag[benign].mean() > FP_BUDGET:
            continue
        if any(flag[benign & (cats == c)].mean() > 2 * FP_BUDGET for c in benign_cats):
            continue
        return round(float(t), 3)
    return 0.999


def within(c):
    """A candidate's figures keep the false-positive budget, overall and per benign category."""
    return c["fp"] <= FP_BUDGET and max(c["fp_by_category"].values()) <= 2 * FP_BUDGET


def rank(c):
    """The selection order: within the budget, then worst-category recall, recall, fewer FPs."""
    return (within(c), min(c["recall_by_category"].values()), c["recall"], -c["fp"])


class Data:
    """Feature matrices of one window spec: whole texts, windows (with owner and label)."""

    def __init__(self, spec, attack_windows, pooling):
        feats, afeats = load(spec, pooling)
        xrow = lambda f: XROW(f, f.get("pooled", ()))  # noqa: E731
        self.X = np.array([xrow(f) for f in feats])
        self.any_rule = np.array([sum(f["rules"]) > 0 for f in feats])
        rows, owner, ys = [], [], []
        # the text of every row of X, WX and AX (for the lexical features, lexical.py)
        self.texts = [it["text"] for it in items]
        self.wtexts, self.atexts = [], []
        for i, (f, it) in enumerate(zip(feats, items)):
            for w, lab in zip(f["windows"], window_labels(it, f["windows"], attack_windows)):
                self.wtexts.append(w["text"])
                rows.append(xrow(w))
                owner.append(i)
                ys.append(-1 if lab is None else lab)
        self.WX = np.array(rows).reshape(len(rows), self.X.shape[1])
        self.w_owner = np.array(owner, dtype=int)
        self.w_y = np.array(ys, dtype=int)
        arows, aown, ays = [], [], []
        for j, (f, it) in enumerate(zip(afeats, aug_items)):
            arows.append(xrow(f))
            self.atexts.append(it["text"])
            aown.append(j)
            ays.append(label(it))
            for w, lab in zip(f["windows"], window_labels(it, f["windows"], attack_windows)):
                if lab is not None:
                    arows.append(xrow(w))
                    self.atexts.append(w["text"])
                    aown.append(j)
                    ays.append(lab)
        self.AX = np.array(arows)
        self.a_owner = np.array(aown, dtype=int)
        self.a_y = np.array(ays, dtype=int)
        self.n_windows = np.bincount(self.w_owner, minlength=len(items))

    def train_set(self, item_mask, augment, aug_mask=None, mats=None):
        """Training rows of the items in `item_mask` (their texts and labelled windows) and, with
        `augment`, of the augmented items in `aug_mask`: (features, labels). `mats` = (X, WX, AX)
        in place of this spec's feature matrices (the same rows; dense or scipy sparse)."""
        X, WX, AX = mats or (self.X, self.WX, self.AX)
        wm = item_mask[self.w_owner] & (self.w_y >= 0)
        parts_X, parts_y = [X[item_mask], WX[wm]], [y_items[item_mask], self.w_y[wm]]
        if augment:
            am = np.ones(len(self.a_y), dtype=bool) if aug_mask is None else aug_mask[self.a_owner]
            parts_X.append(AX[am])
            parts_y.append(self.a_y[am])
        stack = sp.vstack if sp.issparse(X) else np.vstack
        return stack(parts_X), np.concatenate(parts_y)

    def score(self, item_mask, W, b):
        """Highest attack probability over each item's whole text and windows."""
        p = attack_prob(self.X, W, b)
        wm = item_mask[self.w_owner]
        if wm.any():
            pw = attack_prob(self.WX[wm], W, b)
            np.maximum.at(p, self.w_owner[wm], pw)
        return p


def main():
    print(f"{len(items)} corpus rows, {is_attack.sum()} attacks, {(~is_attack).sum()} benign; "
          f"{len(aug_items)} augmented items")
    candidates = []
    data_cache = {}
    for spec, pooling in ((s, p) for s in SPECS for p in POOLINGS if p == "mean" or len(SPECS[s].split(",")) == 4):
        for attack_windows in ATTACK_WINDOWS:
            d = data_cache[(spec, attack_windows, pooling)] = Data(spec, attack_windows, pooling)
            for augment in AUGMENT:
                for l2 in L2S:
                    p = np.zeros(len(items))
                    for f in range(FOLDS):
                        tr, te = fold != f, fold == f
                        aug_ok = np.array([f not in s for s in aug_folds])
                        X, y = d.train_set(tr, augment, aug_ok)
                        W, b = fit(X, y, l2)
                        p[te] = d.score(te, W, b)[te]
                    t = cutoff(p, d.any_rule)
                    fig = figures(d.any_rule | (p >= t))
                    cand = dict(windows=spec, pooling=pooling, attack_windows=attack_windows, augment=augment,
                                l2=l2, cutoff=t, **fig)
                    print(json.dumps({k: cand[k] for k in KEYS}),
                          json.dumps(fig["recall_by_category"]), json.dumps(fig["fp_by_category"]),
                          "worst", min(fig["recall_by_category"].values()),
                          "indirect", fig["recall_by_category"]["indirect_injection"], flush=True)
                    candidates.append(cand)

    # Baseline on the same folds: rules + nearest neighbour (the v1 method), threshold 0.6, margin 0.04.
    d0 = next(iter(data_cache.values()))
    emb = d0.X[:, :384]
    near = np.zeros(len(items), dtype=bool)
    for f in range(FOLDS):
        tr, te = fold != f, fold == f
        A, B = emb[tr & is_attack], emb[tr & ~is_attack]
        sa, sb = (emb[te] @ A.T).max(1), (emb[te] @ B.T).max(1)
        near[te] = (sa >= 0.6) & (sa - sb >= 0.04)
    baselines = {"rules only": figures(d0.any_rule), "rules + nearest neighbour (0.6, 0.04)": figures(d0.any_rule | near)}
    for k, v in baselines.items():
        print(k, round(v["recall"], 4), round(v["fp"], 4))

    best = max(candidates, key=rank)
    CHOSEN = ("windows", "pooling", "attack_windows", "augment", "l2", "cutoff")
    print("chosen", {k: best[k] for k in CHOSEN}, "out of fold", json.dumps(
        {k: best[k] for k in ("recall", "fp", "recall_by_category", "fp_by_category")}))
    d = data_cache[(best["windows"], best["attack_windows"], best["pooling"])]
    X, y = d.train_set(np.ones(len(items), dtype=bool), best["augment"])
    W, b = fit(X, y, best["l2"])
    weights = [[float(f"{v:.6g}") for v in list(W[:, k]) + [b[k]]] for k in range(len(CLASSES))]

    chars, stride, most = (int(v) for v in best["windows"].split(":"))
    out = {
        "version": f"clf-{corpus_version}-{3 if best['pooling'] == 'max' else 2}",
        "corpus_version": corpus_version,
        "model": "all-MiniLM-L6-v2",
        "classes": CLASSES,
        "embedding_dim": emb.shape[1],
        # token-level features after the embedding: "max" = the maximum of each hidden dimension over
        # the text's tokens (same width as the embedding), from the same forward pass
        "token_pooling": [] if best["pooling"] == "mean" else [best["pooling"]],
        "rules": RULES,
        "extra": ["log_chars"],
        "threshold": best["cutoff"],
        "windows": {"chars": chars, "stride": stride, "max": most},
        "weights": weights,
        "selection": {
            "rule": f"5-fold group cross-validation on the training corpus; cutoff = lowest with out-of-fold "
                    f"false positives <= {FP_BUDGET:.1%} overall and <= {2 * FP_BUDGET:.1%} per benign category; "
                    f"among candidates within that budget, the best worst-category recall",
            "rows": len(items),
            "augmented_items": len(aug_items),
            "training_rows_final": int(len(y)),
            "chosen": {k: best[k] for k in CHOSEN},
            "out_of_fold": {k: best[k] for k in ("recall", "fp", "recall_by_category", "fp_by_category")},
            "candidates": [{k: c[k] for k in KEYS} for c in candidates],
            "baselines_out_of_fold": {k: {"recall": round(v["recall"], 4), "fp": round(v["fp"], 4)}
                                      for k, v in baselines.items()},
        },
    }
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
