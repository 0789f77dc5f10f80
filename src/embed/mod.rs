//! CLIP-style encoders for `embed_text` / `embed_image`.
//!
//! Free of any Postgres dependency, in `pipeline/` (tested by `cargo test`): model directory
//! configuration, text clean-up and tokenisation, image decoding and preprocessing, ONNX Runtime
//! sessions, one error type, the cache of recent results and the counters.
//!
//! Postgres wiring: GUCs (settings), the model registry table and who may change it (registry),
//! the sessions, cache and counters of each backend (encoders), `xmodal.preload` (preload),
//! errors with their SQLSTATE (report) and the SQL functions (sql).

pub mod encoders;
pub mod pipeline;
pub mod preload;
pub mod registry;
pub mod report;
pub mod service;
pub mod settings;
pub mod sql;

pub use pipeline::Modality;
