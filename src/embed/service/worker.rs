//! The encoder service's background worker: holds one ONNX Runtime session per tower it was asked
//! for, gathers the queued requests for one tower into a batch, runs it and answers each slot.
//! Nothing escapes a request: load failures, inference errors and panics become that request's
//! ERROR. It always exits with code 1 (restarted after 1 s): exit code 0 would unregister it, a
//! crash would make the postmaster restart every backend.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::{self, *};

use super::shmem::{self, Header, TowerRow, ABANDONED, DONE, QUEUED, RUNNING};
use super::{service_threads, BATCH_WAIT};
use crate::embed::pipeline::error::EmbedError;
use crate::embed::pipeline::model::ModelConfig;
use crate::embed::pipeline::runtime::{Placement, RuntimeOptions};
use crate::embed::pipeline::session::{ImageEncoder, TextEncoder};
use crate::embed::pipeline::tokenize::TokenizedText;
use crate::embed::report;
use crate::embed::{registry, settings};

const NAME: &str = "xmodal encoder service";

pub fn register() {
    BackgroundWorkerBuilder::new(NAME)
        .set_type(NAME)
        .set_library("xmodal")
        .set_function("encoder_service_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::ConsistentState)
        .set_restart_time(Some(Duration::from_secs(1)))
        .load();
}

/// Which tower of which registration a request is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    database: u32,
    name: String,
    registration: i64,
    /// 0: text, 1: image (as in the slot).
    modality: u32,
}

enum Session {
    Text(TextEncoder),
    Image(ImageEncoder),
}

struct Held {
    session: Session,
    /// Its row in the shared tower table, None when the table is full.
    row: Option<usize>,
}

/// A request's failure: its SQLSTATE, message, and the input it is about (None: all of them).
struct Failure(PgSqlErrorCode, String, Option<usize>);

impl Failure {
    fn new(code: PgSqlErrorCode, message: String) -> Self {
        Failure(code, message, None)
    }

    fn embed(error: &EmbedError, model: &str) -> Self {
        Failure::new(report::sqlstate(error), report::message(error, model))
    }
}

struct Service {
    header: &'static Header,
    towers: HashMap<Key, Held>,
    evictions_seen: u64,
    /// Requests were still queued after the last inference: other connections are embedding,
    /// so waiting `xmodal.batch_wait` for more is worth it.
    busy: bool,
}

/// Ends the worker with exit code 1, so that the postmaster starts a new one (0 would
/// unregister it). PostgreSQL 18's bindings do not mark `proc_exit` as diverging.
#[allow(unreachable_code)]
fn exit_for_restart() -> ! {
    // SAFETY: called on the worker's main thread, holding no lock.
    unsafe { pg_sys::proc_exit(1) };
    unreachable!("proc_exit returned")
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn encoder_service_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // Batched inputs and ONNX Runtime's per-run buffers are megabytes each. glibc raises its mmap
    // threshold after such a block is freed and then keeps the next ones in the heap, which the
    // worker never gives back (measured: +200 MB after batches of 16 ViT-B/32 images). A fixed
    // threshold of 1 MB keeps every large block in its own mapping, returned when freed.
    // SAFETY: mallopt only changes this process' allocator settings.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
    let Some(header) = shmem::header() else {
        // Ends the worker (restarted later); nothing is held yet.
        exit_for_restart()
    };
    let preload = settings::preload();
    let database = super::SERVICE_DATABASE
        .get()
        .map(|d| d.to_string_lossy().into_owned());
    if preload.is_empty() {
        BackgroundWorker::connect_worker_to_spi(None, None);
    } else {
        BackgroundWorker::connect_worker_to_spi(database.as_deref(), None);
    }
    // SAFETY: registers the exit callback, then publishes this process as the worker.
    unsafe {
        pg_sys::before_shmem_exit(Some(on_exit), pg_sys::Datum::from(0));
        fail_running(
            header,
            "the previous xmodal encoder service stopped while running this request",
        );
        header.clear_towers();
        header
            .worker_latch
            .store(pg_sys::MyLatch as usize, Ordering::Release);
        header
            .worker_pid
            .store(pg_sys::MyProcPid, Ordering::Release);
    }
    log!(
        "{NAME} started ({} request slots of {} bytes)",
        header.slots,
        header.slot_bytes
    );
    let mut service = Service {
        header,
        towers: HashMap::new(),
        evictions_seen: header.evictions_since(u64::MAX).1,
        busy: false,
    };
    service.preload(&preload);
    loop {
        if BackgroundWorker::sigterm_received() {
            exit_for_restart();
        }
        // Absorbs procsignal barriers (DROP DATABASE waits for every process to do so).
        pgrx::check_for_interrupts!();
        if BackgroundWorker::sighup_received() {
            // SAFETY: reloads the configuration on the main thread, as any process does.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        // SAFETY: resets this process' own latch before looking for work.
        unsafe { pg_sys::ResetLatch(pg_sys::MyLatch) };
        service.evict();
        if !service.serve() {
            wait(Duration::from_secs(1));
        }
    }
}

fn wait(timeout: Duration) {
    // SAFETY: waits on this process' own latch; exits when the postmaster dies.
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            timeout.as_millis().max(1) as std::ffi::c_long,
            pg_sys::PG_WAIT_EXTENSION,
        );
    }
}

/// Exit callback: no worker any more; the requests it was running fail, their owners wake up.
#[pg_guard]
unsafe extern "C-unwind" fn on_exit(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    if let Some(header) = shmem::header() {
        header.worker_pid.store(0, Ordering::Release);
        header.worker_latch.store(0, Ordering::Release);
        fail_running(
            header,
            "the xmodal encoder service stopped while running this request",
        );
        header.clear_towers();
    }
}

fn fail_running(header: &Header, message: &str) {
    for at in 0..header.slots as usize {
        let state = header.state(at);
        if state.load(Ordering::Acquire) == ABANDONED {
            let _ =
                state.compare_exchange(ABANDONED, shmem::FREE, Ordering::AcqRel, Ordering::Relaxed);
        } else if state.load(Ordering::Acquire) == RUNNING {
            answer(
                header,
                at,
                Err(Failure::new(ERRCODE_OPERATOR_INTERVENTION, message.into())),
            );
        }
    }
}

/// Writes a RUNNING slot's answer and hands it back: DONE and its owner woken, or FREE when the
/// owner abandoned it.
fn answer(header: &Header, at: usize, result: Result<(u32, &[f32]), Failure>) {
    let state = header.state(at);
    match state.load(Ordering::Acquire) {
        RUNNING => {}
        ABANDONED => return state.store(shmem::FREE, Ordering::Release),
        _ => return,
    }
    let slot = header.slot(at);
    // SAFETY: the slot is RUNNING, owned by the worker until its state changes below.
    unsafe {
        let s = &mut *slot;
        match result {
            Ok((dims, values)) if values.len() * 4 <= header.slot_bytes => {
                std::ptr::copy_nonoverlapping(
                    values.as_ptr(),
                    header.data(at).cast::<f32>(),
                    values.len(),
                );
                s.sqlstate = 0;
                s.dims = dims;
            }
            Ok((_, values)) => {
                s.sqlstate = ERRCODE_OUT_OF_MEMORY as i32;
                s.message.set(&format!(
                    "{} bytes of embeddings do not fit in xmodal.service_request_bytes ({})",
                    values.len() * 4,
                    header.slot_bytes
                ));
            }
            Err(Failure(code, message, input)) => {
                s.sqlstate = code as i32;
                s.message.set(&message);
                s.failed = input.map_or(-1, |i| i as i32);
            }
        }
        let latch = s.latch.load(Ordering::Relaxed);
        if state
            .compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            shmem::wake(latch);
        } else {
            state.store(shmem::FREE, Ordering::Release);
        }
    }
}

/// A queued request's key, ticket, inputs and queue time.
struct Queued {
    at: usize,
    key: Key,
    ticket: u64,
    count: usize,
}

impl Service {
    fn queued(&self) -> Vec<Queued> {
        let mut list = Vec::new();
        for at in 0..self.header.slots as usize {
            if self.header.state(at).load(Ordering::Acquire) != QUEUED {
                continue;
            }
            // SAFETY: a QUEUED slot's request is published (acquire above) and not changed by
            // its owner, who may only free it (then the CAS in `take` fails).
            let s = unsafe { &*self.header.slot(at) };
            list.push(Queued {
                at,
                key: Key {
                    database: s.database,
                    name: s.name.get(),
                    registration: s.registration,
                    modality: s.modality,
                },
                ticket: s.ticket,
                count: s.count as usize,
            });
        }
        list
    }

    /// Moves the queued requests for `key` (oldest first) to RUNNING while the batch has room.
    fn take(&self, key: &Key, batch: &mut Vec<usize>, inputs: &mut usize) {
        let mut list: Vec<Queued> = self
            .queued()
            .into_iter()
            .filter(|q| &q.key == key)
            .collect();
        list.sort_by_key(|q| q.ticket);
        let max = settings::max_batch();
        for q in list {
            if !batch.is_empty() && *inputs + q.count > max {
                break;
            }
            if self
                .header
                .state(q.at)
                .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                batch.push(q.at);
                *inputs += q.count;
            }
        }
    }

    /// Serves one batch; false when nothing was queued.
    fn serve(&mut self) -> bool {
        let Some(first) = self.queued().into_iter().min_by_key(|q| q.ticket) else {
            return false;
        };
        let key = first.key;
        let (mut batch, mut inputs) = (Vec::new(), 0);
        self.take(&key, &mut batch, &mut inputs);
        let wait_for = Duration::from_millis(BATCH_WAIT.get().max(0) as u64);
        if self.busy && !wait_for.is_zero() {
            let deadline = Instant::now() + wait_for;
            while inputs < settings::max_batch() {
                let now = Instant::now();
                if now >= deadline || BackgroundWorker::sigterm_received() {
                    break;
                }
                wait(deadline - now);
                // SAFETY: resets this process' own latch before looking again.
                unsafe { pg_sys::ResetLatch(pg_sys::MyLatch) };
                pgrx::check_for_interrupts!();
                self.take(&key, &mut batch, &mut inputs);
            }
        }
        if batch.is_empty() {
            return true;
        }
        // SAFETY: the slot is RUNNING: its request does not change.
        let path = unsafe { (*self.header.slot(batch[0])).path.get() };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.run(&key, Path::new(&path), &batch)
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => self.fail(&batch, failure),
            Err(_) => self.fail(
                &batch,
                Failure::new(
                    ERRCODE_INTERNAL_ERROR,
                    "the xmodal encoder service failed on this request".into(),
                ),
            ),
        }
        self.busy = !self.queued().is_empty();
        true
    }

    fn fail(&self, batch: &[usize], failure: Failure) {
        for &at in batch {
            answer(
                self.header,
                at,
                Err(Failure(failure.0, failure.1.clone(), failure.2)),
            );
        }
    }

    /// The tower for `key`, loaded when first asked for (an older registration of the same model
    /// is unloaded first).
    fn tower(&mut self, key: &Key, path: &Path) -> Result<&mut Held, Failure> {
        if !self.towers.contains_key(key) {
            let stale: Vec<Key> = self
                .towers
                .keys()
                .filter(|k| {
                    k.database == key.database && k.name == key.name && k.modality == key.modality
                })
                .cloned()
                .collect();
            for old in stale {
                self.unload(&old);
            }
            let config = ModelConfig::load(path).map_err(|e| Failure::embed(&e, &key.name))?;
            let options = RuntimeOptions {
                intra_threads: service_threads(),
                ..settings::runtime_options()
            };
            let (session, placement) = if key.modality == 0 {
                let t = TextEncoder::load(&config, &options)
                    .map_err(|e| Failure::embed(&e, &key.name))?;
                let p = t.placement().clone();
                (Session::Text(t), p)
            } else {
                let i = ImageEncoder::load(&config, &options, settings::image_limits())
                    .map_err(|e| Failure::embed(&e, &key.name))?;
                let p = i.placement().clone();
                (Session::Image(i), p)
            };
            let row = self.add_row(key, &placement);
            log!(
                "{NAME}: model \"{}\" loaded its {} tower on {}",
                key.name,
                if key.modality == 0 { "text" } else { "image" },
                device(&placement)
            );
            self.towers.insert(key.clone(), Held { session, row });
        }
        Ok(self.towers.get_mut(key).expect("inserted above"))
    }

    fn add_row(&self, key: &Key, placement: &Placement) -> Option<usize> {
        let mut row = TowerRow {
            used: true,
            database: key.database,
            modality: key.modality,
            // SAFETY: zeroed text fields are empty strings; they are set below.
            name: unsafe { std::mem::zeroed() },
            device: unsafe { std::mem::zeroed() },
            // SAFETY: reads this process' pid.
            pid: unsafe { pg_sys::MyProcPid },
            requests: 0,
            inputs: 0,
            batches: 0,
            queue_wait_us: 0,
            inference_us: 0,
        };
        row.name.set(&key.name);
        row.device.set(device(placement));
        self.header.add_tower(row)
    }

    fn unload(&mut self, key: &Key) {
        if let Some(held) = self.towers.remove(key) {
            if let Some(row) = held.row {
                self.header.update_tower(row, |r| r.used = false);
            }
        }
    }

    /// Unloads the models that were dropped or registered again.
    fn evict(&mut self) {
        let (list, seen) = self.header.evictions_since(self.evictions_seen);
        self.evictions_seen = seen;
        for (database, name) in list {
            let keys: Vec<Key> = self
                .towers
                .keys()
                .filter(|k| k.database == database && k.name == name)
                .cloned()
                .collect();
            for key in keys {
                self.unload(&key);
            }
        }
    }

    /// One inference over every request of `batch`; each gets its rows. A request whose input
    /// cannot be read (a text empty after clean-up) gets its ERROR alone, the others go on.
    fn run(&mut self, key: &Key, path: &Path, batch: &[usize]) -> Result<(), Failure> {
        let header = self.header;
        let started = Instant::now();
        // SAFETY: reads the clock.
        let now = unsafe { pg_sys::GetCurrentTimestamp() };
        let held = self.tower(key, path)?;
        let (mut served, mut queue_wait) = (Vec::new(), 0i64);
        let rows = match &mut held.session {
            Session::Text(encoder) => {
                let mut texts: Vec<TokenizedText> = Vec::new();
                for &at in batch {
                    match read_texts(header, at, encoder, &key.name) {
                        Ok(mut tokens) => {
                            served.push((at, tokens.len()));
                            texts.append(&mut tokens);
                        }
                        Err(failure) => answer(header, at, Err(failure)),
                    }
                }
                encoder.embed_tokens(&texts)
            }
            Session::Image(encoder) => {
                let mut pixels: Vec<Vec<f32>> = Vec::new();
                for &at in batch {
                    match read_images(header, at, encoder.input_len(), &key.name) {
                        Ok(mut images) => {
                            served.push((at, images.len()));
                            pixels.append(&mut images);
                        }
                        Err(failure) => answer(header, at, Err(failure)),
                    }
                }
                encoder.embed_pixels(&pixels)
            }
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(error) => {
                let failure = Failure::embed(&error, &key.name);
                let ats: Vec<usize> = served.iter().map(|&(at, _)| at).collect();
                self.fail(&ats, failure);
                return Ok(());
            }
        };
        if served.is_empty() {
            return Ok(());
        }
        let inputs: usize = served.iter().map(|&(_, n)| n).sum();
        if rows.len() != inputs {
            return Err(Failure::new(
                ERRCODE_INTERNAL_ERROR,
                format!("{} embeddings for {inputs} inputs", rows.len()),
            ));
        }
        for &(at, _) in &served {
            // SAFETY: RUNNING slots are the worker's; enqueued_at does not change.
            queue_wait += now - unsafe { (*header.slot(at)).enqueued_at };
        }
        if let Some(row) = self.towers.get(key).and_then(|held| held.row) {
            let elapsed = started.elapsed().as_micros() as i64;
            header.update_tower(row, |r| {
                r.requests += served.len() as i64;
                r.inputs += inputs as i64;
                r.batches += 1;
                r.queue_wait_us += queue_wait.max(0);
                r.inference_us += elapsed;
            });
        }
        let mut rows = rows.into_iter();
        for &(at, count) in &served {
            let mine: Vec<Vec<f32>> = rows.by_ref().take(count).collect();
            let dims = mine.first().map_or(0, Vec::len);
            let flat: Vec<f32> = mine.concat();
            answer(header, at, Ok((dims as u32, flat.as_slice())));
        }
        Ok(())
    }

    /// Loads every tower of the models in xmodal.preload (registered in xmodal.service_database);
    /// failures are WARNINGs in the server log.
    fn preload(&mut self, names: &[String]) {
        for name in names {
            let entry =
                PgTryBuilder::new(|| BackgroundWorker::transaction(|| registry::lookup(name)))
                    .catch_others(|error| {
                        // SAFETY: leaves the failed transaction, as a worker's error recovery does.
                        unsafe { pg_sys::AbortCurrentTransaction() };
                        warning!("{NAME}: xmodal.preload: {}", caught_message(&error));
                        None
                    })
                    .execute();
            let Some(entry) = entry else {
                warning!("{NAME}: xmodal.preload: model \"{name}\" is not registered");
                continue;
            };
            for modality in &entry.modalities {
                let key = Key {
                    // SAFETY: reads the database this worker is connected to.
                    database: unsafe { pg_sys::MyDatabaseId.to_u32() },
                    name: name.clone(),
                    registration: entry.id,
                    modality: match modality {
                        crate::embed::Modality::Text => 0,
                        crate::embed::Modality::Image => 1,
                    },
                };
                let loaded = catch_unwind(AssertUnwindSafe(|| {
                    self.tower(&key, &entry.path).map(|_| ())
                }));
                if let Ok(Err(Failure(_, message, _))) = loaded {
                    warning!("{NAME}: xmodal.preload: {message}");
                }
            }
        }
    }
}

fn caught_message(error: &pg_sys::panic::CaughtError) -> String {
    match error {
        pg_sys::panic::CaughtError::PostgresError(report)
        | pg_sys::panic::CaughtError::ErrorReport(report)
        | pg_sys::panic::CaughtError::RustPanic {
            ereport: report, ..
        } => report.message().to_string(),
    }
}

/// The request's bytes in slot `at`, checked against the slot's area.
fn request_bytes(header: &Header, at: usize) -> Result<(usize, &[u8]), Failure> {
    // SAFETY: a RUNNING slot is the worker's; its sizes are checked before its area is read.
    let s = unsafe { &*header.slot(at) };
    let bytes = s.bytes as usize;
    if bytes > header.slot_bytes {
        return Err(Failure::new(
            ERRCODE_INTERNAL_ERROR,
            format!(
                "request of {bytes} bytes in a slot of {}",
                header.slot_bytes
            ),
        ));
    }
    // SAFETY: `bytes` lie inside the slot's area (checked above).
    let data = unsafe { std::slice::from_raw_parts(header.data(at).cast_const(), bytes) };
    Ok((s.count as usize, data))
}

/// Reads and tokenises the texts of slot `at` (each: u32 length, UTF-8 bytes).
fn read_texts(
    header: &Header,
    at: usize,
    encoder: &TextEncoder,
    model: &str,
) -> Result<Vec<TokenizedText>, Failure> {
    let (count, mut data) = request_bytes(header, at)?;
    let malformed = || Failure::new(ERRCODE_INTERNAL_ERROR, "malformed text request".into());
    let mut texts = Vec::with_capacity(count);
    for i in 0..count {
        let (len, rest) = data.split_first_chunk::<4>().ok_or_else(malformed)?;
        let len = u32::from_ne_bytes(*len) as usize;
        let (text, rest) = (rest.get(..len).ok_or_else(malformed)?, &rest[len..]);
        let text = std::str::from_utf8(text).map_err(|_| malformed())?;
        match encoder.tokenize(text) {
            Ok(tokens) => texts.push(tokens),
            Err(error) => {
                let Failure(code, message, _) = Failure::embed(&error, model);
                return Err(Failure(code, message, Some(i)));
            }
        }
        data = rest;
    }
    Ok(texts)
}

/// Reads the preprocessed images of slot `at` (`width` floats each).
fn read_images(
    header: &Header,
    at: usize,
    width: usize,
    model: &str,
) -> Result<Vec<Vec<f32>>, Failure> {
    let (count, data) = request_bytes(header, at)?;
    if data.len() != count * width * size_of::<f32>() {
        return Err(Failure::new(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "model \"{model}\": the request has {} bytes for {count} images of {width} values (registered again meanwhile?)",
                data.len()
            ),
        ));
    }
    Ok(data
        .chunks_exact(width * size_of::<f32>())
        .map(|image| {
            image
                .chunks_exact(4)
                .map(|v| f32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
                .collect()
        })
        .collect())
}

fn device(placement: &Placement) -> &'static str {
    if placement.cuda {
        "cuda"
    } else {
        "cpu"
    }
}
