//! The encoder service's shared memory: a header (the worker's pid and latch, the table of towers
//! it holds, pending unloads) and a ring of request slots, each with its tensor area. Allocated
//! once by the postmaster (shmem_request_hook / shmem_startup_hook), sized by settings read then.
//! Every field another process reads is either atomic or published by a slot's state change
//! (release on store, acquire on load): see the state machine in service/mod.rs.

use std::mem::size_of;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use pgrx::pg_sys;

use super::{REQUEST_BYTES, SLOTS};

pub const FREE: u32 = 0;
pub const FILLING: u32 = 1;
pub const QUEUED: u32 = 2;
pub const RUNNING: u32 = 3;
pub const DONE: u32 = 4;
pub const ABANDONED: u32 = 5;

pub const NAME_BYTES: usize = 64;
pub const PATH_BYTES: usize = 1024;
pub const MESSAGE_BYTES: usize = 1024;
pub const MAX_TOWERS: usize = 64;
const EVICTIONS: usize = 16;

/// A name or message of at most N bytes (longer text is cut at a character boundary).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Text<const N: usize> {
    len: u32,
    bytes: [u8; N],
}

impl<const N: usize> Text<N> {
    pub fn set(&mut self, text: &str) {
        let mut len = text.len().min(N);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        self.bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
        self.len = len as u32;
    }

    pub fn get(&self) -> String {
        let len = (self.len as usize).min(N);
        String::from_utf8_lossy(&self.bytes[..len]).into_owned()
    }
}

/// One request: written by its owner while FILLING, read and answered by the worker while
/// RUNNING, read by the owner once DONE.
#[repr(C)]
pub struct Slot {
    pub state: AtomicU32,
    /// The owner's latch (in shared memory, the same address in every process).
    pub latch: AtomicUsize,
    /// Order of arrival: the oldest request is served first.
    pub ticket: u64,
    pub enqueued_at: i64,
    pub database: u32,
    pub registration: i64,
    /// 0: text, 1: image.
    pub modality: u32,
    /// Inputs, and the bytes they take in the slot's area.
    pub count: u32,
    pub bytes: u32,
    pub name: Text<NAME_BYTES>,
    pub path: Text<PATH_BYTES>,
    /// The answer: 0 or the SQLSTATE of the error in `message`; rows of `dims` floats.
    pub sqlstate: i32,
    /// The input the error is about (its index in the request), -1 for the whole request.
    pub failed: i32,
    pub dims: u32,
    pub message: Text<MESSAGE_BYTES>,
}

/// One tower the worker holds, with its counters (the view xmodal.encoder_service).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TowerRow {
    pub used: bool,
    pub database: u32,
    pub modality: u32,
    pub name: Text<NAME_BYTES>,
    pub device: Text<NAME_BYTES>,
    pub pid: i32,
    pub requests: i64,
    pub inputs: i64,
    pub batches: i64,
    pub queue_wait_us: i64,
    pub inference_us: i64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Eviction {
    pub database: u32,
    pub name: Text<NAME_BYTES>,
}

#[repr(C)]
pub struct Header {
    pub slots: u32,
    pub slot_bytes: usize,
    /// 0 while no worker runs.
    pub worker_pid: AtomicI32,
    pub worker_latch: AtomicUsize,
    pub tickets: AtomicU64,
    /// Guards `towers` and `evictions` (a few copies at a time: a spin lock).
    lock: AtomicBool,
    towers: [TowerRow; MAX_TOWERS],
    evicted: u64,
    evictions: [Eviction; EVICTIONS],
}

static mut SHARED: *mut Header = std::ptr::null_mut();
static mut PREVIOUS_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREVIOUS_STARTUP: pg_sys::shmem_startup_hook_type = None;

const fn align(n: usize) -> usize {
    (n + 63) & !63
}

fn sizes() -> (usize, usize, usize) {
    let slots = SLOTS.get() as usize;
    let bytes = align(REQUEST_BYTES.get() as usize);
    let header = align(size_of::<Header>());
    let table = align(slots * size_of::<Slot>());
    (slots, bytes, header + table + slots * bytes)
}

pub fn init() {
    // SAFETY: chains the hooks from _PG_init in the postmaster, as every extension does.
    unsafe {
        PREVIOUS_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(request_hook);
        PREVIOUS_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(startup_hook);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn request_hook() {
    // SAFETY: called by the postmaster while shared memory is being sized.
    unsafe {
        if let Some(previous) = PREVIOUS_REQUEST {
            previous();
        }
        pg_sys::RequestAddinShmemSpace(sizes().2);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn startup_hook() {
    // SAFETY: called once shared memory exists; the struct is initialised by whoever creates it.
    unsafe {
        if let Some(previous) = PREVIOUS_STARTUP {
            previous();
        }
        let (slots, bytes, total) = sizes();
        let mut found = false;
        let base = pg_sys::ShmemInitStruct(c"xmodal encoder service".as_ptr(), total, &mut found);
        let header = base.cast::<Header>();
        if !found {
            // Zero the header and the slot table (not the tensor areas): every state is FREE.
            std::ptr::write_bytes(
                base.cast::<u8>(),
                0,
                align(size_of::<Header>()) + align(slots * size_of::<Slot>()),
            );
            (*header).slots = slots as u32;
            (*header).slot_bytes = bytes;
        }
        SHARED = header;
    }
}

/// The shared header; None when the library was not preloaded.
pub fn header() -> Option<&'static Header> {
    // SAFETY: set once by the startup hook before any backend or worker exists.
    unsafe { SHARED.as_ref() }
}

impl Header {
    pub fn slot(&self, at: usize) -> *mut Slot {
        let base = (self as *const Header).cast::<u8>();
        // SAFETY: the table follows the header inside the allocation; `at` < slots.
        unsafe {
            base.add(align(size_of::<Header>()))
                .cast::<Slot>()
                .cast_mut()
                .add(at)
        }
    }

    /// The tensor area of slot `at`, `slot_bytes` long.
    pub fn data(&self, at: usize) -> *mut u8 {
        let base = (self as *const Header).cast::<u8>();
        let start = align(size_of::<Header>()) + align(self.slots as usize * size_of::<Slot>());
        // SAFETY: the areas follow the table inside the allocation; `at` < slots.
        unsafe { base.add(start + at * self.slot_bytes).cast_mut() }
    }

    pub fn state(&self, at: usize) -> &AtomicU32 {
        // SAFETY: the state is atomic and lives as long as shared memory.
        unsafe { &(*self.slot(at)).state }
    }

    /// Runs `f` on the tower table and evictions under the spin lock (no Postgres call in `f`).
    fn locked<R>(
        &self,
        f: impl FnOnce(&mut [TowerRow; MAX_TOWERS], &mut u64, &mut [Eviction; EVICTIONS]) -> R,
    ) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        let this = (self as *const Header).cast_mut();
        // SAFETY: the lock gives exclusive access to these fields.
        let result = unsafe {
            f(
                &mut (*this).towers,
                &mut (*this).evicted,
                &mut (*this).evictions,
            )
        };
        self.lock.store(false, Ordering::Release);
        result
    }

    pub fn towers(&self) -> Vec<TowerRow> {
        self.locked(|towers, _, _| towers.iter().filter(|t| t.used).copied().collect())
    }

    /// Changes tower row `at` (the worker's own rows).
    pub fn update_tower(&self, at: usize, f: impl FnOnce(&mut TowerRow)) {
        self.locked(|towers, _, _| f(&mut towers[at]))
    }

    /// A free row for a new tower, None when the table is full.
    pub fn add_tower(&self, row: TowerRow) -> Option<usize> {
        self.locked(|towers, _, _| {
            let at = towers.iter().position(|t| !t.used)?;
            towers[at] = row;
            towers[at].used = true;
            Some(at)
        })
    }

    pub fn clear_towers(&self) {
        self.locked(|towers, _, _| towers.iter_mut().for_each(|t| t.used = false))
    }

    /// Asks the worker to unload model `name` of `database`.
    pub fn evict(&self, database: u32, name: &str) {
        self.locked(|_, evicted, evictions| {
            let entry = &mut evictions[(*evicted % EVICTIONS as u64) as usize];
            entry.database = database;
            entry.name.set(name);
            *evicted += 1;
        })
    }

    /// Evictions since `seen` (all of the last EVICTIONS when more came), and the new count.
    pub fn evictions_since(&self, seen: u64) -> (Vec<(u32, String)>, u64) {
        self.locked(|_, evicted, evictions| {
            let from = seen.max(evicted.saturating_sub(EVICTIONS as u64));
            let list = (from..*evicted)
                .map(|i| {
                    let e = &evictions[(i % EVICTIONS as u64) as usize];
                    (e.database, e.name.get())
                })
                .collect();
            (list, *evicted)
        })
    }

    pub fn worker_running(&self) -> bool {
        self.worker_pid.load(Ordering::Acquire) != 0
    }

    pub fn wake_worker(&self) {
        let latch = self.worker_latch.load(Ordering::Acquire);
        if latch != 0 {
            // SAFETY: the worker's latch lives in shared memory for the server's life.
            unsafe { pg_sys::SetLatch(latch as *mut pg_sys::Latch) };
        }
    }
}

/// Sets the latch of a slot's owner.
pub fn wake(latch: usize) {
    if latch != 0 {
        // SAFETY: a backend's latch lives in shared memory (its PGPROC) for the server's life.
        unsafe { pg_sys::SetLatch(latch as *mut pg_sys::Latch) };
    }
}
