#!/usr/bin/env python3
"""Training-data augmentation for the injection classifier, from the training corpus alone.

    python3 crates/semantic/data/injection/src/augment.py /tmp/injection-augment.jsonl

Writes JSON lines (the corpus format plus `sources`, the groups each item was made from, and
`inserted`, the sentence that was put in) for `infergate semantic features --input ...`:

- `indirect_injection` attacks: a benign training document (category `documents`) — sometimes two
  or three of them joined, to make long documents — with a short training attack
  (`instruction_override`, `prompt_leak` or `obfuscation`, at most 80 words) inserted at a random
  paragraph or sentence boundary. This is the case a classifier that reads only the first 256
  tokens of a text, or reads a whole document at once, misses: a few attack words in a long,
  ordinary document.
- benign `documents`: the same kind of documents with a benign `hard_negative` or `general`
  training prompt inserted instead (a document that mentions prompts, instructions or
  jailbreaks, or asks an ordinary question, is not an attack).

`train.py` uses an augmented item only in training folds that hold every group in `sources`, so
cross-validation never trains on a test fold's document or attack. Deterministic (fixed seed).
"""
import gzip
import json
import os
import random
import re
import sys

OUT = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 20261124
PER_DOC_ATTACK = 3
PER_DOC_BENIGN = 1

rows = [json.loads(l) for l in gzip.open(os.path.join(ROOT, "corpus.jsonl.gz"), "rt", encoding="utf-8") if l.strip()]
version = rows[0]["version"]
rows = [r for r in rows[1:] if r.get("text")]
docs = [r for r in rows if r["label"] == "benign" and r["category"] == "documents"]
payloads = [r for r in rows if r["label"] == "attack"
            and r["category"] in ("instruction_override", "prompt_leak", "obfuscation")
            and len(r["text"].split()) <= 80]
fillers = [r for r in rows if r["label"] == "benign" and r["category"] in ("hard_negative", "general")
           and len(r["text"].split()) <= 80]
rng = random.Random(SEED)


def split_points(text):
    """Offsets where a sentence can go: paragraph breaks, line breaks, sentence ends."""
    pts = [m.end() for m in re.finditer(r"\n\s*\n|\n|(?<=[.!?])\s+", text)]
    return [p for p in pts if 0 < p < len(text)] or [len(text)]


def insert(doc, sentence):
    p = rng.choice(split_points(doc))
    sep = "\n\n" if rng.random() < 0.5 else " "
    return doc[:p].rstrip() + sep + sentence.strip() + sep + doc[p:].lstrip()


def document():
    """One training document, or two or three joined (a long one)."""
    picks = [rng.choice(docs)]
    if rng.random() < 0.4:
        picks += rng.sample(docs, rng.choice((1, 2)))
    return "\n\n".join(d["text"] for d in picks), [d["group"] for d in picks]


out = []
for i in range(len(docs) * PER_DOC_ATTACK):
    doc, groups = document()
    a = rng.choice(payloads)
    out.append(dict(text=insert(doc, a["text"]), label="attack", category="indirect_injection",
                    source=f"augment.py: training documents + a training {a['category']} attack inserted",
                    group=f"aug:{i}", sources=groups + [a["group"]], inserted=a["text"]))
for i in range(len(docs) * PER_DOC_BENIGN):
    doc, groups = document()
    b = rng.choice(fillers)
    out.append(dict(text=insert(doc, b["text"]), label="benign", category="documents",
                    source=f"augment.py: training documents + a training {b['category']} prompt inserted",
                    group=f"augb:{i}", sources=groups + [b["group"]], inserted=b["text"]))
with open(OUT, "w") as f:
    f.write(json.dumps({"version": f"augment-{version}"}) + "\n")
    for r in out:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print(f"{len(out)} augmented items ({len(docs) * PER_DOC_ATTACK} attacks) written to {OUT}", file=sys.stderr)
