//! One error type for everything that validates user vectors, carrying the SQLSTATE it reports.
//! Pure code returns `VectorError`; the SQL layer turns it into an ERROR with `raise`.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug, Clone, PartialEq)]
pub struct VectorError {
    pub code: PgSqlErrorCode,
    pub message: String,
    /// DETAIL line, where pgvector gives one for the same error.
    pub detail: Option<String>,
}

impl VectorError {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        VectorError {
            code,
            message: message.into(),
            detail: None,
        }
    }

    pub fn data(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_DATA_EXCEPTION, message)
    }

    pub fn syntax(input: &str) -> Self {
        Self::new(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type xvector: \"{input}\""),
        )
    }

    pub fn overflow() -> Self {
        Self::new(
            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            "value out of range: overflow",
        )
    }

    pub fn dimension_mismatch(a: usize, b: usize) -> Self {
        Self::data(format!("different xvector dimensions {a} and {b}"))
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Report as a Postgres ERROR (does not return).
    pub fn raise(self) -> ! {
        let mut report = ErrorReport::new(self.code, self.message, "xmodal");
        if let Some(detail) = self.detail {
            report = report.set_detail(detail);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

pub type VectorResult<T> = Result<T, VectorError>;

/// Unwrap a result or raise its error as a Postgres ERROR.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for VectorResult<T> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.raise(),
        }
    }
}
