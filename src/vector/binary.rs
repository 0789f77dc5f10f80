//! Binary wire form (COPY BINARY, drivers' binary mode): int16 dimension, int16 unused,
//! then big-endian float4s — the same bytes pgvector sends.

use super::error::{VectorError, VectorResult};
use super::validate::{check_dim_count, check_finite};

pub fn encode(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + values.len() * 4);
    out.extend_from_slice(&(values.len() as u16).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

pub fn decode(bytes: &[u8]) -> VectorResult<Vec<f32>> {
    let malformed = || VectorError::new(pgrx::PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION, "malformed binary xvector");
    if bytes.len() < 4 {
        return Err(malformed());
    }
    let dim = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
    let unused = u16::from_be_bytes([bytes[2], bytes[3]]);
    check_dim_count(dim)?;
    if unused != 0 {
        return Err(VectorError::data("expected unused to be 0, not ".to_string() + &unused.to_string()));
    }
    let body = &bytes[4..];
    if body.len() != dim * 4 {
        return Err(malformed());
    }
    let values: Vec<f32> = body.chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
    check_finite(&values)?;
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_byte_equal() {
        let values = [1.5f32, -0.0, 3.4e38, 1e-45];
        let bytes = encode(&values);
        assert_eq!(bytes.len(), 4 + 16);
        let back = decode(&bytes).unwrap();
        assert_eq!(values.map(f32::to_bits).to_vec(), back.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        assert_eq!(encode(&back), bytes);
    }

    #[test]
    fn rejects_malformed() {
        assert!(decode(&[0, 1]).is_err());
        assert!(decode(&[0, 2, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode(&[0, 0, 0, 0]).is_err());
        let mut nan = encode(&[1.0]);
        nan[4..].copy_from_slice(&f32::NAN.to_be_bytes());
        assert_eq!(decode(&nan).unwrap_err().message, "NaN not allowed in xvector");
    }
}
