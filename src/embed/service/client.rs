//! The backend's side of the encoder service: queue one request in a free slot, sleep on the
//! latch until the worker has answered, read the rows. A cancel or statement_timeout (raised by
//! CHECK_FOR_INTERRUPTS while waiting) unwinds through `Claim`, which leaves the slot so that
//! the answer is discarded; a worker that is gone makes the wait end with an ERROR.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgLogLevel;
use pgrx::PgSqlErrorCode::{self, *};

use super::shmem::{self, Header, ABANDONED, DONE, FILLING, FREE, QUEUED, RUNNING};
use super::SERVICE_ABSENT;
use crate::embed::report::raise;
use crate::embed::Modality;

pub use super::shmem::TowerRow;

/// One call's inputs for one tower of a registered model.
pub struct Request<'a> {
    pub registration: i64,
    pub name: &'a str,
    pub path: &'a Path,
    pub modality: Modality,
    /// The inputs as the service reads them (text: length and UTF-8 bytes; image: the
    /// preprocessed pixels), input after input: input i is `payload[offsets[i]..offsets[i + 1]]`.
    pub offsets: &'a [usize],
    pub payload: &'a [u8],
    /// Floats per answer row (the registration's size).
    pub dims: usize,
    /// How errors name input i (its array element), None for a single value.
    pub element: &'a dyn Fn(usize) -> Option<String>,
}

fn shared() -> &'static Header {
    match shmem::header() {
        Some(header) => header,
        None => raise(
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "the xmodal encoder service needs xmodal in shared_preload_libraries".into(),
            None,
        ),
    }
}

/// A slot this backend holds; dropping it (also while unwinding from an ERROR) gives it back,
/// or marks it abandoned while the worker runs it.
struct Claim {
    header: &'static Header,
    at: usize,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let state = self.header.state(self.at);
        loop {
            let now = state.load(Ordering::Acquire);
            let next = match now {
                FILLING | QUEUED | DONE => FREE,
                RUNNING => ABANDONED,
                _ => return,
            };
            if state
                .compare_exchange(now, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }
}

fn claim(header: &'static Header) -> Claim {
    for at in 0..header.slots as usize {
        let state = header.state(at);
        if state
            .compare_exchange(FREE, FILLING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return Claim { header, at };
        }
    }
    raise(
        ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
        format!(
            "the xmodal encoder service has no free request slot (xmodal.service_slots = {})",
            header.slots
        ),
        Some(
            "Raise xmodal.service_slots (server restart), or use fewer concurrent embedding calls.",
        ),
    )
}

/// Runs `request` on the service and returns a row per input; every failure is an ERROR. A call
/// larger than one slot goes as consecutive requests of as many inputs as a slot holds.
pub fn request(request: &Request) -> Vec<Vec<f32>> {
    let header = shared();
    let count = request.offsets.len().saturating_sub(1);
    let fits = |from: usize, to: usize| {
        let bytes = request.offsets[to] - request.offsets[from];
        bytes.max((to - from) * request.dims * size_of::<f32>()) <= header.slot_bytes
    };
    let mut rows = Vec::with_capacity(count);
    let mut start = 0;
    while start < count {
        let mut end = start;
        while end < count && fits(start, end + 1) {
            end += 1;
        }
        if end == start {
            report(
                ERRCODE_OUT_OF_MEMORY,
                format!(
                    "one input needs {} bytes of the encoder service's shared memory, more than xmodal.service_request_bytes ({})",
                    request.offsets[start + 1] - request.offsets[start],
                    header.slot_bytes
                ),
                (request.element)(start),
            );
        }
        rows.extend(one(header, request, start, end));
        start = end;
    }
    rows
}

fn report(code: PgSqlErrorCode, message: String, detail: Option<String>) -> ! {
    let mut report = ErrorReport::new(code, message, "xmodal");
    if let Some(detail) = detail {
        report = report.set_detail(detail);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// Inputs `start..end` of `request`, which fit in a slot, as one request.
fn one(header: &'static Header, request: &Request, start: usize, end: usize) -> Vec<Vec<f32>> {
    let payload = &request.payload[request.offsets[start]..request.offsets[end]];
    let path = request.path.to_string_lossy();
    if path.len() > shmem::PATH_BYTES {
        raise(
            ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("model path longer than {} bytes", shmem::PATH_BYTES),
            None,
        );
    }
    let claim = claim(header);
    let slot = header.slot(claim.at);
    // SAFETY: the slot is FILLING and ours: nobody else reads or writes it until it is QUEUED.
    unsafe {
        let s = &mut *slot;
        s.latch.store(pg_sys::MyLatch as usize, Ordering::Relaxed);
        s.ticket = header.tickets.fetch_add(1, Ordering::Relaxed);
        s.enqueued_at = pg_sys::GetCurrentTimestamp();
        s.database = pg_sys::MyDatabaseId.to_u32();
        s.registration = request.registration;
        s.modality = match request.modality {
            Modality::Text => 0,
            Modality::Image => 1,
        };
        s.count = (end - start) as u32;
        s.bytes = payload.len() as u32;
        s.failed = -1;
        s.name.set(request.name);
        s.path.set(&path);
        s.sqlstate = 0;
        s.dims = 0;
        std::ptr::copy_nonoverlapping(payload.as_ptr(), header.data(claim.at), payload.len());
    }
    header.state(claim.at).store(QUEUED, Ordering::Release);
    header.wake_worker();
    wait(header, claim.at);
    // SAFETY: the slot is DONE: the worker wrote its answer before publishing that state.
    let (sqlstate, dims, message, failed) = unsafe {
        let s = &*slot;
        (s.sqlstate, s.dims as usize, s.message.get(), s.failed)
    };
    if sqlstate != 0 {
        let detail = usize::try_from(failed)
            .ok()
            .and_then(|i| (request.element)(start + i));
        report(PgSqlErrorCode::from(sqlstate), message, detail);
    }
    let count = end - start;
    if dims != request.dims || count * dims * size_of::<f32>() > header.slot_bytes {
        raise(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "model \"{}\" produces {dims} dimensions, it was registered with {}",
                request.name, request.dims
            ),
            Some("Register the model again (replace => true)."),
        );
    }
    let mut values = vec![0f32; count * dims];
    // SAFETY: the answer (count x dims floats) lies in the slot's area, checked to fit above.
    unsafe {
        std::ptr::copy_nonoverlapping(
            header.data(claim.at).cast::<f32>().cast_const(),
            values.as_mut_ptr(),
            values.len(),
        );
    }
    drop(claim);
    values.chunks(dims.max(1)).map(<[f32]>::to_vec).collect()
}

/// Sleeps on this backend's latch until slot `at` is DONE. Interrupts are served at every
/// wake-up (a cancel raises here and `Claim` leaves the slot); a worker absent for
/// SERVICE_ABSENT seconds is an ERROR.
fn wait(header: &'static Header, at: usize) {
    let mut absent_since: Option<Instant> = None;
    loop {
        if header.state(at).load(Ordering::Acquire) == DONE {
            return;
        }
        if header.worker_running() {
            absent_since = None;
        } else if absent_since.get_or_insert_with(Instant::now).elapsed()
            > Duration::from_secs(SERVICE_ABSENT)
        {
            raise(
                ERRCODE_OPERATOR_INTERVENTION,
                format!("the xmodal encoder service has not been running for {SERVICE_ABSENT} s"),
                Some("See the server log; SET xmodal.encoder = backend runs the model in this connection."),
            );
        }
        // SAFETY: waits on this backend's own latch, on its main thread.
        unsafe {
            pg_sys::WaitLatch(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                100,
                pg_sys::PG_WAIT_EXTENSION,
            );
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
        pgrx::check_for_interrupts!();
    }
}

/// The towers the service holds for this database.
pub fn towers() -> Vec<TowerRow> {
    let Some(header) = shmem::header() else {
        return Vec::new();
    };
    // SAFETY: reads this backend's database oid.
    let database = unsafe { pg_sys::MyDatabaseId.to_u32() };
    header
        .towers()
        .into_iter()
        .filter(|t| t.database == database)
        .collect()
}

/// Tells the worker to unload model `name` of this database (dropped or registered again).
pub fn forget(name: &str) {
    if let Some(header) = shmem::header() {
        // SAFETY: reads this backend's database oid.
        header.evict(unsafe { pg_sys::MyDatabaseId.to_u32() }, name);
        header.wake_worker();
    }
}
