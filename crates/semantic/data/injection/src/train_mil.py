#!/usr/bin/env python3
"""A learned per-token scorer against dilution, tried beside the shipped classifier (training
data only; the evaluation sets play no part).

    B=target/release/infergate; M=models/all-MiniLM-L6-v2
    $B semantic features --model-dir $M --windows 600:300:8 --out /tmp/c.jsonl --tokens /tmp/c.tok
    $B semantic features --model-dir $M --windows 600:300:8 --input /tmp/inj-aug.jsonl \
        --out /tmp/a.jsonl --tokens /tmp/a.tok
    /tmp/venv/bin/python crates/semantic/data/injection/src/train_mil.py /tmp/inj-aug.jsonl \
        600:300:8=/tmp/c.jsonl,/tmp/a.jsonl,/tmp/c.tok,/tmp/a.tok

Why: the shipped classifier reads the mean of a window's token states; one instruction inside a
document is a few tokens of hundreds and moves the mean little. Here every token of every text
and window gets a score s_t = u . h_t + c from its final hidden state h_t (contextual: the
encoder has already read the sentence around it), optionally averaged over the K tokens either
side (a phrase score); a sequence's score is the maximum of its token scores, or a smooth
maximum (log-mean-exp with sharpness R). u and c are learned by multiple-instance learning:

- a negative bag is one sequence known to hold no attack: a benign text, a window of a benign
  text, a window of an attacked document that is part of the same document without the attack
  (`train.window_labels`), a window of an augmented document that holds none of the inserted
  attack; every one of its tokens must score low;
- a positive bag is an attack text with all its windows (at least one token somewhere is an
  attack), or a window known to hold the attack;

loss: class-balanced logistic loss on the bag score (the maximum over the bag's sequences),
L2 on u; full-batch Adam on standardised states (the standardisation folded into u).

Evaluation, as `train.py` does it: the same 5 group folds (augmented items only in folds that
hold all their source groups); the shipped classifier (mean pooling, no attack windows, L2 1e-3)
is refitted per fold the same way, so its out-of-fold scores reproduce the shipped selection run;
the token scorer is fitted on the same training folds. A text is flagged when a rule fires, or
its classifier probability reaches t1, or its token score (maximum over the text and its
windows) reaches t2. (t1, t2) are chosen on the out-of-fold scores by train.py's rule: false
positives <= 5% overall and <= 10% per benign category, then the best worst-category recall,
then the best recall. As a check on how much choosing two cutoffs flatters the figures, the
pair is also chosen on four folds' out-of-fold scores and applied to the fifth ("nested").

Environment: MIL_CONFIGS="pool:K:L2[:R];..." (pool = max or lme; empty: only the shipped
classifier with the rules of the feature files, no token dumps needed), MIL_ITERS, MIL_WEAK=1
(also the classifier with L2 1e-4 on the finer cutoff grid), MIL_STACK="cfg;..." (stack saved
token scores of those configs with the classifier), MIL_OUT (a JSON file for the results).
Intermediate scores go to $MIL_WORK (default /tmp/inject4).
"""
import json
import os
import sys
import time

import numpy as np

import train as T

SPEC = "600:300:8"
DIM = 384
ITERS = int(os.environ.get("MIL_ITERS", "250"))
CONFIGS = [c for c in os.environ.get("MIL_CONFIGS", "max:0:1e-3;max:2:1e-3;lme:0:1e-3:4").split(";") if c]
OUT = os.environ.get("MIL_OUT")
WORK = os.environ.get("MIL_WORK", "/tmp/inject4")
os.makedirs(WORK, exist_ok=True)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def read_dump(path, H, at):
    """Copy a `--tokens` dump into H from row `at`; returns (starts, lengths) of its sequences."""
    raw = np.fromfile(path, dtype=np.uint8)
    pos, starts, lens = 0, [], []
    while pos < len(raw):
        n = int(raw[pos:pos + 4].view("<u4")[0])
        pos += 4
        u = raw[pos:pos + n * DIM * 2].view("<u2").astype(np.uint32) << 16
        pos += n * DIM * 2
        H[at:at + n] = u.view(np.float32).reshape(n, DIM)
        starts.append(at)
        lens.append(n)
        at += n
    return starts, lens


def dump_rows(path):
    raw = np.fromfile(path, dtype=np.uint8)
    pos, total = 0, 0
    while pos < len(raw):
        n = int(raw[pos:pos + 4].view("<u4")[0])
        pos += 4 + n * DIM * 2
        total += n
    return total


class Tokens:
    """Every sequence (whole texts and windows of the corpus, then of the augmented items) with
    its owner (corpus item i, or augmented item j as len(items) + j), kind and label."""

    def __init__(self):
        files = T.SPECS[SPEC].split(",")
        cf, af, ct, at = files[:4]
        feats = [json.loads(l) for l in open(cf) if l.strip()]
        afeats = [json.loads(l) for l in open(af) if l.strip()]
        n_c, n_a = dump_rows(ct), dump_rows(at)
        log(f"tokens: {n_c} corpus + {n_a} augmented rows, {(n_c + n_a) * DIM * 4 / 1e9:.1f} GB")
        self.H = np.empty((n_c + n_a, DIM), dtype=np.float32)
        s1, l1 = read_dump(ct, self.H, 0)
        s2, l2 = read_dump(at, self.H, n_c)
        self.start = np.array(s1 + s2)
        self.len = np.array(l1 + l2)
        owner, label, whole = [], [], []
        N = len(T.items)
        for group, its, off in ((feats, T.items, 0), (afeats, T.aug_items, N)):
            assert len(group) == len(its)
            for i, (f, it) in enumerate(zip(group, its)):
                owner.append(off + i)
                label.append(T.label(it))
                whole.append(True)
            for i, (f, it) in enumerate(zip(group, its)):
                for lab in T.window_labels(it, f["windows"], "none"):
                    owner.append(off + i)
                    label.append(-1 if lab is None else lab)
                    whole.append(False)
        self.owner = np.array(owner)
        self.label = np.array(label)  # class index, 0 benign, -1 unknown
        self.whole = np.array(whole)
        assert len(self.owner) == len(self.start), (len(self.owner), len(self.start))
        self.seq_of = np.repeat(np.arange(len(self.start)), self.len)
        self.n_items = N + len(T.aug_items)
        self.item_y = np.concatenate([T.y_items, [T.label(it) for it in T.aug_items]]) != 0

    def smoother(self, k):
        """(lo, hi) per token: the rows averaged for its phrase score (K either side, same sequence)."""
        t = np.arange(len(self.H))
        s0 = self.start[self.seq_of]
        e0 = s0 + self.len[self.seq_of]
        return np.maximum(t - k, s0), np.minimum(t + k + 1, e0)


def smooth(s, lohi):
    if lohi is None:
        return s
    lo, hi = lohi
    c = np.concatenate([[0.0], np.cumsum(s, dtype=np.float64)])
    return ((c[hi] - c[lo]) / (hi - lo)).astype(np.float32)


def smooth_grad(g, lohi):
    """Transpose of `smooth`: each token's gradient spread back over the rows it averaged."""
    if lohi is None:
        return g
    lo, hi = lohi
    w = g / (hi - lo)
    n = len(g) + 1
    d = np.bincount(lo, w, minlength=n) - np.bincount(hi, w, minlength=n)
    return np.cumsum(d)[:-1].astype(np.float32)


def seq_pool(tk, s, pool, r):
    """Per sequence: pooled score and, per token, d(pooled)/d(s_t)."""
    starts = tk.start
    if pool == "max":
        m = np.maximum.reduceat(s, starts)
        arg = np.zeros(len(s), dtype=np.float32)
        # first argmax of each sequence
        hit = s == m[tk.seq_of]
        first = np.flatnonzero(hit)
        seqs = tk.seq_of[first]
        keep = np.ones(len(first), dtype=bool)
        keep[1:] = seqs[1:] != seqs[:-1]
        arg[first[keep]] = 1.0
        return m, arg
    m = np.maximum.reduceat(s, starts)
    e = np.exp(r * (s - m[tk.seq_of]))
    tot = np.add.reduceat(e, starts)
    z = m + np.log(tot / tk.len) / r
    return z.astype(np.float32), (e / tot[tk.seq_of]).astype(np.float32)


def bags(tk, item_ok):
    """(bag of each sequence as a list of (bag id, seq ids), bag labels) for the items allowed."""
    bag_seqs, y = [], []
    ok = item_ok[tk.owner]
    # negative bags: each sequence known to be clean
    for q in np.flatnonzero(ok & (tk.label == 0)):
        bag_seqs.append(np.array([q]))
        y.append(0)
    # positive bags: each attack item with all its sequences, and each window known to be an attack
    att_items = np.flatnonzero(item_ok & tk.item_y)
    by_owner = {}
    for q in np.flatnonzero(ok):
        by_owner.setdefault(tk.owner[q], []).append(q)
    for i in att_items:
        bag_seqs.append(np.array(by_owner[i]))
        y.append(1)
    for q in np.flatnonzero(ok & (tk.label > 0) & ~tk.whole):
        bag_seqs.append(np.array([q]))
        y.append(1)
    return bag_seqs, np.array(y, dtype=np.float32)


def fit_tokens(tk, item_ok, pool, k, l2, r, lohi):
    bag_seqs, y = bags(tk, item_ok)
    members = np.concatenate(bag_seqs)
    bag_id = np.repeat(np.arange(len(bag_seqs)), [len(b) for b in bag_seqs])
    order = np.argsort(bag_id, kind="stable")
    members, bag_id = members[order], bag_id[order]
    bag_start = np.flatnonzero(np.r_[True, bag_id[1:] != bag_id[:-1]])
    # standardisation from the training sequences' tokens (a sample)
    rows = np.flatnonzero(item_ok[tk.owner[tk.seq_of]])
    sample = tk.H[rows[:: max(1, len(rows) // 200000)]]
    mu, sd = sample.mean(0), sample.std(0) + 1e-6
    w_pos = 0.5 / y.mean()
    w_neg = 0.5 / (1 - y.mean())
    wt = np.where(y > 0, w_pos, w_neg) / len(y)
    u = np.zeros(DIM, dtype=np.float32)
    c = np.float32(0.0)
    mu_u, v_u, mu_c, v_c = np.zeros(DIM), np.zeros(DIM), 0.0, 0.0
    lr = 0.02
    for it in range(1, ITERS + 1):
        ur = (u / sd).astype(np.float32)
        s = tk.H @ ur + np.float32(c - mu @ ur)
        s = smooth(s, lohi)
        zs, dz = seq_pool(tk, s, pool, r)
        zm = zs[members]
        bz = np.maximum.reduceat(zm, bag_start)
        # which sequence gives each bag its maximum
        best = np.zeros(len(members), dtype=bool)
        hit = zm == bz[bag_id]
        first = np.flatnonzero(hit)
        keep = np.ones(len(first), dtype=bool)
        keep[1:] = bag_id[first][1:] != bag_id[first][:-1]
        best[first[keep]] = True
        p = 1 / (1 + np.exp(-np.clip(bz, -30, 30)))
        loss = -(wt * (y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))).sum()
        gb = wt * (p - y)  # d loss / d bag score
        gseq = np.zeros(len(tk.start), dtype=np.float32)
        np.add.at(gseq, members[best], gb[bag_id[best]])
        gs = gseq[tk.seq_of] * dz
        gs = smooth_grad(gs, lohi)
        idx = np.flatnonzero(np.abs(gs) > 1e-9)
        gsum = gs[idx].sum()
        # d loss / d ur: few tokens carry a gradient under max pooling, most under a smooth max
        g_raw = tk.H[idx].T @ gs[idx] if len(idx) < len(gs) // 8 else tk.H.T @ gs
        gu = (g_raw - mu * gsum) / sd + l2 * u
        gc = gsum
        b1, b2 = 0.9, 0.999
        mu_u = b1 * mu_u + (1 - b1) * gu
        v_u = b2 * v_u + (1 - b2) * gu * gu
        mu_c = b1 * mu_c + (1 - b1) * gc
        v_c = b2 * v_c + (1 - b2) * gc * gc
        u = (u - lr * (mu_u / (1 - b1 ** it)) / (np.sqrt(v_u / (1 - b2 ** it)) + 1e-8)).astype(np.float32)
        c = np.float32(c - lr * (mu_c / (1 - b1 ** it)) / (np.sqrt(v_c / (1 - b2 ** it)) + 1e-8))
        if it % 50 == 0 or it == 1:
            log(f"  iter {it} loss {loss:.4f} active tokens {len(idx)}")
    ur = (u / sd).astype(np.float32)
    return ur, float(c - mu @ ur)


def item_scores(tk, ur, c, pool, r, lohi):
    """Per corpus item: the highest sequence score over the text and its windows."""
    s = smooth(tk.H @ ur + np.float32(c), lohi)
    zs, _ = seq_pool(tk, s, pool, r)
    z = np.full(tk.n_items, -np.inf)
    np.maximum.at(z, tk.owner, zs)
    return z[: len(T.items)]


def classifier_oof(l2=1e-3, attack_windows="none"):
    """Out-of-fold attack probability of the mean-pooled classifier (by default the shipped
    classifier's configuration)."""
    d = T.Data(SPEC, attack_windows, "mean")
    p = np.zeros(len(T.items))
    for f in range(T.FOLDS):
        tr, te = T.fold != f, T.fold == f
        aug_ok = np.array([f not in s for s in T.aug_folds])
        X, y = d.train_set(tr, True, aug_ok)
        W, b = T.fit(X, y, l2)
        p[te] = d.score(te, W, b)[te]
    return p, d.any_rule


T1 = [round(float(t), 3) for t in np.arange(0.05, 0.991, 0.01)] + [0.995, 0.999]
T1_FINE = sorted(set(T1 + [round(0.991 + 0.001 * i, 3) for i in range(9)]
                    + [1 - 10 ** -e for e in np.arange(3.25, 6.01, 0.25)]))


def choose(p, z, any_rule, mask, t1s, t2s):
    """(t1, t2) within budget on `mask`, best worst-category recall then recall; None if none."""
    t2s = np.asarray(t2s)
    ben = (~T.is_attack) & mask
    ben_cats = [ben & (T.cats == c) for c in T.benign_cats]
    att_cats = [T.is_attack & mask & (T.cats == c) for c in T.CLASSES[1:]]
    att = T.is_attack & mask
    zt = z[None, :] >= t2s[:, None]  # (t2, items)
    best = None
    for t1 in t1s:
        flag = zt | (any_rule | (p >= t1))[None, :]
        ok = flag[:, ben].mean(1) <= T.FP_BUDGET
        for m in ben_cats:
            ok &= flag[:, m].mean(1) <= 2 * T.FP_BUDGET
        if not ok.any():
            continue
        worst = np.min([flag[:, m].mean(1) for m in att_cats], axis=0)
        rec = flag[:, att].mean(1)
        for j in np.flatnonzero(ok):
            key = (worst[j], rec[j])
            if best is None or key > best[0]:
                best = (key, t1, float(t2s[j]))
    return None if best is None else best[1:]


def report(name, flag):
    fig = T.figures(flag)
    log(name, f"recall {fig['recall']:.4f} fp {fig['fp']:.4f}", json.dumps(fig["recall_by_category"]),
        json.dumps(fig["fp_by_category"]))
    return fig


def evaluate(name, p, z, any_rule, t1s):
    """Both ways of choosing (t1, t2): on all out-of-fold scores, and nested by fold."""
    ben = ~T.is_attack
    t2s = [np.inf] + sorted(set(np.quantile(z[ben], np.linspace(0.85, 1.0, 61)).tolist()))
    every = np.ones(len(T.items), dtype=bool)
    pick = choose(p, z, any_rule, every, t1s, t2s)
    out = {"name": name}
    if pick is None:
        log(name, "nothing within budget")
        return out
    t1, t2 = pick
    out["cutoffs"] = [t1, t2]
    out["chosen"] = report(f"{name} t1={t1} t2={t2:.3f}", any_rule | (p >= t1) | (z >= t2))
    flag = np.zeros(len(T.items), dtype=bool)
    for f in range(T.FOLDS):
        te = T.fold == f
        pk = choose(p, z, any_rule, ~te, t1s, t2s) or (1.01, np.inf)
        flag[te] = (any_rule | (p >= pk[0]) | (z >= pk[1]))[te]
    out["nested"] = report(f"{name} nested", flag)
    return out


def fit_stacker(F, y, l2=1e-3, iters=50):
    """Class-balanced logistic regression on a few columns (Newton steps)."""
    X = np.hstack([F, np.ones((len(F), 1))])
    w = np.zeros(X.shape[1])
    sw = np.where(y, 0.5 / y.mean(), 0.5 / (1 - y.mean())) / len(y)
    for _ in range(iters):
        q = 1 / (1 + np.exp(-np.clip(X @ w, -30, 30)))
        g = X.T @ (sw * (q - y)) + l2 * w
        Hs = (X * (sw * q * (1 - q))[:, None]).T @ X + l2 * np.eye(len(w))
        w -= np.linalg.solve(Hs, g)
    return w


def stacked(p, z):
    """Out-of-fold stacked score: a logistic regression on (logit p, z, logit p x z) fitted on the
    other folds' out-of-fold scores."""
    lp = np.log(np.clip(p, 1e-7, 1 - 1e-7) / np.clip(1 - p, 1e-7, 1))
    zz = np.clip(z, -50, 50)
    F = np.stack([lp / 10, zz / 10], 1)
    out = np.zeros(len(p))
    for f in range(T.FOLDS):
        te = T.fold == f
        w = fit_stacker(F[~te], T.is_attack[~te])
        out[te] = 1 / (1 + np.exp(-np.clip(np.hstack([F[te], np.ones((te.sum(), 1))]) @ w, -30, 30)))
    return out


def evaluate_one(name, q, any_rule):
    """One score, the cutoff on a grid of its benign quantiles, chosen as train.py does (and
    nested)."""
    t1s = sorted(set(np.quantile(q[~T.is_attack], np.linspace(0.8, 1.0, 201)).tolist()))
    none = np.full(len(q), -np.inf)
    return evaluate(name, q, none, any_rule, t1s)


def main():
    if os.environ.get("MIL_STACK"):
        p, any_rule = classifier_oof()
        for cfg in os.environ["MIL_STACK"].split(";"):
            z = np.load(f"{WORK}/z-{cfg.replace(':', '_')}.npy")
            evaluate_one(f"{cfg} stacked", stacked(p, z), any_rule)
        return
    log(f"{len(T.items)} corpus items, {len(T.aug_items)} augmented; configs {CONFIGS}")
    p, any_rule = classifier_oof()
    results = []
    none = np.full(len(T.items), -np.inf)
    results.append(evaluate("shipped classifier, train.py grid", p, none, any_rule, T1))
    results.append(evaluate("shipped classifier, fine grid", p, none, any_rule, T1_FINE))
    if os.environ.get("MIL_WEAK"):
        for aw in ("none", "all"):
            pw, _ = classifier_oof(1e-4, aw)
            results.append(evaluate(f"classifier L2 1e-4 windows {aw}, fine grid", pw, none, any_rule, T1_FINE))
    if OUT:
        json.dump(results, open(OUT, "w"), indent=1)
    if not CONFIGS:
        return
    tk = Tokens()
    log(f"{len(tk.start)} sequences")
    for cfg in CONFIGS:
        parts = cfg.split(":")
        pool, k, l2 = parts[0], int(parts[1]), float(parts[2])
        r = float(parts[3]) if len(parts) > 3 else 1.0
        lohi = tk.smoother(k) if k > 0 else None
        z = np.zeros(len(T.items))
        for f in range(T.FOLDS):
            log(cfg, "fold", f)
            tr, te = T.fold != f, T.fold == f
            item_ok = np.concatenate([tr, np.array([f not in s for s in T.aug_folds])])
            ur, c = fit_tokens(tk, item_ok, pool, k, l2, r, lohi)
            z[te] = item_scores(tk, ur, c, pool, r, lohi)[te]
        report(f"{cfg} tokens alone at 0", any_rule | (z >= 0))
        results.append(evaluate(f"{cfg} tokens alone", np.zeros(len(T.items)), z, any_rule, [1.01]))
        results.append(evaluate(f"{cfg} + classifier", p, z, any_rule, T1_FINE))
        np.save(f"{WORK}/z-{cfg.replace(':', '_')}.npy", z)
        if OUT:
            json.dump(results, open(OUT, "w"), indent=1)
    np.save(f"{WORK}/p-clf.npy", p)


if __name__ == "__main__":
    main()
