//! Reads a model directory into one `ModelConfig`. Two layouts are understood:
//!
//! * `openclip`: an OpenCLIP-style export, `textual.onnx`, `visual.onnx`, `tokenizer.json` and an
//!   `xmodal.json` that must at least give the image size.
//! * `hf`: the Hugging Face / transformers.js layout, `onnx/text_model.onnx`,
//!   `onnx/vision_model.onnx`, `tokenizer.json`, `config.json`, `preprocessor_config.json`.
//!
//! An `xmodal.json` in either layout overrides any setting (schema: tests/models/README.md).
//! The layout is `xmodal.json`'s "layout", else `hf` when `config.json` exists, else `openclip`.
//!
//! A tower is present when its ONNX file exists (a file named in `xmodal.json` must exist), so a
//! directory may hold a text tower, an image tower or both. Every configured path must be
//! relative and stay inside the directory (no absolute paths, no `..`).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::error::EmbedError;
use super::preprocess::{CropRounding, PreprocessConfig};
use super::tokenize::TextCleanup;

pub const CONFIG_FILE: &str = "xmodal.json";
/// Caps on what a model directory may ask of every backend that embeds with it.
pub const MAX_CONTEXT_LENGTH: usize = 1024;
pub const MAX_IMAGE_SIDE: u32 = 4096;
/// xmodal.json, config.json and preprocessor_config.json are a few kB.
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// CLIP's tokenizer.json is 2-4 MB; multilingual vocabularies reach about 20 MB.
pub const MAX_TOKENIZER_BYTES: u64 = 64 << 20;
/// The JSON files a directory may hold, read before the tower files are known.
const JSON_FILES: [&str; 3] = [CONFIG_FILE, "config.json", "preprocessor_config.json"];
const OPENAI_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const OPENAI_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    OpenClip,
    HuggingFace,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub dir: PathBuf,
    pub layout: Layout,
    /// Expected embedding size; checked against the ONNX outputs when set.
    pub embed_dim: Option<usize>,
    /// None when the directory has no text tower.
    pub text: Option<TextConfig>,
    /// None when the directory has no image tower.
    pub image: Option<ImageConfig>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TextConfig {
    pub model: PathBuf,
    pub tokenizer: PathBuf,
    pub context_length: usize,
    /// Input names; the attention mask is fed only when the model has an input of that name.
    pub input_ids: String,
    pub attention_mask: String,
    pub output: String,
    /// Padding id; `None` pads with the end token.
    pub pad_id: Option<u32>,
    pub cleanup: TextCleanup,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ImageConfig {
    pub model: PathBuf,
    pub input: String,
    pub output: String,
    pub preprocess: PreprocessConfig,
}

/// xmodal.json; every field optional, unknown fields refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    xmodal: Option<u32>,
    layout: Option<String>,
    embed_dim: Option<usize>,
    #[serde(default)]
    text: TextSettings,
    #[serde(default)]
    image: ImageSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TextSettings {
    model: Option<String>,
    tokenizer: Option<String>,
    context_length: Option<usize>,
    input_ids: Option<String>,
    attention_mask: Option<String>,
    output: Option<String>,
    pad_id: Option<u32>,
    cleanup: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageSettings {
    model: Option<String>,
    input: Option<String>,
    output: Option<String>,
    resize: Option<u32>,
    crop: Option<u32>,
    crop_rounding: Option<String>,
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
}

impl ModelConfig {
    /// `load`, with every file the model opens required to resolve (symbolic links followed)
    /// inside the canonical directory `root`: checked before each JSON file is read and before
    /// the tokenizer and ONNX files are handed to their loaders.
    pub fn load_within(dir: &Path, root: &Path) -> Result<Self, EmbedError> {
        for name in JSON_FILES {
            let path = dir.join(name);
            if path.exists() {
                require_inside(&path, root)?;
            }
        }
        let config = Self::load(dir)?;
        let text = config.text.iter().flat_map(|t| [&t.model, &t.tokenizer]);
        for path in text.chain(config.image.iter().map(|i| &i.model)) {
            require_inside(path, root)?;
        }
        Ok(config)
    }

    /// Reads `dir`; every file the model needs must exist.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        if !dir.is_dir() {
            return Err(EmbedError::MissingFile(dir.to_path_buf()));
        }
        let overrides = read_overrides(dir)?;
        let layout = match overrides.layout.as_deref() {
            Some("openclip") => Layout::OpenClip,
            Some("hf") => Layout::HuggingFace,
            Some(other) => return Err(config_error(dir, format!("unknown layout {other:?}"))),
            None if dir.join("config.json").is_file() => Layout::HuggingFace,
            None => Layout::OpenClip,
        };
        let defaults = match layout {
            Layout::OpenClip => openclip_defaults(),
            Layout::HuggingFace => hf_defaults(dir)?,
        };
        let config = merge(dir, layout, defaults, overrides)?;
        if config.text.is_none() && config.image.is_none() {
            return Err(config_error(
                dir,
                "no text or image tower (no ONNX file at the configured paths)".into(),
            ));
        }
        Ok(config)
    }
}

/// Refuses `path` unless it resolves to a file inside `root` (already canonical).
fn require_inside(path: &Path, root: &Path) -> Result<(), EmbedError> {
    match std::fs::canonicalize(path) {
        Ok(real) if real.starts_with(root) => Ok(()),
        Ok(_) => Err(config_error(
            path,
            format!("resolves outside {}", root.display()),
        )),
        Err(e) => Err(config_error(path, e.to_string())),
    }
}

/// The whole of a file of at most `max` bytes; a larger one is refused without reading it.
pub fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(bytes)
}

fn config_error(path: &Path, reason: String) -> EmbedError {
    EmbedError::InvalidConfig {
        path: path.to_path_buf(),
        reason,
    }
}

fn read_overrides(dir: &Path) -> Result<Settings, EmbedError> {
    let path = dir.join(CONFIG_FILE);
    if !path.is_file() {
        return Ok(Settings::default());
    }
    let settings: Settings = serde_json::from_value(read_json(&path)?)
        .map_err(|e| config_error(&path, e.to_string()))?;
    match settings.xmodal {
        None | Some(1) => Ok(settings),
        Some(v) => Err(config_error(
            &path,
            format!("xmodal version {v} is not supported (expected 1)"),
        )),
    }
}

fn read_json(path: &Path) -> Result<Value, EmbedError> {
    let bytes = read_limited(path, MAX_CONFIG_BYTES).map_err(|e| config_error(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| config_error(path, e.to_string()))
}

fn openclip_defaults() -> Settings {
    Settings {
        text: TextSettings {
            model: Some("textual.onnx".into()),
            tokenizer: Some("tokenizer.json".into()),
            input_ids: Some("text".into()),
            attention_mask: Some("attention_mask".into()),
            output: Some("embedding".into()),
            pad_id: Some(0),
            cleanup: Some("openclip".into()),
            ..TextSettings::default()
        },
        image: ImageSettings {
            model: Some("visual.onnx".into()),
            input: Some("image".into()),
            output: Some("embedding".into()),
            crop_rounding: Some("half_even".into()),
            ..ImageSettings::default()
        },
        ..Settings::default()
    }
}

/// Settings implied by config.json and preprocessor_config.json (transformers' CLIP defaults).
fn hf_defaults(dir: &Path) -> Result<Settings, EmbedError> {
    let config_path = dir.join("config.json");
    let config = read_json(&config_path)?;
    let as_usize = |v: &Value| v.as_u64().and_then(|n| usize::try_from(n).ok());
    let mut settings = Settings {
        embed_dim: config.get("projection_dim").and_then(as_usize),
        text: TextSettings {
            model: Some("onnx/text_model.onnx".into()),
            tokenizer: Some("tokenizer.json".into()),
            context_length: config
                .pointer("/text_config/max_position_embeddings")
                .and_then(as_usize),
            input_ids: Some("input_ids".into()),
            attention_mask: Some("attention_mask".into()),
            output: Some("text_embeds".into()),
            cleanup: Some("none".into()),
            ..TextSettings::default()
        },
        image: ImageSettings {
            model: Some("onnx/vision_model.onnx".into()),
            input: Some("pixel_values".into()),
            output: Some("image_embeds".into()),
            crop_rounding: Some("floor".into()),
            ..ImageSettings::default()
        },
        ..Settings::default()
    };
    let pre_path = dir.join("preprocessor_config.json");
    if pre_path.is_file() {
        read_preprocessor(&pre_path, &mut settings.image)?;
    }
    Ok(settings)
}

/// The subset of transformers' CLIPImageProcessor settings that xmodal reproduces; anything
/// else is refused rather than silently ignored.
fn read_preprocessor(path: &Path, image: &mut ImageSettings) -> Result<(), EmbedError> {
    let pre = read_json(path)?;
    let unsupported = |what: &str| Err(config_error(path, format!("unsupported setting: {what}")));
    let flag = |key: &str| pre.get(key).and_then(Value::as_bool).unwrap_or(true);
    if !flag("do_resize") || !flag("do_center_crop") || !flag("do_rescale") {
        return unsupported("do_resize, do_center_crop and do_rescale must be true");
    }
    if pre
        .get("resample")
        .and_then(Value::as_u64)
        .is_some_and(|r| r != 3)
    {
        return unsupported("resample other than 3 (bicubic)");
    }
    if pre
        .get("rescale_factor")
        .and_then(Value::as_f64)
        .is_some_and(|f| (f - 1.0 / 255.0).abs() > 1e-9)
    {
        return unsupported("rescale_factor other than 1/255");
    }
    image.resize = match pre.get("size") {
        None => None,
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Some(size) => match size.get("shortest_edge") {
            Some(edge) => edge.as_u64().and_then(|n| u32::try_from(n).ok()),
            None => return unsupported("size without shortest_edge"),
        },
    };
    image.crop = match pre.get("crop_size") {
        None => None,
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Some(crop) => match square(crop) {
            Some(side) => Some(side),
            None => return unsupported("non-square crop_size"),
        },
    };
    if pre.get("do_normalize").and_then(Value::as_bool) == Some(false) {
        image.mean = Some([0.0; 3]);
        image.std = Some([1.0; 3]);
    } else {
        image.mean = triple(path, &pre, "image_mean")?;
        image.std = triple(path, &pre, "image_std")?;
    }
    Ok(())
}

fn square(crop: &Value) -> Option<u32> {
    let side = |key: &str| {
        crop.get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    match (side("height"), side("width")) {
        (Some(h), Some(w)) if h == w => Some(h),
        _ => None,
    }
}

/// `key` as three numbers; absent is None, anything else an error.
fn triple(path: &Path, json: &Value, key: &str) -> Result<Option<[f32; 3]>, EmbedError> {
    let Some(value) = json.get(key) else {
        return Ok(None);
    };
    let three = value.as_array().filter(|list| list.len() == 3);
    let numbers: Option<Vec<f32>> =
        three.and_then(|list| list.iter().map(|v| v.as_f64().map(|f| f as f32)).collect());
    match numbers.as_deref() {
        Some(&[a, b, c]) => Ok(Some([a, b, c])),
        _ => Err(config_error(path, format!("{key} must be three numbers"))),
    }
}

/// Layout defaults overlaid with xmodal.json, then checked and resolved against `dir`.
fn merge(
    dir: &Path,
    layout: Layout,
    base: Settings,
    over: Settings,
) -> Result<ModelConfig, EmbedError> {
    let path = dir.join(CONFIG_FILE);
    let text_model = tower_file(dir, &path, over.text.model.clone(), base.text.model.clone())?;
    let image_model = tower_file(
        dir,
        &path,
        over.image.model.clone(),
        base.image.model.clone(),
    )?;
    Ok(ModelConfig {
        dir: dir.to_path_buf(),
        layout,
        embed_dim: over.embed_dim.or(base.embed_dim),
        text: match text_model {
            Some(model) => Some(text_config(dir, &path, model, over.text, base.text)?),
            None => None,
        },
        image: match image_model {
            Some(model) => Some(image_config(&path, model, over.image, base.image)?),
            None => None,
        },
    })
}

fn missing(path: &Path, what: &str) -> EmbedError {
    let hint = "set it in xmodal.json (hf layout: or in config.json / preprocessor_config.json)";
    config_error(path, format!("{what} is not set; {hint}"))
}

/// `name` resolved inside `dir`; absolute paths and `..` are refused so that a model only
/// ever opens files under its own directory.
fn inside(dir: &Path, config: &Path, name: &str) -> Result<PathBuf, EmbedError> {
    let relative = Path::new(name);
    let plain = relative.components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if name.is_empty() || !plain {
        return Err(config_error(
            config,
            format!("{name:?} must be a relative path inside the model directory"),
        ));
    }
    Ok(dir.join(relative))
}

/// The tower's ONNX file, or None when the tower is absent. A file named in xmodal.json must exist.
fn tower_file(
    dir: &Path,
    config: &Path,
    named: Option<String>,
    default: Option<String>,
) -> Result<Option<PathBuf>, EmbedError> {
    let explicit = named.is_some();
    let Some(name) = named.or(default) else {
        return Ok(None);
    };
    let file = inside(dir, config, &name)?;
    match (file.is_file(), explicit) {
        (true, _) => Ok(Some(file)),
        (false, true) => Err(EmbedError::MissingFile(file)),
        (false, false) => Ok(None),
    }
}

fn text_config(
    dir: &Path,
    path: &Path,
    model: PathBuf,
    t: TextSettings,
    bt: TextSettings,
) -> Result<TextConfig, EmbedError> {
    let name = |a: Option<String>, b: Option<String>, what: &str| {
        a.or(b).ok_or_else(|| missing(path, what))
    };
    let context_length = t.context_length.or(bt.context_length).unwrap_or(77);
    if !(2..=MAX_CONTEXT_LENGTH).contains(&context_length) {
        return Err(config_error(
            path,
            format!(
                "text.context_length {context_length} must be between 2 and {MAX_CONTEXT_LENGTH}"
            ),
        ));
    }
    let tokenizer = inside(
        dir,
        path,
        &name(t.tokenizer, bt.tokenizer, "text.tokenizer")?,
    )?;
    if !tokenizer.is_file() {
        return Err(EmbedError::MissingFile(tokenizer));
    }
    Ok(TextConfig {
        model,
        tokenizer,
        context_length,
        input_ids: name(t.input_ids, bt.input_ids, "text.input_ids")?,
        attention_mask: name(t.attention_mask, bt.attention_mask, "text.attention_mask")?,
        output: name(t.output, bt.output, "text.output")?,
        pad_id: t.pad_id.or(bt.pad_id),
        cleanup: cleanup(path, t.cleanup.or(bt.cleanup))?,
    })
}

fn image_config(
    path: &Path,
    model: PathBuf,
    i: ImageSettings,
    bi: ImageSettings,
) -> Result<ImageConfig, EmbedError> {
    let name = |a: Option<String>, b: Option<String>, what: &str| {
        a.or(b).ok_or_else(|| missing(path, what))
    };
    let resize = i
        .resize
        .or(bi.resize)
        .ok_or_else(|| missing(path, "image.resize"))?;
    let crop = i.crop.or(bi.crop).unwrap_or(resize);
    if resize == 0 || resize > MAX_IMAGE_SIDE {
        return Err(config_error(
            path,
            format!("image.resize {resize} must be between 1 and {MAX_IMAGE_SIDE}"),
        ));
    }
    if crop == 0 || crop > resize {
        return Err(config_error(
            path,
            format!("image.crop {crop} must be between 1 and image.resize {resize}"),
        ));
    }
    let std = i.std.or(bi.std).unwrap_or(OPENAI_STD);
    if std.iter().any(|s| !s.is_normal()) {
        return Err(config_error(path, "image.std must be non-zero".into()));
    }
    Ok(ImageConfig {
        model,
        input: name(i.input, bi.input, "image.input")?,
        output: name(i.output, bi.output, "image.output")?,
        preprocess: PreprocessConfig {
            resize,
            crop,
            crop_rounding: crop_rounding(path, i.crop_rounding.or(bi.crop_rounding))?,
            mean: i.mean.or(bi.mean).unwrap_or(OPENAI_MEAN),
            std,
        },
    })
}

fn cleanup(path: &Path, value: Option<String>) -> Result<TextCleanup, EmbedError> {
    match value.as_deref() {
        Some("openclip") => Ok(TextCleanup::OpenClip),
        Some("none") | None => Ok(TextCleanup::None),
        Some(other) => Err(config_error(
            path,
            format!("text.cleanup {other:?}: expected \"openclip\" or \"none\""),
        )),
    }
}

fn crop_rounding(path: &Path, value: Option<String>) -> Result<CropRounding, EmbedError> {
    match value.as_deref() {
        Some("half_even") => Ok(CropRounding::HalfEven),
        Some("floor") | None => Ok(CropRounding::Floor),
        Some(other) => Err(config_error(
            path,
            format!("image.crop_rounding {other:?}: expected \"half_even\" or \"floor\""),
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/models");

    /// A fresh directory whose entries are symlinks to the files of fixture `model`, except the
    /// files given in `files` (written with the given contents).
    pub(crate) fn model_variant(name: &str, model: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xmodal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let source = Path::new(MODELS).join(model);
        for entry in [
            "textual.onnx",
            "visual.onnx",
            "tokenizer.json",
            "xmodal.json",
            "config.json",
            "preprocessor_config.json",
            "onnx",
        ] {
            if source.join(entry).exists() && !files.iter().any(|(f, _)| *f == entry) {
                std::fs::create_dir_all(&dir).unwrap();
                std::os::unix::fs::symlink(source.join(entry), dir.join(entry)).unwrap();
            }
        }
        for (file, contents) in files {
            std::fs::create_dir_all(dir.join(file).parent().unwrap()).unwrap();
            std::fs::write(dir.join(file), contents).unwrap();
        }
        dir
    }

    #[test]
    fn reads_openclip_layout() {
        let config = ModelConfig::load(&Path::new(MODELS).join("openclip-tiny")).unwrap();
        let (text, image) = (
            config.text.as_ref().unwrap(),
            config.image.as_ref().unwrap(),
        );
        assert_eq!(config.layout, Layout::OpenClip);
        assert_eq!(config.embed_dim, Some(16));
        assert_eq!(
            (text.input_ids.as_str(), text.output.as_str()),
            ("text", "embedding")
        );
        assert_eq!(
            (text.pad_id, text.cleanup),
            (Some(0), TextCleanup::OpenClip)
        );
        let pre = &image.preprocess;
        assert_eq!(
            (pre.resize, pre.crop, pre.crop_rounding),
            (32, 32, CropRounding::HalfEven)
        );
        assert!(image.model.ends_with("visual.onnx"));
    }

    #[test]
    fn reads_hf_layout() {
        let config = ModelConfig::load(&Path::new(MODELS).join("hf-tiny")).unwrap();
        let (text, image) = (
            config.text.as_ref().unwrap(),
            config.image.as_ref().unwrap(),
        );
        assert_eq!(config.layout, Layout::HuggingFace);
        assert_eq!((config.embed_dim, text.context_length), (Some(24), 77));
        assert_eq!((text.pad_id, text.cleanup), (None, TextCleanup::None));
        assert_eq!(text.output, "text_embeds");
        assert_eq!(
            (image.input.as_str(), image.output.as_str()),
            ("pixel_values", "image_embeds")
        );
        let pre = &image.preprocess;
        assert_eq!(
            (pre.resize, pre.crop, pre.crop_rounding),
            (48, 48, CropRounding::Floor)
        );
        assert_eq!((pre.mean, pre.std), (OPENAI_MEAN, OPENAI_STD));
        assert!(text.model.ends_with("onnx/text_model.onnx"));
    }

    #[test]
    fn xmodal_json_overrides_hf_settings() {
        let json = br#"{"image": {"crop_rounding": "half_even", "mean": [0.5, 0.5, 0.5]}, "text": {"cleanup": "openclip"}}"#;
        let dir = model_variant("override", "hf-tiny", &[("xmodal.json", json)]);
        let config = ModelConfig::load(&dir).unwrap();
        let (text, image) = (
            config.text.as_ref().unwrap(),
            config.image.as_ref().unwrap(),
        );
        assert_eq!(image.preprocess.crop_rounding, CropRounding::HalfEven);
        assert_eq!(image.preprocess.mean, [0.5; 3]);
        assert_eq!(text.cleanup, TextCleanup::OpenClip);
        assert_eq!(image.preprocess.resize, 48);
    }

    fn load_err(name: &str, model: &str, files: &[(&str, &[u8])]) -> EmbedError {
        ModelConfig::load(&model_variant(name, model, files)).unwrap_err()
    }

    #[test]
    fn missing_files_are_errors() {
        let err = ModelConfig::load(Path::new("/nonexistent/model")).unwrap_err();
        assert!(matches!(err, EmbedError::MissingFile(_)), "{err}");
        let json: &[u8] = br#"{"text": {"model": "onnx/text_model_quantized.onnx"}}"#;
        let err = load_err("missing-onnx", "hf-tiny", &[("xmodal.json", json)]);
        assert!(
            matches!(&err, EmbedError::MissingFile(p) if p.ends_with("text_model_quantized.onnx")),
            "{err}"
        );
        let dir = model_variant("missing-tokenizer", "openclip-tiny", &[]);
        std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
        assert!(matches!(
            ModelConfig::load(&dir),
            Err(EmbedError::MissingFile(_))
        ));
    }

    #[test]
    fn a_directory_may_hold_one_tower() {
        let text_only = model_variant("text-only", "hf-tiny", &[]);
        std::fs::remove_file(text_only.join("onnx")).unwrap();
        std::fs::create_dir(text_only.join("onnx")).unwrap();
        let source = Path::new(MODELS).join("hf-tiny/onnx/text_model.onnx");
        std::os::unix::fs::symlink(source, text_only.join("onnx/text_model.onnx")).unwrap();
        std::fs::remove_file(text_only.join("preprocessor_config.json")).unwrap();
        let config = ModelConfig::load(&text_only).unwrap();
        assert!(config.text.is_some() && config.image.is_none());

        let image_only = model_variant("image-only", "openclip-tiny", &[]);
        std::fs::remove_file(image_only.join("textual.onnx")).unwrap();
        let json = br#"{"image": {"resize": 32}}"#;
        std::fs::remove_file(image_only.join("xmodal.json")).unwrap();
        std::fs::write(image_only.join("xmodal.json"), json).unwrap();
        let config = ModelConfig::load(&image_only).unwrap();
        assert!(config.text.is_none() && config.image.is_some());

        std::fs::remove_file(image_only.join("visual.onnx")).unwrap();
        let err = ModelConfig::load(&image_only).unwrap_err();
        assert!(matches!(err, EmbedError::InvalidConfig { .. }), "{err}");
    }

    #[test]
    fn paths_must_stay_inside_the_directory() {
        for name in [
            "/etc/passwd",
            "../openclip-tiny/textual.onnx",
            "onnx/../../x.onnx",
            "",
        ] {
            let json = format!(r#"{{"text": {{"model": {name:?}}}}}"#);
            let err = load_err("escape", "hf-tiny", &[("xmodal.json", json.as_bytes())]);
            assert!(
                matches!(err, EmbedError::InvalidConfig { .. }),
                "{name}: {err}"
            );
        }
        let json = br#"{"text": {"tokenizer": "../hf-tiny/tokenizer.json"}}"#;
        let err = load_err("escape-tokenizer", "hf-tiny", &[("xmodal.json", json)]);
        assert!(matches!(err, EmbedError::InvalidConfig { .. }), "{err}");
    }

    #[test]
    fn bad_settings_are_errors() {
        let cases: &[(&str, &str, &[u8])] = &[
            ("not-json", "xmodal.json", b"{"),
            (
                "unknown-field",
                "xmodal.json",
                br#"{"image": {"size": 32}}"#,
            ),
            ("no-size", "xmodal.json", br#"{"layout": "openclip"}"#),
            (
                "big-crop",
                "xmodal.json",
                br#"{"image": {"resize": 32, "crop": 40}}"#,
            ),
            (
                "bad-cleanup",
                "xmodal.json",
                br#"{"image": {"resize": 32}, "text": {"cleanup": "ftfy"}}"#,
            ),
            (
                "version",
                "xmodal.json",
                br#"{"xmodal": 2, "image": {"resize": 32}}"#,
            ),
        ];
        for (name, file, contents) in cases {
            let err = load_err(name, "openclip-tiny", &[(file, contents)]);
            assert!(
                matches!(err, EmbedError::InvalidConfig { .. }),
                "{name}: {err}"
            );
        }
        let bilinear: &[u8] = br#"{"resample": 2, "size": {"shortest_edge": 48}}"#;
        let err = load_err(
            "bilinear",
            "hf-tiny",
            &[("preprocessor_config.json", bilinear)],
        );
        assert!(matches!(err, EmbedError::InvalidConfig { .. }), "{err}");
    }

    #[test]
    fn settings_that_size_every_backend_are_capped() {
        let cases: &[(&str, &[u8], &str)] = &[
            (
                "huge-context",
                br#"{"image": {"resize": 32}, "text": {"context_length": 1025}}"#,
                "text.context_length 1025 must be between 2 and 1024",
            ),
            (
                "huge-resize",
                br#"{"image": {"resize": 4097, "crop": 32}}"#,
                "image.resize 4097 must be between 1 and 4096",
            ),
        ];
        for (name, json, reason) in cases {
            let err = load_err(name, "openclip-tiny", &[("xmodal.json", json)]);
            assert!(err.to_string().ends_with(reason), "{name}: {err}");
        }
        // A config file is refused by its size, before it is parsed.
        let padded = format!(r#"{{"image": {{"resize": 32}}}}{}"#, " ".repeat(1 << 20));
        let err = load_err(
            "huge-json",
            "openclip-tiny",
            &[("xmodal.json", padded.as_bytes())],
        );
        assert!(
            err.to_string().ends_with("larger than 1048576 bytes"),
            "{err}"
        );
        let dir = model_variant("read-limit", "openclip-tiny", &[]);
        assert!(read_limited(&dir.join("xmodal.json"), 4).is_err());
        assert!(read_limited(&dir.join("xmodal.json"), 1 << 20).is_ok());
    }

    #[test]
    fn files_must_resolve_inside_the_root() {
        // model_variant links every file to the fixtures, outside the variant's own directory.
        let dir = model_variant("confined", "openclip-tiny", &[]);
        let inside = std::fs::canonicalize(Path::new(MODELS)).unwrap();
        assert!(ModelConfig::load_within(&dir, &inside).is_ok());
        let own = std::fs::canonicalize(&dir).unwrap();
        let err = ModelConfig::load_within(&dir, &own).unwrap_err();
        assert!(err.to_string().contains("resolves outside"), "{err}");
        // The fixtures' own directories, and links between them, stay inside tests/models.
        let fixture = Path::new(MODELS).join("openclip-text-only");
        assert!(ModelConfig::load_within(&fixture, &inside).is_ok());
        let own = std::fs::canonicalize(&fixture).unwrap();
        assert!(ModelConfig::load_within(&fixture, &own).is_err());
    }
}
