//! Text form of xvector and xhalfvec, compatible with pgvector: `[1,2.5,-3]`, ASCII whitespace
//! (C `isspace`) allowed around brackets, numbers and commas. The parser follows pgvector's
//! `vector_in` step by step (same errors, same order, same DETAIL lines) and counts elements as
//! it goes, so a huge literal stops at MAX_DIM + 1 before any large allocation. Output uses the
//! shortest decimal that parses back to the same f32 bits, so text round trips are exact.

use super::error::{VectorError, VectorResult};
use super::validate::MAX_DIM;
use pgrx::PgSqlErrorCode;

/// Bytes of bad input quoted in an error message (a 1 GB literal must not become the message).
const QUOTE_LIMIT: usize = 100;

/// Parse an xvector literal.
pub fn parse(input: &str) -> VectorResult<Vec<f32>> {
    parse_typed(input.as_bytes(), "xvector", Some)
}

/// Parse a literal of type `type_name`. `narrow` maps each parsed f32 to the value the type
/// stores, or None when it does not fit the type (an "out of range" error).
pub fn parse_typed(
    input: &[u8],
    type_name: &str,
    narrow: impl Fn(f32) -> Option<f32>,
) -> VectorResult<Vec<f32>> {
    let syntax = || syntax_error(input, type_name, None);
    let mut pos = skip_space(input, 0);
    if input.get(pos) != Some(&b'[') {
        return Err(syntax_error(
            input,
            type_name,
            Some("Vector contents must start with \"[\"."),
        ));
    }
    pos = skip_space(input, pos + 1);
    if input.get(pos) == Some(&b']') {
        return Err(VectorError::data(format!(
            "{type_name} must have at least 1 dimension"
        )));
    }
    let mut values = Vec::new();
    loop {
        if values.len() == MAX_DIM {
            return Err(VectorError::new(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("{type_name} cannot have more than {MAX_DIM} dimensions"),
            ));
        }
        pos = skip_space(input, pos);
        let end = number_end(input, pos);
        if end == pos {
            return Err(syntax());
        }
        // The token is ASCII by construction of number_end.
        let token = std::str::from_utf8(&input[pos..end]).map_err(|_| syntax())?;
        let parsed: f32 = token.parse().map_err(|_| syntax())?;
        let value = match narrow(parsed) {
            Some(v) if !(v.is_infinite() && !spelled_infinite(token)) => v,
            _ => {
                return Err(VectorError::new(
                    PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                    format!(
                        "\"{}\" is out of range for type {type_name}",
                        quote(token.as_bytes())
                    ),
                ))
            }
        };
        check_element(value, type_name)?;
        values.push(value);
        pos = skip_space(input, end);
        match input.get(pos) {
            Some(b',') => pos += 1,
            Some(b']') => {
                pos += 1;
                break;
            }
            _ => return Err(syntax()),
        }
    }
    pos = skip_space(input, pos);
    if pos != input.len() {
        return Err(syntax_error(
            input,
            type_name,
            Some("Junk after closing right brace."),
        ));
    }
    Ok(values)
}

/// pgvector's per-element check, made as soon as the element is read.
fn check_element(value: f32, type_name: &str) -> VectorResult<()> {
    if value.is_nan() {
        return Err(VectorError::data(format!("NaN not allowed in {type_name}")));
    }
    if value.is_infinite() {
        return Err(VectorError::data(format!(
            "infinite value not allowed in {type_name}"
        )));
    }
    Ok(())
}

fn syntax_error(input: &[u8], type_name: &str, detail: Option<&'static str>) -> VectorError {
    let error = VectorError::new(
        PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        format!(
            "invalid input syntax for type {type_name}: \"{}\"",
            quote(input)
        ),
    );
    match detail {
        Some(d) => error.with_detail(d),
        None => error,
    }
}

/// At most QUOTE_LIMIT bytes of `input` (cut at a character boundary), "..." when cut.
fn quote(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    if text.len() <= QUOTE_LIMIT {
        return text.into_owned();
    }
    let mut cut = QUOTE_LIMIT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

/// C `isspace` in the C locale, as pgvector: space, \t, \n, \v, \f, \r (not Unicode spaces).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn skip_space(input: &[u8], mut pos: usize) -> usize {
    while pos < input.len() && is_space(input[pos]) {
        pos += 1;
    }
    pos
}

/// End of the longest prefix at `pos` that strtof would read as a number: an optionally signed
/// decimal with optional fraction and exponent, or inf / infinity / nan (any case). Returns `pos`
/// when there is none.
fn number_end(input: &[u8], pos: usize) -> usize {
    let mut i = pos;
    if matches!(input.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    for word in [&b"infinity"[..], b"inf", b"nan"] {
        if input.len() >= i + word.len() && input[i..i + word.len()].eq_ignore_ascii_case(word) {
            return i + word.len();
        }
    }
    let digits = |mut j: usize| {
        while j < input.len() && input[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let int_end = digits(i);
    let mut end = int_end;
    let mut mantissa_digits = int_end - i;
    if input.get(end) == Some(&b'.') {
        let frac_end = digits(end + 1);
        mantissa_digits += frac_end - end - 1;
        end = frac_end;
    }
    if mantissa_digits == 0 {
        return pos;
    }
    if matches!(input.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(input.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_end = digits(j);
        if exp_end > j {
            end = exp_end;
        }
    }
    end
}

fn spelled_infinite(token: &str) -> bool {
    token
        .trim_start_matches(['+', '-'])
        .to_ascii_lowercase()
        .starts_with("inf")
}

pub fn format(values: &[f32]) -> String {
    let mut out = String::with_capacity(values.len() * 10 + 2);
    out.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_float(&mut out, *v);
    }
    out.push(']');
    out
}

/// One element as `format` writes it (for messages that quote a value).
pub fn format_float(v: f32) -> String {
    let mut out = String::new();
    push_float(&mut out, v);
    out
}

/// Shortest round-trip digits; exponent form for very large or small magnitudes, as float4out does.
fn push_float(out: &mut String, v: f32) {
    use std::fmt::Write;
    let magnitude = v.abs();
    // float4out's rule: fixed notation for decimal exponents -4..=5 (FLT_DIG), else exponent.
    if magnitude != 0.0 && !(1e-4..1e6).contains(&magnitude) {
        let s = format!("{v:e}");
        // Rust writes 1e30 / 1e-5; Postgres (and pgvector) write 1e+30 / 1e-05: a sign and at
        // least two exponent digits.
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        let _ = write!(out, "{mantissa}e{sign}{digits:0>2}");
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_pgvector_format() {
        assert_eq!(parse("[1,2.5,-3]").unwrap(), vec![1.0, 2.0 + 0.5, -3.0]);
        assert_eq!(
            parse("  [ 1 , 2e3,\t.5 ]  ").unwrap(),
            vec![1.0, 2000.0, 0.5]
        );
        assert_eq!(parse("[1.,+2,\x0b3\x0c]\r\n").unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(parse("[-0]").unwrap()[0].to_bits(), (-0.0f32).to_bits());
        // Underflow reads as zero, as strtof and pgvector's vector_in do.
        assert_eq!(
            parse("[1e-50,-1e-46]")
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>(),
            vec![0, 1 << 31]
        );
    }

    #[test]
    fn rejects_bad_text() {
        for bad in [
            "",
            "1,2",
            "[1,2",
            "1,2]",
            "[1,,2]",
            "[1,2,]",
            "[a]",
            "[1 2]",
            "[[1]]",
            "[0x10]",
            "[",
            "[ ",
            "[,",
            "[,]",
            "[1a]",
            "[1e]",
            "[1,2]9",
            "[1,\u{a0}2]",
            "\u{a0}[1]",
            "[1]\u{a0}",
            "[.]",
            "[-]",
            "[e5]",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(
                e.code,
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                "{bad}"
            );
            assert_eq!(
                e.message,
                format!("invalid input syntax for type xvector: \"{bad}\"")
            );
        }
        assert_eq!(
            parse("1,2").unwrap_err().detail.as_deref(),
            Some("Vector contents must start with \"[\".")
        );
        assert_eq!(
            parse("[1]x").unwrap_err().detail.as_deref(),
            Some("Junk after closing right brace.")
        );
        assert_eq!(parse("[1,x]").unwrap_err().detail, None);
        assert_eq!(
            parse("[]").unwrap_err().message,
            "xvector must have at least 1 dimension"
        );
        assert_eq!(
            parse(" [ ] ").unwrap_err().code,
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION
        );
        assert_eq!(
            parse("[NaN]").unwrap_err().message,
            "NaN not allowed in xvector"
        );
        assert_eq!(
            parse("[NaN,x]").unwrap_err().message,
            "NaN not allowed in xvector"
        );
        assert_eq!(
            parse("[-Infinity]").unwrap_err().message,
            "infinite value not allowed in xvector"
        );
        assert_eq!(
            parse("[inf]").unwrap_err().message,
            "infinite value not allowed in xvector"
        );
        let e = parse("[1,1e39]").unwrap_err();
        assert_eq!(e.message, "\"1e39\" is out of range for type xvector");
        assert_eq!(e.code, PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE);
    }

    #[test]
    fn stops_counting_at_the_limit() {
        let ok = format!("[{}0]", "0,".repeat(MAX_DIM - 1));
        assert_eq!(parse(&ok).unwrap().len(), MAX_DIM);
        // A literal far longer than the limit fails after MAX_DIM elements, without reading on.
        let huge = format!("[{}0]", "0,".repeat(4 * MAX_DIM));
        let e = parse(&huge).unwrap_err();
        assert_eq!(e.code, PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED);
        assert_eq!(e.message, "xvector cannot have more than 16000 dimensions");
    }

    #[test]
    fn quotes_at_most_a_hundred_bytes() {
        let bad = format!("[{}x]", "1,".repeat(1000));
        let message = parse(&bad).unwrap_err().message;
        assert_eq!(
            message,
            format!(
                "invalid input syntax for type xvector: \"{}...\"",
                &bad[..QUOTE_LIMIT]
            )
        );
        // The cut never splits a character.
        let bad = format!("x{}", "é".repeat(100));
        assert!(parse(&bad).unwrap_err().message.ends_with("é...\""));
    }

    #[test]
    fn format_is_readable() {
        assert_eq!(format(&[1.0, 2.5, -3.0]), "[1,2.5,-3]");
        assert_eq!(format(&[1e30, 1e-30, 0.1]), "[1e+30,1e-30,0.1]");
        assert_eq!(
            format(&[1e-5, -6.1035156e-5, 1e15, 0.0001]),
            "[1e-05,-6.1035156e-05,1e+15,0.0001]"
        );
        assert_eq!(
            format(&[1234567.0, 999999.94, 100000.0, -1e6]),
            "[1.234567e+06,999999.94,100000,-1e+06]"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any finite f32 vector formats to text that parses back to the same bits.
        #[test]
        fn round_trips_bits(bits in prop::collection::vec(any::<u32>(), 1..40)) {
            let values: Vec<f32> = bits.iter().map(|b| f32::from_bits(*b)).filter(|v| v.is_finite()).collect();
            prop_assume!(!values.is_empty());
            let back = parse(&format(&values)).unwrap();
            prop_assert_eq!(
                back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }

        /// Arbitrary strings never panic; whatever parses is valid and survives a round trip.
        #[test]
        fn arbitrary_input_never_panics(input in "\\PC*") {
            check_any(input.as_bytes());
        }

        /// Valid literals with one byte changed, inserted or removed: still no panic.
        #[test]
        fn mutated_input_never_panics(
            values in prop::collection::vec(-1e6f32..1e6, 1..12),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(&b" ,[]-+.eE0123456789nNaAiIfF\t\x0b\xa0x"[..]),
            how in 0u8..3,
        ) {
            let mut text = format(&values).into_bytes();
            let i = at.index(text.len());
            match how {
                0 => text[i] = byte,
                1 => text.insert(i, byte),
                _ => { text.remove(i); }
            }
            check_any(&text);
        }
    }

    fn check_any(input: &[u8]) {
        if let Ok(values) = parse_typed(input, "xvector", Some) {
            assert!(!values.is_empty() && values.len() <= MAX_DIM);
            assert!(values.iter().all(|v| v.is_finite()));
            let again = parse(&format(&values)).unwrap();
            assert_eq!(
                again.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}
