//! CLIP-style encoders for `embed_text` / `embed_image`.
//!
//! Free of any Postgres dependency (tested by `cargo test`): model directory configuration
//! (model), text clean-up and tokenisation (clean, tokenize), image decoding and preprocessing
//! (preprocess), ONNX Runtime sessions (session), one error type (error), the cache of recent
//! results (cache) and the counters (stats).
//!
//! Postgres wiring: GUCs (settings), the model registry table and who may change it (registry),
//! the sessions, cache and counters of each backend (encoders), `xmodal.preload` (preload),
//! errors with their SQLSTATE (report) and the SQL functions (sql).

pub mod cache;
pub mod clean;
pub mod encoders;
pub mod error;
pub mod model;
pub mod preload;
pub mod preprocess;
pub mod registry;
pub mod report;
pub mod session;
pub mod settings;
pub mod sql;
pub mod stats;
pub mod tokenize;

/// What a tower embeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Modality {
    Text,
    Image,
}

impl Modality {
    pub fn name(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Image => "image",
        }
    }
}
