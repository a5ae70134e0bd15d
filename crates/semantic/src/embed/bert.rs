//! A BERT sentence encoder (all-MiniLM-L6-v2 and other sentence-transformers BERT models) run
//! in-process with candle: tokenize → BERT → mean pooling over real tokens → L2 normalisation,
//! exactly the sentence-transformers pipeline `Transformer → Pooling(mean) → Normalize`.
//!
//! Loaded from a local directory holding `config.json`, `tokenizer.json` and
//! `model.safetensors` (`scripts/fetch-model` puts them there). Nothing is fetched at run time.
//!
//! Two forward passes over the same weights ([`Backend`]):
//! - on CPUs with AMX-BF16 (Xeon Sapphire Rapids and later, Linux ≥ 5.16) the linear layers run
//!   as bf16 tile multiplies (`super::amx`): ~5 ms for a 64-token text on one core, embeddings
//!   within cosine 0.9999 of the f32 model; on CPUs with AVX512-BF16 but no tiles (AMD Zen 4
//!   and later) the same pass with bf16 dot products in vector registers;
//! - everywhere else candle in f32. Q, K and V are one fused projection; weights are stored
//!   pre-transposed and contiguous so every matmul is a plain row-major GEMM; a batch is padded
//!   only to its own longest text.
//!
//! This type is synchronous and CPU-bound: it must run on the encoder pool's threads
//! (`super::pool`), never on the async runtime.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use serde::Deserialize;

use super::{EmbedError, SentenceEncoder};

/// The fields of a Hugging Face BERT `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

/// `x · W + b` with `W` stored as `(in, out)`, contiguous.
struct Dense {
    w: Tensor,
    b: Tensor,
}

impl Dense {
    fn load(
        ts: &mut HashMap<String, Tensor>,
        prefix: &str,
        in_dim: usize,
        out_dim: usize,
    ) -> Result<Self, EmbedError> {
        let w = take(ts, &format!("{prefix}.weight"), &[out_dim, in_dim])?;
        let b = take(ts, &format!("{prefix}.bias"), &[out_dim])?;
        Ok(Self {
            w: w.t()?.contiguous()?,
            b,
        })
    }

    /// Several linear layers over the same input fused into one (Q, K, V).
    fn fuse(parts: Vec<Dense>) -> Result<Self, EmbedError> {
        let ws: Vec<&Tensor> = parts.iter().map(|d| &d.w).collect();
        let bs: Vec<&Tensor> = parts.iter().map(|d| &d.b).collect();
        Ok(Self {
            w: Tensor::cat(&ws, 1)?.contiguous()?,
            b: Tensor::cat(&bs, 0)?,
        })
    }

    /// `x`: `(rows, in)` → `(rows, out)`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.w)?.broadcast_add(&self.b)
    }
}

struct Norm {
    gamma: Tensor,
    beta: Tensor,
    eps: f32,
}

impl Norm {
    fn load(
        ts: &mut HashMap<String, Tensor>,
        prefix: &str,
        dim: usize,
        eps: f64,
    ) -> Result<Self, EmbedError> {
        Ok(Self {
            gamma: take(ts, &format!("{prefix}.weight"), &[dim])?,
            beta: take(ts, &format!("{prefix}.bias"), &[dim])?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.gamma, &self.beta, self.eps)
    }
}

struct Layer {
    qkv: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    up: Dense,
    down: Dense,
    out_norm: Norm,
}

fn take(
    ts: &mut HashMap<String, Tensor>,
    name: &str,
    shape: &[usize],
) -> Result<Tensor, EmbedError> {
    let t = ts
        .remove(name)
        .or_else(|| ts.remove(&format!("bert.{name}")))
        .ok_or_else(|| EmbedError::Model(format!("model.safetensors has no tensor `{name}`")))?;
    if t.dims() != shape {
        return Err(EmbedError::Model(format!(
            "tensor `{name}` has shape {:?}, config.json implies {shape:?}",
            t.dims()
        )));
    }
    Ok(t.to_dtype(DType::F32)?)
}

/// Which forward pass an encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// bf16 matrix instructions (AMX-BF16, else AVX512-BF16) where the CPU and kernel allow
    /// them, candle otherwise.
    Auto,
    /// candle, f32, on any CPU.
    Candle,
}

/// all-MiniLM-L6-v2 (or any BERT sentence encoder with mean pooling) on the CPU.
pub struct BertEncoder {
    tokenizer: tokenizers::Tokenizer,
    hidden: usize,
    max_tokens: usize,
    model: Model,
}

enum Model {
    Candle(CandleBert),
    #[cfg(target_arch = "x86_64")]
    Amx(super::amx::AmxBert),
}

/// The candle forward pass (f32).
struct CandleBert {
    word: Tensor,
    position: Tensor,
    token_type0: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    intermediate: usize,
    device: Device,
}

/// Longest input the encoder reads, in tokens (sentence-transformers' `max_seq_length` for
/// all-MiniLM-L6-v2); longer texts are truncated, as sentence-transformers does.
pub const DEFAULT_MAX_TOKENS: usize = 256;

impl BertEncoder {
    /// Load from a directory with `config.json`, `tokenizer.json` and `model.safetensors`; the
    /// fastest forward pass this machine allows.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        Self::load_with(dir, Backend::Auto)
    }

    /// Load with a chosen forward pass.
    pub fn load_with(dir: &Path, backend: Backend) -> Result<Self, EmbedError> {
        let need = |f: &str| {
            let p = dir.join(f);
            if p.is_file() {
                Ok(p)
            } else {
                Err(EmbedError::Model(format!(
                    "{} is missing; run scripts/fetch-model (or `infergate models fetch`) to \
                     download all-MiniLM-L6-v2 into {}",
                    p.display(),
                    dir.display()
                )))
            }
        };
        let config_path = need("config.json")?;
        let tokenizer_path = need("tokenizer.json")?;
        let weights_path = need("model.safetensors")?;
        let config: BertConfig = serde_json::from_slice(
            &std::fs::read(&config_path)
                .map_err(|e| EmbedError::Model(format!("{}: {e}", config_path.display())))?,
        )
        .map_err(|e| EmbedError::Model(format!("{}: {e}", config_path.display())))?;
        if !config.hidden_act.starts_with("gelu") {
            return Err(EmbedError::Model(format!(
                "hidden_act `{}` is not supported (gelu only)",
                config.hidden_act
            )));
        }
        if !config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
        {
            return Err(EmbedError::Model(
                "hidden_size is not a multiple of num_attention_heads".into(),
            ));
        }
        let mut tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| EmbedError::Model(format!("{}: {e}", tokenizer_path.display())))?;
        let max_tokens = DEFAULT_MAX_TOKENS.min(config.max_position_embeddings);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| EmbedError::Model(format!("tokenizer truncation: {e}")))?;
        tokenizer.with_padding(None);

        let device = Device::Cpu;
        let mut ts = candle_core::safetensors::load(&weights_path, &device)
            .map_err(|e| EmbedError::Model(format!("{}: {e}", weights_path.display())))?;
        let h = config.hidden_size;
        let eps = config.layer_norm_eps;
        let word = take(
            &mut ts,
            "embeddings.word_embeddings.weight",
            &[config.vocab_size, h],
        )?;
        let position = take(
            &mut ts,
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let token_types = take(
            &mut ts,
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?;
        let token_type0 = token_types.narrow(0, 0, 1)?.contiguous()?;
        let emb_norm = Norm::load(&mut ts, "embeddings.LayerNorm", h, eps)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let q = Dense::load(&mut ts, &format!("{p}.attention.self.query"), h, h)?;
            let k = Dense::load(&mut ts, &format!("{p}.attention.self.key"), h, h)?;
            let v = Dense::load(&mut ts, &format!("{p}.attention.self.value"), h, h)?;
            layers.push(Layer {
                qkv: Dense::fuse(vec![q, k, v])?,
                attn_out: Dense::load(&mut ts, &format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: Norm::load(&mut ts, &format!("{p}.attention.output.LayerNorm"), h, eps)?,
                up: Dense::load(
                    &mut ts,
                    &format!("{p}.intermediate.dense"),
                    h,
                    config.intermediate_size,
                )?,
                down: Dense::load(
                    &mut ts,
                    &format!("{p}.output.dense"),
                    config.intermediate_size,
                    h,
                )?,
                out_norm: Norm::load(&mut ts, &format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        let candle = CandleBert {
            word,
            position,
            token_type0,
            emb_norm,
            layers,
            heads: config.num_attention_heads,
            head_dim: h / config.num_attention_heads,
            hidden: h,
            intermediate: config.intermediate_size,
            device,
        };
        let model = match backend {
            Backend::Candle => Model::Candle(candle),
            Backend::Auto => candle.into_fastest()?,
        };
        Ok(Self {
            tokenizer,
            hidden: h,
            max_tokens,
            model,
        })
    }

    /// The forward pass in use: `amx-bf16`, `avx512-bf16` or `candle-f32`.
    pub fn backend_name(&self) -> &'static str {
        match &self.model {
            Model::Candle(_) => "candle-f32",
            #[cfg(target_arch = "x86_64")]
            Model::Amx(m) => m.engine_name(),
        }
    }

    /// Token ids of `text` (special tokens included, truncated to the model's limit).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EmbedError::Model(format!("tokenizer: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The longest input in tokens.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }
}

/// One forward pass over a batch of token sequences, one result per sequence.
type BatchFn<'a, T> = dyn FnMut(&[Vec<u32>]) -> Result<Vec<T>, EmbedError> + 'a;

impl CandleBert {
    /// The bf16 forward pass over these weights when the machine allows it, else this one.
    fn into_fastest(self) -> Result<Model, EmbedError> {
        #[cfg(target_arch = "x86_64")]
        {
            use super::amx;
            if amx::AmxBert::available()
                && self.hidden.is_multiple_of(infergate_amx::DIM_MULTIPLE)
                && self
                    .intermediate
                    .is_multiple_of(infergate_amx::DIM_MULTIPLE)
            {
                let v = |t: &Tensor| -> Result<Vec<f32>, EmbedError> {
                    Ok(t.flatten_all()?.to_vec1::<f32>()?)
                };
                let (h, i) = (self.hidden, self.intermediate);
                let linear = |d: &Dense, input: usize, out: usize| {
                    amx::Linear::new(&v(&d.w)?, v(&d.b)?, input, out)
                };
                let norm = |n: &Norm| -> Result<amx::Norm, EmbedError> {
                    Ok(amx::Norm {
                        gamma: v(&n.gamma)?,
                        beta: v(&n.beta)?,
                        eps: n.eps,
                    })
                };
                let layers = self
                    .layers
                    .iter()
                    .map(|l| {
                        Ok(amx::Layer {
                            qkv: linear(&l.qkv, h, 3 * h)?,
                            attn_out: linear(&l.attn_out, h, h)?,
                            attn_norm: norm(&l.attn_norm)?,
                            up: linear(&l.up, h, i)?,
                            down: linear(&l.down, i, h)?,
                            out_norm: norm(&l.out_norm)?,
                        })
                    })
                    .collect::<Result<Vec<_>, EmbedError>>()?;
                if let Some(m) = amx::AmxBert::new(
                    v(&self.word)?,
                    v(&self.position)?,
                    v(&self.token_type0)?,
                    norm(&self.emb_norm)?,
                    layers,
                    h,
                    self.heads,
                    i,
                ) {
                    return Ok(Model::Amx(m));
                }
            }
        }
        Ok(Model::Candle(self))
    }

    fn forward(&self, batch: &[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        let (x, mask) = self.hidden_states(batch)?;
        // mean pooling over real tokens, then L2 normalisation
        let m = mask.unsqueeze(2)?; // (b, s, 1)
        let summed = x.broadcast_mul(&m)?.sum(1)?; // (b, h)
        let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?; // (b, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        mean.broadcast_div(&norms)?.to_vec2::<f32>()
    }

    /// `f` applied to each text's final hidden states (`(tokens, hidden)` row-major).
    fn forward_map<T>(
        &self,
        batch: &[Vec<u32>],
        f: &mut dyn FnMut(&[f32]) -> T,
    ) -> candle_core::Result<Vec<T>> {
        let (x, _) = self.hidden_states(batch)?;
        let (_, s, h) = x.dims3()?;
        let all = x.flatten_all()?.to_vec1::<f32>()?;
        Ok(batch
            .iter()
            .enumerate()
            .map(|(i, seq)| f(&all[i * s * h..(i * s + seq.len()) * h]))
            .collect())
    }

    /// The final hidden states `(b, s, h)` of a padded batch, and its mask `(b, s)`.
    fn hidden_states(&self, batch: &[Vec<u32>]) -> candle_core::Result<(Tensor, Tensor)> {
        let b = batch.len();
        let s = batch.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(b * s);
        let mut mask = Vec::with_capacity(b * s);
        for seq in batch {
            ids.extend_from_slice(seq);
            mask.extend(std::iter::repeat_n(1f32, seq.len()));
            ids.extend(std::iter::repeat_n(0u32, s - seq.len()));
            mask.extend(std::iter::repeat_n(0f32, s - seq.len()));
        }
        let h = self.hidden;
        let ids = Tensor::from_vec(ids, b * s, &self.device)?;
        let mask = Tensor::from_vec(mask, (b, s), &self.device)?;

        // embeddings: word + position + token type 0, then LayerNorm; rows are (b*s, h)
        let words = self.word.index_select(&ids, 0)?.reshape((b, s, h))?;
        let pos = self.position.narrow(0, 0, s)?;
        let x = words
            .broadcast_add(&pos)?
            .broadcast_add(&self.token_type0)?
            .reshape((b * s, h))?;
        let mut x = self.emb_norm.forward(&x)?;

        // additive attention mask: 0 for tokens, a large negative for padding; (b, 1, 1, s)
        let bias = if batch.iter().all(|q| q.len() == s) {
            None
        } else {
            Some(((mask.clone() - 1.0)? * 1e9)?.reshape((b, 1, 1, s))?)
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        for layer in &self.layers {
            let qkv = layer
                .qkv
                .forward(&x)?
                .reshape((b, s, 3, self.heads, self.head_dim))?;
            let heads = |i: usize| -> candle_core::Result<Tensor> {
                qkv.narrow(2, i, 1)?
                    .squeeze(2)?
                    .transpose(1, 2)? // (b, heads, s, d)
                    .contiguous()
            };
            let q = (heads(0)? * scale)?;
            let k = heads(1)?;
            let v = heads(2)?;
            let mut scores = q.matmul(&k.t()?)?; // (b, heads, s, s)
            if let Some(bias) = &bias {
                scores = scores.broadcast_add(bias)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs
                .matmul(&v)? // (b, heads, s, d)
                .transpose(1, 2)?
                .reshape((b * s, h))?;
            let attn = layer.attn_out.forward(&ctx)?;
            x = layer.attn_norm.forward(&(attn + &x)?)?;
            let up = layer.up.forward(&x)?.gelu_erf()?;
            let down = layer.down.forward(&up)?;
            x = layer.out_norm.forward(&(down + &x)?)?;
        }
        Ok((x.reshape((b, s, h))?, mask))
    }

    fn encode(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.grouped(ids, &mut |group| Ok(self.forward(group)?))
    }

    fn encode_map<T>(
        &self,
        ids: &[Vec<u32>],
        f: &mut dyn FnMut(&[f32]) -> T,
    ) -> Result<Vec<T>, EmbedError> {
        self.grouped(ids, &mut |group| Ok(self.forward_map(group, f)?))
    }

    /// `run` over groups of texts of similar length (sorted, so a batch pads as little as
    /// possible); results in the order of `ids`.
    fn grouped<T>(&self, ids: &[Vec<u32>], run: &mut BatchFn<'_, T>) -> Result<Vec<T>, EmbedError> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out: Vec<Option<T>> = (0..ids.len()).map(|_| None).collect();
        // Groups of similar length: padding a 10-token text to 250 would cost 25x.
        let mut start = 0;
        while start < order.len() {
            let first_len = ids[order[start]].len();
            let mut end = start + 1;
            while end < order.len() && end - start < 32 && ids[order[end]].len() <= first_len * 2 {
                end += 1;
            }
            let group: Vec<Vec<u32>> = order[start..end].iter().map(|&i| ids[i].clone()).collect();
            let vecs = run(&group)?;
            for (slot, v) in order[start..end].iter().zip(vecs) {
                out[*slot] = Some(v);
            }
            start = end;
        }
        out.into_iter()
            .map(|v| v.ok_or_else(|| EmbedError::Model("a batch returned too few results".into())))
            .collect()
    }
}

impl BertEncoder {
    /// `f` applied to each text's final hidden states — one row of `hidden` f32 per token
    /// (special tokens included, after truncation), `(tokens, hidden)` row-major — from the same
    /// forward pass (and batching) as [`SentenceEncoder::encode`]; the mean of the rows,
    /// L2-normalised, is the text's embedding. Both backends give the same rows to bf16
    /// precision.
    pub fn encode_map<T>(
        &self,
        texts: &[&str],
        f: &mut dyn FnMut(&[f32]) -> T,
    ) -> Result<Vec<T>, EmbedError> {
        let ids = texts
            .iter()
            .map(|t| self.token_ids(t))
            .collect::<Result<Vec<_>, _>>()?;
        match &self.model {
            Model::Candle(m) => m.encode_map(&ids, f),
            #[cfg(target_arch = "x86_64")]
            Model::Amx(m) => {
                let mut out = Vec::with_capacity(ids.len());
                for range in amx_batches(&ids) {
                    out.extend(m.forward_map(&ids[range], f));
                }
                Ok(out)
            }
        }
    }

    /// Each text's final hidden states, `(tokens, hidden)` row-major ([`Self::encode_map`]).
    pub fn token_states(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.encode_map(texts, &mut |rows| rows.to_vec())
    }
}

/// Consecutive runs of texts laid end to end in one AMX pass (at most `MAX_ROWS` tokens, or one
/// text).
#[cfg(target_arch = "x86_64")]
fn amx_batches(ids: &[Vec<u32>]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < ids.len() {
        let mut end = start;
        let mut rows = 0;
        while end < ids.len() && (end == start || rows + ids[end].len() <= super::amx::MAX_ROWS) {
            rows += ids[end].len();
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

impl SentenceEncoder for BertEncoder {
    fn dim(&self) -> usize {
        self.hidden
    }

    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let ids = texts
            .iter()
            .map(|t| self.token_ids(t))
            .collect::<Result<Vec<_>, _>>()?;
        match &self.model {
            Model::Candle(m) => m.encode(&ids),
            #[cfg(target_arch = "x86_64")]
            Model::Amx(m) => {
                // No padding on this path: texts are laid end to end, up to MAX_ROWS tokens
                // per pass.
                let mut out = Vec::with_capacity(ids.len());
                for range in amx_batches(&ids) {
                    out.extend(m.forward(&ids[range]));
                }
                Ok(out)
            }
        }
    }

    fn token_states(&self, texts: &[&str]) -> Option<Result<Vec<Vec<f32>>, EmbedError>> {
        Some(BertEncoder::token_states(self, texts))
    }

    fn encode_with_token_max(&self, texts: &[&str]) -> Option<super::EncodedWithMax> {
        let h = self.hidden;
        Some(self.encode_map(texts, &mut |rows| {
            (super::mean_pool(rows, h), super::max_pool(rows, h))
        }))
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.token_ids(text).ok().map(|v| v.len())
    }
}

impl From<candle_core::Error> for EmbedError {
    fn from(e: candle_core::Error) -> Self {
        EmbedError::Model(e.to_string())
    }
}
