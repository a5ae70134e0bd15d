//! A cheap check that a semantic cache hit asks the same question, not only a similar one.
//!
//! Sentence embeddings place "How do I convert Celsius to Fahrenheit?" and "How do I convert
//! Fahrenheit to Celsius?" close together: the words are the same and so is the topic. The
//! answers are not. No cosine threshold separates such near misses from real paraphrases
//! (`docs/benchmarks/semantic.md`), so a semantic hit must also pass a lexical check on the
//! details that decide the answer. Each rule rejects; none accepts on its own, so the check can
//! only lose hits, never add wrong ones:
//!
//! 1. **Numbers** (digits and number words) must be the same multiset.
//! 2. **Negation** must agree: both negated or neither.
//! 3. **Names** (capitalised words not starting a sentence, acronyms, mixed case like `macOS`,
//!    quoted terms): each one in either prompt must occur in the other.
//! 4. **Order** of the shared names and numbers must be the same (asymmetric relations: "from
//!    A to B", "A to B", "A than B").
//! 5. **Answer type**: an explicit question word (who / where / when / why / how many / how
//!    tall…) must not ask for a different kind of answer in the other.
//! 6. **Slot substitution**: if the two prompts are the same sentence except for a short span
//!    (≤ 3 words) where each has a content word the other lacks — "the *boiling* point of
//!    water" vs "the *freezing* point of water" — the swapped word is what the question is
//!    about. A rewording that only adds or drops words, or changes function words ("How *do* I"
//!    vs "How *can* I"), passes.
//!
//! A miss costs one model call; a wrong hit serves a wrong answer, so the check leans strict.

use std::collections::HashSet;

/// What the check needs of a prompt, computed once when it is stored or looked up. Words are
/// kept as 64-bit hashes (the check compares, never prints them), so a long prompt costs 17
/// bytes a word.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signature {
    /// Lowercased word tokens in order (possessive `'s` dropped), hashed.
    tokens: Vec<u64>,
    /// Per token: a content word (not a stopword or negation).
    content: Vec<bool>,
    /// `tokens`, sorted and deduplicated, for membership tests.
    set: Vec<u64>,
    /// Indexes into `tokens` of names (see the module doc), ascending.
    names: Vec<u32>,
    /// Numbers in order, normalised (`thirty` → `30`), hashed.
    numbers: Vec<u64>,
    /// Indexes into `tokens` of numbers written in digits.
    digit_tokens: Vec<u32>,
    negated: bool,
    answer: Option<AnswerType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnswerType {
    Person,
    Place,
    Time,
    Reason,
    Quantity,
    Measure,
}

/// Why a candidate was rejected (for tests and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    Numbers,
    Negation,
    Names,
    Order,
    AnswerType,
    Substitution,
}

const STOPWORDS: &[&str] = &[
    "a", "about", "am", "an", "and", "any", "are", "as", "at", "be", "been", "being", "but", "by",
    "can", "could", "did", "do", "does", "doing", "for", "from", "get", "got", "had", "has",
    "have", "he", "her", "here", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its",
    "just", "me", "might", "my", "of", "on", "or", "our", "please", "she", "should", "so", "some",
    "tell", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this",
    "those", "to", "us", "was", "we", "were", "what", "whats", "when", "where", "which", "who",
    "whom", "whose", "why", "will", "with", "would", "you", "your", "yours",
];

const NEGATIONS: &[&str] = &[
    "not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither", "nor", "without",
    "cannot", "cant", "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "wont",
    "wouldnt", "shouldnt", "couldnt", "hasnt", "havent", "hadnt",
];

const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("thirteen", "13"),
    ("fourteen", "14"),
    ("fifteen", "15"),
    ("sixteen", "16"),
    ("seventeen", "17"),
    ("eighteen", "18"),
    ("nineteen", "19"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("forty", "40"),
    ("fifty", "50"),
    ("sixty", "60"),
    ("seventy", "70"),
    ("eighty", "80"),
    ("ninety", "90"),
    ("hundred", "100"),
    ("thousand", "1000"),
    ("million", "1000000"),
    ("billion", "1000000000"),
];

const MEASURES: &[&str] = &[
    "tall", "long", "big", "far", "old", "high", "large", "heavy", "fast", "deep", "wide", "hot",
    "cold", "often",
];

fn is_stopword(t: &str) -> bool {
    STOPWORDS.binary_search(&t).is_ok()
}

fn hash(t: &str) -> u64 {
    xxhash_rust::xxh64::xxh64(t.as_bytes(), 0x5e11)
}

impl Signature {
    pub fn of(text: &str) -> Self {
        let mut sig = Signature::default();
        let mut words: Vec<String> = Vec::new();
        let mut sentence_start = true;
        let mut quoted = false;
        let mut after_quote = false;
        let mut word = String::new();
        let mut word_after_quote = false;
        let flush = |word: &mut String,
                     sig: &mut Signature,
                     words: &mut Vec<String>,
                     start: bool,
                     quoted: bool,
                     after_quote: bool| {
            if word.is_empty() {
                return;
            }
            let raw_full = std::mem::take(word);
            let single_quoted = after_quote && raw_full.ends_with(['\'', '’']);
            let raw = raw_full.trim_matches(['\'', '’']);
            let raw = raw
                .strip_suffix("'s")
                .or_else(|| raw.strip_suffix("’s"))
                .unwrap_or(raw);
            let lower: String = raw
                .chars()
                .filter(|c| *c != '\'' && *c != '’')
                .flat_map(char::to_lowercase)
                .collect();
            if lower.is_empty() {
                return;
            }
            let idx = sig.tokens.len() as u32;
            let has_digit = lower.chars().any(|c| c.is_ascii_digit());
            if has_digit {
                sig.numbers.push(hash(&lower));
                sig.digit_tokens.push(idx);
            } else if let Some((_, n)) = NUMBER_WORDS.iter().find(|(w, _)| *w == lower) {
                sig.numbers.push(hash(n));
            }
            let negation = NEGATIONS.contains(&lower.as_str());
            sig.negated |= negation;
            let stop = is_stopword(&lower);
            let upper_inside = raw.chars().skip(1).any(char::is_uppercase);
            let capital = raw.chars().next().is_some_and(char::is_uppercase);
            let name = ((quoted || single_quoted) && !stop)
                || upper_inside
                || (capital && !start && lower != "i");
            if name && !has_digit {
                sig.names.push(idx);
            }
            sig.tokens.push(hash(&lower));
            sig.content.push(!stop && !negation);
            words.push(lower);
        };
        for c in text.chars() {
            if c.is_alphanumeric() || ((c == '\'' || c == '’') && !word.is_empty()) {
                if word.is_empty() {
                    word_after_quote = after_quote;
                }
                word.push(c);
                continue;
            }
            if c == '.' && word.chars().last().is_some_and(|l| l.is_ascii_digit()) {
                word.push(c); // 3.5
                continue;
            }
            let had_word = !word.is_empty();
            flush(
                &mut word,
                &mut sig,
                &mut words,
                sentence_start,
                quoted,
                word_after_quote,
            );
            if had_word {
                sentence_start = false;
            }
            after_quote = matches!(c, '\'' | '‘');
            match c {
                '.' | '?' | '!' | '\n' | ':' | ';' => sentence_start = true,
                '"' | '“' | '”' => quoted = !quoted,
                _ => {}
            }
        }
        flush(
            &mut word,
            &mut sig,
            &mut words,
            sentence_start,
            quoted,
            word_after_quote,
        );
        sig.answer = answer_type(&words);
        sig.set = sig.tokens.clone();
        sig.set.sort_unstable();
        sig.set.dedup();
        sig
    }

    /// Heap bytes held (for the cache's byte budget).
    pub fn bytes(&self) -> usize {
        self.tokens.len() * 8
            + self.content.len()
            + self.set.len() * 8
            + (self.names.len() + self.digit_tokens.len()) * 4
            + self.numbers.len() * 8
    }

    fn has(&self, h: u64) -> bool {
        self.set.binary_search(&h).is_ok()
    }
}

fn answer_type(words: &[String]) -> Option<AnswerType> {
    for (i, t) in words.iter().enumerate() {
        let next = words.get(i + 1).map(String::as_str);
        match t.as_str() {
            "who" | "whom" | "whose" => return Some(AnswerType::Person),
            "where" => return Some(AnswerType::Place),
            "when" => return Some(AnswerType::Time),
            "why" => return Some(AnswerType::Reason),
            "how" => match next {
                Some("many" | "much") => return Some(AnswerType::Quantity),
                Some(m) if MEASURES.contains(&m) => return Some(AnswerType::Measure),
                _ => return None,
            },
            "what" | "which" => {
                return match next {
                    Some("time" | "year" | "date" | "day") => Some(AnswerType::Time),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    None
}

/// Does `query` ask what `stored` asked? `Ok` if no rule rejects it.
pub fn check(stored: &Signature, query: &Signature) -> Result<(), Mismatch> {
    let mut a = stored.numbers.clone();
    let mut b = query.numbers.clone();
    a.sort();
    b.sort();
    if a != b {
        return Err(Mismatch::Numbers);
    }
    if stored.negated != query.negated {
        return Err(Mismatch::Negation);
    }
    let names_present =
        |s: &Signature, other: &Signature| s.names.iter().all(|&i| other.has(s.tokens[i as usize]));
    if !names_present(stored, query) || !names_present(query, stored) {
        return Err(Mismatch::Names);
    }
    // Order of the shared names and numbers: the first occurrence of each, in each prompt.
    let key_terms = |s: &Signature, other: &Signature| -> Vec<u64> {
        let mut idx: Vec<u32> = s.names.iter().chain(&s.digit_tokens).copied().collect();
        idx.sort_unstable();
        let mut seen = HashSet::new();
        idx.into_iter()
            .map(|i| s.tokens[i as usize])
            .filter(|h| other.has(*h) && seen.insert(*h))
            .collect()
    };
    let (ka, kb) = (key_terms(stored, query), key_terms(query, stored));
    let (in_a, in_b): (HashSet<u64>, HashSet<u64>) =
        (ka.iter().copied().collect(), kb.iter().copied().collect());
    let kb: Vec<u64> = kb.into_iter().filter(|t| in_a.contains(t)).collect();
    let ka: Vec<u64> = ka.into_iter().filter(|t| in_b.contains(t)).collect();
    if ka.len() >= 2 && ka != kb {
        return Err(Mismatch::Order);
    }
    if let (Some(x), Some(y)) = (stored.answer, query.answer) {
        if x != y {
            return Err(Mismatch::AnswerType);
        }
    }
    // Slot substitution: strip the common prefix and suffix.
    let (ta, tb) = (&stored.tokens, &query.tokens);
    let prefix = ta.iter().zip(tb.iter()).take_while(|(x, y)| x == y).count();
    let max_suffix = ta.len().min(tb.len()) - prefix;
    let suffix = ta
        .iter()
        .rev()
        .zip(tb.iter().rev())
        .take(max_suffix)
        .take_while(|(x, y)| x == y)
        .count();
    let swapped = |s: &Signature, other: &Signature| {
        let mid = prefix..s.tokens.len() - suffix;
        let n = mid.len();
        let sub = mid
            .into_iter()
            .any(|i| s.content[i] && !other.has(s.tokens[i]));
        (n, sub)
    };
    let ((na, sa), (nb, sb)) = (swapped(stored, query), swapped(query, stored));
    if (1..=3).contains(&na) && (1..=3).contains(&nb) && prefix + suffix >= 2 && sa && sb {
        return Err(Mismatch::Substitution);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(a: &str, b: &str) -> Result<(), Mismatch> {
        check(&Signature::of(a), &Signature::of(b))
    }

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn same_question_reworded_passes() {
        for (a, b) in [
            (
                "How do I reset my password?",
                "How can I reset my password?",
            ),
            (
                "How do I reset my password?",
                "I forgot my password, how can I reset it?",
            ),
            (
                "What is the capital of France?",
                "Tell me France's capital city.",
            ),
            (
                "What is the capital of France?",
                "What is the capital city of France?",
            ),
            (
                "Can I return an item after 30 days?",
                "Is it possible to return an item after thirty days?",
            ),
            ("What is the refund policy?", "what is the refund policy"),
        ] {
            assert_eq!(verdict(a, b), Ok(()), "{a} / {b}");
        }
    }

    #[test]
    fn different_questions_with_the_same_words_are_rejected() {
        for (a, b, why) in [
            (
                "How do I convert Celsius to Fahrenheit?",
                "How do I convert Fahrenheit to Celsius?",
                Mismatch::Order,
            ),
            (
                "What is the capital of France?",
                "What is the capital of Germany?",
                Mismatch::Names,
            ),
            (
                "Can I return an item after 30 days?",
                "Can I return an item after 60 days?",
                Mismatch::Numbers,
            ),
            (
                "Is the museum open on Mondays?",
                "Is the museum not open on Mondays?",
                Mismatch::Negation,
            ),
            (
                "Who painted the Mona Lisa?",
                "Where is the Mona Lisa displayed?",
                Mismatch::AnswerType,
            ),
            (
                "When was the Eiffel Tower built?",
                "How tall is the Eiffel Tower?",
                Mismatch::AnswerType,
            ),
            (
                "What is the boiling point of water?",
                "What is the freezing point of water?",
                Mismatch::Substitution,
            ),
            (
                "What is the meaning of 'serendipity'?",
                "What is the meaning of 'melancholy'?",
                Mismatch::Names,
            ),
            (
                "How do I install Python on Windows?",
                "How do I install Python on macOS?",
                Mismatch::Names,
            ),
        ] {
            assert_eq!(verdict(a, b), Err(why), "{a} / {b}");
        }
    }

    #[test]
    fn the_check_is_symmetric_on_these_rules() {
        let pairs = [
            (
                "How do I convert Celsius to Fahrenheit?",
                "How do I convert Fahrenheit to Celsius?",
            ),
            (
                "What is the boiling point of water?",
                "What is the freezing point of water?",
            ),
            (
                "How do I reset my password?",
                "How can I reset my password?",
            ),
        ];
        for (a, b) in pairs {
            assert_eq!(verdict(a, b).is_ok(), verdict(b, a).is_ok(), "{a} / {b}");
        }
    }

    #[test]
    fn odd_input_does_not_panic() {
        for t in [
            "",
            "?",
            "''",
            "’s",
            "3.5.6",
            "Ünïcödé ÉCOLE",
            "a\u{0}b",
            &"word ".repeat(70_000),
        ] {
            let s = Signature::of(t);
            let _ = check(&s, &s);
            assert_eq!(check(&s, &s), Ok(()));
        }
    }
}
