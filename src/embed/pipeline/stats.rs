//! Per-backend counters behind `xmodal.encoder_stats()`, per model and modality.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Modality;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Calls of embed_text / embed_image / embed_texts / embed_images.
    pub calls: i64,
    /// Values embedded (a batch of n counts n), cache hits included.
    pub inputs: i64,
    pub cache_hits: i64,
    /// ONNX Runtime runs (a batch is one).
    pub inferences: i64,
    /// Tokenising or decoding and resizing.
    pub preprocess: Duration,
    /// Preprocessing plus inference.
    pub total: Duration,
}

#[derive(Default)]
pub struct Stats(BTreeMap<(String, Modality), Counters>);

impl Stats {
    pub fn entry(&mut self, model: &str, modality: Modality) -> &mut Counters {
        self.0.entry((model.to_string(), modality)).or_default()
    }

    pub fn rows(&self) -> impl Iterator<Item = (&str, Modality, &Counters)> {
        self.0.iter().map(|((m, k), c)| (m.as_str(), *k, c))
    }

    pub fn reset(&mut self) {
        self.0.clear();
    }
}
