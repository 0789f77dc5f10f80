//! Text form of an xvector, compatible with pgvector: `[1,2.5,-3]`, whitespace allowed around
//! brackets, numbers and commas. Output uses the shortest decimal that parses back to the same
//! f32 bits, so text round trips are exact.

use super::error::{VectorError, VectorResult};
use super::validate::{check_dim_count, check_finite};
use pgrx::PgSqlErrorCode;

pub fn parse(input: &str) -> VectorResult<Vec<f32>> {
    let body = input
        .trim()
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| VectorError::syntax(input))?;
    if body.trim().is_empty() {
        return Err(VectorError::data("xvector must have at least 1 dimension"));
    }
    let values = body
        .split(',')
        .map(|token| parse_element(token.trim(), input))
        .collect::<VectorResult<Vec<f32>>>()?;
    check_dim_count(values.len())?;
    check_finite(&values)?;
    Ok(values)
}

fn parse_element(token: &str, input: &str) -> VectorResult<f32> {
    // Rust's float grammar is close to strtof's; refuse what strtof would not take.
    if token.is_empty() || token.starts_with(|c: char| c == '_') {
        return Err(VectorError::syntax(input));
    }
    let value: f32 = token.parse().map_err(|_| VectorError::syntax(input))?;
    let spelled_infinite = token.trim_start_matches(['+', '-']).to_ascii_lowercase().starts_with("inf");
    if value.is_infinite() && !spelled_infinite {
        return Err(VectorError::new(
            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            format!("\"{token}\" is out of range for type real"),
        ));
    }
    Ok(value)
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

/// Shortest round-trip digits; exponent form for very large or small magnitudes, as float4out does.
fn push_float(out: &mut String, v: f32) {
    use std::fmt::Write;
    let magnitude = v.abs();
    if magnitude != 0.0 && !(1e-4..1e15).contains(&magnitude) {
        let s = format!("{v:e}");
        // Rust writes 1e30 / 1e-30; Postgres writes 1e+30 / 1e-30.
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{mantissa}e+{exp}");
            }
            _ => out.push_str(&s),
        }
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pgvector_format() {
        assert_eq!(parse("[1,2.5,-3]").unwrap(), vec![1.0, 2.5, -3.0]);
        assert_eq!(parse("  [ 1 , 2e3,\t.5 ]  ").unwrap(), vec![1.0, 2000.0, 0.5]);
        assert_eq!(parse("[-0]").unwrap()[0].to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn rejects_bad_text() {
        for bad in ["", "1,2", "[1,2", "1,2]", "[1,,2]", "[1,2,]", "[a]", "[1 2]", "[[1]]", "[0x10]"] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.code, PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION, "{bad}");
        }
        assert_eq!(parse("[]").unwrap_err().message, "xvector must have at least 1 dimension");
        assert_eq!(parse("[NaN]").unwrap_err().message, "NaN not allowed in xvector");
        assert_eq!(parse("[-Infinity]").unwrap_err().message, "infinite value not allowed in xvector");
        assert_eq!(parse("[1e39]").unwrap_err().message, "\"1e39\" is out of range for type real");
    }

    #[test]
    fn format_round_trips_bits() {
        let mut state = 0x9E3779B97F4A7C15u64;
        for _ in 0..20000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = f32::from_bits(state as u32);
            if !v.is_finite() {
                continue;
            }
            let text = format(&[v]);
            let back = parse(&text).unwrap();
            assert_eq!(back[0].to_bits(), v.to_bits(), "{text}");
        }
    }

    #[test]
    fn format_is_readable() {
        assert_eq!(format(&[1.0, 2.5, -3.0]), "[1,2.5,-3]");
        assert_eq!(format(&[1e30, 1e-30, 0.1]), "[1e+30,1e-30,0.1]");
    }
}
