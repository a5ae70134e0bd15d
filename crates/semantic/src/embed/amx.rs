//! The BERT forward pass for CPUs with bf16 matrix instructions — AMX-BF16 (Xeon Sapphire
//! Rapids and later) or AVX512-BF16 (AMD Zen 4 and later): the linear layers (99% of the
//! arithmetic) as bf16 multiplies with f32 accumulation ([`infergate_amx`]), everything else —
//! embeddings, attention, softmax, GELU, layer norm, pooling — in f32 on AVX-512: each kernel is
//! a type implementing [`NullaryFnOnce`] whose `#[inline(always)]` body [`pulp`] compiles with
//! AVX-512 enabled. (Closures are not enough: the compiler outlines a large closure body from
//! the target-feature wrapper, and the loops inside fall back to SSE2 and library calls for
//! `mul_add` — measured 6× slower.)
//!
//! Same model and same results as the candle forward in `bert.rs` to cosine ≥ 0.9999 (bf16 has
//! 8 significant bits; the encoder's tests compare both paths and the reference vectors), about
//! ten times faster on one core.
//!
//! The texts of a batch are laid end to end, without padding: linear layers see one matrix of
//! all tokens, attention runs per text. Scratch buffers live per thread and are reused, so a
//! forward pass allocates only its result.

use std::cell::RefCell;

use infergate_amx::{bf16, Aligned, Bf16Matmul, PackedWeights, BLOCK_ROWS, ROW_MULTIPLE};
use pulp::bytemuck::cast;
use pulp::x86::V4;
use pulp::{as_arrays, as_arrays_mut, NullaryFnOnce};

use super::EmbedError;

/// Most token rows in one pass; longer batches are split (bounds the per-thread scratch).
pub(super) const MAX_ROWS: usize = 512;

pub(super) struct Linear {
    w: PackedWeights,
    b: Vec<f32>,
}

impl Linear {
    /// `w` is `(in, out)` row-major.
    pub(super) fn new(
        w: &[f32],
        b: Vec<f32>,
        input: usize,
        out: usize,
    ) -> Result<Self, EmbedError> {
        let w = PackedWeights::pack(w, input, out).map_err(|e| EmbedError::Model(e.to_string()))?;
        if b.len() != out {
            return Err(EmbedError::Model(format!(
                "bias of {} for {out} outputs",
                b.len()
            )));
        }
        Ok(Self { w, b })
    }
}

pub(super) struct Norm {
    pub(super) gamma: Vec<f32>,
    pub(super) beta: Vec<f32>,
    pub(super) eps: f32,
}

pub(super) struct Layer {
    pub(super) qkv: Linear,
    pub(super) attn_out: Linear,
    pub(super) attn_norm: Norm,
    pub(super) up: Linear,
    pub(super) down: Linear,
    pub(super) out_norm: Norm,
}

pub(super) struct AmxBert {
    amx: Bf16Matmul,
    simd: V4,
    /// `(vocab, hidden)`, `(max_positions, hidden)`, `(hidden)`.
    word: Vec<f32>,
    position: Vec<f32>,
    token_type0: Vec<f32>,
    emb_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    intermediate: usize,
}

/// Queries per register block in attention: 8 rows × 16 columns of f32 accumulators.
const QUERY_BLOCK: usize = 8;

#[derive(Default)]
struct Attention {
    queries: Vec<f32>,
    keys_t: Vec<f32>,
    values: Vec<f32>,
    scores: Vec<f32>,
}

impl Attention {
    fn grow(&mut self, tokens: usize, head_dim: usize) {
        let nq = tokens.div_ceil(QUERY_BLOCK) * QUERY_BLOCK;
        let nk = tokens.div_ceil(16) * 16;
        grow(&mut self.queries, nq * head_dim);
        grow(&mut self.keys_t, head_dim * nk);
        grow(&mut self.values, tokens * head_dim);
        grow(&mut self.scores, nq * nk);
    }
}

/// Per-thread buffers, grown to the largest batch seen. Matmul operands are cache-line
/// aligned ([`Aligned`]): tile loads of unaligned rows are ~6× slower.
#[derive(Default)]
struct Scratch {
    /// Hidden states, `(rows, hidden)`, and their bf16 copy (the next matmul's input).
    x: Vec<f32>,
    xb: Aligned<u16>,
    /// Q, K, V side by side, `(rows, 3·hidden)`.
    qkv: Aligned<f32>,
    /// Attention output per token, bf16, `(rows, hidden)`.
    ctx: Aligned<u16>,
    /// One block of a matmul's output, `(BLOCK_ROWS, intermediate)` at most.
    out: Aligned<f32>,
    /// GELU(up-projection), bf16, `(rows, intermediate)`.
    up: Aligned<u16>,
    /// One head of one text: queries (biased, scaled) and values `(tokens, head_dim)`, keys
    /// transposed `(head_dim, tokens)`, scores `(tokens, tokens)`; tokens rounded up to whole
    /// register blocks.
    attention: Attention,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn grow<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}

impl AmxBert {
    /// `None` when this CPU or kernel cannot run AMX-BF16, or the head size is not a multiple of
    /// 16 (use the candle forward).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        word: Vec<f32>,
        position: Vec<f32>,
        token_type0: Vec<f32>,
        emb_norm: Norm,
        layers: Vec<Layer>,
        hidden: usize,
        heads: usize,
        intermediate: usize,
    ) -> Option<Self> {
        // Attention works on 16-wide slices of a head.
        if heads == 0 || !(hidden / heads).is_multiple_of(16) {
            return None;
        }
        Some(Self {
            amx: Bf16Matmul::detect()?,
            simd: V4::try_new()?,
            word,
            position,
            token_type0,
            emb_norm,
            layers,
            hidden,
            heads,
            intermediate,
        })
    }

    /// `amx-bf16` or `avx512-bf16`: which instructions run the linear layers.
    pub(super) fn engine_name(&self) -> &'static str {
        self.amx.engine().name()
    }

    /// Whether the CPU and kernel allow this forward pass at all.
    pub(super) fn available() -> bool {
        Bf16Matmul::detect().is_some() && V4::try_new().is_some()
    }

    /// One L2-normalised mean-pooled vector per token sequence. Sequences must be non-empty and
    /// at most the model's position count; together at most [`MAX_ROWS`] tokens.
    pub(super) fn forward(&self, batch: &[Vec<u32>]) -> Vec<Vec<f32>> {
        SCRATCH.with(|s| {
            let s = &mut s.borrow_mut();
            self.forward_in(s, batch);
            self.pool(
                batch,
                &s.x[..batch.iter().map(Vec::len).sum::<usize>() * self.hidden],
            )
        })
    }

    /// `f` applied to each text's final hidden states (`(tokens, hidden)` row-major, f32), from
    /// one forward pass over the batch (same limits as [`Self::forward`]).
    pub(super) fn forward_map<T>(
        &self,
        batch: &[Vec<u32>],
        f: &mut dyn FnMut(&[f32]) -> T,
    ) -> Vec<T> {
        SCRATCH.with(|s| {
            let s = &mut s.borrow_mut();
            self.forward_in(s, batch);
            let h = self.hidden;
            let mut start = 0;
            batch
                .iter()
                .map(|seq| {
                    let rows = &s.x[start * h..(start + seq.len()) * h];
                    start += seq.len();
                    f(rows)
                })
                .collect()
        })
    }

    /// The forward pass; leaves the final hidden states in `s.x[..tokens · hidden]`.
    fn forward_in(&self, s: &mut Scratch, batch: &[Vec<u32>]) {
        let h = self.hidden;
        let tokens: usize = batch.iter().map(Vec::len).sum();
        // Padding rows (zero) only round the matrix up to whole tiles.
        let rows = tokens.div_ceil(ROW_MULTIPLE) * ROW_MULTIPLE;
        let longest = batch.iter().map(Vec::len).max().unwrap_or(0);
        grow(&mut s.x, rows * h);
        s.xb.grow(rows * h);
        s.qkv.grow(rows * 3 * h);
        s.ctx.grow(rows * h);
        s.out.grow(BLOCK_ROWS * self.intermediate.max(h));
        s.up.grow(rows * self.intermediate);
        s.attention.grow(longest, h / self.heads);
        // Rows past the tokens must be finite: zero them in the matmul inputs.
        s.xb[tokens * h..rows * h].fill(0);
        s.ctx[tokens * h..rows * h].fill(0);
        s.up[tokens * self.intermediate..rows * self.intermediate].fill(0);

        self.embed(batch, &mut s.x[..tokens * h], &mut s.xb[..tokens * h]);
        for layer in &self.layers {
            self.layer(layer, s, batch, tokens, rows);
        }
    }

    fn layer(&self, l: &Layer, s: &mut Scratch, batch: &[Vec<u32>], tokens: usize, rows: usize) {
        let (h, i) = (self.hidden, self.intermediate);
        // attention
        self.amx
            .matmul(&s.xb[..rows * h], rows, &l.qkv.w, &mut s.qkv);
        let mut start = 0;
        for seq in batch {
            let n = seq.len();
            self.attention(
                &s.qkv[start * 3 * h..(start + n) * 3 * h],
                &l.qkv.b,
                n,
                &mut s.ctx[start * h..(start + n) * h],
                &mut s.attention,
            );
            start += n;
        }
        // Each matmul's epilogue runs on a block of rows while it is in cache.
        let x = &mut s.x[..tokens * h];
        let xb = &mut s.xb[..rows * h];
        let ctx = &s.ctx[..rows * h];
        self.amx
            .matmul_by_rows(ctx, rows, &l.attn_out.w, &mut s.out, |r, out| {
                let end = (r + out.len() / h).min(tokens);
                if r < end {
                    let (x, xb) = (&mut x[r * h..end * h], &mut xb[r * h..end * h]);
                    residual_norm(self.simd, out, &l.attn_out.b, &l.attn_norm, x, xb);
                }
            });
        // feed-forward
        let up = &mut s.up[..rows * i];
        self.amx
            .matmul_by_rows(xb, rows, &l.up.w, &mut s.out, |r, out| {
                let end = (r + out.len() / i).min(tokens);
                if r < end {
                    bias_gelu(self.simd, out, &l.up.b, &mut up[r * i..end * i]);
                }
            });
        self.amx
            .matmul_by_rows(up, rows, &l.down.w, &mut s.out, |r, out| {
                let end = (r + out.len() / h).min(tokens);
                if r < end {
                    let (x, xb) = (&mut x[r * h..end * h], &mut xb[r * h..end * h]);
                    residual_norm(self.simd, out, &l.down.b, &l.out_norm, x, xb);
                }
            });
    }

    /// word + position + token type 0, then layer norm; rows laid end to end.
    fn embed(&self, batch: &[Vec<u32>], x: &mut [f32], xb: &mut [u16]) {
        let h = self.hidden;
        let mut rows = x.chunks_exact_mut(h);
        for seq in batch {
            for (pos, (&id, row)) in seq.iter().zip(rows.by_ref()).enumerate() {
                let word = &self.word[id as usize * h..][..h];
                let position = &self.position[pos * h..][..h];
                for (((o, &w), &p), &t) in row
                    .iter_mut()
                    .zip(word)
                    .zip(position)
                    .zip(&self.token_type0)
                {
                    *o = w + p + t;
                }
            }
        }
        self.simd.vectorize(NormRows {
            add: None,
            norm: &self.emb_norm,
            x,
            xb,
        });
    }

    /// Multi-head self-attention over one text's `n` tokens: `qkv` is `(n, 3·hidden)` (Q, K,
    /// V side by side, before their `bias`), `ctx` receives `(n, hidden)` in bf16.
    ///
    /// Both products (scores = Q·Kᵀ, context = P·V) run on register blocks of
    /// [`QUERY_BLOCK`] queries × 16 columns, so the accumulators stay in registers.
    fn attention(&self, qkv: &[f32], bias: &[f32], n: usize, ctx: &mut [u16], a: &mut Attention) {
        self.simd.vectorize(HeadsAttention {
            simd: self.simd,
            qkv,
            bias,
            n,
            ctx,
            a,
            hidden: self.hidden,
            heads: self.heads,
        });
    }

    /// Mean over each text's tokens, then L2 normalisation.
    fn pool(&self, batch: &[Vec<u32>], x: &[f32]) -> Vec<Vec<f32>> {
        let h = self.hidden;
        let mut start = 0;
        batch
            .iter()
            .map(|seq| {
                let n = seq.len();
                let rows = &x[start * h..(start + n) * h];
                start += n;
                self.simd.vectorize(MeanPool { rows, hidden: h })
            })
            .collect()
    }
}

/// `x = LayerNorm(out + bias + x)` row by row, and `xb = bf16(x)`.
fn residual_norm(simd: V4, out: &[f32], bias: &[f32], norm: &Norm, x: &mut [f32], xb: &mut [u16]) {
    simd.vectorize(NormRows {
        add: Some((out, bias)),
        norm,
        x,
        xb,
    });
}

/// Row by row: `x = LayerNorm(x + out + bias)` (or of `x` alone), `xb = bf16(x)`.
struct NormRows<'a> {
    add: Option<(&'a [f32], &'a [f32])>,
    norm: &'a Norm,
    x: &'a mut [f32],
    xb: &'a mut [u16],
}

impl NullaryFnOnce for NormRows<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let h = self.norm.gamma.len();
        for (r, (x, xb)) in self
            .x
            .chunks_exact_mut(h)
            .zip(self.xb.chunks_exact_mut(h))
            .enumerate()
        {
            if let Some((out, bias)) = self.add {
                for ((x, &o), &b) in x.iter_mut().zip(&out[r * h..][..h]).zip(bias) {
                    *x += o + b;
                }
            }
            norm_row(self.norm, x, xb);
        }
    }
}

/// `x = LayerNorm(x)` (one token) and `xb = bf16(x)`.
#[inline(always)]
fn norm_row(norm: &Norm, x: &mut [f32], xb: &mut [u16]) {
    let h = x.len() as f32;
    let mean = sum(x) / h;
    let mut var = [0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in var.iter_mut().zip(c) {
            *a = (v - mean).mul_add(v - mean, *a);
        }
    }
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|&v| (v - mean) * (v - mean))
        .sum();
    let var = (var.iter().sum::<f32>() + tail) / h;
    let inv = 1.0 / (var + norm.eps).sqrt();
    for (((x, xb), &g), &b) in x
        .iter_mut()
        .zip(xb.iter_mut())
        .zip(&norm.gamma)
        .zip(&norm.beta)
    {
        let y = ((*x - mean) * inv).mul_add(g, b);
        *x = y;
        *xb = bf16(y);
    }
}

/// `up = bf16(GELU(out + bias))`, GELU with the exact erf (as BERT's `gelu`).
fn bias_gelu(simd: V4, out: &[f32], bias: &[f32], up: &mut [u16]) {
    simd.vectorize(BiasGelu { out, bias, up });
}

struct BiasGelu<'a> {
    out: &'a [f32],
    bias: &'a [f32],
    up: &'a mut [u16],
}

impl NullaryFnOnce for BiasGelu<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let n = self.bias.len();
        for (o, u) in self.out.chunks_exact(n).zip(self.up.chunks_exact_mut(n)) {
            for ((u, &o), &b) in u.iter_mut().zip(o).zip(self.bias) {
                let x = o + b;
                *u = bf16(0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)));
            }
        }
    }
}

/// Multi-head self-attention over one text's `n` tokens: `qkv` is `(n, 3·hidden)` (Q, K, V
/// side by side, before their `bias`), `ctx` receives `(n, hidden)` in bf16.
///
/// Both products (scores = Q·Kᵀ, context = P·V) run on register blocks of [`QUERY_BLOCK`]
/// queries × 16 columns, so the accumulators stay in registers.
struct HeadsAttention<'a> {
    simd: V4,
    qkv: &'a [f32],
    bias: &'a [f32],
    n: usize,
    ctx: &'a mut [u16],
    a: &'a mut Attention,
    hidden: usize,
    heads: usize,
}

impl NullaryFnOnce for HeadsAttention<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Self {
            simd,
            qkv,
            bias,
            n,
            ctx,
            a,
            hidden: h,
            heads,
        } = self;
        let d = h / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let nq = n.div_ceil(QUERY_BLOCK) * QUERY_BLOCK;
        let nk = n.div_ceil(16) * 16;
        let queries = &mut a.queries[..nq * d];
        let keys_t = &mut a.keys_t[..d * nk];
        let values = &mut a.values[..n * d];
        let scores = &mut a.scores[..nq * nk];
        // Padding queries and keys are zero (finite scores, dropped below).
        queries[n * d..].fill(0.0);
        keys_t.fill(0.0);
        for head in 0..heads {
            let (q0, k0, v0) = (head * d, h + head * d, 2 * h + head * d);
            let values = &mut values[..];
            for (j, row) in qkv.chunks_exact(3 * h).enumerate() {
                let q = &row[q0..q0 + d];
                for ((o, &x), &b) in queries[j * d..][..d].iter_mut().zip(q).zip(&bias[q0..]) {
                    *o = (x + b) * scale;
                }
                for (c, (&x, &b)) in row[k0..k0 + d].iter().zip(&bias[k0..]).enumerate() {
                    keys_t[c * nk + j] = x + b;
                }
                let v = &row[v0..v0 + d];
                for ((o, &x), &b) in values[j * d..][..d].iter_mut().zip(v).zip(&bias[v0..]) {
                    *o = x + b;
                }
            }
            // scores = Q · Kᵀ
            let zero = simd.splat_f32x16(0.0);
            for i0 in (0..nq).step_by(QUERY_BLOCK) {
                let q = &queries[i0 * d..(i0 + QUERY_BLOCK) * d];
                for jb in 0..nk / 16 {
                    let mut acc = [zero; QUERY_BLOCK];
                    for c in 0..d {
                        let k = cast(as_arrays::<16, f32>(&keys_t[c * nk..]).0[jb]);
                        for (r, acc) in acc.iter_mut().enumerate() {
                            *acc = simd.mul_add_f32x16(simd.splat_f32x16(q[r * d + c]), k, *acc);
                        }
                    }
                    for (r, acc) in acc.into_iter().enumerate() {
                        as_arrays_mut::<16, f32>(&mut scores[(i0 + r) * nk..]).0[jb] = cast(acc);
                    }
                }
            }
            for row in scores.chunks_exact_mut(nk) {
                softmax(&mut row[..n]);
            }
            // context = P · V, 16 of the head's dimensions at a time
            let values = as_arrays::<16, f32>(values).0;
            for i0 in (0..nq).step_by(QUERY_BLOCK) {
                let p = &scores[i0 * nk..(i0 + QUERY_BLOCK) * nk];
                for cb in 0..d / 16 {
                    let mut acc = [zero; QUERY_BLOCK];
                    for j in 0..n {
                        let v = cast(values[j * (d / 16) + cb]);
                        for (r, acc) in acc.iter_mut().enumerate() {
                            *acc = simd.mul_add_f32x16(simd.splat_f32x16(p[r * nk + j]), v, *acc);
                        }
                    }
                    for (r, acc) in acc.into_iter().enumerate().take(n.saturating_sub(i0)) {
                        let lanes: [f32; 16] = cast(acc);
                        let out = &mut ctx[(i0 + r) * h + q0 + cb * 16..][..16];
                        for (o, a) in out.iter_mut().zip(lanes) {
                            *o = bf16(a);
                        }
                    }
                }
            }
        }
    }
}

/// The mean of a text's token rows, L2-normalised.
struct MeanPool<'a> {
    rows: &'a [f32],
    hidden: usize,
}

impl NullaryFnOnce for MeanPool<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn call(self) -> Vec<f32> {
        let mut mean = vec![0f32; self.hidden];
        let mut n = 0usize;
        for row in self.rows.chunks_exact(self.hidden) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v;
            }
            n += 1;
        }
        let inv_n = 1.0 / n.max(1) as f32;
        for m in &mut mean {
            *m *= inv_n;
        }
        let norm = dot(&mean, &mean).sqrt().max(1e-12);
        for m in &mut mean {
            *m /= norm;
        }
        mean
    }
}

/// Sum in 16 lanes (vectorises; a plain float sum would not be reordered by the compiler).
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s = x.mul_add(y, *s);
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// In place: `exp(x - max) / Σ`.
#[inline(always)]
fn softmax(x: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for v in x.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / sum(x);
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// e^x to within ~2 ulp for x in [-87, 88] (clamped outside): 2^n · p(r) with Cephes' expf
/// polynomial. Written so that loops over it vectorise: n is rounded with the 1.5·2²³ trick
/// and moved into the exponent with integer ops (a float-to-int cast would not vectorise).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const SHIFTER: f32 = 12_582_912.0; // 1.5 · 2^23
    let x = x.clamp(-87.0, 88.0);
    let t = x.mul_add(std::f32::consts::LOG2_E, SHIFTER);
    let n = t - SHIFTER;
    let r = n.mul_add(-0.693_359_4, x);
    let r = n.mul_add(2.121_944_4e-4, r);
    let p = 1.987_569_1e-4_f32
        .mul_add(r, 1.398_199_9e-3)
        .mul_add(r, 8.333_452e-3)
        .mul_add(r, 4.166_579_6e-2)
        .mul_add(r, 0.166_666_65)
        .mul_add(r, 0.5);
    let e = p.mul_add(r * r, r) + 1.0;
    // The low bits of t hold n (two's complement): 2^n = (n + 127) << 23.
    e * f32::from_bits(t.to_bits().wrapping_add(127) << 23)
}

/// erf(x) to within 1.5e-7 (Abramowitz & Stegun 7.1.26, as PyTorch's vectorised CPU erf).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / 0.327_591_1f32.mul_add(a, 1.0);
    let poly = 1.061_405_4f32
        .mul_add(t, -1.453_152_1)
        .mul_add(t, 1.421_413_8)
        .mul_add(t, -0.284_496_74)
        .mul_add(t, 0.254_829_6)
        * t;
    (1.0 - poly * exp(-a * a)).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let (got, want) = (exp(x), f64::from(x).exp());
            assert!(
                ((f64::from(got) - want) / want).abs() < 5e-7,
                "exp({x}) = {got}, want {want}"
            );
        }
        for i in -600..=600 {
            let x = i as f32 / 100.0;
            let want = erf_f64(f64::from(x));
            assert!((f64::from(erf(x)) - want).abs() < 3e-7, "erf({x})");
        }
    }

    /// erf by its Taylor series (|x| ≤ 3) or continued fraction (|x| > 3), in f64.
    fn erf_f64(x: f64) -> f64 {
        let a = x.abs();
        let v = if a <= 3.0 {
            let mut term = a;
            let mut s = a;
            for n in 1..200 {
                term *= -a * a / n as f64;
                s += term / (2 * n + 1) as f64;
            }
            s * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut f = 0.0;
            for n in (1..60).rev() {
                f = n as f64 / 2.0 / (a + f);
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)
        };
        v.copysign(x)
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut x: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 20.0).collect();
        let before = x.clone();
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let m: f32 = before.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let denom: f64 = before.iter().map(|&v| f64::from(v - m).exp()).sum();
        for (p, &v) in x.iter().zip(&before) {
            let want = f64::from(v - m).exp() / denom;
            assert!((f64::from(*p) - want).abs() < 1e-6);
        }
    }
}
