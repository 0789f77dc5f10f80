//! Index scans for `ORDER BY emb <op> query LIMIT k`: descend from the entry point, then a
//! resumable layer-0 search hands out results in (near) distance order, batch by batch, for
//! as long as the executor keeps asking (rows removed by a WHERE clause), up to
//! `xhnsw.max_scan_tuples` visited elements. A filter that matches few elements (at most
//! `xhnsw.exact_filter_limit`) is answered from the filter directory instead: its matches are
//! ranked exactly, with no graph search at all. A NULL query (or a zero query under cosine,
//! whose distances are all NaN) returns every indexed row in physical order, as a plain scan
//! would.

use pgrx::prelude::*;
use pgrx::PgMemoryContexts;
use std::collections::VecDeque;

use super::directory;
use super::filter::{child_context, KeyFilter};
use super::graph::{EntryPoint, GraphStore, HashVisited, Scored};
use super::options::{exact_filter_limit, EF_SEARCH, MAX_SCAN_TUPLES, STRICT_ORDER};
use super::page::{self, Locked, Tid};
use super::resumable::{ResumableOptions, ResumableSearch};
use super::store::PageStore;
use std::cell::{Cell, RefCell};
use crate::vector::half::index_elements;

enum Mode {
    Graph(Box<ResumableSearch<Tid, HashVisited<Tid>>>),
    /// Physical order from this block on.
    Sequential(u32),
    Done,
}

struct ScanState {
    query: Option<Vec<f32>>,
    /// WHERE clauses on the filter columns, checked during traversal.
    filter: Option<KeyFilter>,
    filter_context: pg_sys::MemoryContext,
    /// What a rescan allocates (the detoasted query, array keys): reset on each rescan, so
    /// that rescans under a nested loop do not pile up in the query's context.
    rescan_context: pg_sys::MemoryContext,
    mode: Option<Mode>,
    pending: VecDeque<Tid>,
    batch: Vec<Scored<Tid>>,
}

#[pg_guard]
pub unsafe extern "C-unwind" fn ambeginscan(
    index: pg_sys::Relation,
    nkeys: std::ffi::c_int,
    norderbys: std::ffi::c_int,
) -> pg_sys::IndexScanDesc {
    unsafe {
        let scan = pg_sys::RelationGetIndexScan(index, nkeys, norderbys);
        // An index-only scan of a query that needs no column (PostgreSQL 18 plans one for
        // count(*) over `ORDER BY emb <=> q LIMIT k`) still wants an index tuple per row. xhnsw
        // returns no column values (no amcanreturn), so every row carries this all-NULL one.
        let desc = (*index).rd_att;
        let natts = (*desc).natts as usize;
        let (mut values, mut nulls) = (vec![pg_sys::Datum::from(0usize); natts], vec![true; natts]);
        (*scan).xs_itup = pg_sys::index_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        (*scan).xs_itupdesc = desc;
        let state = ScanState {
            query: None,
            filter: None,
            filter_context: child_context(c"xhnsw filter"),
            rescan_context: child_context(c"xhnsw rescan"),
            mode: None,
            pending: VecDeque::new(),
            batch: Vec::new(),
        };
        // Dropped with the executor's memory context, also when the query fails.
        (*scan).opaque = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state) as *mut std::ffi::c_void;
        scan
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amrescan(
    scan: pg_sys::IndexScanDesc,
    keys: pg_sys::ScanKey,
    nkeys: std::ffi::c_int,
    orderbys: pg_sys::ScanKey,
    _norderbys: std::ffi::c_int,
) {
    unsafe {
        let count = (*scan).numberOfOrderBys as usize;
        if !orderbys.is_null() && count > 0 {
            std::ptr::copy(orderbys, (*scan).orderByData, count);
        }
        if !keys.is_null() && nkeys > 0 {
            std::ptr::copy(keys, (*scan).keyData, nkeys as usize);
        }
        // The graph orders by its first column only; the planner is steered away from other
        // orderings (amcostestimate), so reaching this is a planner change, not a user error.
        if count > 1 || (count == 1 && (*(*scan).orderByData).sk_attno != 1) {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "xhnsw: an index scan can only order by the distance to the index's first column"
            );
        }
        let state = &mut *((*scan).opaque as *mut ScanState);
        state.filter = None; // it points into the rescan context
        pg_sys::MemoryContextReset(state.rescan_context);
        let (filter_context, rescan_context) = (state.filter_context, state.rescan_context);
        let (filter, query) = PgMemoryContexts::For(rescan_context).switch_to(|_| {
            let filter = KeyFilter::from_scan(scan, filter_context);
            let key = (count > 0).then(|| &*(*scan).orderByData);
            let query = key
                .filter(|key| key.sk_flags & pg_sys::SK_ISNULL as i32 == 0)
                .map(|key| index_elements(key.sk_argument));
            (filter, query)
        });
        state.filter = filter;
        state.query = query;
        state.mode = None;
        state.pending.clear();
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amgettuple(scan: pg_sys::IndexScanDesc, _direction: pg_sys::ScanDirection::Type) -> bool {
    unsafe {
        let index = (*scan).indexRelation;
        let state = &mut *((*scan).opaque as *mut ScanState);
        loop {
            // A filter that matches nothing keeps this loop refilling (page after page in
            // physical order, batch after batch of the graph) without returning a row.
            pgrx::check_for_interrupts!();
            if let Some(tid) = state.pending.pop_front() {
                (*scan).xs_heaptid = tid.to_pg();
                (*scan).xs_recheck = false;
                (*scan).xs_recheckorderby = false;
                return true;
            }
            if !refill(index, state) {
                return false;
            }
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amendscan(_scan: pg_sys::IndexScanDesc) {}

/// Queue the heap TIDs of the next batch; false when the scan is over.
fn refill(index: pg_sys::Relation, state: &mut ScanState) -> bool {
    let store = PageStore::open(index);
    if state.mode.is_none() {
        state.mode = Some(start(&store, state.query.as_deref(), state.filter.as_mut(), &mut state.pending));
        if !state.pending.is_empty() {
            return true;
        }
    }
    match state.mode.as_mut().expect("mode set above") {
        Mode::Done => false,
        Mode::Sequential(block) => {
            let blocks = unsafe { pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM) };
            if *block >= blocks {
                state.mode = Some(Mode::Done);
                return false;
            }
            collect_page(&store, *block, state.filter.as_mut(), &mut state.pending);
            *block += 1;
            true
        }
        Mode::Graph(search) => {
            state.batch.clear();
            let found = match state.filter.as_mut() {
                None => search.next_batch(&store, |_| true, &mut state.batch),
                Some(filter) => {
                    let filtered = FilteredStore { store: &store, filter: RefCell::new(filter), last: Cell::new(None) };
                    search.next_batch(&filtered, |id| filtered.passes(id), &mut state.batch)
                }
            };
            if found == 0 {
                let limit = MAX_SCAN_TUPLES.get() as usize;
                if search.visited() >= limit {
                    notice!("xhnsw scan stopped after visiting {limit} index elements (xhnsw.max_scan_tuples); fewer rows than asked for may be returned");
                }
                state.mode = Some(Mode::Done);
                return false;
            }
            for s in &state.batch {
                if let Some(info) = store.element_info(s.id) {
                    if !info.deleted {
                        state.pending.extend(info.heap_tids);
                    }
                }
            }
            true
        }
    }
}

/// How the scan will run; when the filter's matches are ranked exactly, they are all queued in
/// `pending` right away and the scan is Done after them.
fn start(store: &PageStore, query: Option<&[f32]>, filter: Option<&mut KeyFilter>, pending: &mut VecDeque<Tid>) -> Mode {
    let Some(query) = query else { return Mode::Sequential(1) };
    if store.dims != 0 && query.len() != store.dims {
        crate::vector::error::VectorError::dimension_mismatch(store.dims, query.len()).raise();
    }
    let Some(prepared) = store.metric.prepare(query) else { return Mode::Sequential(1) };
    if let Some(ranked) = filter.and_then(|filter| rank_exactly(store, &prepared, filter)) {
        pending.extend(ranked);
        return Mode::Done;
    }
    let options = ResumableOptions {
        max_visited: MAX_SCAN_TUPLES.get() as usize,
        strict: STRICT_ORDER.get(),
        ..ResumableOptions::new(EF_SEARCH.get() as usize)
    };
    Mode::Graph(Box::new(ResumableSearch::new(&prepared, options, HashVisited::default())))
}

/// A selective filter's matches in exact distance order (their heap TIDs): the elements whose
/// tags pass, found in the filter directory, each read, checked against the filter and
/// measured. None when the index has no directory, tags cannot narrow this filter, or more than
/// `xhnsw.exact_filter_limit` elements may match (then the graph search costs less).
fn rank_exactly(store: &PageStore, query: &[f32], filter: &mut KeyFilter) -> Option<Vec<Tid>> {
    if !filter.uses_tags() || !store.meta.has_directory(store.index) {
        return None;
    }
    let limit = exact_filter_limit(store.meta.elements as f64, EF_SEARCH.get() as usize);
    if limit == 0 {
        return None;
    }
    let candidates = directory::matching(store.index, &store.meta, |tag| filter.may_match(tag), limit)?;
    let mut ranked: Vec<(f32, Vec<Tid>)> = Vec::with_capacity(candidates.len());
    for id in candidates {
        store.with_element(id, |e| {
            if !e.deleted && filter.matches(e.extras) {
                ranked.push((store.metric.distance(query, e.vector), e.heap_tids.clone()));
            }
        });
    }
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(ranked.into_iter().flat_map(|(_, tids)| tids).collect())
}

/// Heap TIDs of every live element on one page that passes the filter.
fn collect_page(store: &PageStore, block: u32, mut filter: Option<&mut KeyFilter>, out: &mut VecDeque<Tid>) {
    let locked = Locked::read(store.index, block, false);
    unsafe {
        let max = page::page_max_offset(locked.page());
        for offset in 1..=max {
            let Some(item) = page::item_ptr(locked.page(), offset) else { continue };
            if !page::is_element(item) {
                continue;
            }
            if let Some(e) = page::decode_element(item, store.dims) {
                let passes = filter.as_mut().is_none_or(|f| f.matches(e.extras));
                if !e.deleted && passes {
                    out.extend(e.heap_tids.iter().copied());
                }
            }
        }
    }
}

/// The page store seen through a scan's filter: the search asks for a node's distance and then
/// whether it passes the filter, so one read of the element answers both (the filter's answer
/// is kept for that node), instead of reading the element twice.
struct FilteredStore<'a> {
    store: &'a PageStore,
    filter: RefCell<&'a mut KeyFilter>,
    last: Cell<Option<(Tid, bool)>>,
}

impl FilteredStore<'_> {
    fn passes(&self, id: Tid) -> bool {
        match self.last.get() {
            Some((last, passes)) if last == id => passes,
            _ => self.store.with_element(id, |e| self.filter.borrow_mut().matches(e.extras)).unwrap_or(false),
        }
    }
}

impl GraphStore for FilteredStore<'_> {
    type Id = Tid;

    fn distance(&self, query: &[f32], id: Tid) -> f32 {
        self.store
            .with_element(id, |e| {
                self.last.set(Some((id, self.filter.borrow_mut().matches(e.extras))));
                self.store.metric.distance(query, e.vector)
            })
            .unwrap_or(f32::INFINITY)
    }

    fn distance_between(&self, a: Tid, b: Tid) -> f32 {
        self.store.distance_between(a, b)
    }

    fn level(&self, id: Tid) -> usize {
        self.store.level(id)
    }

    fn neighbours(&self, id: Tid, level: usize, out: &mut Vec<Tid>) {
        self.store.neighbours(id, level, out)
    }

    fn entry_point(&self) -> Option<EntryPoint<Tid>> {
        self.store.entry_point()
    }
}
