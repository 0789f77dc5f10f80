//! `xhalfvec(n)`: half-precision vectors with pgvector's `halfvec` behaviour. The varlena holds
//! the same header as xvector (16-bit dimension count, 16 unused bits) followed by IEEE
//! binary16 elements. Text and binary forms are pgvector's (binary: int16 dim, int16 unused,
//! big-endian halves). Arithmetic and distances widen to f32; results narrow back with
//! pgvector's overflow and underflow errors. Operators, casts, aggregates and opclasses are in
//! sql/xhalfvec_ops.sql and sql/xhnsw.sql.

use half::f16;
use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::prelude::*;
use pgrx::{FromDatum, Internal, IntoDatum, PgSqlErrorCode};
use std::cmp::Ordering;
use std::ffi::{CStr, CString};
use std::ptr::NonNull;

use super::datum::Xvector;
use super::error::{OrRaise, VectorError, VectorResult};
use super::functions::{compare, subvector_range};
use super::kernels;
use super::text;
use super::validate::{check_typmod, MAX_DIM};

const TYPE_NAME: &str = "xhalfvec";

#[repr(C)]
struct Header {
    varlena_len: u32,
    dim: u16,
    unused: u16,
}

const HEADER_SIZE: usize = std::mem::size_of::<Header>();

/// A detoasted xhalfvec in Postgres memory (valid for the current memory context).
pub struct Xhalfvec {
    ptr: NonNull<Header>,
}

impl Xhalfvec {
    /// Copy `halves` into a new palloc'd value. Callers check the count and the elements.
    fn from_halves(halves: &[f16]) -> Xhalfvec {
        let size = HEADER_SIZE + std::mem::size_of_val(halves);
        unsafe {
            let raw = pg_sys::palloc0(size) as *mut Header;
            (*raw).varlena_len = (size as u32) << 2; // SET_VARSIZE, 4-byte header
            (*raw).dim = halves.len() as u16;
            let data = (raw as *mut u8).add(HEADER_SIZE) as *mut f16;
            std::ptr::copy_nonoverlapping(halves.as_ptr(), data, halves.len());
            Xhalfvec {
                ptr: NonNull::new_unchecked(raw),
            }
        }
    }

    /// Narrow checked f32 values (see `narrow_all`) into a new value.
    fn from_f32(values: &[f32]) -> VectorResult<Xhalfvec> {
        Ok(Xhalfvec::from_halves(&narrow_all(values)?))
    }

    pub fn dim(&self) -> usize {
        unsafe { self.ptr.as_ref().dim as usize }
    }

    pub fn halves(&self) -> &[f16] {
        unsafe {
            let data = (self.ptr.as_ptr() as *const u8).add(HEADER_SIZE) as *const f16;
            std::slice::from_raw_parts(data, self.dim())
        }
    }

    pub fn to_f32(&self) -> Vec<f32> {
        self.halves().iter().map(|h| h.to_f32()).collect()
    }

    /// # Safety
    /// `datum` must be a non-NULL datum of type xhalfvec.
    unsafe fn from_datum_value(datum: pg_sys::Datum) -> Xhalfvec {
        let raw = unsafe { pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) } as *mut Header;
        let ptr = NonNull::new(raw).expect("detoasted xhalfvec is never null");
        let value = Xhalfvec { ptr };
        let total = unsafe { (ptr.as_ref().varlena_len >> 2) as usize };
        if total != HEADER_SIZE + value.dim() * 2 {
            VectorError::data("corrupt xhalfvec value").raise();
        }
        value
    }
}

/// The elements of an xvector or xhalfvec datum as f32, for the xhnsw index (whose opclasses
/// exist for both types). The two share a header, and the varlena length tells them apart:
/// 8 + 4·dim bytes for xvector, 8 + 2·dim for xhalfvec (dim ≥ 1, so never both).
///
/// # Safety
/// `datum` must be a non-NULL datum of type xvector or xhalfvec.
pub unsafe fn index_elements(datum: pg_sys::Datum) -> Vec<f32> {
    let raw = unsafe { pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) } as *const Header;
    let (total, dim) = unsafe { (((*raw).varlena_len >> 2) as usize, (*raw).dim as usize) };
    if total == HEADER_SIZE + dim * 2 && dim > 0 {
        unsafe { Xhalfvec::from_datum_value(pg_sys::Datum::from(raw as *mut Header)) }.to_f32()
    } else {
        unsafe { Xvector::from_datum_value(pg_sys::Datum::from(raw as *mut Header)) }
            .as_slice()
            .to_vec()
    }
}

impl FromDatum for Xhalfvec {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            None
        } else {
            Some(unsafe { Xhalfvec::from_datum_value(datum) })
        }
    }
}

impl IntoDatum for Xhalfvec {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(pg_sys::Datum::from(self.ptr.as_ptr()))
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::InvalidOid
    }
}

unsafe impl<'fcx> ArgAbi<'fcx> for Xhalfvec {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }
}

unsafe impl BoxRet for Xhalfvec {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        unsafe { fcinfo.return_raw_datum(pg_sys::Datum::from(self.ptr.as_ptr())) }
    }
}

unsafe impl SqlTranslatable for Xhalfvec {
    const TYPE_IDENT: &'static str = concat!(module_path!(), "::Xhalfvec");
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> =
        Ok(SqlMappingRef::literal("xhalfvec"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("xhalfvec")));
}

// ---- validation and narrowing (pure) ----

fn check_dim_count(dim: usize) -> VectorResult<()> {
    if dim == 0 {
        return Err(VectorError::data("xhalfvec must have at least 1 dimension"));
    }
    if dim > MAX_DIM {
        return Err(VectorError::new(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("xhalfvec cannot have more than {MAX_DIM} dimensions"),
        ));
    }
    Ok(())
}

fn check_element(v: f32) -> VectorResult<()> {
    if v.is_nan() {
        return Err(VectorError::data("NaN not allowed in xhalfvec"));
    }
    if v.is_infinite() {
        return Err(VectorError::data("infinite value not allowed in xhalfvec"));
    }
    Ok(())
}

/// Round to the nearest half; None when a finite value rounds to infinity.
fn narrow(v: f32) -> Option<f32> {
    let h = f16::from_f32(v);
    if h.is_infinite() && !v.is_infinite() {
        None
    } else {
        Some(h.to_f32())
    }
}

/// Narrow every element (pgvector's Float4ToHalf, then its NaN/infinity check), count first.
fn narrow_all(values: &[f32]) -> VectorResult<Vec<f16>> {
    check_dim_count(values.len())?;
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let h = f16::from_f32(*v);
        if h.is_infinite() && !v.is_infinite() {
            return Err(VectorError::new(
                PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                format!(
                    "\"{}\" is out of range for type xhalfvec",
                    text::format_float(*v)
                ),
            ));
        }
        check_element(h.to_f32())?;
        out.push(h);
    }
    Ok(out)
}

fn dimension_mismatch(a: usize, b: usize) -> VectorError {
    VectorError::data(format!("different xhalfvec dimensions {a} and {b}"))
}

fn same_dims(a: &Xhalfvec, b: &Xhalfvec) {
    if a.dim() != b.dim() {
        dimension_mismatch(a.dim(), b.dim()).raise();
    }
}

fn typmod_from_dims(dims: &[i32]) -> VectorResult<i32> {
    let code = PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE;
    match dims {
        [d] if *d < 1 => Err(VectorError::new(
            code,
            "dimensions for type xhalfvec must be at least 1",
        )),
        [d] if *d as usize > MAX_DIM => Err(VectorError::new(
            code,
            format!("dimensions for type xhalfvec cannot exceed {MAX_DIM}"),
        )),
        [d] => Ok(*d),
        _ => Err(VectorError::new(code, "invalid type modifier")),
    }
}

/// Binary form: int16 dim, int16 unused (0), big-endian binary16 elements.
fn encode(halves: &[f16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + halves.len() * 2);
    out.extend_from_slice(&(halves.len() as u16).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    for h in halves {
        out.extend_from_slice(&h.to_bits().to_be_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> VectorResult<Vec<f16>> {
    let malformed = || {
        VectorError::new(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            "malformed binary xhalfvec",
        )
    };
    if bytes.len() < 4 {
        return Err(malformed());
    }
    let dim = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
    let unused = u16::from_be_bytes([bytes[2], bytes[3]]);
    check_dim_count(dim)?;
    if unused != 0 {
        return Err(VectorError::data(format!(
            "expected unused to be 0, not {unused}"
        )));
    }
    if bytes.len() - 4 != dim * 2 {
        return Err(malformed());
    }
    let halves: Vec<f16> = bytes[4..]
        .chunks_exact(2)
        .map(|c| f16::from_bits(u16::from_be_bytes([c[0], c[1]])))
        .collect();
    for h in &halves {
        check_element(h.to_f32())?;
    }
    Ok(halves)
}

/// Element-wise arithmetic in f32, narrowed back: infinity is an overflow; a zero from two
/// non-zero operands of `*` is an underflow (pgvector's checks).
fn elementwise(
    a: &[f16],
    b: &[f16],
    op: impl Fn(f32, f32) -> f32,
    check_underflow: bool,
) -> VectorResult<Vec<f16>> {
    if a.len() != b.len() {
        return Err(dimension_mismatch(a.len(), b.len()));
    }
    let mut out = Vec::with_capacity(a.len());
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (x.to_f32(), y.to_f32());
        let r = f16::from_f32(op(x, y));
        if r.is_infinite() {
            return Err(VectorError::overflow());
        }
        if check_underflow && r.to_f32() == 0.0 && x != 0.0 && y != 0.0 {
            return Err(VectorError::new(
                PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                "value out of range: underflow",
            ));
        }
        out.push(r);
    }
    Ok(out)
}

// ---- type I/O (declared in sql/xvector_type.sql) ----

#[pg_extern(sql = false, immutable, strict, parallel_safe)]
fn xhalfvec_in(input: &CStr, _type_oid: pg_sys::Oid, typmod: i32) -> Xhalfvec {
    let values = text::parse_typed(input.to_bytes(), TYPE_NAME, narrow).or_raise();
    check_typmod(values.len(), typmod).or_raise();
    let halves: Vec<f16> = values.iter().map(|v| f16::from_f32(*v)).collect();
    Xhalfvec::from_halves(&halves)
}

#[pg_extern(sql = false, immutable, strict, parallel_safe)]
fn xhalfvec_out(vector: Xhalfvec) -> CString {
    CString::new(text::format(&vector.to_f32())).expect("formatted floats contain no NUL")
}

#[pg_extern(sql = false, immutable, strict, parallel_safe)]
fn xhalfvec_typmod_in(modifiers: Array<&CStr>) -> i32 {
    typmod_from_dims(&super::typmod::integer_typmods(modifiers)).or_raise()
}

#[pg_extern(sql = false, immutable, strict, parallel_safe)]
fn xhalfvec_recv(buffer: Internal, _type_oid: pg_sys::Oid, typmod: i32) -> Xhalfvec {
    let halves = unsafe {
        let info = &mut *buffer
            .unwrap()
            .expect("recv buffer")
            .cast_mut_ptr::<pg_sys::StringInfoData>();
        let start = info.cursor as usize;
        let bytes = std::slice::from_raw_parts(
            (info.data as *const u8).add(start),
            info.len as usize - start,
        );
        let halves = decode(bytes).or_raise();
        info.cursor = info.len;
        halves
    };
    check_typmod(halves.len(), typmod).or_raise();
    Xhalfvec::from_halves(&halves)
}

#[pg_extern(sql = false, immutable, strict, parallel_safe)]
fn xhalfvec_send(vector: Xhalfvec) -> Vec<u8> {
    encode(vector.halves())
}

// ---- casts ----

/// `xhalfvec(n)` coercion: applied on assignment to a column of declared dimension.
#[pg_extern(name = "xhalfvec", immutable, strict, parallel_safe)]
fn xhalfvec_coerce(vector: Xhalfvec, typmod: i32, _explicit: bool) -> Xhalfvec {
    check_typmod(vector.dim(), typmod).or_raise();
    vector
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xhalfvec_to_xvector(vector: Xhalfvec, typmod: i32, _explicit: bool) -> Xvector {
    check_typmod(vector.dim(), typmod).or_raise();
    Xvector::from_slice(&vector.to_f32())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xvector_to_xhalfvec(vector: Xvector, typmod: i32, _explicit: bool) -> Xhalfvec {
    check_typmod(vector.dim(), typmod).or_raise();
    Xhalfvec::from_f32(vector.as_slice()).or_raise()
}

fn from_array(elements: Vec<Option<f64>>, ndim: i32, typmod: i32) -> VectorResult<Xhalfvec> {
    if ndim > 1 {
        return Err(VectorError::data("array must be 1-D"));
    }
    check_dim_count(elements.len())?;
    let mut values = Vec::with_capacity(elements.len());
    for e in elements {
        let v = e.ok_or_else(|| {
            VectorError::new(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "array must not contain nulls",
            )
        })?;
        // As pgvector: the double narrows to float first, so 1e39 is "infinite".
        check_element(v as f32)?;
        values.push(v as f32);
    }
    check_typmod(values.len(), typmod)?;
    Xhalfvec::from_f32(&values)
}

fn array_ndim<T>(array: Array<'_, T>) -> i32 {
    // SAFETY: the Array wraps a valid, detoasted ArrayType for the duration of the call.
    unsafe { (*array.into_array_type()).ndim }
}

#[pg_extern(immutable, strict, parallel_safe)]
fn array_to_xhalfvec(array: Array<'_, f64>, typmod: i32, _explicit: bool) -> Xhalfvec {
    let elements: Vec<Option<f64>> = array.iter().collect();
    from_array(elements, array_ndim(array), typmod).or_raise()
}

#[pg_extern(name = "array_to_xhalfvec", immutable, strict, parallel_safe)]
fn real_array_to_xhalfvec(array: Array<'_, f32>, typmod: i32, _explicit: bool) -> Xhalfvec {
    let elements: Vec<Option<f64>> = array.iter().map(|e| e.map(f64::from)).collect();
    from_array(elements, array_ndim(array), typmod).or_raise()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xhalfvec_to_float4(vector: Xhalfvec, _typmod: i32, _explicit: bool) -> Vec<f32> {
    vector.to_f32()
}

// ---- functions and operators ----

#[pg_extern(name = "vector_dims", immutable, strict, parallel_safe)]
fn xhalfvec_dims(vector: Xhalfvec) -> i32 {
    vector.dim() as i32
}

fn norm(vector: &Xhalfvec) -> f64 {
    vector
        .halves()
        .iter()
        .map(|h| (h.to_f64()) * (h.to_f64()))
        .sum::<f64>()
        .sqrt()
}

#[pg_extern(name = "l2_norm", immutable, strict, parallel_safe)]
fn xhalfvec_l2_norm(vector: Xhalfvec) -> f64 {
    norm(&vector)
}

/// Unit-length copy; a zero vector stays zero (as pgvector).
#[pg_extern(name = "l2_normalize", immutable, strict, parallel_safe)]
fn xhalfvec_l2_normalize(vector: Xhalfvec) -> Xhalfvec {
    let n = norm(&vector);
    if n == 0.0 {
        return vector;
    }
    let halves: Vec<f16> = vector
        .halves()
        .iter()
        .map(|h| f16::from_f64(h.to_f64() / n))
        .collect();
    Xhalfvec::from_halves(&halves)
}

#[pg_extern(name = "subvector", immutable, strict, parallel_safe)]
fn xhalfvec_subvector(vector: Xhalfvec, start: i32, count: i32) -> Xhalfvec {
    let range = subvector_range(vector.dim(), start, count)
        .map_err(|_| VectorError::data("xhalfvec must have at least 1 dimension"))
        .or_raise();
    Xhalfvec::from_halves(&vector.halves()[range])
}

#[pg_extern(name = "l2_distance", immutable, strict, parallel_safe, cost = 100)]
fn xhalfvec_l2_distance(a: Xhalfvec, b: Xhalfvec) -> f64 {
    same_dims(&a, &b);
    (kernels::l2_squared(&a.to_f32(), &b.to_f32()) as f64).sqrt()
}

#[pg_extern(name = "inner_product", immutable, strict, parallel_safe, cost = 100)]
fn xhalfvec_inner_product(a: Xhalfvec, b: Xhalfvec) -> f64 {
    same_dims(&a, &b);
    kernels::dot(&a.to_f32(), &b.to_f32()) as f64
}

#[pg_extern(
    name = "negative_inner_product",
    immutable,
    strict,
    parallel_safe,
    cost = 100
)]
fn xhalfvec_negative_inner_product(a: Xhalfvec, b: Xhalfvec) -> f64 {
    -xhalfvec_inner_product(a, b)
}

/// 1 - cosine similarity; NaN when either vector is zero (as pgvector).
#[pg_extern(name = "cosine_distance", immutable, strict, parallel_safe, cost = 100)]
fn xhalfvec_cosine_distance(a: Xhalfvec, b: Xhalfvec) -> f64 {
    same_dims(&a, &b);
    kernels::cosine_distance(&a.to_f32(), &b.to_f32())
}

#[pg_extern(name = "l1_distance", immutable, strict, parallel_safe, cost = 100)]
fn xhalfvec_l1_distance(a: Xhalfvec, b: Xhalfvec) -> f64 {
    same_dims(&a, &b);
    kernels::l1(&a.to_f32(), &b.to_f32()) as f64
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xhalfvec_add(a: Xhalfvec, b: Xhalfvec) -> Xhalfvec {
    Xhalfvec::from_halves(&elementwise(a.halves(), b.halves(), |x, y| x + y, false).or_raise())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xhalfvec_sub(a: Xhalfvec, b: Xhalfvec) -> Xhalfvec {
    Xhalfvec::from_halves(&elementwise(a.halves(), b.halves(), |x, y| x - y, false).or_raise())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xhalfvec_mul(a: Xhalfvec, b: Xhalfvec) -> Xhalfvec {
    Xhalfvec::from_halves(&elementwise(a.halves(), b.halves(), |x, y| x * y, true).or_raise())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xhalfvec_concat(a: Xhalfvec, b: Xhalfvec) -> Xhalfvec {
    check_dim_count(a.dim() + b.dim()).or_raise();
    Xhalfvec::from_halves(&[a.halves(), b.halves()].concat())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn xhalfvec_cmp(a: Xhalfvec, b: Xhalfvec) -> i32 {
    compare(&a.to_f32(), &b.to_f32()) as i32
}

macro_rules! comparison {
    ($name:ident, $($ordering:pat_param)|+) => {
        #[pg_extern(immutable, strict, parallel_safe)]
        fn $name(a: Xhalfvec, b: Xhalfvec) -> bool {
            matches!(compare(&a.to_f32(), &b.to_f32()), $($ordering)|+)
        }
    };
}

comparison!(xhalfvec_lt, Ordering::Less);
comparison!(xhalfvec_le, Ordering::Less | Ordering::Equal);
comparison!(xhalfvec_eq, Ordering::Equal);
comparison!(xhalfvec_ne, Ordering::Less | Ordering::Greater);
comparison!(xhalfvec_ge, Ordering::Greater | Ordering::Equal);
comparison!(xhalfvec_gt, Ordering::Greater);

#[cfg(test)]
mod tests {
    use super::*;

    fn halves(values: &[f32]) -> Vec<f16> {
        values.iter().map(|v| f16::from_f32(*v)).collect()
    }

    #[test]
    fn narrows_like_pgvector() {
        assert_eq!(narrow(65519.0), Some(65504.0));
        assert_eq!(narrow(65520.0), None);
        assert_eq!(narrow(1.23456), Some(1.234375));
        assert_eq!(narrow(1e-8).unwrap().to_bits(), 0);
        assert_eq!(
            narrow_all(&[1.0, 70000.0]).unwrap_err().message,
            "\"70000\" is out of range for type xhalfvec"
        );
        assert_eq!(
            narrow_all(&[]).unwrap_err().message,
            "xhalfvec must have at least 1 dimension"
        );
    }

    #[test]
    fn parses_text_with_half_range() {
        let parse = |s: &str| text::parse_typed(s.as_bytes(), TYPE_NAME, narrow);
        assert_eq!(parse("[1.23456, -2]").unwrap(), vec![1.234375, -2.0]);
        assert_eq!(
            parse("[65520]").unwrap_err().message,
            "\"65520\" is out of range for type xhalfvec"
        );
        assert_eq!(
            parse("[4e38]").unwrap_err().message,
            "\"4e38\" is out of range for type xhalfvec"
        );
        assert_eq!(
            parse("[NaN]").unwrap_err().message,
            "NaN not allowed in xhalfvec"
        );
        assert_eq!(
            parse("[]").unwrap_err().message,
            "xhalfvec must have at least 1 dimension"
        );
    }

    #[test]
    fn binary_round_trips_and_rejects() {
        let h = halves(&[1.5, -0.0, 65504.0, 6e-8]);
        let bytes = encode(&h);
        assert_eq!(&bytes[..4], &[0, 4, 0, 0]);
        assert_eq!(&bytes[4..6], &0x3e00u16.to_be_bytes());
        assert_eq!(
            decode(&bytes)
                .unwrap()
                .iter()
                .map(|h| h.to_bits())
                .collect::<Vec<_>>(),
            h.iter().map(|h| h.to_bits()).collect::<Vec<_>>()
        );
        assert!(decode(&[0, 1]).is_err());
        assert!(decode(&[0, 0, 0, 0]).is_err());
        assert!(decode(&[0, 1, 0, 1, 0, 0]).is_err());
        assert!(decode(&[0, 2, 0, 0, 0, 0]).is_err());
        assert_eq!(
            decode(&[0, 1, 0, 0, 0x7e, 0]).unwrap_err().message,
            "NaN not allowed in xhalfvec"
        );
        assert_eq!(
            decode(&[0, 1, 0, 0, 0x7c, 0]).unwrap_err().message,
            "infinite value not allowed in xhalfvec"
        );
    }

    #[test]
    fn arithmetic_checks_range() {
        let a = halves(&[65504.0]);
        assert_eq!(
            elementwise(&a, &a, |x, y| x + y, false)
                .unwrap_err()
                .message,
            "value out of range: overflow"
        );
        let tiny = halves(&[1e-7]);
        assert_eq!(
            elementwise(&tiny, &tiny, |x, y| x * y, true)
                .unwrap_err()
                .message,
            "value out of range: underflow"
        );
        assert_eq!(
            elementwise(&a, &halves(&[1.0, 2.0]), |x, y| x + y, false)
                .unwrap_err()
                .message,
            "different xhalfvec dimensions 1 and 2"
        );
        let r = elementwise(
            &halves(&[1.0, 2.0]),
            &halves(&[3.0, 0.0]),
            |x, y| x * y,
            true,
        )
        .unwrap();
        assert_eq!(r, halves(&[3.0, 0.0]));
    }

    #[test]
    fn typmod_bounds() {
        assert_eq!(typmod_from_dims(&[3]).unwrap(), 3);
        assert!(typmod_from_dims(&[0]).is_err());
        assert!(typmod_from_dims(&[16001]).is_err());
        assert!(typmod_from_dims(&[1, 2]).is_err());
    }
}
