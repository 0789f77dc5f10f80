//! The one error type of the encoder modules (text clean-up, tokenizer, image preprocessing, model
//! configuration, ONNX Runtime sessions). Messages are written to be shown as a SQL ERROR; each
//! variant notes the SQLSTATE the SQL layer is expected to map it to.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum EmbedError {
    /// The text has no tokens left after clean-up (empty or only whitespace/control characters).
    /// SQLSTATE 22023 (invalid_parameter_value).
    EmptyText,
    /// The image value has zero bytes, or decodes to zero width or height. SQLSTATE 22023.
    EmptyImage,
    /// The encoded image is larger than the byte limit. SQLSTATE 54000 (program_limit_exceeded).
    ImageTooLarge { bytes: usize, limit: usize },
    /// The image header announces more pixels than allowed (checked before decoding). SQLSTATE 54000.
    ImageTooManyPixels { width: u32, height: u32, limit: u64 },
    /// Decoding, orienting and converting the image to RGB would need more memory than the
    /// pixel limit allows (`max_pixels * 8` bytes, counting every copy). SQLSTATE 54000.
    ImageTooMuchMemory {
        width: u32,
        height: u32,
        bytes: u64,
        limit: u64,
    },
    /// A buffer whose size comes from the input could not be allocated. SQLSTATE 53200
    /// (out_of_memory).
    OutOfMemory(String),
    /// Not an image format this build decodes (JPEG, PNG, WebP, GIF, BMP, TIFF).
    /// SQLSTATE 22023.
    UnsupportedImage(String),
    /// A supported format, but the data is corrupt or truncated. SQLSTATE 22P03
    /// (invalid_binary_representation).
    CorruptImage(String),
    /// A file the model directory needs is missing. SQLSTATE 58P01 (undefined_file).
    MissingFile(PathBuf),
    /// xmodal.json, config.json or preprocessor_config.json is unreadable or inconsistent.
    /// SQLSTATE 22023.
    InvalidConfig { path: PathBuf, reason: String },
    /// tokenizer.json cannot be loaded or lacks CLIP's start/end tokens. SQLSTATE 22023.
    InvalidTokenizer { path: PathBuf, reason: String },
    /// An ONNX file cannot be loaded, or its inputs/outputs do not match the configuration.
    /// SQLSTATE 22023.
    InvalidModel { path: PathBuf, reason: String },
    /// The ONNX Runtime library cannot be loaded from the configured path. SQLSTATE 58000
    /// (system_error).
    Runtime { library: PathBuf, reason: String },
    /// The model directory has no tower for this modality ("text" or "image"). SQLSTATE 0A000
    /// (feature_not_supported).
    NoTower(&'static str),
    /// `Device::Cuda` was asked for but the CUDA execution provider cannot be used. SQLSTATE 58000.
    Device(String),
    /// ONNX Runtime failed while running a model. SQLSTATE XX000 (internal_error).
    Inference(String),
}

impl fmt::Display for EmbedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EmbedError::*;
        match self {
            EmptyText => write!(f, "text is empty after clean-up: nothing to embed"),
            EmptyImage => write!(f, "image is empty (no bytes, or zero width or height)"),
            ImageTooLarge { bytes, limit } => {
                write!(
                    f,
                    "image is {bytes} bytes, more than the limit of {limit} bytes"
                )
            }
            ImageTooManyPixels {
                width,
                height,
                limit,
            } => write!(
                f,
                "image is {width}x{height} pixels, more than the limit of {limit} pixels"
            ),
            ImageTooMuchMemory {
                width,
                height,
                bytes,
                limit,
            } => write!(
                f,
                "image is {width}x{height} pixels and would need {bytes} bytes to decode, orient and convert, more than the limit of {limit} bytes"
            ),
            OutOfMemory(what) => write!(f, "out of memory: {what}"),
            UnsupportedImage(what) => write!(
                f,
                "unsupported image format ({what}); supported: JPEG, PNG, WebP, GIF, BMP, TIFF"
            ),
            CorruptImage(why) => write!(f, "image data is corrupt or truncated: {why}"),
            MissingFile(path) => write!(f, "model file not found: {}", path.display()),
            InvalidConfig { path, reason } => {
                write!(
                    f,
                    "invalid model configuration {}: {reason}",
                    path.display()
                )
            }
            InvalidTokenizer { path, reason } => {
                write!(f, "invalid tokenizer {}: {reason}", path.display())
            }
            InvalidModel { path, reason } => {
                write!(f, "invalid ONNX model {}: {reason}", path.display())
            }
            Runtime { library, reason } => write!(
                f,
                "cannot load ONNX Runtime from {}: {reason}",
                library.display()
            ),
            NoTower(modality) => write!(f, "the model has no {modality} tower"),
            Device(why) => write!(f, "CUDA cannot be used: {why}"),
            Inference(why) => write!(f, "model inference failed: {why}"),
        }
    }
}

impl std::error::Error for EmbedError {}
