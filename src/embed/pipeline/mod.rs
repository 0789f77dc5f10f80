//! The Postgres-free half of the encoders (tested by `cargo test`, no pgrx use): model directory
//! configuration (model), text clean-up and tokenisation (clean, tokenize), image decoding and
//! preprocessing (preprocess), the ONNX Runtime environment and device placement (runtime), the
//! encoders that run the text and image towers (session), one error type (error), the cache of
//! recent results (cache) and the counters (stats). Whatever runs here may run on any thread;
//! the Postgres wiring lives one level up, in `src/embed`.

pub mod cache;
pub mod clean;
pub mod error;
pub mod model;
pub mod preprocess;
pub mod runtime;
pub mod session;
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
