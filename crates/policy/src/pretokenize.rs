//! `cl100k_base`'s pre-tokenizer for ASCII text, as a hand-written scanner.
//!
//! Counting tokens splits the text into pieces with the encoding's regular expression, then
//! byte-pair-encodes each piece. On a 1 KB English prompt `bpe-openai`'s regex split took about
//! 20 µs — a third of what a request with token limits paid for its estimate. Most prompts are
//! ASCII, and for ASCII the pattern
//!
//! ```text
//! (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//!
//! reduces to byte classes (letter `[A-Za-z]`, digit `[0-9]`, space `[\t\n\x0B\x0C\r ]`, the
//! rest), so it can be scanned directly, alternatives tried in the pattern's order as the regex
//! does. Lines with a non-ASCII byte go through the library's splitter ([`cl100k_pieces`] says
//! why cutting at lines is exact). The two agree piece for piece: property tests compare them on
//! random text over the classes' edge cases, ASCII and mixed.

// Byte classes of ASCII, looked up in one table (the scanner's hot loops test a bit instead of
// a chain of comparisons).
/// `[A-Za-z]`: `\p{L}` on ASCII.
const LETTER: u8 = 1;
/// `[0-9]`: `\p{N}` on ASCII.
const DIGIT: u8 = 2;
/// `\s` on ASCII: tab, line feed, vertical tab, form feed, carriage return, space.
const SPACE: u8 = 4;
/// `[\r\n]` (also `SPACE`).
const NEWLINE: u8 = 8;
/// `[^\s\p{L}\p{N}]` on ASCII.
const OTHER: u8 = 16;

const CLASSES: [u8; 128] = {
    let mut t = [OTHER; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphabetic() {
            LETTER
        } else if c.is_ascii_digit() {
            DIGIT
        } else if c == b'\r' || c == b'\n' {
            SPACE | NEWLINE
        } else if matches!(c, b'\t' | 0x0b | 0x0c | b' ') {
            SPACE
        } else {
            OTHER
        };
        b += 1;
    }
    t
};

fn class(b: u8) -> u8 {
    CLASSES[usize::from(b & 0x7f)]
}

/// The end of the run of bytes in `classes` that starts at `from`.
fn run(t: &[u8], from: usize, classes: u8) -> usize {
    let mut j = from;
    while j < t.len() && class(t[j]) & classes != 0 {
        j += 1;
    }
    j
}

/// The end of the run of letters that starts at `from`, eight bytes at a time while eight
/// remain (most of a prompt's bytes are in words).
fn letters(t: &[u8], from: usize) -> usize {
    const LANES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut j = from;
    while let Some(chunk) = t.get(j..j + 8) {
        // ASCII only (each byte < 0x80), so no lane carries into the next: folded to lower
        // case, a byte is a letter when it is ≥ `a` and not ≥ `{`.
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])) | (0x20 * LANES);
        let at_least_a = x.wrapping_add((0x80 - u64::from(b'a')) * LANES);
        let past_z = x.wrapping_add((0x80 - u64::from(b'z') - 1) * LANES);
        let not_letter = !(at_least_a & !past_z) & HIGH;
        if not_letter != 0 {
            return j + (not_letter.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    run(t, j, LETTER)
}

/// Length of the piece that starts at `i` (`i < t.len()`, `t` ASCII).
fn piece_len(t: &[u8], i: usize) -> usize {
    let n = t.len();
    let c = t[i];
    let kind = class(c);
    // [^\r\n\p{L}\p{N}]?\p{L}+ starting with a letter (the contractions below start with `'`).
    if kind == LETTER {
        return letters(t, i + 1) - i;
    }
    let next = t.get(i + 1).map_or(0, |&b| class(b));
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if c == b'\'' {
        let lower = |k: usize| t.get(i + k).map(u8::to_ascii_lowercase);
        match lower(1) {
            Some(b's' | b't' | b'm' | b'd') => return 2,
            Some(b'r' | b'v') if lower(2) == Some(b'e') => return 3,
            Some(b'l') if lower(2) == Some(b'l') => return 3,
            _ => {}
        }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+ with one leading non-letter: a space, a quote…
    if kind & (NEWLINE | DIGIT) == 0 && next == LETTER {
        return letters(t, i + 2) - i;
    }
    // \p{N}{1,3}
    if kind == DIGIT {
        return run(t, i + 1, DIGIT).min(i + 3) - i;
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let start = if c == b' ' && next == OTHER { i + 1 } else { i };
    if class(t[start]) == OTHER {
        let end = run(t, start + 1, OTHER);
        return run(t, end, NEWLINE) - i;
    }
    // Whitespace from here on: `c` is neither a letter, a digit nor `other`.
    let end = run(t, i + 1, SPACE);
    // \s*[\r\n]+ : up to and including the run's last line break.
    if let Some(k) = t[i..end].iter().rposition(|&b| class(b) & NEWLINE != 0) {
        return k + 1;
    }
    // \s+(?!\S) : the whole run at the end of the text, else all but its last character
    // (which then starts the next piece); a single space is `\s+` alone.
    if end == n || end - i == 1 {
        end - i
    } else {
        end - i - 1
    }
}

/// Call `f` with each piece of the ASCII text `t`, in order.
pub fn cl100k_ascii_pieces<'a>(t: &'a [u8], f: &mut impl FnMut(&'a [u8])) {
    debug_assert!(t.is_ascii());
    let mut i = 0;
    while i < t.len() {
        let len = piece_len(t, i);
        f(&t[i..i + len]);
        i += len;
    }
}

/// Call `f` with each piece of `text` as `cl100k_base` splits it: ASCII lines by the scanner
/// above, the others by `fallback` (the library's regex).
///
/// The text is cut where a line starts with a non-space character: no alternative of the pattern
/// matches across such a point (letters, digits and punctuation cannot follow a line break inside
/// one piece, and whitespace pieces stop before a non-space), so pieces are the same whether a
/// line is split alone or with the whole text, and one line with an accent or a dash does not
/// send the rest of a prompt down the slow path.
pub fn cl100k_pieces<'a>(
    text: &'a str,
    mut f: impl FnMut(&'a [u8]),
    mut fallback: impl FnMut(&'a str, &mut dyn FnMut(&'a [u8])),
) {
    let t = text.as_bytes();
    if t.is_ascii() {
        // The common case: no line needs the library, so no cuts to look for.
        cl100k_ascii_pieces(t, &mut f);
        return;
    }
    let mut start = 0;
    while start < t.len() {
        let mut end = start;
        let mut ascii = true;
        // The next cut: after a line feed, before a character that is not whitespace.
        loop {
            match t[end..].iter().position(|&b| b == b'\n' || !b.is_ascii()) {
                None => {
                    end = t.len();
                    break;
                }
                Some(k) if t[end + k] != b'\n' => {
                    ascii = false;
                    end += k + 1;
                }
                Some(k) => {
                    end += k + 1;
                    // `\s` is Unicode's White_Space, as `char::is_whitespace`.
                    if text[end..]
                        .chars()
                        .next()
                        .is_none_or(|c| !c.is_whitespace())
                    {
                        break;
                    }
                }
            }
        }
        // `end` is at a char boundary: just after a line feed, or at the end of the text.
        let segment = &text[start..end];
        if ascii {
            cl100k_ascii_pieces(segment.as_bytes(), &mut f);
        } else {
            fallback(segment, &mut f);
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(t: &str) -> Vec<&str> {
        let mut v = Vec::new();
        cl100k_pieces(
            t,
            |p| v.push(std::str::from_utf8(p).expect("pieces end at char boundaries")),
            |segment, f| library(segment).into_iter().for_each(|p| f(p.as_bytes())),
        );
        v
    }

    fn library(t: &str) -> Vec<&str> {
        bpe_openai::cl100k_base().split(t).collect()
    }

    #[test]
    fn splits_like_the_regex_on_the_patterns_branches() {
        for t in [
            "Hello, world! I'm here; you're there, we'll see.\n\n",
            "    indented code:\n\tfn main() { println!(\"{}\", 42_000 + 3.14159); }\n   ",
            "'S 'T 'RE 'Ve 'LL 'd 'x 'sup don't O'Neil's ''s",
            "12345 1 22 333 4444 a1b2 x99y",
            "a\n  b  \n\n c \r\n\r\n\t\t d \x0b\x0c e\x00\x01\x7f f",
            "trailing   ",
            " ",
            "\n",
            "  ",
            " (x) ?! ...\n\n\r ok",
            "",
        ] {
            assert_eq!(ours(t), library(t), "{t:?}");
        }
    }

    #[test]
    fn lines_with_other_scripts_split_like_the_regex() {
        for t in [
            "plain line\nnaïve café — ok\nback to ASCII: don't\n\n  indented\n",
            "日本語\n\nEnglish after\r\n\tTab € 1234567\n",
            "end with accent é",
            "\n\n\nx\u{00a0}y\n z",
        ] {
            assert_eq!(ours(t), library(t), "{t:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// Random ASCII text over every class the pattern distinguishes, and the characters
        /// it treats specially (apostrophes, contraction letters, each kind of whitespace).
        #[test]
        fn splits_like_the_regex_on_random_ascii(t in "[ a-zA-Z0-9'sStTrReEvVlLmMdD\\t\\n\\r\\x0b\\x0c .,;:!?()\\[\\]{}\"/\\\\_\\-+*=<>#@$%^&|~`\\x00-\\x08\\x0e-\\x1f\\x7f]{0,64}") {
            prop_assert_eq!(ours(&t), library(&t));
        }

        /// Words of every length around the eight-byte steps of the letter runs, with the
        /// characters that can start or end a piece next to them.
        #[test]
        fn splits_like_the_regex_on_words(t in "([ '@\\[`{Zz0-9\n.-]?[a-zA-Z@\\[`{]{0,19}){0,6}") {
            prop_assert_eq!(ours(&t), library(&t));
        }

        /// Lines mixing ASCII with letters, digits, spaces and punctuation of other scripts
        /// (Unicode whitespace too), so that cuts fall next to both paths.
        #[test]
        fn splits_like_the_regex_on_mixed_lines(t in "[ a-z0-9'sT\\t\\n\\r.,!éÉ日ß٣—€\u{00a0}\u{2028}\u{0085}]{0,64}") {
            prop_assert_eq!(ours(&t), library(&t));
        }
    }
}
