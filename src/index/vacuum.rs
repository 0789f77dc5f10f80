//! VACUUM: remove dead heap TIDs from elements; an element left without any is deleted, and
//! the graph is rewired around deleted elements (graph::repair_deleted) so recall holds.
//! Inserts wait while the graph is repaired (they share the lock that VACUUM takes exclusively).
//! Deleted elements stay on their pages, unlinked; REINDEX reclaims their space.

use pgrx::prelude::*;
use std::collections::HashSet;

use super::graph::{repair_deleted, SearchScratch};
use super::insert::params_of;
use super::page::{self, Locked, Tid, Xlog, META_BLOCK};
use super::store::PageStore;

struct Census {
    live: Vec<Tid>,
    deleted: HashSet<Tid>,
    newly_deleted: usize,
    live_tids: f64,
    removed_tids: f64,
}

#[pg_guard]
pub unsafe extern "C-unwind" fn ambulkdelete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    callback_state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    unsafe {
        let index = (*info).index;
        let stats = ensure_stats(stats);
        pg_sys::LockPage(index, META_BLOCK, pg_sys::ExclusiveLock as _);
        let census = sweep(index, |tid| {
            let mut t = tid.to_pg();
            callback.is_some_and(|cb| cb(&mut t, callback_state))
        });
        if census.newly_deleted > 0 {
            let mut store = PageStore::open(index);
            store.replace_entry = true;
            let params = params_of(store.m, store.meta.ef_construction as usize);
            let mut scratch = SearchScratch::new();
            repair_deleted(&mut store, &mut scratch, &params, &census.live, |id| census.deleted.contains(&id));
        }
        pg_sys::UnlockPage(index, META_BLOCK, pg_sys::ExclusiveLock as _);
        (*stats).tuples_removed += census.removed_tids;
        (*stats).num_index_tuples = census.live_tids;
        (*stats).num_pages = block_count(index);
        stats
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amvacuumcleanup(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    unsafe {
        if (*info).analyze_only {
            return stats;
        }
        if !stats.is_null() {
            return stats;
        }
        // No bulk delete ran (nothing to remove): still report the index's size.
        let index = (*info).index;
        let stats = ensure_stats(stats);
        let census = sweep(index, |_| false);
        (*stats).num_index_tuples = census.live_tids;
        (*stats).num_pages = block_count(index);
        stats
    }
}

unsafe fn ensure_stats(stats: *mut pg_sys::IndexBulkDeleteResult) -> *mut pg_sys::IndexBulkDeleteResult {
    if stats.is_null() {
        unsafe { pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBulkDeleteResult>()) as *mut _ }
    } else {
        stats
    }
}

/// Cost-based vacuum delay (PostgreSQL 18 added an is_analyze argument).
fn vacuum_delay_point() {
    #[cfg(not(feature = "pg18"))]
    unsafe {
        pg_sys::vacuum_delay_point()
    };
    #[cfg(feature = "pg18")]
    unsafe {
        pg_sys::vacuum_delay_point(false)
    };
}

fn block_count(index: pg_sys::Relation) -> u32 {
    unsafe { pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM) }
}

/// Visit every element: drop heap TIDs for which `dead` is true (logging each changed page).
fn sweep(index: pg_sys::Relation, dead: impl Fn(Tid) -> bool) -> Census {
    let dims = page::read_meta_of(index).dims as usize;
    let mut census =
        Census { live: Vec::new(), deleted: HashSet::new(), newly_deleted: 0, live_tids: 0.0, removed_tids: 0.0 };
    for block in 1..block_count(index) {
        vacuum_delay_point();
        let locked = Locked::read(index, block, true);
        let mut xlog: Option<Xlog> = None;
        let max = unsafe { pg_sys::PageGetMaxOffsetNumber(locked.page()) };
        for offset in 1..=max {
            let id = Tid { block, offset };
            let page_now = xlog.as_ref().map_or(locked.page(), |x| x.page());
            let Some(item) = (unsafe { page::item_ptr(page_now, offset) }) else { continue };
            if !page::is_element(item) {
                continue;
            }
            let Some(element) = (unsafe { page::decode_element(item, dims) }) else { continue };
            if element.deleted {
                census.deleted.insert(id);
                continue;
            }
            let keep: Vec<Tid> = element.heap_tids.iter().copied().filter(|t| !dead(*t)).collect();
            census.removed_tids += (element.heap_tids.len() - keep.len()) as f64;
            census.live_tids += keep.len() as f64;
            if keep.len() != element.heap_tids.len() {
                let x = xlog.get_or_insert_with(|| Xlog::begin(index, &locked, false));
                if let Some(item) = unsafe { page::item_ptr(x.page(), offset) } {
                    unsafe { page::set_element_heap_tids(item, &keep) };
                }
            }
            if keep.is_empty() {
                census.deleted.insert(id);
                census.newly_deleted += 1;
            } else {
                census.live.push(id);
            }
        }
        if let Some(x) = xlog {
            x.finish();
        }
    }
    census
}
