"""Read an `infergate semantic features --tokens` dump (train.py, report.py)."""
import numpy as np


def read_tokens(path, dim=384):
    """Each sequence's final hidden states, float32 (n, dim), in the order written: per sequence
    a little-endian u32 token count, then count x dim bf16 (the high half of an f32)."""
    raw = np.fromfile(path, dtype=np.uint8)
    pos = 0
    while pos < len(raw):
        n = int(raw[pos:pos + 4].view("<u4")[0])
        pos += 4
        u = raw[pos:pos + n * dim * 2].view("<u2").astype(np.uint32) << 16
        pos += n * dim * 2
        yield u.view(np.float32).reshape(n, dim)
