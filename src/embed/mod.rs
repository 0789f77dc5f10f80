//! CLIP-style encoders for `embed_text` / `embed_image`, free of any Postgres dependency: model
//! directory configuration (model), text clean-up and tokenisation (clean, tokenize), image
//! decoding and preprocessing (preprocess), ONNX Runtime sessions (session), one error type (error).

pub mod clean;
pub mod error;
pub mod model;
pub mod preprocess;
pub mod session;
pub mod tokenize;
