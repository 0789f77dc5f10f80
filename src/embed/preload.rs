//! `xmodal.preload`: models each backend loads before running its first statement, so that the
//! first embedding does not pay for creating the sessions (the first statement that runs under a
//! snapshot: BEGIN, SET and other utility statements are passed over). `_PG_init` only installs
//! a parse hook (in the postmaster under shared_preload_libraries, in the backend under
//! session_preload_libraries); the sessions are created by the hook, in each backend, inside a
//! subtransaction so that a failure becomes a WARNING and the statement runs anyway.

use std::cell::Cell;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::{encoders, registry, settings};

thread_local! {
    static DONE: Cell<bool> = const { Cell::new(false) };
}

static mut PREVIOUS_HOOK: pg_sys::post_parse_analyze_hook_type = None;

pub fn init() {
    // SAFETY: chains the hook, as every extension that installs one does, from _PG_init.
    unsafe {
        PREVIOUS_HOOK = pg_sys::post_parse_analyze_hook;
        pg_sys::post_parse_analyze_hook = Some(post_parse_analyze);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn post_parse_analyze(
    pstate: *mut pg_sys::ParseState,
    query: *mut pg_sys::Query,
    jstate: *mut pg_sys::JumbleState,
) {
    // SAFETY: reads the transaction state; the previous hook gets the same arguments.
    unsafe {
        // Only under an active snapshot (a query being analysed, not BEGIN, SET or other utility
        // statements): the lookup then takes no snapshot of its own, which would make a later
        // SET TRANSACTION ISOLATION LEVEL fail. Until then, each statement tries again.
        if !DONE.with(Cell::get)
            && !pg_sys::IsAbortedTransactionBlockState()
            && pg_sys::ActiveSnapshotSet()
        {
            DONE.with(|d| d.set(true));
            preload();
        }
        if let Some(previous) = PREVIOUS_HOOK {
            previous(pstate, query, jstate);
        }
    }
}

/// Loads every model of xmodal.preload, each in a subtransaction; errors become WARNINGs.
unsafe fn preload() {
    let names = settings::preload();
    // SAFETY: catalog lookups inside the statement's transaction.
    if names.is_empty()
        || !unsafe { pg_sys::IsTransactionState() }
        || registry::table_oid().is_none()
    {
        return;
    }
    for name in &names {
        // SAFETY: as documented on `guarded`.
        unsafe { guarded(|| encoders::load_all(name)) };
    }
}

/// Runs `f` in a subtransaction as PL/pgSQL's exception blocks do: released on success, rolled
/// back on error (reported as a WARNING), memory context and resource owner restored.
unsafe fn guarded(f: impl FnOnce() + std::panic::UnwindSafe) {
    // SAFETY: called inside a transaction; the subtransaction is always closed.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        PgTryBuilder::new(|| {
            f();
            pg_sys::ReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
        })
        .catch_others(|error| {
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
            let message = match &error {
                pg_sys::panic::CaughtError::PostgresError(report)
                | pg_sys::panic::CaughtError::ErrorReport(report)
                | pg_sys::panic::CaughtError::RustPanic {
                    ereport: report, ..
                } => report.message().to_string(),
            };
            warning!("xmodal.preload: {message}");
        })
        .execute();
    }
}
