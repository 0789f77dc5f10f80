//! The per-backend cache of recent embeddings. It makes `ORDER BY emb <=> embed_text('dog')` run
//! the text tower once per query whatever the plan: a sequential scan evaluates the (STABLE) call
//! once per row, and every row after the first is a hit. An entry is keyed by the model's
//! registration id (a new registration never sees old results), the modality, the input length
//! and a 128-bit keyed hash of the input (two SipHash-1-3 with random per-process keys), so a
//! large image costs no memory here. The input is what the embedding depends on: a text's
//! first 256 KiB; an image only once it is within the byte limit (encoders.rs). Least recently used entries are evicted first.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};

use super::Modality;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    model: i64,
    modality: Modality,
    len: usize,
    hash: [u64; 2],
}

pub struct ResultCache {
    hashers: [RandomState; 2],
    /// Most recently used first.
    entries: VecDeque<(Key, Vec<f32>)>,
}

impl Default for ResultCache {
    fn default() -> Self {
        Self {
            hashers: [RandomState::new(), RandomState::new()],
            entries: VecDeque::new(),
        }
    }
}

impl ResultCache {
    pub fn key(&self, model: i64, modality: Modality, input: &[u8]) -> Key {
        let hash = self.hashers.each_ref().map(|state| {
            let mut hasher = state.build_hasher();
            hasher.write(input);
            hasher.finish()
        });
        Key {
            model,
            modality,
            len: input.len(),
            hash,
        }
    }

    /// The cached embedding, which becomes the most recently used.
    pub fn get(&mut self, key: &Key) -> Option<Vec<f32>> {
        let at = self.entries.iter().position(|(k, _)| k == key)?;
        let entry = self.entries.remove(at)?;
        let embedding = entry.1.clone();
        self.entries.push_front(entry);
        Some(embedding)
    }

    /// Remembers an embedding, keeping at most `capacity` entries (0: remember nothing).
    pub fn put(&mut self, key: Key, embedding: Vec<f32>, capacity: usize) {
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push_front((key, embedding));
        self.entries.truncate(capacity);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_misses_and_eviction() {
        let mut cache = ResultCache::default();
        let dog = cache.key(1, Modality::Text, b"dog");
        assert_eq!(cache.get(&dog), None);
        cache.put(dog, vec![1.0], 2);
        assert_eq!(cache.get(&dog), Some(vec![1.0]));
        // Same bytes under another registration or modality are other entries.
        assert_ne!(cache.key(2, Modality::Text, b"dog"), dog);
        assert_ne!(cache.key(1, Modality::Image, b"dog"), dog);
        assert_ne!(cache.key(1, Modality::Text, b"dogs"), dog);
        let cat = cache.key(1, Modality::Text, b"cat");
        let fox = cache.key(1, Modality::Text, b"fox");
        cache.put(cat, vec![2.0], 2);
        assert_eq!(cache.get(&dog), Some(vec![1.0])); // dog is now the most recent
        cache.put(fox, vec![3.0], 2); // evicts cat
        assert_eq!(cache.get(&cat), None);
        assert_eq!(cache.get(&dog), Some(vec![1.0]));
        cache.put(cat, vec![2.0], 0);
        assert_eq!(cache.get(&cat), None);
        assert_eq!(cache.get(&dog), None);
    }
}
