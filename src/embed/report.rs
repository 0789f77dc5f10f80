//! Raising the encoders' failures as Postgres ERRORs, each with its SQLSTATE (the mapping that
//! src/embed/error.rs documents), plus the SQL layer's own errors.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

use super::pipeline::error::EmbedError;

pub fn sqlstate(error: &EmbedError) -> PgSqlErrorCode {
    use EmbedError::*;
    use PgSqlErrorCode::*;
    match error {
        EmptyText | EmptyImage | UnsupportedImage(_) => ERRCODE_INVALID_PARAMETER_VALUE,
        ImageTooLarge { .. } | ImageTooManyPixels { .. } | ImageTooMuchMemory { .. } => {
            ERRCODE_PROGRAM_LIMIT_EXCEEDED
        }
        OutOfMemory(_) => ERRCODE_OUT_OF_MEMORY,
        CorruptImage(_) => ERRCODE_INVALID_BINARY_REPRESENTATION,
        MissingFile(_) => ERRCODE_UNDEFINED_FILE,
        InvalidConfig { .. } | InvalidTokenizer { .. } | InvalidModel { .. } => {
            ERRCODE_INVALID_PARAMETER_VALUE
        }
        NoTower(_) => ERRCODE_FEATURE_NOT_SUPPORTED,
        Runtime { .. } | Device(_) => ERRCODE_SYSTEM_ERROR,
        Inference(_) => ERRCODE_INTERNAL_ERROR,
    }
}

/// An ERROR about model `model` (named in the message when the failure concerns the model
/// rather than the input), with an optional detail such as the array element.
#[track_caller]
pub fn raise_embed(error: EmbedError, model: &str, detail: Option<String>) -> ! {
    let mut report = ErrorReport::new(sqlstate(&error), message(&error, model), "xmodal");
    if let Some(detail) = detail {
        report = report.set_detail(detail);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// The message of `error` about model `model`: the model is named when the failure concerns it
/// rather than the input.
pub fn message(error: &EmbedError, model: &str) -> String {
    match error {
        EmbedError::NoTower(modality) => format!("model \"{model}\" has no {modality} tower"),
        EmbedError::MissingFile(_)
        | EmbedError::InvalidConfig { .. }
        | EmbedError::InvalidTokenizer { .. }
        | EmbedError::InvalidModel { .. }
        | EmbedError::Device(_) => format!("model \"{model}\": {error}"),
        _ => error.to_string(),
    }
}

/// An ERROR with a SQLSTATE, a message and an optional hint.
#[track_caller]
pub fn raise(code: PgSqlErrorCode, message: String, hint: Option<&str>) -> ! {
    let mut report = ErrorReport::new(code, message, "xmodal");
    if let Some(hint) = hint {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// Unwraps an encoder result or raises it for `model`.
pub trait OrRaise<T> {
    fn or_raise(self, model: &str) -> T;
}

impl<T> OrRaise<T> for Result<T, EmbedError> {
    #[track_caller]
    fn or_raise(self, model: &str) -> T {
        match self {
            Ok(value) => value,
            Err(error) => raise_embed(error, model, None),
        }
    }
}
