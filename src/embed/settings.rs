//! The encoders' GUCs (`xmodal.*`) and their reading into the plain option structs of the
//! pure modules. Defined in `_PG_init`; nothing here creates a session.

use std::ffi::CString;
use std::path::PathBuf;

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};

use super::pipeline::preprocess::ImageLimits;
use super::pipeline::runtime::{Device, RuntimeOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PostgresGucEnum)]
pub enum DeviceSetting {
    #[name = c"auto"]
    Auto,
    #[name = c"cpu"]
    Cpu,
    #[name = c"cuda"]
    Cuda,
}

pub static DEFAULT_MODEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static MODEL_ADMIN_ROLE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static MODEL_ROOT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static PRELOAD: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static LIBRARY: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"/usr/local/lib/xmodal/libonnxruntime.so.1.31.1"));
pub static DEVICE: GucSetting<DeviceSetting> =
    GucSetting::<DeviceSetting>::new(DeviceSetting::Auto);
static INTRA_OP_THREADS: GucSetting<i32> = GucSetting::<i32>::new(1);
static MAX_IMAGE_BYTES: GucSetting<i32> = GucSetting::<i32>::new(32 << 20);
static MAX_IMAGE_PIXELS: GucSetting<i32> = GucSetting::<i32>::new(50_000_000);
static MAX_BATCH: GucSetting<i32> = GucSetting::<i32>::new(256);
static CACHE_ENTRIES: GucSetting<i32> = GucSetting::<i32>::new(64);

pub fn init() {
    let string = |name, short, long, setting, context| {
        GucRegistry::define_string_guc(name, short, long, setting, context, GucFlags::default())
    };
    string(
        c"xmodal.default_model",
        c"Model used by embed_text/embed_image when none is named",
        c"The name of a model registered with xmodal.register_model.",
        &DEFAULT_MODEL,
        GucContext::Userset,
    );
    string(
        c"xmodal.model_admin_role",
        c"Role whose members may register and drop models (besides superusers)",
        c"Empty: superusers only. Members may only register directories inside xmodal.model_root.",
        &MODEL_ADMIN_ROLE,
        GucContext::Suset,
    );
    string(
        c"xmodal.model_root",
        c"Directory that registered model directories must be inside",
        c"Empty: no restriction for superusers, and no registration for anyone else.",
        &MODEL_ROOT,
        GucContext::Suset,
    );
    string(
        c"xmodal.preload",
        c"Comma-separated models each backend loads at its first statement",
        c"Meant for shared_preload_libraries or session_preload_libraries; failures are WARNINGs.",
        &PRELOAD,
        GucContext::Suset,
    );
    string(
        c"xmodal.onnxruntime_library",
        c"Absolute path of the ONNX Runtime shared library (1.31 or newer)",
        c"Loaded once per backend, at its first model load; a change applies to new connections.",
        &LIBRARY,
        GucContext::Suset,
    );
    GucRegistry::define_enum_guc(
        c"xmodal.device",
        c"Where encoders run: auto, cpu or cuda",
        c"auto: CUDA when the library has the CUDA execution provider and a session can use it, else CPU (a NOTICE says which). Applies to sessions created afterwards.",
        &DEVICE,
        // Superuser-only: CUDA sessions take GPU memory that every backend shares.
        GucContext::Suset,
        GucFlags::default(),
    );
    let int = |name, short, long, setting, min, max, context, flags| {
        GucRegistry::define_int_guc(name, short, long, setting, min, max, context, flags)
    };
    int(
        c"xmodal.intra_op_threads",
        c"ONNX Runtime threads per encoder session",
        c"Applies to sessions created afterwards (a new connection, or a model registered again).",
        &INTRA_OP_THREADS,
        1,
        64,
        // Superuser-only: threads per session per backend are the DBA's to size.
        GucContext::Suset,
        GucFlags::default(),
    );
    int(
        c"xmodal.max_image_bytes",
        c"Largest encoded image embed_image accepts",
        c"",
        &MAX_IMAGE_BYTES,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
    int(
        c"xmodal.max_image_pixels",
        c"Most pixels (width x height, read from the header) of an image embed_image decodes",
        c"",
        &MAX_IMAGE_PIXELS,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    int(
        c"xmodal.max_batch",
        c"Most elements of one embed_texts / embed_images call",
        c"Each call is one inference; its tensors grow with the batch.",
        &MAX_BATCH,
        1,
        65536,
        GucContext::Suset,
        GucFlags::default(),
    );
    int(
        c"xmodal.cache_entries",
        c"Recent embeddings each backend keeps to avoid encoding the same input again",
        c"0 disables the cache.",
        &CACHE_ENTRIES,
        0,
        // At most 1024 x 16000 x 4 bytes (64 MB) per backend, and a short linear lookup.
        1024,
        GucContext::Userset,
        GucFlags::default(),
    );
}

fn string_setting(setting: &GucSetting<Option<CString>>) -> Option<String> {
    let value = setting.get()?;
    let text = value.to_string_lossy().trim().to_string();
    (!text.is_empty()).then_some(text)
}

pub fn default_model() -> Option<String> {
    string_setting(&DEFAULT_MODEL)
}

pub fn model_admin_role() -> Option<String> {
    string_setting(&MODEL_ADMIN_ROLE)
}

pub fn model_root() -> Option<PathBuf> {
    string_setting(&MODEL_ROOT).map(PathBuf::from)
}

/// The names in xmodal.preload.
pub fn preload() -> Vec<String> {
    string_setting(&PRELOAD)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

pub fn device() -> DeviceSetting {
    DEVICE.get()
}

pub fn runtime_options() -> RuntimeOptions {
    RuntimeOptions {
        library: PathBuf::from(string_setting(&LIBRARY).unwrap_or_default()),
        intra_threads: INTRA_OP_THREADS.get() as usize,
        device: match DEVICE.get() {
            DeviceSetting::Auto => Device::Auto,
            DeviceSetting::Cpu => Device::Cpu,
            DeviceSetting::Cuda => Device::Cuda,
        },
    }
}

pub fn image_limits() -> ImageLimits {
    ImageLimits {
        max_bytes: MAX_IMAGE_BYTES.get() as usize,
        max_pixels: MAX_IMAGE_PIXELS.get() as u64,
    }
}

pub fn max_batch() -> usize {
    MAX_BATCH.get() as usize
}

pub fn cache_entries() -> usize {
    CACHE_ENTRIES.get() as usize
}
