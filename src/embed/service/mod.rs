//! The encoder service: with xmodal in `shared_preload_libraries`, one background worker per
//! server ("xmodal encoder service" in pg_stat_activity) holds the ONNX Runtime sessions and runs
//! every connection's inferences, batching the requests that wait for the same tower.
//!
//! Design. Backends keep the costly part that parallelises (image decoding and CLIP
//! preprocessing) and hand the pixels over through a ring of request slots in the main shared
//! memory (shmem.rs); texts travel as UTF-8 and the worker tokenises them (a CLIP tokenizer takes
//! about 100 ms and tens of MB to load in each connection, microseconds per text to use). The
//! slots are sized at server start by `xmodal.service_slots` x
//! `xmodal.service_request_bytes`: a request that finds no free slot, or one input that does
//! not fit in one, is an ERROR of SQLSTATE class 53 before anything is allocated (a larger call
//! goes as consecutive requests). A slot moves through
//! FREE -> FILLING -> QUEUED -> RUNNING -> DONE -> FREE with atomic compare-and-swap, so no lock is
//! held while a backend copies its tensors or the worker runs a model; the owner sets the
//! worker's latch once its slot is QUEUED and sleeps on its own latch (client.rs). The worker
//! (worker.rs) takes the oldest queued request, adds every other request queued for the same
//! tower up to `xmodal.max_batch` inputs (waiting up to `xmodal.batch_wait` for more), runs one
//! inference, writes each caller's rows into its slot and sets its latch.
//!
//! Faults. A cancelled caller leaves its slot: QUEUED -> FREE at once, RUNNING -> ABANDONED (the
//! worker frees it when the inference ends; its answer is never read). The worker never lets an
//! error or a panic escape a request: they become the request's ERROR. When it exits (terminated,
//! FATAL), an exit callback fails the requests it was running and wakes their owners; it exits
//! with code 1 so the postmaster starts a new one after `bgw_restart_time` (1 s), which serves
//! the requests still queued. Callers give up with an ERROR when no worker has been running for
//! `SERVICE_ABSENT` seconds. Only the worker's main thread calls Postgres; ONNX Runtime's
//! threads are created with every signal blocked (pipeline/runtime.rs).
//!
//! The worker needs no database for embedding: a request names the model directory and the
//! registration it comes from (database oid, model name, registration id), so a re-registered
//! model is loaded afresh and the older one unloaded; drop_model tells the worker to unload it.
//! `xmodal.preload` connects the worker to `xmodal.service_database` to read the registry there.

mod client;
mod shmem;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};

pub use client::{forget, request, towers, Request, TowerRow};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PostgresGucEnum)]
pub enum EncoderSetting {
    #[name = c"service"]
    Service,
    #[name = c"backend"]
    Backend,
}

/// `xmodal.encoder`, whose default depends on whether the library was preloaded.
static ENCODER_PRELOADED: GucSetting<EncoderSetting> =
    GucSetting::<EncoderSetting>::new(EncoderSetting::Service);
static ENCODER_LOADED: GucSetting<EncoderSetting> =
    GucSetting::<EncoderSetting>::new(EncoderSetting::Backend);
static PRELOADED: AtomicBool = AtomicBool::new(false);

static SLOTS: GucSetting<i32> = GucSetting::<i32>::new(32);
static REQUEST_BYTES: GucSetting<i32> = GucSetting::<i32>::new(4 << 20);
static BATCH_WAIT: GucSetting<i32> = GucSetting::<i32>::new(2);
static SERVICE_THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static SERVICE_DATABASE: GucSetting<Option<std::ffi::CString>> =
    GucSetting::<Option<std::ffi::CString>>::new(Some(c"postgres"));

/// Seconds a caller waits for a worker to be running before it gives up.
const SERVICE_ABSENT: u64 = 10;

/// Defines the settings; under shared_preload_libraries also the shared memory and the worker.
pub fn init() {
    // SAFETY: reads a flag the postmaster sets while it loads shared_preload_libraries.
    let preloading = unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress };
    PRELOADED.store(preloading, Ordering::Relaxed);
    GucRegistry::define_enum_guc(
        c"xmodal.encoder",
        c"Where embeddings are computed: service (one worker for the server) or backend",
        c"service needs xmodal in shared_preload_libraries and is then the default; backend \
          runs the models in each connection.",
        if preloading {
            &ENCODER_PRELOADED
        } else {
            &ENCODER_LOADED
        },
        GucContext::Userset,
        GucFlags::default(),
    );
    let int = |name, short, long, setting, min, max, context, flags| {
        GucRegistry::define_int_guc(name, short, long, setting, min, max, context, flags)
    };
    int(
        c"xmodal.batch_wait",
        c"How long the encoder service waits for more requests to batch with one",
        c"0 runs each gathered batch at once.",
        &BATCH_WAIT,
        0,
        1000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    int(
        c"xmodal.service_threads",
        c"ONNX Runtime threads of each encoder session the encoder service loads",
        c"0: one per CPU core (the worker is the only process computing embeddings). \
          xmodal.intra_op_threads sizes backend mode's sessions. Applies to towers loaded \
          afterwards.",
        &SERVICE_THREADS,
        0,
        64,
        GucContext::Sighup,
        GucFlags::default(),
    );
    // Server-start settings exist only where the service does (a backend that loads the
    // library later may not define them).
    if preloading {
        int(
            c"xmodal.service_slots",
            c"Requests the encoder service can hold at once (queued or running)",
            c"A request that finds every slot taken is an ERROR (SQLSTATE 53400).",
            &SLOTS,
            1,
            1024,
            GucContext::Postmaster,
            GucFlags::default(),
        );
        int(
            c"xmodal.service_request_bytes",
            c"Largest request (tensors of one call) the encoder service accepts",
            c"Shared memory holds xmodal.service_slots of these. A text takes 16 bytes a token, an \
              image 12 bytes a pixel of the crop (602 kB at 224x224).",
            &REQUEST_BYTES,
            64 << 10,
            1 << 30,
            GucContext::Postmaster,
            GucFlags::UNIT_BYTE,
        );
        GucRegistry::define_string_guc(
            c"xmodal.service_database",
            c"Database whose model registry the encoder service reads for xmodal.preload",
            c"",
            &SERVICE_DATABASE,
            GucContext::Postmaster,
            GucFlags::default(),
        );
        shmem::init();
        worker::register();
    }
}

/// Operator threads for the worker's sessions: `xmodal.service_threads`, 0 meaning every core.
fn service_threads() -> usize {
    match SERVICE_THREADS.get() {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    }
}

/// Whether `xmodal.encoder = service` is in effect (never raises).
pub fn active() -> bool {
    PRELOADED.load(Ordering::Relaxed) && ENCODER_PRELOADED.get() == EncoderSetting::Service
}

/// Whether this call should use the service: `xmodal.encoder`, refused without the preload.
pub fn enabled() -> bool {
    if !PRELOADED.load(Ordering::Relaxed) {
        if ENCODER_LOADED.get() == EncoderSetting::Service {
            crate::embed::report::raise(
                pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "xmodal.encoder = service needs xmodal in shared_preload_libraries".into(),
                Some("Add xmodal to shared_preload_libraries and restart, or SET xmodal.encoder = backend."),
            );
        }
        return false;
    }
    ENCODER_PRELOADED.get() == EncoderSetting::Service
}

#[pgrx::pg_schema]
mod xmodal {
    use pgrx::prelude::*;

    /// The towers the encoder service holds for this database, with their counters (the view
    /// xmodal.encoder_service); no rows without the service.
    #[pg_extern(volatile, parallel_restricted)]
    fn encoder_service_towers() -> TableIterator<
        'static,
        (
            name!(model, String),
            name!(modality, String),
            name!(device, String),
            name!(pid, i32),
            name!(requests, i64),
            name!(inputs, i64),
            name!(batches, i64),
            name!(queue_wait_ms, f64),
            name!(inference_ms, f64),
        ),
    > {
        TableIterator::new(super::towers().into_iter().map(|t| {
            let modality = if t.modality == 0 { "text" } else { "image" };
            (
                t.name.get(),
                modality.to_string(),
                t.device.get(),
                t.pid,
                t.requests,
                t.inputs,
                t.batches,
                t.queue_wait_us as f64 / 1000.0,
                t.inference_us as f64 / 1000.0,
            )
        }))
    }
}

pgrx::extension_sql!(
    r#"
CREATE VIEW xmodal.encoder_service AS
    SELECT model, modality, device, pid, requests, inputs, batches, queue_wait_ms, inference_ms
    FROM xmodal.encoder_service_towers();
COMMENT ON VIEW xmodal.encoder_service IS
    'Model towers the encoder service holds for this database: requests, inputs, batches (inputs / batches is the mean batch), total queue wait and inference time';
GRANT SELECT ON xmodal.encoder_service TO PUBLIC;
"#,
    name = "encoder_service_view",
    requires = [encoder_service_towers]
);
