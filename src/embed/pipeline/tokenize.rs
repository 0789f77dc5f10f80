//! Text -> CLIP token ids: wraps a `tokenizers` tokenizer.json with CLIP's rules: optional
//! open_clip clean-up, start and end tokens, truncation to the context length that keeps the end
//! token, padding, attention mask.
//!
//! Encode one text at a time (`Tokenizer::encode_batch` would start rayon's global pool, which must
//! not exist in a process that forks).

use std::path::Path;

use tokenizers::Tokenizer;

use super::clean::clean_openclip;
use super::error::EmbedError;
use super::model::{read_limited, MAX_TOKENIZER_BYTES};

pub const START_TOKEN: &str = "<|startoftext|>";
pub const END_TOKEN: &str = "<|endoftext|>";
/// Input beyond this many bytes is ignored, which bounds the work; it changes the result only for
/// text whose first 256 KiB hold fewer than 75 tokens (almost all whitespace or control characters).
pub const MAX_TEXT_BYTES: usize = 256 * 1024;

/// Clean-up applied before the tokenizer.json pipeline (which does NFC, whitespace, lower case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextCleanup {
    /// open_clip's `SimpleTokenizer` rules (see clean.rs).
    OpenClip,
    /// Nothing beyond tokenizer.json, as transformers' and transformers.js' CLIPTokenizer.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizedText {
    /// `context_length` ids: start, content, end, padding.
    pub ids: Vec<i64>,
    /// 1 for start, content and end tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
}

pub struct ClipTokenizer {
    inner: Tokenizer,
    start: u32,
    end: u32,
    pad: u32,
    context_length: usize,
    cleanup: TextCleanup,
}

impl ClipTokenizer {
    /// Loads tokenizer.json. `pad_id` defaults to the end token, as in transformers.
    pub fn from_file(
        path: &Path,
        context_length: usize,
        pad_id: Option<u32>,
        cleanup: TextCleanup,
    ) -> Result<Self, EmbedError> {
        let invalid = |reason: String| EmbedError::InvalidTokenizer {
            path: path.to_path_buf(),
            reason,
        };
        if !path.is_file() {
            return Err(EmbedError::MissingFile(path.to_path_buf()));
        }
        let bytes = read_limited(path, MAX_TOKENIZER_BYTES).map_err(invalid)?;
        let mut inner = Tokenizer::from_bytes(bytes).map_err(|e| invalid(e.to_string()))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| invalid(e.to_string()))?;
        let id = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| invalid(format!("no {token} token in the vocabulary")))
        };
        let (start, end) = (id(START_TOKEN)?, id(END_TOKEN)?);
        if context_length < 2 {
            return Err(invalid(format!(
                "context length {context_length} is below 2"
            )));
        }
        let pad = pad_id.unwrap_or(end);
        Ok(Self {
            inner,
            start,
            end,
            pad,
            context_length,
            cleanup,
        })
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Token ids and attention mask for one text; `EmptyText` when no content token remains.
    pub fn encode(&self, text: &str) -> Result<TokenizedText, EmbedError> {
        let text = prefix(text, MAX_TEXT_BYTES);
        let cleaned = match self.cleanup {
            TextCleanup::OpenClip => clean_openclip(text),
            TextCleanup::None => text.to_string(),
        };
        let encoding = self
            .inner
            .encode(cleaned, false)
            .map_err(|e| EmbedError::Inference(format!("tokenizer: {e}")))?;
        let content = encoding.get_ids();
        if content.is_empty() {
            return Err(EmbedError::EmptyText);
        }
        Ok(self.frame(content))
    }

    /// Start token, content truncated to fit, end token, padding.
    fn frame(&self, content: &[u32]) -> TokenizedText {
        let kept = content.len().min(self.context_length - 2);
        let mut ids = Vec::with_capacity(self.context_length);
        ids.push(self.start);
        ids.extend_from_slice(&content[..kept]);
        ids.push(self.end);
        let used = ids.len();
        ids.resize(self.context_length, self.pad);
        let mut attention_mask = vec![1; used];
        attention_mask.resize(self.context_length, 0);
        TokenizedText {
            ids: ids.into_iter().map(i64::from).collect(),
            attention_mask,
        }
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models");

    fn references() -> Value {
        let text = std::fs::read_to_string(format!("{MODELS}/reference/texts.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn ids(value: &Value) -> Vec<i64> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    }

    fn check_layout(layout: &str, tokenizer: &ClipTokenizer) {
        let refs = references();
        for case in refs["texts"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let expected = ids(&case[layout]["ids"]);
            let content = expected
                .iter()
                .skip(1)
                .take_while(|&&id| id != 49407)
                .count();
            match tokenizer.encode(text) {
                Err(EmbedError::EmptyText) => {
                    assert_eq!(content, 0, "{layout}: {text:?} is not empty")
                }
                Err(e) => panic!("{layout}: {text:?}: {e}"),
                Ok(tokens) => {
                    assert_eq!(tokens.ids, expected, "{layout}: {text:?}");
                    if let Some(mask) = case[layout].get("attention_mask") {
                        assert_eq!(tokens.attention_mask, ids(mask), "{layout}: {text:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn openclip_token_ids_match_reference() {
        let path = Path::new(MODELS).join("openclip-tiny/tokenizer.json");
        let tokenizer =
            ClipTokenizer::from_file(&path, 77, Some(0), TextCleanup::OpenClip).unwrap();
        check_layout("openclip-tiny", &tokenizer);
    }

    #[test]
    fn hf_token_ids_match_reference() {
        let path = Path::new(MODELS).join("hf-tiny/tokenizer.json");
        let tokenizer = ClipTokenizer::from_file(&path, 77, None, TextCleanup::None).unwrap();
        check_layout("hf-tiny", &tokenizer);
    }

    #[test]
    fn long_input_is_bounded_and_keeps_end_token() {
        let path = Path::new(MODELS).join("hf-tiny/tokenizer.json");
        let tokenizer = ClipTokenizer::from_file(&path, 77, None, TextCleanup::OpenClip).unwrap();
        let huge = "é".repeat(MAX_TEXT_BYTES);
        let tokens = tokenizer.encode(&huge).unwrap();
        assert_eq!(tokens.ids.len(), 77);
        assert_eq!(tokens.ids[76], 49407);
        assert!(tokens.attention_mask.iter().all(|&m| m == 1));
    }

    // Fuzzing (fuzz/README.md): every text either tokenises to a full frame or is EmptyText.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;
        use std::sync::OnceLock;

        fn tokenizer() -> &'static ClipTokenizer {
            static TOKENIZER: OnceLock<ClipTokenizer> = OnceLock::new();
            TOKENIZER.get_or_init(|| {
                let path = Path::new(MODELS).join("openclip-tiny/tokenizer.json");
                ClipTokenizer::from_file(&path, 77, Some(0), TextCleanup::OpenClip).unwrap()
            })
        }

        proptest! {
            #[test]
            fn any_text_gives_a_frame_or_empty(text in any::<String>()) {
                match tokenizer().encode(&text) {
                    Ok(tokens) => {
                        prop_assert_eq!(tokens.ids.len(), 77);
                        prop_assert_eq!(tokens.attention_mask.len(), 77);
                        prop_assert_eq!(tokens.ids[0], i64::from(tokenizer().start));
                        let used = tokens.attention_mask.iter().filter(|&&m| m == 1).count();
                        prop_assert!(used >= 3);
                        prop_assert_eq!(tokens.ids[used - 1], i64::from(tokenizer().end));
                    }
                    Err(EmbedError::EmptyText) => {}
                    Err(other) => prop_assert!(false, "{other}"),
                }
            }
        }
    }

    #[test]
    fn bad_tokenizer_files_are_errors() {
        let missing = Path::new(MODELS).join("nope/tokenizer.json");
        let err = ClipTokenizer::from_file(&missing, 77, None, TextCleanup::None);
        assert!(matches!(err, Err(EmbedError::MissingFile(_))));
        let not_json = Path::new(MODELS).join("openclip-tiny/xmodal.json");
        let err = ClipTokenizer::from_file(&not_json, 77, None, TextCleanup::None);
        assert!(matches!(err, Err(EmbedError::InvalidTokenizer { .. })));
    }
}
