//! avg(xvector) and sum(xvector): the state is float8[] = {count, sum_1, ..., sum_n}, so
//! partial states from parallel workers combine by adding element-wise.

use pgrx::prelude::*;

use super::datum::Xvector;
use super::error::{OrRaise, VectorError, VectorResult};
use super::validate::{check_dim_count, to_f32_checked, MAX_DIM};

/// A state array as a Vec, refused before anything is copied when it is not the shape the
/// aggregates make (one dimension, no NULLs, at most {count} plus MAX_DIM sums, a count >= 0):
/// the state functions are callable from SQL with any float8[].
fn state_values(state: Array<'_, f64>) -> VectorResult<Vec<f64>> {
    if state.len() > MAX_DIM + 1 {
        return Err(VectorError::new(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "xvector aggregate state cannot have more than {} elements",
                MAX_DIM + 1
            ),
        ));
    }
    let values = state.iter().collect::<Option<Vec<f64>>>().ok_or_else(|| {
        VectorError::new(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "xvector aggregate state must not contain nulls",
        )
    })?;
    // SAFETY: the Array wraps a valid, detoasted ArrayType for the duration of the call.
    if unsafe { (*state.into_array_type()).ndim } > 1 {
        return Err(invalid_state("it must be one-dimensional"));
    }
    match values.first() {
        Some(count) if !(count.is_finite() && *count >= 0.0) => {
            Err(invalid_state("its count must be a number >= 0"))
        }
        _ => Ok(values),
    }
}

fn invalid_state(why: &str) -> VectorError {
    VectorError::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("invalid xvector aggregate state: {why}"),
    )
}

fn accumulate(mut state: Vec<f64>, values: &[f32]) -> VectorResult<Vec<f64>> {
    if state.len() <= 1 {
        state.resize(values.len() + 1, 0.0);
    } else if state.len() != values.len() + 1 {
        return Err(VectorError::dimension_mismatch(
            state.len() - 1,
            values.len(),
        ));
    }
    state[0] += 1.0;
    for (sum, v) in state[1..].iter_mut().zip(values) {
        *sum += *v as f64;
    }
    Ok(state)
}

fn combine(a: Vec<f64>, b: Vec<f64>) -> VectorResult<Vec<f64>> {
    if a.len() <= 1 {
        return Ok(b);
    }
    if b.len() <= 1 {
        return Ok(a);
    }
    if a.len() != b.len() {
        return Err(VectorError::dimension_mismatch(a.len() - 1, b.len() - 1));
    }
    Ok(a.iter().zip(&b).map(|(x, y)| x + y).collect())
}

fn finish(state: &[f64], divide_by_count: bool) -> VectorResult<Option<Vec<f32>>> {
    if state.len() <= 1 || state[0] == 0.0 {
        return Ok(None);
    }
    check_dim_count(state.len() - 1)?;
    let divisor = if divide_by_count { state[0] } else { 1.0 };
    state[1..]
        .iter()
        .map(|s| to_f32_checked(s / divisor))
        .collect::<VectorResult<Vec<f32>>>()
        .map(Some)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xvector_accum(state: Array<'_, f64>, vector: Xvector) -> Vec<f64> {
    accumulate(state_values(state).or_raise(), vector.as_slice()).or_raise()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xvector_combine(a: Array<'_, f64>, b: Array<'_, f64>) -> Vec<f64> {
    combine(state_values(a).or_raise(), state_values(b).or_raise()).or_raise()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xvector_avg(state: Array<'_, f64>) -> Option<Xvector> {
    finish(&state_values(state).or_raise(), true)
        .or_raise()
        .map(|v| Xvector::from_slice(&v))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xvector_sum(state: Array<'_, f64>) -> Option<Xvector> {
    finish(&state_values(state).or_raise(), false)
        .or_raise()
        .map(|v| Xvector::from_slice(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avg_and_sum() {
        let s = accumulate(vec![0.0], &[1.0, 2.0]).unwrap();
        let s = accumulate(s, &[3.0, 4.0]).unwrap();
        assert_eq!(finish(&s, true).unwrap().unwrap(), vec![2.0, 3.0]);
        assert_eq!(finish(&s, false).unwrap().unwrap(), vec![4.0, 6.0]);
        assert!(accumulate(s.clone(), &[1.0]).is_err());
        assert_eq!(combine(vec![0.0], s.clone()).unwrap(), s);
        let big = accumulate(accumulate(vec![0.0], &[3e38]).unwrap(), &[3e38]).unwrap();
        assert_eq!(
            finish(&big, false).unwrap_err().message,
            "value out of range: overflow"
        );
        assert_eq!(finish(&big, true).unwrap().unwrap(), vec![3e38]);
        assert_eq!(finish(&[0.0], true).unwrap(), None);
        let mut wide = vec![1.0; MAX_DIM + 2];
        assert_eq!(
            finish(&wide, false).unwrap_err().code,
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED
        );
        wide.truncate(MAX_DIM + 1);
        assert_eq!(finish(&wide, false).unwrap().unwrap().len(), MAX_DIM);
    }
}
