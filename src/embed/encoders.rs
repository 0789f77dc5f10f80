//! What each backend holds: the registered models it has used, with their ONNX Runtime sessions
//! (created lazily, on the backend's main thread, at the first call that needs a tower), the
//! cache of recent results and the counters. Sessions are kept until the model's registration
//! changes (a new registration id) or it is dropped. Only this thread calls Postgres; ONNX
//! Runtime's threads compute on the plain Rust data passed to `session.rs`.
//!
//! With `xmodal.encoder = service` a backend keeps only the image preprocessing of a tower (its
//! `Preparer`) and sends the pixels, or the texts, to the encoder service (service/).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use super::pipeline::cache::ResultCache;
use super::pipeline::error::EmbedError;
use super::pipeline::model::ModelConfig;
use super::pipeline::preprocess::{preprocess, PreprocessConfig};
use super::pipeline::runtime::Placement;
use super::pipeline::session::{ImageEncoder, TextEncoder};
use super::pipeline::stats::{Counters, Stats};
use super::pipeline::tokenize::{self, TokenizedText};
use super::registry::{self, Entry};
use super::report::{raise, raise_embed, OrRaise};
use super::service;
use super::settings::{self, DeviceSetting};
use super::Modality;

/// A model as this backend knows it.
pub(super) struct Loaded {
    entry: Entry,
    /// The registry epoch at which `entry` was last read.
    epoch: u64,
    config: Option<ModelConfig>,
    text: Option<TextEncoder>,
    image: Option<ImageEncoder>,
    /// Service mode: what this backend keeps of each tower.
    text_input: Option<()>,
    image_input: Option<PreprocessConfig>,
}

/// One tower as the functions below use it: text (`str` in) or image (`[u8]` in).
pub(super) trait Tower: Sized {
    const MODALITY: Modality;
    type Input: ?Sized + AsRef<[u8]>;
    type Prepared;
    /// Where a loaded model keeps this tower.
    fn slot(loaded: &mut Loaded) -> &mut Option<Self>;
    fn load(config: &ModelConfig) -> Result<Self, EmbedError>;
    fn placement(&self) -> &Placement;
    fn dims(&self) -> Option<usize>;
    /// Tokenising, or decoding and resizing (under the current settings).
    fn prepare(&mut self, input: &Self::Input) -> Result<Self::Prepared, EmbedError>;
    /// One inference over the whole batch.
    fn infer(&mut self, batch: &[Self::Prepared]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// The bytes of `input` its embedding depends on, which key the cache; an input too large
    /// to embed is refused here, before it is hashed.
    fn cache_bytes(input: &Self::Input) -> Result<&[u8], EmbedError>;
    /// Service mode: what the backend keeps to prepare an input without a session (the image
    /// preprocessing; texts are tokenised by the service, which holds the tokenizer).
    type Preparer;
    fn preparer_slot(loaded: &mut Loaded) -> &mut Option<Self::Preparer>;
    fn preparer(config: &ModelConfig) -> Result<Self::Preparer, EmbedError>;
    /// Appends one input as the service reads it (native byte order).
    fn serialize(
        preparer: &Self::Preparer,
        input: &Self::Input,
        out: &mut Vec<u8>,
    ) -> Result<(), EmbedError>;
}

impl Tower for TextEncoder {
    const MODALITY: Modality = Modality::Text;
    type Input = str;
    type Prepared = TokenizedText;
    fn slot(loaded: &mut Loaded) -> &mut Option<Self> {
        &mut loaded.text
    }
    fn load(config: &ModelConfig) -> Result<Self, EmbedError> {
        TextEncoder::load(config, &settings::runtime_options())
    }
    fn placement(&self) -> &Placement {
        TextEncoder::placement(self)
    }
    fn dims(&self) -> Option<usize> {
        TextEncoder::dims(self)
    }
    fn prepare(&mut self, input: &str) -> Result<TokenizedText, EmbedError> {
        self.tokenize(input)
    }
    fn infer(&mut self, batch: &[TokenizedText]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_tokens(batch)
    }
    fn cache_bytes(input: &str) -> Result<&[u8], EmbedError> {
        Ok(tokenize::prefix(input, tokenize::MAX_TEXT_BYTES).as_bytes())
    }
    /// Nothing: loading a CLIP tokenizer takes about 100 ms and tens of MB per connection, using
    /// it microseconds per text, so the service tokenises.
    type Preparer = ();
    fn preparer_slot(loaded: &mut Loaded) -> &mut Option<()> {
        &mut loaded.text_input
    }
    fn preparer(config: &ModelConfig) -> Result<(), EmbedError> {
        config
            .text
            .as_ref()
            .map(|_| ())
            .ok_or(EmbedError::NoTower("text"))
    }
    /// The text's length (u32) and UTF-8 bytes: only the prefix that is embedded, as in
    /// backend mode, so a long text is truncated rather than refused for its size.
    fn serialize(_: &(), input: &str, out: &mut Vec<u8>) -> Result<(), EmbedError> {
        let input = tokenize::prefix(input, tokenize::MAX_TEXT_BYTES);
        let len = u32::try_from(input.len())
            .map_err(|_| EmbedError::Inference("text too long".into()))?;
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(input.as_bytes());
        Ok(())
    }
}

impl Tower for ImageEncoder {
    const MODALITY: Modality = Modality::Image;
    type Input = [u8];
    type Prepared = Vec<f32>;
    fn slot(loaded: &mut Loaded) -> &mut Option<Self> {
        &mut loaded.image
    }
    fn load(config: &ModelConfig) -> Result<Self, EmbedError> {
        ImageEncoder::load(
            config,
            &settings::runtime_options(),
            settings::image_limits(),
        )
    }
    fn placement(&self) -> &Placement {
        ImageEncoder::placement(self)
    }
    fn dims(&self) -> Option<usize> {
        ImageEncoder::dims(self)
    }
    fn prepare(&mut self, input: &[u8]) -> Result<Vec<f32>, EmbedError> {
        self.set_limits(settings::image_limits());
        self.preprocess(input)
    }
    fn infer(&mut self, batch: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_pixels(batch)
    }
    fn cache_bytes(input: &[u8]) -> Result<&[u8], EmbedError> {
        let limit = settings::image_limits().max_bytes;
        if input.len() > limit {
            return Err(EmbedError::ImageTooLarge {
                bytes: input.len(),
                limit,
            });
        }
        Ok(input)
    }
    type Preparer = PreprocessConfig;
    fn preparer_slot(loaded: &mut Loaded) -> &mut Option<PreprocessConfig> {
        &mut loaded.image_input
    }
    fn preparer(config: &ModelConfig) -> Result<PreprocessConfig, EmbedError> {
        let image = config.image.as_ref().ok_or(EmbedError::NoTower("image"))?;
        Ok(image.preprocess.clone())
    }
    /// The preprocessed pixels (3 x crop x crop floats).
    fn serialize(
        config: &PreprocessConfig,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EmbedError> {
        let pixels = preprocess(input, config, &settings::image_limits())?;
        out.extend(pixels.iter().flat_map(|v| v.to_ne_bytes()));
        Ok(())
    }
}

/// A model loaded by register_model before it has a registration id.
pub struct Prepared {
    config: ModelConfig,
    text: Option<TextEncoder>,
    image: Option<ImageEncoder>,
    pub dims: usize,
    pub modalities: Vec<Modality>,
}

thread_local! {
    static MODELS: RefCell<HashMap<String, Loaded>> = RefCell::new(HashMap::new());
    static CACHE: RefCell<ResultCache> = RefCell::new(ResultCache::default());
    static STATS: RefCell<Stats> = RefCell::new(Stats::default());
}

/// The model to use: the one named, else `xmodal.default_model`.
fn model_name(model: Option<&str>) -> String {
    match model.map(str::to_string).or_else(settings::default_model) {
        Some(name) => name,
        None => raise(
            ERRCODE_INVALID_PARAMETER_VALUE,
            "no model given and xmodal.default_model is not set".into(),
            Some("Pass the model name, or SET xmodal.default_model = 'name'."),
        ),
    }
}

/// Makes sure this backend's view of model `name` is current; returns its registration.
fn resolve(name: &str) -> Entry {
    let epoch = registry::epoch();
    let current = MODELS.with(|m| {
        let models = m.borrow();
        models
            .get(name)
            .filter(|l| l.epoch == epoch)
            .map(|l| l.entry.clone())
    });
    if let Some(entry) = current {
        return entry;
    }
    let Some(entry) = registry::lookup(name) else {
        MODELS.with(|m| m.borrow_mut().remove(name));
        raise(
            ERRCODE_UNDEFINED_OBJECT,
            format!("model \"{name}\" is not registered"),
            Some("See xmodal.models; register one with xmodal.register_model(name, path)."),
        );
    };
    MODELS.with(|m| {
        let mut models = m.borrow_mut();
        match models.get_mut(name) {
            Some(loaded) if loaded.entry.id == entry.id => loaded.epoch = epoch,
            _ => {
                let loaded = Loaded {
                    entry: entry.clone(),
                    epoch,
                    config: None,
                    text: None,
                    image: None,
                    text_input: None,
                    image_input: None,
                };
                models.insert(name.to_string(), loaded);
            }
        }
    });
    entry
}

/// Loads a tower, with the NOTICE `xmodal.device = auto` promises: where it runs and why not
/// on CUDA.
fn load<T: Tower>(model: &str, config: &ModelConfig) -> T {
    let tower = T::load(config).or_raise(model);
    if settings::device() == DeviceSetting::Auto {
        let name = T::MODALITY.name();
        match &tower.placement().fallback {
            None => notice!("xmodal: model \"{model}\" runs its {name} tower on CUDA"),
            Some(why) => notice!("xmodal: model \"{model}\" runs its {name} tower on CPU ({why})"),
        }
    }
    tower
}

/// Runs `f` on the `T` tower of a resolved model, loading it first if needed.
fn with_tower<T: Tower, R>(entry: &Entry, f: impl FnOnce(&mut T) -> R) -> R {
    let name = entry.name.as_str();
    if !entry.modalities.contains(&T::MODALITY) {
        raise_embed(EmbedError::NoTower(T::MODALITY.name()), name, None);
    }
    MODELS.with(|m| {
        let mut models = m.borrow_mut();
        let Some(loaded) = models.get_mut(name) else {
            raise(
                ERRCODE_INTERNAL_ERROR,
                format!("model \"{name}\" is not loaded"),
                None,
            );
        };
        if T::slot(loaded).is_none() {
            let config = match loaded.config.take() {
                Some(config) => config,
                None => registry::load_config(&entry.path).or_raise(name),
            };
            let tower = load::<T>(name, &config);
            loaded.config = Some(config);
            check_dims(tower.dims(), entry);
            *T::slot(loaded) = Some(tower);
        }
        match T::slot(loaded) {
            Some(tower) => f(tower),
            None => unreachable!("the tower was just loaded"),
        }
    })
}

/// Refuses sessions whose output size differs from the registration (files changed since).
fn check_dims(found: Option<usize>, entry: &Entry) {
    if let Some(found) = found.filter(|&d| d != entry.dims) {
        raise(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "model \"{}\" produces {found} dimensions, it was registered with {}",
                entry.name, entry.dims
            ),
            Some("Register the model again (replace => true)."),
        );
    }
}

fn count(model: &str, modality: Modality, f: impl FnOnce(&mut Counters)) {
    STATS.with(|s| f(s.borrow_mut().entry(model, modality)));
}

/// Prepares `inputs` and runs one inference over all of them: the embeddings and the time spent
/// preparing. `element` names an input in errors (its array position).
fn run<T: Tower>(
    entry: &Entry,
    inputs: &[&T::Input],
    element: impl Fn(usize) -> Option<String>,
) -> (Vec<Vec<f32>>, Duration) {
    let (rows, preprocess) = if service::enabled() {
        run_on_service::<T>(entry, inputs, element)
    } else {
        run_here::<T>(entry, inputs, element)
    };
    check_for_interrupts!();
    if let Some(bad) = rows.iter().find(|row| row.len() != entry.dims) {
        check_dims(Some(bad.len()), entry);
    }
    (rows, preprocess)
}

/// Prepares and infers in this backend.
fn run_here<T: Tower>(
    entry: &Entry,
    inputs: &[&T::Input],
    element: impl Fn(usize) -> Option<String>,
) -> (Vec<Vec<f32>>, Duration) {
    let name = entry.name.as_str();
    with_tower(entry, |tower: &mut T| {
        let start = Instant::now();
        let mut batch = Vec::with_capacity(inputs.len());
        for (at, input) in inputs.iter().enumerate() {
            check_for_interrupts!();
            match tower.prepare(input) {
                Ok(prepared) => batch.push(prepared),
                Err(error) => raise_embed(error, name, element(at)),
            }
        }
        let preprocess = start.elapsed();
        (tower.infer(&batch).or_raise(name), preprocess)
    })
}

/// Prepares in this backend and infers on the encoder service.
fn run_on_service<T: Tower>(
    entry: &Entry,
    inputs: &[&T::Input],
    element: impl Fn(usize) -> Option<String>,
) -> (Vec<Vec<f32>>, Duration) {
    let name = entry.name.as_str();
    if !entry.modalities.contains(&T::MODALITY) {
        raise_embed(EmbedError::NoTower(T::MODALITY.name()), name, None);
    }
    let start = Instant::now();
    let (offsets, payload) = MODELS.with(|m| {
        let mut models = m.borrow_mut();
        let Some(loaded) = models.get_mut(name) else {
            raise(
                ERRCODE_INTERNAL_ERROR,
                format!("model \"{name}\" is not loaded"),
                None,
            );
        };
        if T::preparer_slot(loaded).is_none() {
            let config = match loaded.config.take() {
                Some(config) => config,
                None => ModelConfig::load(&entry.path).or_raise(name),
            };
            let preparer = T::preparer(&config).or_raise(name);
            loaded.config = Some(config);
            *T::preparer_slot(loaded) = Some(preparer);
        }
        let Some(preparer) = T::preparer_slot(loaded).as_ref() else {
            unreachable!("the preparer was just made")
        };
        let (mut offsets, mut payload) = (vec![0], Vec::new());
        for (at, input) in inputs.iter().enumerate() {
            check_for_interrupts!();
            if let Err(error) = T::serialize(preparer, input, &mut payload) {
                raise_embed(error, name, element(at));
            }
            offsets.push(payload.len());
        }
        (offsets, payload)
    });
    let preprocess = start.elapsed();
    let rows = service::request(&service::Request {
        registration: entry.id,
        name,
        path: &entry.path,
        modality: T::MODALITY,
        offsets: &offsets,
        payload: &payload,
        dims: entry.dims,
        element: &element,
    });
    (rows, preprocess)
}

/// The embedding of one input by `model` (or the default model), from the cache when the same
/// input was embedded recently under the same registration.
pub(super) fn embed<T: Tower>(model: Option<&str>, input: &T::Input) -> Vec<f32> {
    let name = model_name(model);
    let entry = resolve(&name);
    let bytes = T::cache_bytes(input).unwrap_or_else(|error| raise_embed(error, &name, None));
    let key = CACHE.with(|c| c.borrow().key(entry.id, T::MODALITY, bytes));
    let hit = CACHE.with(|c| c.borrow_mut().get(&key));
    if let Some(embedding) = hit {
        count(&name, T::MODALITY, |c| {
            c.calls += 1;
            c.inputs += 1;
            c.cache_hits += 1;
        });
        return embedding;
    }
    let start = Instant::now();
    let (rows, preprocess) = run::<T>(&entry, &[input], |_| None);
    let embedding = rows.into_iter().next().unwrap_or_default();
    count(&name, T::MODALITY, |c| {
        c.calls += 1;
        c.inputs += 1;
        c.inferences += 1;
        c.preprocess += preprocess;
        c.total += start.elapsed();
    });
    CACHE.with(|c| {
        c.borrow_mut()
            .put(key, embedding.clone(), settings::cache_entries())
    });
    embedding
}

/// Refuses a batch of more than `xmodal.max_batch` elements, NULLs included (checked before the
/// elements are copied, since NULLs cost memory too).
pub(super) fn check_batch_size(elements: usize) {
    if elements > settings::max_batch() {
        raise(
            ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "{elements} array elements in one call, more than xmodal.max_batch ({})",
                settings::max_batch()
            ),
            Some("NULL elements count too."),
        );
    }
}

/// Embeddings of all non-NULL `inputs` in one inference; NULL inputs give NULL.
pub(super) fn embed_batch<T: Tower>(
    model: Option<&str>,
    inputs: &[Option<&T::Input>],
) -> Vec<Option<Vec<f32>>> {
    let name = model_name(model);
    check_batch_size(inputs.len());
    let (positions, values): (Vec<usize>, Vec<&T::Input>) = inputs
        .iter()
        .enumerate()
        .filter_map(|(at, input)| input.map(|i| (at, i)))
        .unzip();
    let entry = resolve(&name);
    let mut out = vec![None; inputs.len()];
    if values.is_empty() {
        count(&name, T::MODALITY, |c| c.calls += 1);
        return out;
    }
    let start = Instant::now();
    let (rows, preprocess) = run::<T>(&entry, &values, |i| {
        Some(format!("array element {}", positions[i] + 1))
    });
    count(&name, T::MODALITY, |c| {
        c.calls += 1;
        c.inputs += values.len() as i64;
        c.inferences += 1;
        c.preprocess += preprocess;
        c.total += start.elapsed();
    });
    for (at, row) in positions.into_iter().zip(rows) {
        out[at] = Some(row);
    }
    out
}

/// Loads every tower of the directory `config` describes (register_model), announcing devices.
pub fn prepare(name: &str, config: ModelConfig) -> Prepared {
    let text = config
        .text
        .is_some()
        .then(|| load::<TextEncoder>(name, &config));
    let image = config
        .image
        .is_some()
        .then(|| load::<ImageEncoder>(name, &config));
    let sizes: Vec<usize> = [
        text.as_ref().and_then(TextEncoder::dims),
        image.as_ref().and_then(ImageEncoder::dims),
        config.embed_dim,
    ]
    .into_iter()
    .flatten()
    .collect();
    let Some(&dims) = sizes.first() else {
        raise(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("model \"{name}\": the ONNX outputs do not declare the embedding size"),
            Some("Set \"embed_dim\" in the directory's xmodal.json."),
        );
    };
    if sizes.iter().any(|&d| d != dims) {
        raise(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("model \"{name}\": its towers disagree on the embedding size ({sizes:?})"),
            None,
        );
    }
    if dims > 16000 {
        raise(
            ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("model \"{name}\" produces {dims} dimensions; xvector holds at most 16000"),
            None,
        );
    }
    let modalities = [
        text.is_some().then_some(Modality::Text),
        image.is_some().then_some(Modality::Image),
    ]
    .into_iter()
    .flatten()
    .collect();
    Prepared {
        config,
        text,
        image,
        dims,
        modalities,
    }
}

/// Keeps the sessions register_model loaded, under the new registration.
pub fn install(entry: Entry, prepared: Prepared) {
    // The service loads its own sessions; it unloads the older registration's.
    let here = !service::active();
    service::forget(&entry.name);
    let loaded = Loaded {
        epoch: registry::epoch(),
        config: Some(prepared.config),
        text: prepared.text.filter(|_| here),
        image: prepared.image.filter(|_| here),
        text_input: None,
        image_input: None,
        entry,
    };
    MODELS.with(|m| m.borrow_mut().insert(loaded.entry.name.clone(), loaded));
}

/// Loads every tower of a registered model now (xmodal.preload).
pub fn load_all(name: &str) {
    if service::active() {
        return; // the service's worker preloads
    }
    let entry = resolve(name);
    for modality in &entry.modalities {
        match modality {
            Modality::Text => with_tower(&entry, |_: &mut TextEncoder| ()),
            Modality::Image => with_tower(&entry, |_: &mut ImageEncoder| ()),
        }
    }
}

/// Forgets a dropped model's sessions.
pub fn forget(name: &str) {
    MODELS.with(|m| m.borrow_mut().remove(name));
    service::forget(name);
}

/// Where this backend runs `name`'s loaded towers ("cpu", "cuda"), None when none is loaded.
pub fn device(name: &str) -> Option<String> {
    if service::active() {
        let towers = service::towers();
        let of = |modality: u32| {
            towers
                .iter()
                .find(|t| t.name.get() == name && t.modality == modality)
                .map(|t| t.device.get())
        };
        return match (of(0), of(1)) {
            (Some(t), Some(i)) if t != i => Some(format!("text: {t}, image: {i}")),
            (t, i) => t.or(i),
        };
    }
    MODELS.with(|m| {
        let models = m.borrow();
        let loaded = models.get(name)?;
        let label = |cuda: bool| if cuda { "cuda" } else { "cpu" };
        let text = loaded.text.as_ref().map(|t| label(t.placement().cuda));
        let image = loaded.image.as_ref().map(|i| label(i.placement().cuda));
        match (text, image) {
            (Some(t), Some(i)) if t != i => Some(format!("text: {t}, image: {i}")),
            (t, i) => t.or(i).map(String::from),
        }
    })
}

/// (model, modality, counters) of this backend.
pub fn stats() -> Vec<(String, Modality, Counters)> {
    STATS.with(|s| {
        s.borrow()
            .rows()
            .map(|(m, k, c)| (m.to_string(), k, c.clone()))
            .collect()
    })
}

pub fn reset_stats() {
    STATS.with(|s| s.borrow_mut().reset());
    CACHE.with(|c| c.borrow_mut().clear());
}
