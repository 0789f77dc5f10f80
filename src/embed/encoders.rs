//! What each backend holds: the registered models it has used, with their ONNX Runtime sessions
//! (created lazily, on the backend's main thread, at the first call that needs a tower), the
//! cache of recent results and the counters. Sessions are kept until the model's registration
//! changes (a new registration id) or it is dropped. Only this thread calls Postgres; ONNX
//! Runtime's threads compute on the plain Rust data passed to `session.rs`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use super::cache::ResultCache;
use super::error::EmbedError;
use super::model::ModelConfig;
use super::registry::{self, Entry};
use super::report::{raise, raise_embed, OrRaise};
use super::session::{ImageEncoder, Placement, TextEncoder};
use super::settings::{self, DeviceSetting};
use super::stats::{Counters, Stats};
use super::Modality;

/// One input value.
#[derive(Clone, Copy)]
pub enum Input<'a> {
    Text(&'a str),
    Image(&'a [u8]),
}

impl Input<'_> {
    fn modality(&self) -> Modality {
        match self {
            Input::Text(_) => Modality::Text,
            Input::Image(_) => Modality::Image,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Input::Text(text) => text.as_bytes(),
            Input::Image(bytes) => bytes,
        }
    }
}

/// A model as this backend knows it.
struct Loaded {
    entry: Entry,
    /// The registry epoch at which `entry` was last read.
    epoch: u64,
    config: Option<ModelConfig>,
    text: Option<TextEncoder>,
    image: Option<ImageEncoder>,
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
pub fn model_name(model: Option<&str>) -> String {
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
                };
                models.insert(name.to_string(), loaded);
            }
        }
    });
    entry
}

/// NOTICE for `xmodal.device = auto`: where the tower runs, and why not on CUDA.
fn announce(model: &str, modality: Modality, placement: &Placement) {
    if settings::device() != DeviceSetting::Auto {
        return;
    }
    let tower = modality.name();
    match &placement.fallback {
        None => notice!("xmodal: model \"{model}\" runs its {tower} tower on CUDA"),
        Some(why) => notice!("xmodal: model \"{model}\" runs its {tower} tower on CPU ({why})"),
    }
}

fn load_text(model: &str, config: &ModelConfig) -> TextEncoder {
    let encoder = TextEncoder::load(config, &settings::runtime_options()).or_raise(model);
    announce(model, Modality::Text, encoder.placement());
    encoder
}

fn load_image(model: &str, config: &ModelConfig) -> ImageEncoder {
    let encoder = ImageEncoder::load(
        config,
        &settings::runtime_options(),
        settings::image_limits(),
    )
    .or_raise(model);
    announce(model, Modality::Image, encoder.placement());
    encoder
}

/// The loaded tower for one modality.
enum Tower<'a> {
    Text(&'a mut TextEncoder),
    Image(&'a mut ImageEncoder),
}

/// Refuses a modality the model has no tower for.
fn require_tower(entry: &Entry, modality: Modality) {
    if !entry.modalities.contains(&modality) {
        raise_embed(EmbedError::NoTower(modality.name()), &entry.name, None);
    }
}

/// Runs `f` on the tower of `entry` for `modality`, loading it first if needed.
fn with_tower<R>(entry: &Entry, modality: Modality, f: impl FnOnce(Tower) -> R) -> R {
    let name = entry.name.as_str();
    MODELS.with(|m| {
        let mut models = m.borrow_mut();
        let loaded = models.get_mut(name).unwrap_or_else(|| {
            raise(
                ERRCODE_INTERNAL_ERROR,
                format!("model \"{name}\" is not loaded"),
                None,
            )
        });
        if loaded.config.is_none() {
            loaded.config = Some(ModelConfig::load(&entry.path).or_raise(name));
        }
        let Some(config) = loaded.config.as_ref() else {
            unreachable!("the configuration was just loaded")
        };
        match modality {
            Modality::Text => {
                if loaded.text.is_none() {
                    loaded.text = Some(check_dims(load_text(name, config), entry));
                }
                f(Tower::Text(
                    loaded.text.as_mut().expect("text tower loaded"),
                ))
            }
            Modality::Image => {
                if loaded.image.is_none() {
                    loaded.image = Some(check_dims(load_image(name, config), entry));
                }
                let image = loaded.image.as_mut().expect("image tower loaded");
                image.set_limits(settings::image_limits());
                f(Tower::Image(image))
            }
        }
    })
}

/// Refuses sessions whose output size differs from the registration (files changed since).
fn check_dims<E: Dims>(encoder: E, entry: &Entry) -> E {
    if let Some(found) = encoder.dims().filter(|&d| d != entry.dims) {
        raise(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "model \"{}\" now produces {found} dimensions, it was registered with {}",
                entry.name, entry.dims
            ),
            Some("Register the model again (replace => true)."),
        );
    }
    encoder
}

trait Dims {
    fn dims(&self) -> Option<usize>;
}

impl Dims for TextEncoder {
    fn dims(&self) -> Option<usize> {
        TextEncoder::dims(self)
    }
}

impl Dims for ImageEncoder {
    fn dims(&self) -> Option<usize> {
        ImageEncoder::dims(self)
    }
}

fn count(model: &str, modality: Modality, f: impl FnOnce(&mut Counters)) {
    STATS.with(|s| f(s.borrow_mut().entry(model, modality)));
}

/// Preprocessed inputs of one tower, ready for one batched run.
enum Batch {
    Tokens(Vec<super::tokenize::TokenizedText>),
    Pixels(Vec<Vec<f32>>),
}

/// Preprocesses `inputs` and runs one inference over all of them. Returns the embeddings and
/// the time spent preprocessing. `element` names an input in errors (array position).
fn run_batch(
    entry: &Entry,
    modality: Modality,
    inputs: &[Input],
    element: impl Fn(usize) -> Option<String>,
) -> (Vec<Vec<f32>>, Duration) {
    let name = entry.name.as_str();
    with_tower(entry, modality, |tower| {
        let start = Instant::now();
        let batch = match &tower {
            Tower::Text(encoder) => Batch::Tokens(
                inputs
                    .iter()
                    .enumerate()
                    .map(|(at, input)| match input {
                        Input::Text(text) => encoder
                            .tokenize(text)
                            .unwrap_or_else(|e| raise_embed(e, name, element(at))),
                        Input::Image(_) => unreachable!("an image given to the text tower"),
                    })
                    .collect(),
            ),
            Tower::Image(encoder) => Batch::Pixels(
                inputs
                    .iter()
                    .enumerate()
                    .map(|(at, input)| {
                        check_for_interrupts!();
                        match input {
                            Input::Image(bytes) => encoder
                                .preprocess(bytes)
                                .unwrap_or_else(|e| raise_embed(e, name, element(at))),
                            Input::Text(_) => unreachable!("a text given to the image tower"),
                        }
                    })
                    .collect(),
            ),
        };
        let preprocess = start.elapsed();
        check_for_interrupts!();
        let rows = match (tower, batch) {
            (Tower::Text(encoder), Batch::Tokens(tokens)) => encoder.embed_tokens(&tokens),
            (Tower::Image(encoder), Batch::Pixels(pixels)) => encoder.embed_pixels(&pixels),
            _ => unreachable!("batch built for its own tower"),
        }
        .or_raise(name);
        if let Some(bad) = rows.iter().find(|row| row.len() != entry.dims) {
            raise(
                ERRCODE_INVALID_PARAMETER_VALUE,
                format!(
                    "model \"{name}\" produced {} dimensions, it was registered with {}",
                    bad.len(),
                    entry.dims
                ),
                Some("Register the model again (replace => true)."),
            );
        }
        (rows, preprocess)
    })
}

/// The embedding of one input by `model` (or the default model), from the cache when the same
/// input was embedded recently under the same registration.
pub fn embed(model: Option<&str>, input: Input) -> Vec<f32> {
    let name = model_name(model);
    let entry = resolve(&name);
    let modality = input.modality();
    require_tower(&entry, modality);
    let key = CACHE.with(|c| c.borrow().key(entry.id, modality, input.bytes()));
    let hit = CACHE.with(|c| c.borrow_mut().get(&key));
    count(&name, modality, |c| {
        c.calls += 1;
        c.inputs += 1;
        c.cache_hits += i64::from(hit.is_some());
    });
    if let Some(embedding) = hit {
        return embedding;
    }
    let start = Instant::now();
    let (rows, preprocess) = run_batch(&entry, modality, &[input], |_| None);
    let embedding = rows.into_iter().next().unwrap_or_default();
    let total = start.elapsed();
    count(&name, modality, |c| {
        c.inferences += 1;
        c.preprocess += preprocess;
        c.total += total;
    });
    CACHE.with(|c| {
        c.borrow_mut()
            .put(key, embedding.clone(), settings::cache_entries())
    });
    embedding
}

/// Embeddings of all non-NULL `inputs` in one inference; NULL inputs give NULL.
pub fn embed_batch(
    model: Option<&str>,
    modality: Modality,
    inputs: &[Option<Input>],
) -> Vec<Option<Vec<f32>>> {
    let name = model_name(model);
    let present: Vec<(usize, Input)> = inputs
        .iter()
        .enumerate()
        .filter_map(|(at, input)| input.map(|i| (at, i)))
        .collect();
    if present.len() > settings::max_batch() {
        raise(
            ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "{} values in one call, more than xmodal.max_batch ({})",
                present.len(),
                settings::max_batch()
            ),
            None,
        );
    }
    let entry = resolve(&name);
    require_tower(&entry, modality);
    count(&name, modality, |c| {
        c.calls += 1;
        c.inputs += present.len() as i64;
    });
    let mut out = vec![None; inputs.len()];
    if present.is_empty() {
        return out;
    }
    let start = Instant::now();
    let values: Vec<Input> = present.iter().map(|(_, input)| *input).collect();
    let (rows, preprocess) = run_batch(&entry, modality, &values, |i| {
        Some(format!("array element {}", present[i].0 + 1))
    });
    let total = start.elapsed();
    count(&name, modality, |c| {
        c.inferences += 1;
        c.preprocess += preprocess;
        c.total += total;
    });
    for ((at, _), row) in present.iter().zip(rows) {
        out[*at] = Some(row);
    }
    out
}

/// Loads every tower of the directory `config` describes (register_model), announcing devices.
pub fn prepare(name: &str, config: ModelConfig) -> Prepared {
    let text = config.text.is_some().then(|| load_text(name, &config));
    let image = config.image.is_some().then(|| load_image(name, &config));
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
    let loaded = Loaded {
        epoch: registry::epoch(),
        config: Some(prepared.config),
        text: prepared.text,
        image: prepared.image,
        entry,
    };
    MODELS.with(|m| m.borrow_mut().insert(loaded.entry.name.clone(), loaded));
}

/// Loads every tower of a registered model now (xmodal.preload).
pub fn load_all(name: &str) {
    let entry = resolve(name);
    for modality in entry.modalities.clone() {
        with_tower(&entry, modality, |_| ());
    }
}

/// Forgets a dropped model's sessions.
pub fn forget(name: &str) {
    MODELS.with(|m| m.borrow_mut().remove(name));
}

/// Where this backend runs `name`'s loaded towers ("cpu", "cuda"), None when none is loaded.
pub fn device(name: &str) -> Option<String> {
    MODELS.with(|m| {
        let models = m.borrow();
        let loaded = models.get(name)?;
        let places: Vec<bool> = [
            loaded.text.as_ref().map(|t| t.placement().cuda),
            loaded.image.as_ref().map(|i| i.placement().cuda),
        ]
        .into_iter()
        .flatten()
        .collect();
        let label = |cuda: bool| if cuda { "cuda" } else { "cpu" };
        match places.as_slice() {
            [] => None,
            [one] => Some(label(*one).to_string()),
            [text, image] if text == image => Some(label(*text).to_string()),
            [text, image] => Some(format!("text: {}, image: {}", label(*text), label(*image))),
            _ => None,
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
