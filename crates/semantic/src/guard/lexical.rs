//! The injection classifier's lexical part: a linear model over hashed character n-grams,
//! whose class probabilities are mixed with the network's.
//!
//! all-MiniLM-L6-v2 reads English. In Scottish Gaelic, Zulu or Albanian an extraction request
//! is a string of word pieces the encoder never learnt, so its embedding says little; the words
//! themselves ("teachdaireachd siostam", "umyalezo wesistimu") recur across attacks all the
//! same, and a linear model over character n-grams learns them. It needs no model files: per
//! text, a hash per n-gram and a sparse dot product per class.
//!
//! Features ([`features`]; `data/injection/src/lexical.py` computes the same for training, and
//! the test `lexical_features_match_the_training_script` holds both to
//! `tests/data/lexical.jsonl`): the text is lower-cased and split on whitespace; each word, with
//! a space added before and after, gives every run of `ngrams.0..=ngrams.1` characters (Unicode
//! scalar values) it holds; each n-gram goes to bucket `xxh64(its UTF-8 bytes, seed 0) mod
//! 2^bits`; a bucket's value is `ln(1 + count)`, and the vector is scaled to unit length.

use std::io::Read as _;

use base64::Engine as _;
use serde::Deserialize;

/// The lexical model as `classifier.json` stores it.
#[derive(Debug, Clone, Deserialize)]
pub struct LexicalFile {
    /// 2^bits buckets (8 to 20; the counting table is 2^bits entries per thread).
    pub bits: u32,
    /// The shortest and longest n-gram, in characters.
    pub ngrams: (usize, usize),
    /// How much of the mixed class distribution is this model's (the network's share is the
    /// rest): `p = (1 - mix) p_network + mix p_lexical`.
    pub mix: f32,
    /// One per class (the classifier's classes, in order).
    pub bias: Vec<f32>,
    /// One per class: a weight is its stored i8 times its class's scale.
    pub scale: Vec<f32>,
    /// base64 of the gzip of the i8 weights, class by class, 2^bits each.
    pub weights: String,
}

/// A parsed lexical model.
#[derive(Debug, Clone)]
pub struct Lexical {
    pub bits: u32,
    pub ngrams: (usize, usize),
    pub mix: f32,
    bias: Vec<f32>,
    scale: Vec<f32>,
    /// classes x 2^bits
    weights: Vec<i8>,
}

impl Lexical {
    /// Decode and check a stored model for `classes` classes.
    pub fn parse(file: LexicalFile, classes: usize) -> Result<Self, String> {
        let LexicalFile {
            bits,
            ngrams,
            mix,
            bias,
            scale,
            weights,
        } = file;
        if !(8..=20).contains(&bits) || ngrams.0 == 0 || ngrams.0 > ngrams.1 {
            return Err(format!(
                "lexical: bits {bits} (8 to 20) or n-grams {ngrams:?} out of range"
            ));
        }
        if !(0.0..=1.0).contains(&mix) || bias.len() != classes || scale.len() != classes {
            return Err(format!(
                "lexical: mix {mix} must be within [0, 1] and bias and scale need one value per class ({classes})"
            ));
        }
        let gz = base64::engine::general_purpose::STANDARD
            .decode(weights.as_bytes())
            .map_err(|e| format!("lexical: weights are not base64: {e}"))?;
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .map_err(|e| format!("lexical: weights are not gzip: {e}"))?;
        let expected = classes << bits;
        if raw.len() != expected {
            return Err(format!(
                "lexical: {} weight bytes, expected {expected} ({classes} classes x 2^{bits})",
                raw.len()
            ));
        }
        Ok(Self {
            bits,
            ngrams,
            mix,
            bias,
            scale,
            weights: raw.into_iter().map(|b| b as i8).collect(),
        })
    }

    /// Class logits of a text.
    pub fn logits(&self, text: &str) -> Vec<f32> {
        let x = features(text, self.bits, self.ngrams);
        let width = 1usize << self.bits;
        self.bias
            .iter()
            .zip(&self.scale)
            .enumerate()
            .map(|(k, (b, s))| {
                let row = &self.weights[k * width..(k + 1) * width];
                b + s * x
                    .iter()
                    .map(|&(i, v)| row[i as usize] as f32 * v)
                    .sum::<f32>()
            })
            .collect()
    }
}

/// The text's n-gram features: (bucket, value) pairs, sorted by bucket, unit length (empty for
/// a text without words).
pub fn features(text: &str, bits: u32, (lo, hi): (usize, usize)) -> Vec<(u32, f32)> {
    unit_length(counts(text, bits, (lo.max(1), hi)))
}

/// (bucket, ln(1 + count)) of the text's n-grams, sorted by bucket.
fn counts(text: &str, bits: u32, (lo, hi): (usize, usize)) -> Vec<(u32, f32)> {
    let mask = (1u64 << bits) - 1;
    // counts in a per-thread table of 2^bits entries, reset after use by the buckets it touched:
    // no allocation per n-gram, no hashing of bucket numbers, no sort of every n-gram
    thread_local! {
        static COUNTS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    COUNTS.with_borrow_mut(|counts| {
        if counts.len() < 1 << bits {
            counts.resize(1 << bits, 0);
        }
        let mut touched: Vec<u32> = Vec::new();
        let mut padded = String::new();
        let mut starts: Vec<usize> = Vec::new();
        for word in text.to_lowercase().split_whitespace() {
            padded.clear();
            padded.push(' ');
            padded.push_str(word);
            padded.push(' ');
            // byte offset of each character, and the end: an n-gram is a byte range of `padded`
            starts.clear();
            starts.extend(padded.char_indices().map(|(i, _)| i));
            starts.push(padded.len());
            let chars = starts.len() - 1;
            for n in lo..=hi.min(chars) {
                for i in 0..=chars - n {
                    let gram = &padded.as_bytes()[starts[i]..starts[i + n]];
                    let b = (xxhash_rust::xxh64::xxh64(gram, 0) & mask) as u32;
                    let c = &mut counts[b as usize];
                    if *c == 0 {
                        touched.push(b);
                    }
                    *c += 1;
                }
            }
        }
        touched.sort_unstable();
        touched
            .into_iter()
            .map(|b| {
                let c = std::mem::take(&mut counts[b as usize]);
                (b, (c as f32).ln_1p())
            })
            .collect::<Vec<_>>()
    })
}

fn unit_length(mut out: Vec<(u32, f32)>) -> Vec<(u32, f32)> {
    let norm = out.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        for (_, v) in &mut out {
            *v /= norm;
        }
    }
    out
}

/// i8 weights as `classifier.json` stores them (`weights`): base64 of their gzip. Training
/// writes them (`lexical.py`'s `pack`); here for tests.
#[cfg(test)]
pub(crate) fn pack(weights: &[i8]) -> String {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let bytes: Vec<u8> = weights.iter().map(|&v| v as u8).collect();
    gz.write_all(&bytes).expect("writing to memory");
    base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("writing to memory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_gives_its_padded_runs_and_the_vector_has_unit_length() {
        // "ab" -> " ab " -> 3-grams " ab", "ab " and the 4-gram " ab "; no 5-gram
        let f = features("AB", 16, (3, 5));
        assert_eq!(f.len(), 3, "{f:?}");
        let norm: f32 = f.iter().map(|(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-6);
        assert_eq!(features("ab", 16, (3, 5)), f, "lower-cased first");
        assert!(features(" \n\t ", 16, (3, 5)).is_empty());
        // a repeated n-gram weighs ln(1 + count)
        let f = features("aaa aaa", 16, (3, 3));
        assert_eq!(f.len(), 3, "' aa', 'aaa', 'aa ' {f:?}");
    }

    /// The fixture is written by `data/injection/src/lexical.py` (run it to regenerate), the
    /// code that computes the training features: both must cut and hash alike.
    #[test]
    fn lexical_features_match_the_training_script() {
        #[derive(Deserialize)]
        struct Case {
            text: String,
            bits: u32,
            features: Vec<(u32, f32)>,
        }
        let fixture = include_str!("../../tests/data/lexical.jsonl");
        let mut n = 0;
        for line in fixture.lines() {
            let case: Case = serde_json::from_str(line).unwrap();
            let got = features(&case.text, case.bits, (3, 5));
            let buckets = |f: &[(u32, f32)]| f.iter().map(|(b, _)| *b).collect::<Vec<_>>();
            assert_eq!(
                buckets(&got),
                buckets(&case.features),
                "buckets of {:?}",
                case.text
            );
            for ((_, a), (_, b)) in got.iter().zip(&case.features) {
                assert!((a - b).abs() < 1e-5, "{:?}: {a} vs {b}", case.text);
            }
            n += 1;
        }
        assert!(n >= 10, "the fixture holds {n} texts");
    }

    #[test]
    fn a_stored_model_is_checked_and_scores_its_buckets() {
        let bits = 8;
        let mut w = vec![0i8; 2 << bits];
        for (b, _) in features("secret", bits, (3, 5)) {
            w[(1 << bits) + b as usize] = 100; // class 1 likes every n-gram of "secret"
        }
        let file = LexicalFile {
            bits,
            ngrams: (3, 5),
            mix: 0.3,
            bias: vec![0.0, -1.0],
            scale: vec![0.01, 0.01],
            weights: pack(&w),
        };
        let m = Lexical::parse(file.clone(), 2).unwrap();
        let l = m.logits("Secret");
        assert!(l[1] > l[0], "{l:?}");
        let l = m.logits("hello");
        assert!(l[1] < m.logits("secret")[1], "{l:?}");
        let err = Lexical::parse(file.clone(), 3).unwrap_err();
        assert!(err.contains("one value per class"), "{err}");
        let err = Lexical::parse(
            LexicalFile {
                weights: "not base64!".into(),
                ..file
            },
            2,
        )
        .unwrap_err();
        assert!(err.contains("not base64"), "{err}");
    }
}
