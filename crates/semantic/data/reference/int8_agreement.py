#!/usr/bin/env python3
"""Would an int8 forward pass still agree with the reference vectors?

Answers the question before anyone writes an int8 kernel: all-MiniLM-L6-v2's forward pass in
numpy, with every linear layer computed from quantised inputs and weights, compared by cosine
with the sentence-transformers vectors in minilm-l6-v2.json (the target is >= 0.999 for every
sentence). Int8 dot products (VPDPBUSD) do twice the multiplies per instruction of the bf16 ones
the gateway uses on CPUs without AMX, so this is the one arithmetic change left that could make a
long prompt's embedding markedly faster on such a CPU.

    python3 -m venv /tmp/q8 && /tmp/q8/bin/pip install numpy safetensors tokenizers
    /tmp/q8/bin/python int8_agreement.py ../../../../models/all-MiniLM-L6-v2 [MODE ...]

Modes (all by default):
  f32      the model as trained (checks this script against the reference)
  bf16     inputs and weights rounded to bf16, f32 accumulation (what the gateway runs)
  int8     weights int8 per output channel, activations int8 per token (symmetric)
  uint8    the same with asymmetric activations (a zero point per token, as VPDPBUSD takes)
  int8-ffn int8 everywhere but the FFN down-projection, whose input (GELU output) has the
           widest range

Prints, per mode, the lowest and the mean cosine over the reference sentences.
"""
import json
import math
import pathlib
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

HIDDEN, HEADS = 384, 12
HEAD_DIM = HIDDEN // HEADS
REFERENCE = pathlib.Path(__file__).with_name("minilm-l6-v2.json")
ERF = np.vectorize(math.erf)


def bf16(x):
    """Round to the nearest bf16 (ties to even), kept as f32."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def int8_rows(x):
    """Symmetric int8 per row (token), dequantised."""
    scale = np.abs(x).max(-1, keepdims=True) / 127
    scale[scale == 0] = 1
    return np.clip(np.round(x / scale), -127, 127) * scale


def uint8_rows(x):
    """Asymmetric uint8 per row with a zero point, dequantised."""
    lo, hi = x.min(-1, keepdims=True), x.max(-1, keepdims=True)
    scale = (hi - lo) / 255
    scale[scale == 0] = 1
    zero = np.round(-lo / scale)
    return (np.clip(np.round(x / scale) + zero, 0, 255) - zero) * scale


class Model:
    def __init__(self, model_dir, mode):
        self.w = load_file(str(model_dir / "model.safetensors"))
        self.prefix = "" if "embeddings.word_embeddings.weight" in self.w else "bert."
        self.mode = mode
        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(256)  # sentence-transformers' max_seq_length for this model

    def get(self, name):
        return self.w[self.prefix + name].astype(np.float32)

    def norm(self, x, name):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * self.get(name + ".weight") + self.get(name + ".bias")

    def linear(self, x, name, down=False):
        w, b = self.get(name + ".weight"), self.get(name + ".bias")  # w: (out, in)
        mode = self.mode
        if mode == "int8-ffn":
            mode = "bf16" if down else "int8"
        if mode == "f32":
            return x @ w.T + b
        if mode == "bf16":
            return bf16(x) @ bf16(w).T + b
        w8 = int8_rows(w)  # per output channel
        x8 = int8_rows(x) if mode == "int8" else uint8_rows(x)
        return x8 @ w8.T + b

    def embed(self, text):
        ids = np.array(self.tok.encode(text).ids)
        n = len(ids)
        x = (self.get("embeddings.word_embeddings.weight")[ids]
             + self.get("embeddings.position_embeddings.weight")[:n]
             + self.get("embeddings.token_type_embeddings.weight")[0])
        x = self.norm(x, "embeddings.LayerNorm")
        for layer in range(6):
            p = f"encoder.layer.{layer}."
            q, k, v = (self.linear(x, p + "attention.self." + m).reshape(n, HEADS, HEAD_DIM).transpose(1, 0, 2)
                       for m in ("query", "key", "value"))
            s = q @ k.transpose(0, 2, 1) / math.sqrt(HEAD_DIM)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(1, 0, 2).reshape(n, HIDDEN)
            x = self.norm(self.linear(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            up = self.linear(x, p + "intermediate.dense")
            up = 0.5 * up * (1 + ERF(up / math.sqrt(2)))
            x = self.norm(self.linear(up, p + "output.dense", down=True) + x, p + "output.LayerNorm")
        e = x.mean(0)
        return e / np.linalg.norm(e)


def main():
    model_dir = pathlib.Path(sys.argv[1])
    modes = sys.argv[2:] or ["f32", "bf16", "int8", "uint8", "int8-ffn"]
    items = json.loads(REFERENCE.read_text())["items"]
    for mode in modes:
        model = Model(model_dir, mode)
        cos = []
        for item in items:
            ref = np.array(item["vector"], dtype=np.float64)
            cos.append(float(model.embed(item["text"]) @ (ref / np.linalg.norm(ref))))
        print(f"{mode:9} lowest cosine {min(cos):.6f}  mean {np.mean(cos):.6f}  ({len(cos)} sentences)")


if __name__ == "__main__":
    main()
