//! Checksums and structural checks that turn a regex candidate into a finding: a 16-digit
//! number is a payment card only if its Luhn digit is right, an IBAN only if mod 97 gives 1.

/// Digits of `s`, ignoring spaces and dashes; `None` if anything else appears.
pub fn digits(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.bytes() {
        match c {
            b'0'..=b'9' => out.push(c - b'0'),
            b' ' | b'-' => {}
            _ => return None,
        }
    }
    Some(out)
}

/// The Luhn (mod 10) check used by payment cards and Canadian SINs.
pub fn luhn(d: &[u8]) -> bool {
    if d.len() < 2 {
        return false;
    }
    let mut sum = 0u32;
    for (i, &x) in d.iter().rev().enumerate() {
        let mut v = u32::from(x);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// A payment card number: 13–19 digits, a known issuer prefix, and a valid Luhn digit.
pub fn payment_card(candidate: &str) -> bool {
    let Some(d) = digits(candidate) else {
        return false;
    };
    if !(13..=19).contains(&d.len()) || !luhn(&d) {
        return false;
    }
    let p = |n: usize| d.iter().take(n).fold(0u32, |a, &x| a * 10 + u32::from(x));
    let len = d.len();
    match d[0] {
        4 => matches!(len, 13 | 16 | 19),                // Visa
        5 => (51..=55).contains(&p(2)) && len == 16,     // Mastercard
        2 => (2221..=2720).contains(&p(4)) && len == 16, // Mastercard 2-series
        3 => {
            (matches!(p(2), 34 | 37) && len == 15)                       // Amex
                || ((3528..=3589).contains(&p(4)) && (16..=19).contains(&len)) // JCB
                || ((matches!(p(2), 36 | 38 | 39) || (300..=305).contains(&p(3))) && (14..=19).contains(&len))
            // Diners
        }
        6 => {
            (p(4) == 6011 || p(2) == 65 || (644..=649).contains(&p(3)) || p(2) == 62)
                && (16..=19).contains(&len)
        }
        _ => false,
    }
}

/// Length of an IBAN per country (ISO 13616 registry, the countries in common use).
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "AD" => 24,
        "AE" => 23,
        "AL" => 28,
        "AT" => 20,
        "AZ" => 28,
        "BA" => 20,
        "BE" => 16,
        "BG" => 22,
        "BH" => 22,
        "BR" => 29,
        "CH" => 21,
        "CR" => 22,
        "CY" => 28,
        "CZ" => 24,
        "DE" => 22,
        "DK" => 18,
        "DO" => 28,
        "EE" => 20,
        "EG" => 29,
        "ES" => 24,
        "FI" => 18,
        "FO" => 18,
        "FR" => 27,
        "GB" => 22,
        "GE" => 22,
        "GI" => 23,
        "GL" => 18,
        "GR" => 27,
        "GT" => 28,
        "HR" => 21,
        "HU" => 28,
        "IE" => 22,
        "IL" => 23,
        "IQ" => 23,
        "IS" => 26,
        "IT" => 27,
        "JO" => 30,
        "KW" => 30,
        "KZ" => 20,
        "LB" => 28,
        "LC" => 32,
        "LI" => 21,
        "LT" => 20,
        "LU" => 20,
        "LV" => 21,
        "MC" => 27,
        "MD" => 24,
        "ME" => 22,
        "MK" => 19,
        "MR" => 27,
        "MT" => 31,
        "MU" => 30,
        "NL" => 18,
        "NO" => 15,
        "PK" => 24,
        "PL" => 28,
        "PS" => 29,
        "PT" => 25,
        "QA" => 29,
        "RO" => 24,
        "RS" => 22,
        "SA" => 24,
        "SC" => 31,
        "SE" => 24,
        "SI" => 19,
        "SK" => 24,
        "SM" => 27,
        "TN" => 24,
        "TR" => 26,
        "UA" => 29,
        "VA" => 22,
        "VG" => 24,
        "XK" => 20,
        _ => return None,
    })
}

/// An IBAN: known country, the country's length, and the ISO 7064 mod-97 check equal to 1.
pub fn iban(candidate: &str) -> bool {
    let s: Vec<u8> = candidate
        .bytes()
        .filter(|b| *b != b' ')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if s.len() < 15 || !s.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let country = std::str::from_utf8(&s[..2]).unwrap_or("");
    if iban_length(country) != Some(s.len()) {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in s[4..].iter().chain(&s[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// A US Social Security number `AAA-GG-SSSS`: area not 000, 666 or 9xx; group not 00; serial
/// not 0000.
pub fn us_ssn(candidate: &str) -> bool {
    let Some(d) = digits(candidate) else {
        return false;
    };
    if d.len() != 9 {
        return false;
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = u32::from(d[3]) * 10 + u32::from(d[4]);
    let serial = d[5..].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// A UK National Insurance number: two prefix letters (not D, F, I, Q, U, V; second not O; not
/// BG, GB, KN, NK, NT, TN, ZZ), six digits, suffix A–D.
pub fn uk_nino(candidate: &str) -> bool {
    let s: Vec<u8> = candidate.bytes().filter(|b| *b != b' ').collect();
    if s.len() != 9 {
        return false;
    }
    let (a, b) = (s[0].to_ascii_uppercase(), s[1].to_ascii_uppercase());
    let bad_first = b"DFIQUV";
    let bad_second = b"DFIQUVO";
    if bad_first.contains(&a) || bad_second.contains(&b) {
        return false;
    }
    let prefix = [a, b];
    if matches!(
        &prefix,
        b"BG" | b"GB" | b"KN" | b"NK" | b"NT" | b"TN" | b"ZZ"
    ) {
        return false;
    }
    s[2..8].iter().all(u8::is_ascii_digit) && matches!(s[8].to_ascii_uppercase(), b'A'..=b'D')
}

/// A Spanish DNI (8 digits + check letter) or NIE (X/Y/Z + 7 digits + check letter).
pub fn es_dni(candidate: &str) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let s: Vec<u8> = candidate
        .bytes()
        .filter(|b| *b != b'-')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if s.len() != 9 {
        return false;
    }
    let lead = match s[0] {
        b'X' => 0,
        b'Y' => 1,
        b'Z' => 2,
        c if c.is_ascii_digit() => u32::from(c - b'0'),
        _ => return false,
    };
    if !s[1..8].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n = s[1..8]
        .iter()
        .fold(lead, |a, &x| a * 10 + u32::from(x - b'0'));
    LETTERS[(n % 23) as usize] == s[8]
}

/// A Canadian Social Insurance Number: 9 digits in groups of 3, Luhn-valid.
pub fn ca_sin(candidate: &str) -> bool {
    let Some(d) = digits(candidate) else {
        return false;
    };
    d.len() == 9 && luhn(&d)
}

/// A phone number: 7 to 15 digits (E.164 bounds) in the candidate.
pub fn phone(candidate: &str) -> bool {
    let n = candidate.bytes().filter(u8::is_ascii_digit).count();
    (7..=15).contains(&n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards() {
        assert!(payment_card("4111 1111 1111 1111"));
        assert!(payment_card("5500-0000-0000-0004"));
        assert!(payment_card("378282246310005"));
        assert!(payment_card("6011111111111117"));
        assert!(!payment_card("4111 1111 1111 1112"), "bad Luhn");
        assert!(!payment_card("1234567812345670"), "no issuer");
    }

    #[test]
    fn ibans() {
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(iban("FR1420041010050500013M02606"));
        assert!(!iban("GB82 WEST 1234 5698 7654 33"));
        assert!(!iban("DE8937040044053201300"), "short");
    }

    #[test]
    fn national_ids() {
        assert!(us_ssn("123-45-6789"));
        assert!(!us_ssn("000-45-6789"));
        assert!(!us_ssn("666-45-6789"));
        assert!(!us_ssn("923-45-6789"));
        assert!(uk_nino("AB 12 34 56 C"));
        assert!(!uk_nino("GB 12 34 56 C"));
        assert!(es_dni("12345678Z"));
        assert!(!es_dni("12345678A"));
        assert!(es_dni("X1234567L"));
        assert!(ca_sin("046 454 286"));
        assert!(!ca_sin("046 454 287"));
    }
}
