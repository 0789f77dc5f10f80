//! The encoders: CLIP's text and image towers over ONNX Runtime sessions (made by runtime.rs),
//! with their tokenizer and preprocessing. They check the model's inputs and outputs when loaded
//! and return L2-normalised embeddings.

use std::borrow::Cow;
use std::path::Path;

use ort::session::{Session, SessionInputValue};
use ort::value::{Outlet, Tensor, TensorElementType, ValueType};

use super::error::EmbedError;
use super::model::ModelConfig;
use super::preprocess::{preprocess, ImageLimits, PreprocessConfig};
use super::runtime::{open_session, Placement, RuntimeOptions};
use super::tokenize::{ClipTokenizer, TokenizedText};

/// The named outlet's element type and dimensions (-1 where dynamic).
fn tensor_outlet<'a>(
    outlets: &'a [Outlet],
    name: &str,
    kind: &str,
    model: &Path,
) -> Result<(TensorElementType, &'a [i64]), EmbedError> {
    let invalid = |reason: String| EmbedError::InvalidModel {
        path: model.to_path_buf(),
        reason,
    };
    let outlet = outlets.iter().find(|o| o.name() == name).ok_or_else(|| {
        let names: Vec<&str> = outlets.iter().map(|o| o.name()).collect();
        invalid(format!("no {kind} named {name:?} (it has {names:?})"))
    })?;
    match outlet.dtype() {
        ValueType::Tensor { ty, shape, .. } => Ok((*ty, shape)),
        other => Err(invalid(format!(
            "{kind} {name:?} is not a tensor but {other:?}"
        ))),
    }
}

/// Checks that the output is a float tensor [batch, dim] and returns dim when it is static.
fn check_output(session: &Session, name: &str, model: &Path) -> Result<Option<usize>, EmbedError> {
    let (ty, dims) = tensor_outlet(session.outputs(), name, "output", model)?;
    if ty != TensorElementType::Float32 || dims.len() != 2 {
        return Err(EmbedError::InvalidModel {
            path: model.to_path_buf(),
            reason: format!(
                "output {name:?} must be a float32 [batch, dim] tensor, it is {ty:?} {dims:?}"
            ),
        });
    }
    Ok(usize::try_from(dims[1]).ok())
}

fn check_dim(
    expected: Option<usize>,
    found: Option<usize>,
    model: &Path,
) -> Result<(), EmbedError> {
    match (expected, found) {
        (Some(e), Some(f)) if e != f => Err(EmbedError::InvalidModel {
            path: model.to_path_buf(),
            reason: format!("embeddings have {f} dimensions, the configuration says {e}"),
        }),
        _ => Ok(()),
    }
}

/// Runs the session and returns the output rows, L2-normalised.
fn run(
    session: &mut Session,
    inputs: Vec<(Cow<'static, str>, SessionInputValue<'static>)>,
    output: &str,
    rows: usize,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let infer = |e: ort::Error| EmbedError::Inference(e.to_string());
    let outputs = session.run(inputs).map_err(infer)?;
    let value = outputs
        .get(output)
        .ok_or_else(|| EmbedError::Inference(format!("no output {output:?}")))?;
    let (shape, data) = value.try_extract_tensor::<f32>().map_err(infer)?;
    let dim = match **shape {
        [n, d] if n == rows as i64 && d > 0 => d as usize,
        _ => {
            return Err(EmbedError::Inference(format!(
                "output shape {shape:?} for {rows} inputs"
            )))
        }
    };
    data.chunks(dim).map(l2_normalize).collect()
}

fn l2_normalize(row: &[f32]) -> Result<Vec<f32>, EmbedError> {
    let norm = row
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return Err(EmbedError::Inference(
            "the model produced a zero or non-finite embedding".into(),
        ));
    }
    Ok(row.iter().map(|&v| (f64::from(v) / norm) as f32).collect())
}

fn first_row(rows: Vec<Vec<f32>>) -> Result<Vec<f32>, EmbedError> {
    rows.into_iter()
        .next()
        .ok_or_else(|| EmbedError::Inference("the model returned no embedding".into()))
}

fn tensor_error(e: ort::Error) -> EmbedError {
    EmbedError::Inference(e.to_string())
}

/// The text tower and its tokenizer.
pub struct TextEncoder {
    session: Session,
    placement: Placement,
    /// Embedding size when the ONNX output declares it.
    dims: Option<usize>,
    tokenizer: ClipTokenizer,
    input_ids: String,
    ids_type: TensorElementType,
    /// Set when the model takes an attention mask (transformers-style exports).
    attention_mask: Option<String>,
    output: String,
}

impl TextEncoder {
    pub fn load(config: &ModelConfig, options: &RuntimeOptions) -> Result<Self, EmbedError> {
        let text = config.text.as_ref().ok_or(EmbedError::NoTower("text"))?;
        let tokenizer = ClipTokenizer::from_file(
            &text.tokenizer,
            text.context_length,
            text.pad_id,
            text.cleanup,
        )?;
        let (session, placement) = open_session(&text.model, options)?;
        let invalid = |reason: String| EmbedError::InvalidModel {
            path: text.model.clone(),
            reason,
        };
        let (ids_type, dims) =
            tensor_outlet(session.inputs(), &text.input_ids, "input", &text.model)?;
        if !matches!(
            ids_type,
            TensorElementType::Int64 | TensorElementType::Int32
        ) {
            return Err(invalid(format!(
                "input {:?} must be int64 or int32",
                text.input_ids
            )));
        }
        if dims.len() != 2 || (dims[1] > 0 && dims[1] != text.context_length as i64) {
            let want = text.context_length;
            return Err(invalid(format!(
                "input {:?} has shape {dims:?}, expected [batch, {want}]",
                text.input_ids
            )));
        }
        let attention_mask = session
            .inputs()
            .iter()
            .any(|o| o.name() == text.attention_mask)
            .then(|| text.attention_mask.clone());
        let dims = check_output(&session, &text.output, &text.model)?;
        check_dim(config.embed_dim, dims, &text.model)?;
        Ok(Self {
            session,
            placement,
            dims,
            tokenizer,
            input_ids: text.input_ids.clone(),
            ids_type,
            attention_mask,
            output: text.output.clone(),
        })
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    pub fn dims(&self) -> Option<usize> {
        self.dims
    }

    /// Tokens per text (the width of the input tensor).
    pub fn context_length(&self) -> usize {
        self.tokenizer.context_length()
    }

    pub fn tokenize(&self, text: &str) -> Result<TokenizedText, EmbedError> {
        self.tokenizer.encode(text)
    }

    /// L2-normalised embedding of one text.
    pub fn embed(&mut self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let tokens = self.tokenize(text)?;
        self.embed_tokens(std::slice::from_ref(&tokens))
            .and_then(first_row)
    }

    /// One batched run over already tokenised texts.
    pub fn embed_tokens(&mut self, batch: &[TokenizedText]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let shape = [batch.len(), self.tokenizer.context_length()];
        let ids: Vec<i64> = batch.iter().flat_map(|t| t.ids.iter().copied()).collect();
        let mut inputs = vec![(
            Cow::Owned(self.input_ids.clone()),
            self.int_tensor(shape, ids)?,
        )];
        if let Some(name) = &self.attention_mask {
            let mask: Vec<i64> = batch
                .iter()
                .flat_map(|t| t.attention_mask.iter().copied())
                .collect();
            inputs.push((Cow::Owned(name.clone()), self.int_tensor(shape, mask)?));
        }
        run(&mut self.session, inputs, &self.output, batch.len())
    }

    fn int_tensor(
        &self,
        shape: [usize; 2],
        values: Vec<i64>,
    ) -> Result<SessionInputValue<'static>, EmbedError> {
        Ok(if self.ids_type == TensorElementType::Int32 {
            let narrow: Vec<i32> = values.iter().map(|&v| v as i32).collect();
            Tensor::from_array((shape, narrow))
                .map_err(tensor_error)?
                .into()
        } else {
            Tensor::from_array((shape, values))
                .map_err(tensor_error)?
                .into()
        })
    }
}

/// The image tower and its preprocessing.
pub struct ImageEncoder {
    session: Session,
    placement: Placement,
    /// Embedding size when the ONNX output declares it.
    dims: Option<usize>,
    input: String,
    output: String,
    preprocess: PreprocessConfig,
    limits: ImageLimits,
}

impl ImageEncoder {
    pub fn load(
        config: &ModelConfig,
        options: &RuntimeOptions,
        limits: ImageLimits,
    ) -> Result<Self, EmbedError> {
        let image = config.image.as_ref().ok_or(EmbedError::NoTower("image"))?;
        let (session, placement) = open_session(&image.model, options)?;
        let (ty, dims) = tensor_outlet(session.inputs(), &image.input, "input", &image.model)?;
        let side = i64::from(image.preprocess.crop);
        let fits = |d: i64, want: i64| d <= 0 || d == want;
        if ty != TensorElementType::Float32
            || dims.len() != 4
            || !fits(dims[1], 3)
            || !fits(dims[2], side)
            || !fits(dims[3], side)
        {
            return Err(EmbedError::InvalidModel {
                path: image.model.clone(),
                reason: format!(
                    "input {:?} is {ty:?} {dims:?}; expected float32 [batch, 3, {side}, {side}]",
                    image.input
                ),
            });
        }
        let dims = check_output(&session, &image.output, &image.model)?;
        check_dim(config.embed_dim, dims, &image.model)?;
        Ok(Self {
            session,
            placement,
            dims,
            input: image.input.clone(),
            output: image.output.clone(),
            preprocess: image.preprocess.clone(),
            limits,
        })
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    pub fn dims(&self) -> Option<usize> {
        self.dims
    }

    /// Values of one preprocessed image (3 x crop x crop).
    pub fn input_len(&self) -> usize {
        3 * self.preprocess.crop as usize * self.preprocess.crop as usize
    }

    /// The image limits can change between calls (they are settings).
    pub fn set_limits(&mut self, limits: ImageLimits) {
        self.limits = limits;
    }

    /// Decoded, resized, cropped and normalised pixels (3 x crop x crop, channel-major).
    pub fn preprocess(&self, bytes: &[u8]) -> Result<Vec<f32>, EmbedError> {
        preprocess(bytes, &self.preprocess, &self.limits)
    }

    /// L2-normalised embedding of one encoded image.
    pub fn embed(&mut self, bytes: &[u8]) -> Result<Vec<f32>, EmbedError> {
        let pixels = self.preprocess(bytes)?;
        self.embed_pixels(std::slice::from_ref(&pixels))
            .and_then(first_row)
    }

    /// One batched run over already preprocessed images.
    pub fn embed_pixels(&mut self, batch: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let side = self.preprocess.crop as usize;
        if let Some(bad) = batch.iter().find(|p| p.len() != 3 * side * side) {
            return Err(EmbedError::Inference(format!(
                "{} pixel values, expected {}",
                bad.len(),
                3 * side * side
            )));
        }
        let mut data: Vec<f32> = Vec::new();
        data.try_reserve_exact(batch.len() * 3 * side * side)
            .map_err(|e| EmbedError::OutOfMemory(format!("the batch's pixel tensor: {e}")))?;
        batch
            .iter()
            .for_each(|pixels| data.extend_from_slice(pixels));
        let tensor =
            Tensor::from_array(([batch.len(), 3, side, side], data)).map_err(tensor_error)?;
        let inputs = vec![(Cow::Owned(self.input.clone()), tensor.into())];
        run(&mut self.session, inputs, &self.output, batch.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::pipeline::model::tests::{model_variant, MODELS};
    use crate::embed::pipeline::runtime::{environment, Device};
    use serde_json::Value;
    use std::path::PathBuf;
    use std::sync::Once;
    use std::time::Instant;

    const DEFAULT_LIBRARY: &str = "/usr/local/lib/xmodal/libonnxruntime.so.1.31.1";

    fn library() -> PathBuf {
        std::env::var_os("XMODAL_ORT_LIBRARY")
            .map_or_else(|| PathBuf::from(DEFAULT_LIBRARY), PathBuf::from)
    }

    /// Runtime options, or None (test skipped) without the library. The first call checks the
    /// load failures, which can only be observed before the process has loaded a runtime.
    fn options() -> Option<RuntimeOptions> {
        static BAD_PATHS: Once = Once::new();
        BAD_PATHS.call_once(check_bad_libraries);
        if !library().is_file() {
            eprintln!(
                "skipped: no ONNX Runtime at {} (scripts/get-onnxruntime.sh)",
                library().display()
            );
            return None;
        }
        Some(RuntimeOptions {
            library: library(),
            intra_threads: 1,
            device: Device::Cpu,
        })
    }

    fn check_bad_libraries() {
        let not_a_library = Path::new(MODELS).join("openclip-tiny/xmodal.json");
        let mut cases = vec![
            PathBuf::from("libonnxruntime.so"),
            PathBuf::from("/nonexistent/libonnxruntime.so"),
            not_a_library,
        ];
        cases.extend(
            [
                "/lib/x86_64-linux-gnu/libz.so.1",
                "/usr/lib/x86_64-linux-gnu/libz.so.1",
            ]
            .map(PathBuf::from)
            .into_iter()
            .filter(|p| p.is_file())
            .take(1),
        );
        for path in cases {
            let result = environment(&path);
            assert!(
                matches!(&result, Err(EmbedError::Runtime { .. })),
                "{}: {:?}",
                path.display(),
                result.err()
            );
            eprintln!(
                "{}",
                result.err().map(|e| e.to_string()).unwrap_or_default()
            );
        }
    }

    fn references(name: &str) -> Value {
        let text = std::fs::read_to_string(format!("{MODELS}/reference/{name}")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn cosine(a: &[f32], b: &Value) -> f64 {
        let b: Vec<f64> = b
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(a.len(), b.len());
        a.iter().zip(&b).map(|(&x, y)| f64::from(x) * y).sum()
    }

    fn config(layout: &str) -> ModelConfig {
        ModelConfig::load(&Path::new(MODELS).join(layout)).unwrap()
    }

    #[test]
    fn text_embeddings_match_reference() {
        let Some(options) = options() else { return };
        let refs = references("texts.json");
        for layout in ["openclip-tiny", "hf-tiny"] {
            let mut encoder = TextEncoder::load(&config(layout), &options).unwrap();
            let (mut worst, mut tokens) = (1.0f64, Vec::new());
            for case in refs["texts"].as_array().unwrap() {
                let text = case["text"].as_str().unwrap();
                match encoder.embed(text) {
                    Err(EmbedError::EmptyText) => continue,
                    Err(e) => panic!("{layout} {text:?}: {e}"),
                    Ok(embedding) => {
                        worst = worst.min(cosine(&embedding, &case[layout]["embedding"]))
                    }
                }
                tokens.push((
                    encoder.tokenize(text).unwrap(),
                    case[layout]["embedding"].clone(),
                ));
            }
            let batch: Vec<TokenizedText> = tokens.iter().map(|(t, _)| t.clone()).collect();
            let batched = encoder.embed_tokens(&batch).unwrap();
            let worst_batch = batched
                .iter()
                .zip(&tokens)
                .map(|(e, (_, r))| cosine(e, r))
                .fold(1.0, f64::min);
            eprintln!(
                "{layout}: {} texts, min cosine {worst:.7} single, {worst_batch:.7} batched",
                batch.len()
            );
            assert!(worst >= 0.9999 && worst_batch >= 0.9999, "{layout}");
        }
    }

    fn image_cases(refs: &Value) -> Vec<(String, Vec<u8>, &Value)> {
        // photo_dir is relative to the project root (MODELS is <root>/tests/models).
        let photos = Path::new(MODELS)
            .join("../..")
            .join(refs["photo_dir"].as_str().unwrap());
        if !photos.is_dir() {
            eprintln!(
                "SKIP: photo cases: {} is absent (they need ../shared)",
                photos.display()
            );
        }
        let mut cases = Vec::new();
        for case in refs["images"].as_array().unwrap() {
            let path = match (case.get("file"), case.get("photo")) {
                (Some(file), _) => Path::new(MODELS).join(file.as_str().unwrap()),
                (_, Some(photo)) if photos.is_dir() => photos.join(photo.as_str().unwrap()),
                _ => continue,
            };
            cases.push((
                path.display().to_string(),
                std::fs::read(&path).unwrap(),
                case,
            ));
        }
        cases
    }

    #[test]
    fn image_embeddings_match_reference() {
        let Some(options) = options() else { return };
        let refs = references("images.json");
        let cases = image_cases(&refs);
        for layout in ["openclip-tiny", "hf-tiny"] {
            let mut encoder =
                ImageEncoder::load(&config(layout), &options, ImageLimits::default()).unwrap();
            let mut worst = (1.0f64, String::new());
            for (name, bytes, case) in &cases {
                let c = cosine(&encoder.embed(bytes).unwrap(), &case[layout]["embedding"]);
                if c < worst.0 {
                    worst = (c, name.clone());
                }
            }
            let pixels: Vec<Vec<f32>> = cases
                .iter()
                .map(|(_, b, _)| encoder.preprocess(b).unwrap())
                .collect();
            let batched = encoder.embed_pixels(&pixels).unwrap();
            let worst_batch = batched
                .iter()
                .zip(&cases)
                .map(|(e, (_, _, c))| cosine(e, &c[layout]["embedding"]))
                .fold(1.0, f64::min);
            eprintln!(
                "{layout}: {} images, min cosine {:.7} ({}), batched {worst_batch:.7}",
                cases.len(),
                worst.0,
                worst.1
            );
            assert!(worst.0 >= 0.999 && worst_batch >= 0.999, "{layout}");
        }
    }

    #[test]
    fn timing_per_text_and_image() {
        let Some(options) = options() else { return };
        let refs = references("images.json");
        let cases = image_cases(&refs);
        for layout in ["openclip-tiny", "hf-tiny"] {
            let config = config(layout);
            let mut text = TextEncoder::load(&config, &options).unwrap();
            let mut image = ImageEncoder::load(&config, &options, ImageLimits::default()).unwrap();
            let start = Instant::now();
            for _ in 0..50 {
                text.embed("a photo of a dog running on the grass").unwrap();
            }
            let per_text = start.elapsed() / 50;
            let start = Instant::now();
            for (_, bytes, _) in &cases {
                image.embed(bytes).unwrap();
            }
            let per_image = start.elapsed() / cases.len() as u32;
            eprintln!("{layout}: {per_text:?} per text, {per_image:?} per image (decode included)");
        }
    }

    /// Which of SIGINT, SIGUSR1, SIGTERM a SigBlk line of /proc/<pid>/task/<tid>/status blocks.
    fn blocks_postgres_signals(status: &str) -> bool {
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .map(str::trim);
        let mask = mask
            .and_then(|m| u64::from_str_radix(m, 16).ok())
            .unwrap_or(0);
        [libc::SIGINT, libc::SIGUSR1, libc::SIGTERM]
            .iter()
            .all(|&s| mask & (1 << (s - 1)) != 0)
    }

    fn own_mask() -> Vec<bool> {
        // SAFETY: only reads this thread's signal mask into a local set.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
            (1..=64).map(|s| libc::sigismember(&set, s) == 1).collect()
        }
    }

    #[test]
    fn runtime_threads_block_signals_and_caller_mask_is_kept() {
        let Some(mut options) = options() else { return };
        options.intra_threads = 2;
        let before = own_mask();
        let _encoder = TextEncoder::load(&config("hf-tiny"), &options).unwrap();
        assert_eq!(own_mask(), before);
        let blocked = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
            .filter(|status| blocks_postgres_signals(status))
            .count();
        assert!(blocked >= 1, "no thread blocks SIGINT/SIGUSR1/SIGTERM");
    }

    #[test]
    fn bad_models_are_errors() {
        let Some(options) = options() else { return };
        let corrupt = model_variant(
            "corrupt-onnx",
            "openclip-tiny",
            &[("textual.onnx", b"not an onnx file")],
        );
        let err = TextEncoder::load(&ModelConfig::load(&corrupt).unwrap(), &options)
            .err()
            .unwrap();
        assert!(matches!(err, EmbedError::InvalidModel { .. }), "{err}");
        let mut missing = config("openclip-tiny");
        missing.image.as_mut().unwrap().model = PathBuf::from("/nonexistent/visual.onnx");
        let err = ImageEncoder::load(&missing, &options, ImageLimits::default())
            .err()
            .unwrap();
        assert!(matches!(err, EmbedError::MissingFile(_)), "{err}");
        let mut renamed = config("hf-tiny");
        renamed.text.as_mut().unwrap().output = "pooler_output".into();
        let err = TextEncoder::load(&renamed, &options).err().unwrap();
        assert!(matches!(err, EmbedError::InvalidModel { .. }), "{err}");
        let mut wrong_size = config("hf-tiny");
        wrong_size.image.as_mut().unwrap().preprocess.crop = 32;
        let err = ImageEncoder::load(&wrong_size, &options, ImageLimits::default())
            .err()
            .unwrap();
        assert!(matches!(err, EmbedError::InvalidModel { .. }), "{err}");
        let mut wrong_dim = config("hf-tiny");
        wrong_dim.embed_dim = Some(512);
        let err = TextEncoder::load(&wrong_dim, &options).err().unwrap();
        assert!(matches!(err, EmbedError::InvalidModel { .. }), "{err}");
        let other = environment(Path::new("/usr/lib/libonnxruntime.so"))
            .err()
            .unwrap();
        assert!(other.to_string().contains("already loaded"), "{other}");
        let mut encoder = TextEncoder::load(&config("hf-tiny"), &options).unwrap();
        assert!(matches!(encoder.embed(" \t "), Err(EmbedError::EmptyText)));
        let mut images =
            ImageEncoder::load(&config("hf-tiny"), &options, ImageLimits::default()).unwrap();
        assert!(matches!(
            images.embed(b"GIF89a"),
            Err(EmbedError::CorruptImage(_))
        ));
    }

    /// With the CPU build of ONNX Runtime (CI has no GPU): `Cuda` is refused, `Auto` falls back.
    #[test]
    fn cuda_without_provider() {
        let Some(mut options) = options() else { return };
        let config = config("openclip-tiny");
        options.device = Device::Auto;
        let mut encoder = TextEncoder::load(&config, &options).unwrap();
        let placement = encoder.placement().clone();
        eprintln!("device auto: {placement:?}");
        assert_eq!(placement.cuda, placement.fallback.is_none());
        assert_eq!(encoder.embed("a dog").unwrap().len(), 16);
        assert_eq!(encoder.dims(), Some(16));
        // The runtime is loaded now, so the provider list can be asked for.
        let has_cuda = <ort::ep::CUDA as ort::ep::ExecutionProvider>::is_available().unwrap();
        options.device = Device::Cuda;
        match TextEncoder::load(&config, &options) {
            Ok(encoder) => assert!(has_cuda && encoder.placement().cuda),
            Err(err) => {
                eprintln!("device cuda: {err}");
                assert!(!has_cuda && matches!(err, EmbedError::Device(_)), "{err}");
            }
        }
    }
}
