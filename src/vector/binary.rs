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
    let malformed = || {
        VectorError::new(
            pgrx::PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            "malformed binary xvector",
        )
    };
    if bytes.len() < 4 {
        return Err(malformed());
    }
    let dim = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
    let unused = u16::from_be_bytes([bytes[2], bytes[3]]);
    check_dim_count(dim)?;
    if unused != 0 {
        return Err(VectorError::data(
            "expected unused to be 0, not ".to_string() + &unused.to_string(),
        ));
    }
    let body = &bytes[4..];
    if body.len() != dim * 4 {
        return Err(malformed());
    }
    let values: Vec<f32> = body
        .chunks_exact(4)
        .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
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
        assert_eq!(
            values.map(f32::to_bits).to_vec(),
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(encode(&back), bytes);
    }

    #[test]
    fn rejects_malformed() {
        assert!(decode(&[0, 1]).is_err());
        assert!(decode(&[0, 2, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode(&[0, 0, 0, 0]).is_err());
        let mut nan = encode(&[1.0]);
        nan[4..].copy_from_slice(&f32::NAN.to_be_bytes());
        assert_eq!(
            decode(&nan).unwrap_err().message,
            "NaN not allowed in xvector"
        );
    }

    // Fuzzing (fuzz/README.md): any bytes decode to a valid vector that encodes back to the same
    // bytes, or to an error; every valid vector survives a round trip bit for bit.
    mod fuzz {
        use super::*;
        use crate::vector::validate::MAX_DIM;
        use proptest::prelude::*;

        /// A well-formed message with random bytes changed.
        fn mutated() -> impl Strategy<Value = Vec<u8>> {
            let values = prop::collection::vec(any::<f32>(), 0..64);
            let flips = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6);
            (values, flips).prop_map(|(values, flips)| {
                let mut bytes = encode(&values);
                for (at, byte) in flips {
                    let at = at.index(bytes.len());
                    bytes[at] = byte;
                }
                bytes
            })
        }

        fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
            if let Ok(values) = decode(bytes) {
                prop_assert!((1..=MAX_DIM).contains(&values.len()));
                prop_assert!(values.iter().all(|v| v.is_finite()));
                prop_assert_eq!(encode(&values), bytes.to_vec());
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                check(&bytes)?;
            }

            #[test]
            fn mutated_messages(bytes in mutated()) {
                check(&bytes)?;
            }

            #[test]
            fn finite_vectors_round_trip(values in prop::collection::vec(-1e30f32..1e30, 1..512)) {
                let back = decode(&encode(&values)).unwrap();
                prop_assert_eq!(back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                                values.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            }
        }
    }
}
