//! VACUUM: remove dead heap TIDs from elements; an element left without any is deleted, and
//! the graph is rewired around deleted elements so recall holds. Deleted elements stay on their
//! pages, unlinked; REINDEX reclaims their space.
//!
//! Inserts keep running. The sweep (which deletes elements) takes only buffer locks; then
//! VACUUM waits once for the inserts already running (they may have linked an element the
//! sweep deleted: inserts that start later never link a deleted element, see
//! `GraphStore::is_deleted`). The repair then touches only the in-neighbours of the deleted
//! elements, found by one read of every page, and rewires them `BATCH` at a time while it
//! holds the lock that inserts share, releasing it between batches. A reachability walk
//! (and relinking what it cannot reach) runs only when some list was rewritten. Last, the
//! lists of the deleted elements are emptied: that marks them unlinked, so a later VACUUM
//! repairs again around an element whose repair was interrupted (cancel, crash), and only then.
//!
//! Memory: the elements to unlink (8 bytes each; at most one per dead heap TID that Postgres
//! hands over in one call, which maintenance_work_mem bounds, plus the ones an interrupted
//! repair left), one batch, and the walk's visited set (one entry per live element); all are
//! reserved fallibly (ERROR 53200).

use pgrx::prelude::*;

use super::graph::{
    reach_layer0, relink, repair_node, EntryPoint, GraphStore, GraphStoreMut, HashVisited,
    HnswParams, SearchScratch, VisitedSet, RELINK_PASSES,
};
use super::options::params_of;
use super::page::{
    buffer::{self, Locked, Xlog},
    format::{self, Tid, META_BLOCK},
};
use super::store::PageStore;

/// Nodes repaired (or relinked) per hold of the insert lock.
const BATCH: usize = 32;

struct Census {
    /// Deleted elements whose lists are not yet emptied, in TID order.
    to_unlink: Vec<Tid>,
    /// The live element of the highest level: the entry point if the current one is deleted.
    top: Option<(usize, Tid)>,
    live_elements: usize,
    live_tids: f64,
    removed_tids: f64,
}

impl Census {
    fn is_deleted(&self, id: Tid) -> bool {
        self.to_unlink.binary_search(&id).is_ok()
    }
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
        let census = sweep(index, |tid| {
            let mut t = tid.to_pg();
            callback.is_some_and(|cb| cb(&mut t, callback_state))
        });
        if !census.to_unlink.is_empty() {
            // Wait for the inserts that began before the sweep deleted these elements.
            pg_sys::LockPage(index, META_BLOCK, pg_sys::ExclusiveLock as _);
            pg_sys::UnlockPage(index, META_BLOCK, pg_sys::ExclusiveLock as _);
            repair(index, &census);
        }
        (*stats).tuples_removed += census.removed_tids;
        (*stats).num_index_tuples = census.live_tids;
        (*stats).num_pages = buffer::block_count(index);
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
        // No bulk delete ran (nothing to remove): still report the index's size, counted
        // under share locks (this runs after every insert-only autovacuum too).
        let index = (*info).index;
        let stats = ensure_stats(stats);
        (*stats).num_index_tuples = super::check::live_heap_tids(index);
        (*stats).num_pages = buffer::block_count(index);
        stats
    }
}

unsafe fn ensure_stats(
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
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

fn out_of_memory() -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
        "xhnsw: out of memory for VACUUM's graph repair"
    );
}

/// Does the layer-0 list of this element's neighbour item hold anything? (An unlinked deleted
/// element's lists are empty.) None when the item is on another page than `page`.
fn has_links(
    page: pg_sys::Page,
    block: u32,
    element: &format::ElementData,
    m: usize,
) -> Option<bool> {
    if element.neighbour_tid.block != block {
        return None;
    }
    let mut list = Vec::new();
    if let Some(item) = unsafe { buffer::item_ptr(page, element.neighbour_tid.offset) } {
        unsafe { buffer::read_neighbours(item, m, 0, &mut list) };
    }
    Some(!list.is_empty())
}

/// Visit every element: drop heap TIDs for which `dead` is true (logging each changed page);
/// list the deleted elements still linked.
fn sweep(index: pg_sys::Relation, dead: impl Fn(Tid) -> bool) -> Census {
    let store = PageStore::open(index);
    let mut census = Census {
        to_unlink: Vec::new(),
        top: None,
        live_elements: 0,
        live_tids: 0.0,
        removed_tids: 0.0,
    };
    let unlink = |census: &mut Census, id: Tid| {
        if census.to_unlink.try_reserve(1).is_err() {
            out_of_memory();
        }
        census.to_unlink.push(id);
    };
    let mut elsewhere = Vec::new();
    for block in 1..buffer::block_count(index) {
        vacuum_delay_point();
        let locked = Locked::read(index, block, true);
        let mut xlog: Option<Xlog> = None;
        // Offset by offset: the page to read changes once the first change registers it.
        for offset in 1..=unsafe { buffer::page_max_offset(locked.page()) } {
            let id = Tid { block, offset };
            let page_now = xlog.as_ref().map_or(locked.page(), |x| x.page());
            let Some((_, element)) =
                (unsafe { buffer::element_at(page_now, offset, store.layout) })
            else {
                continue;
            };
            if element.deleted {
                match has_links(page_now, block, &element, store.m) {
                    Some(true) => unlink(&mut census, id),
                    Some(false) => {}
                    None => elsewhere.push(id),
                }
                continue;
            }
            let keep: Vec<Tid> = element
                .heap_tids
                .iter()
                .copied()
                .filter(|t| !dead(*t))
                .collect();
            census.removed_tids += (element.heap_tids.len() - keep.len()) as f64;
            census.live_tids += keep.len() as f64;
            if keep.len() != element.heap_tids.len() {
                let x = xlog.get_or_insert_with(|| Xlog::begin(index, &locked, false));
                if let Some(item) = unsafe { buffer::item_ptr(x.page(), offset) } {
                    unsafe { buffer::set_element_heap_tids(item, &keep) };
                }
            }
            if keep.is_empty() {
                unlink(&mut census, id);
            } else {
                census.live_elements += 1;
                if census.top.is_none_or(|(level, _)| element.level > level) {
                    census.top = Some((element.level, id));
                }
            }
        }
        if let Some(x) = xlog {
            x.finish();
        }
        drop(locked);
        // Deleted elements whose neighbour item is on another page (after the build).
        let mut list = Vec::new();
        for id in elsewhere.drain(..) {
            store.neighbours(id, 0, &mut list);
            if !list.is_empty() {
                unlink(&mut census, id);
            }
        }
    }
    census.to_unlink.sort_unstable();
    census
}

/// Rewire the graph around `census.to_unlink`, then mark those elements unlinked.
fn repair(index: pg_sys::Relation, census: &Census) {
    let mut repair = Repair::new(index, census);
    repair.locked(|r| r.replace_entry_point());
    // The in-neighbours: live elements with a list that holds a deleted element.
    let mut list = Vec::new();
    let mut elsewhere = Vec::new();
    let m = repair.store.m;
    for block in 1..buffer::block_count(index) {
        vacuum_delay_point();
        let locked = Locked::read(index, block, false);
        for (offset, element) in
            unsafe { buffer::page_elements(locked.page(), repair.store.layout) }
        {
            if element.deleted {
                continue;
            }
            let id = Tid { block, offset };
            if element.neighbour_tid.block != block {
                elsewhere.push(id);
                continue;
            }
            let Some(lists) =
                (unsafe { buffer::item_ptr(locked.page(), element.neighbour_tid.offset) })
            else {
                continue;
            };
            let linked = (0..=element.level).any(|level| {
                unsafe { buffer::read_neighbours(lists, m, level, &mut list) };
                list.iter().any(|&n| census.is_deleted(n))
            });
            if linked {
                repair.batch.push(id);
            }
        }
        drop(locked);
        for id in elsewhere.drain(..) {
            let level = repair.store.level(id);
            let linked = (0..=level).any(|level| {
                repair.store.neighbours(id, level, &mut list);
                list.iter().any(|&n| census.is_deleted(n))
            });
            if linked {
                repair.batch.push(id);
            }
        }
        if repair.batch.len() >= BATCH {
            repair.locked(|r| r.repair_batch());
        }
    }
    repair.locked(|r| r.repair_batch());
    if repair.rewritten > 0 {
        repair.relink_unreachable();
    }
    for &id in &census.to_unlink {
        vacuum_delay_point();
        for level in 0..=repair.store.level(id) {
            repair.store.set_neighbours(id, level, &[]);
        }
    }
}

/// The state of one repair: the store, a batch of nodes to repair or relink, and how many
/// lists were rewritten.
struct Repair<'a> {
    census: &'a Census,
    store: PageStore,
    scratch: SearchScratch<Tid, HashVisited<Tid>>,
    params: HnswParams,
    batch: Vec<Tid>,
    rewritten: usize,
}

impl<'a> Repair<'a> {
    fn new(index: pg_sys::Relation, census: &'a Census) -> Repair<'a> {
        let mut pages = PageStore::open(index);
        pages.replace_entry = true;
        let params = params_of(&pages.meta);
        let mut batch = Vec::new();
        if batch.try_reserve_exact(BATCH).is_err() {
            out_of_memory();
        }
        Repair {
            census,
            store: pages,
            scratch: SearchScratch::new(),
            params,
            batch,
            rewritten: 0,
        }
    }

    /// Run `f` holding the lock that inserts share, with a fresh view of the metapage; then,
    /// the lock released, pay the cost-based delay that the batch ran up.
    fn locked(&mut self, f: impl FnOnce(&mut Self)) {
        let index = self.store.index;
        unsafe { pg_sys::LockPage(index, META_BLOCK, pg_sys::ExclusiveLock as _) };
        self.store.meta = buffer::read_meta_of(index);
        f(self);
        unsafe { pg_sys::UnlockPage(index, META_BLOCK, pg_sys::ExclusiveLock as _) };
        vacuum_delay_point();
    }

    /// A deleted entry point is replaced by the live element of the highest level.
    fn replace_entry_point(&mut self) {
        let entry = self.store.entry_point();
        if entry.is_none_or(|e| {
            self.census.is_deleted(e.id) || self.store.element_info(e.id).is_none_or(|i| i.deleted)
        }) {
            let top = self.census.top.map(|(level, id)| EntryPoint { id, level });
            self.store.set_entry_point(top);
        }
    }

    fn repair_batch(&mut self) {
        let census = self.census;
        let batch = std::mem::take(&mut self.batch);
        for &id in &batch {
            pgrx::check_for_interrupts!();
            self.rewritten +=
                repair_node(&mut self.store, &mut self.scratch, &self.params, id, &|n| {
                    census.is_deleted(n)
                });
        }
        self.batch = batch;
        self.batch.clear();
    }

    fn relink_batch(&mut self) {
        let lost = std::mem::take(&mut self.batch);
        relink(
            &mut self.store,
            &mut self.scratch,
            &self.params,
            &lost,
            &mut || {
                pgrx::check_for_interrupts!();
                false
            },
        );
        self.batch = lost;
        self.batch.clear();
    }

    /// Walk layer 0 from the entry point, then relink the live elements it did not reach;
    /// again while a pass finds some (at most RELINK_PASSES passes).
    fn relink_unreachable(&mut self) {
        let index = self.store.index;
        for _ in 0..RELINK_PASSES {
            self.store.meta = buffer::read_meta_of(index);
            let Ok(mut reached) = HashVisited::try_with_capacity(self.census.live_elements) else {
                out_of_memory()
            };
            reach_layer0(&self.store, &mut reached, vacuum_delay_point);
            let mut lost = Vec::new();
            buffer::for_each_element(
                index,
                self.store.layout,
                vacuum_delay_point,
                |id, element| {
                    if !element.deleted && reached.insert(id) {
                        if lost.try_reserve(1).is_err() {
                            out_of_memory();
                        }
                        lost.push(id);
                    }
                },
            );
            drop(reached);
            if lost.is_empty() {
                return;
            }
            for chunk in lost.chunks(BATCH) {
                self.batch.extend_from_slice(chunk);
                self.locked(|r| r.relink_batch());
            }
        }
    }
}
