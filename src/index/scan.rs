//! Index scans for `ORDER BY emb <op> query LIMIT k`: descend from the entry point, then a
//! resumable layer-0 search hands out results in (near) distance order, batch by batch, for
//! as long as the executor keeps asking (rows removed by a WHERE clause), up to
//! `xhnsw.max_scan_tuples` visited elements. A NULL query (or a zero query under cosine,
//! whose distances are all NaN) returns every indexed row in physical order, as a plain scan
//! would.
//!
//! Under WHERE clauses on filter columns the scan picks one of two paths (`plan_filtered`),
//! from a survey of the filter directory: how many elements the tags let through (C), and how
//! many of a random sample of them pass every clause (read a chunk at a time until the choice
//! is clear). Exact (exact.rs): read the C candidates, check every clause, rank the matches by
//! true distance; chosen when C is at most `xhnsw.exact_filter_limit` or when reading C costs
//! less than the graph search is expected to (`filter::exact_beats_graph`). Graph: the
//! filtered graph search, which switches to the exact path (skipping what it already
//! returned) once it has visited C elements (or `xhnsw.max_scan_tuples`) and the executor
//! still wants rows; so every matching row is returned whenever the executor asks for it, and
//! the visited cap never cuts a filtered scan short. When the exact path would read most of
//! the index (no tag narrows a range alone), the graph search is tried first within half its
//! cost if the matches, spread evenly, would be found in that (`filter::graph_trial_visits`).
//!
//! In an index with codes (and `xhnsw.strict_order` off), the graph search, filtered or not,
//! first runs over codes (coded.rs, `coded_scan`): one batch of exactly ranked results, after
//! which the full-precision search goes on, skipping them. A filtered one whose cap cuts it
//! short hands over to the exact path at once.

use pgrx::prelude::*;
use pgrx::PgMemoryContexts;
use std::collections::{HashSet, VecDeque};

use super::code::QueryTable;
use super::coded::{coded_search, CodedStore};
use super::directory;
use super::exact::{Candidates, ExactPass};
use super::filter::{
    child_context, exact_beats_graph, expected_graph_visits, graph_trial_visits, sampled_choice,
    KeyFilter,
};
use super::graph::{EntryPoint, GraphStore, HashVisited, Scored, SearchScratch};
use super::options::{exact_filter_limit, EF_SEARCH, MAX_SCAN_TUPLES, STRICT_ORDER};
use super::page::{
    buffer::{self, Locked},
    format::Tid,
};
use super::ranked::{code_pages_of, RankedPass, Step};
use super::resumable::{narrowed_ef, ResumableOptions, ResumableSearch};
use super::store::PageStore;
use crate::vector::half::index_elements;
use std::cell::{Cell, RefCell};

enum Mode {
    /// The graph search; with a filter served by a directory, its switch to the exact path.
    Graph(
        Box<ResumableSearch<Tid, HashVisited<Tid>>>,
        Option<Box<Switch>>,
    ),
    /// The results of the search over codes (an index with codes, no strict order), handed
    /// out one at a time; past them, the full-precision graph search.
    Coded(Box<CodedScan>),
    /// A filter's matches, ranked exactly.
    Exact(Box<ExactPass>),
    /// The same, reading the candidates nearest by their codes first (an index with code
    /// pages), until it hands over to `Exact`.
    Ranked(Box<RankedPass>),
    /// Physical order from this block on.
    Sequential(u32),
    Done,
}

/// When a filtered graph search hands over to the exact path.
struct Switch {
    /// Elements the exact path would read: the directory's candidates.
    candidates: Candidates,
    /// The graph search's cap on visited elements: once it is reached, the exact path takes
    /// over (the search would only hand out what it found: in order among themselves, but
    /// not the nearest of all the matches), also from a batch the cap cut short.
    at: usize,
    /// Elements returned so far, which the exact path skips.
    returned: HashSet<Tid>,
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
    /// Elements the search over codes returned, which the full-precision search after it
    /// skips.
    skip: HashSet<Tid>,
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
            skip: HashSet::new(),
        };
        // Dropped with the executor's memory context, also when the query fails.
        (*scan).opaque = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state)
            as *mut std::ffi::c_void;
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
        state.skip.clear();
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amgettuple(
    scan: pg_sys::IndexScanDesc,
    _direction: pg_sys::ScanDirection::Type,
) -> bool {
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

/// An index with codes keeps this many times `xhnsw.ef_search` results: estimates order the
/// frontier less well than exact distances, and twice the result set gives the recall of
/// the full-precision search at the same setting, still reading fewer pages (bench/README.md).
const CODED_EF_FACTOR: usize = 2;

/// The results of the search over codes with their heap TIDs (read while the search expanded
/// them), handed out in order; then what the full-precision search that goes on after them
/// needs: its cap on visited elements and, under a filter, its switch to the exact path.
struct CodedScan {
    results: Vec<(Scored<Tid>, (bool, Vec<Tid>))>,
    next: usize,
    max_visited: usize,
    switch: Option<Box<Switch>>,
}

impl CodedScan {
    /// Queues the heap TIDs of the next result; false when all were handed out.
    fn refill(&mut self, pending: &mut VecDeque<Tid>) -> bool {
        let Some((_, (deleted, heap_tids))) = self.results.get(self.next) else {
            return false;
        };
        self.next += 1;
        if !deleted {
            pending.extend(heap_tids);
        }
        true
    }
}

/// Queue the heap TIDs of the next batch; false when the scan is over.
fn refill(index: pg_sys::Relation, state: &mut ScanState) -> bool {
    if let Some(Mode::Coded(coded)) = state.mode.as_mut() {
        if coded.refill(&mut state.pending) {
            return true;
        }
        // The executor wants more rows (a WHERE clause removed some, or LIMIT is above the
        // batch): the full-precision search goes on from scratch, skipping what was returned,
        // in its better order.
        if coded.results.is_empty() {
            state.mode = Some(Mode::Done); // an empty graph, or no match reachable
            return false;
        }
        state.skip = coded.results.iter().map(|(s, _)| s.id).collect();
        let (max_visited, mut switch) = (coded.max_visited, coded.switch.take());
        if let Some(switch) = switch.as_mut() {
            switch.returned.clone_from(&state.skip);
        }
        LAST_PATH.set("graph (codes), then graph");
        let store = PageStore::open(index);
        let query = state.query.as_deref().and_then(|q| store.metric.prepare(q));
        let query = query.expect("a coded search has a query");
        state.mode = Some(graph_search(&query, max_visited, switch));
    }
    let store = PageStore::open(index);
    if state.mode.is_none() {
        state.mode = Some(start(&store, state.query.as_deref(), state.filter.as_mut()));
        if matches!(state.mode, Some(Mode::Coded(_))) {
            return refill(index, state);
        }
    }
    match state.mode.as_mut().expect("mode set above") {
        Mode::Done => false,
        Mode::Sequential(block) => {
            let blocks = buffer::block_count(index);
            if *block >= blocks {
                state.mode = Some(Mode::Done);
                return false;
            }
            collect_page(&store, *block, state.filter.as_mut(), &mut state.pending);
            *block += 1;
            true
        }
        Mode::Exact(pass) => {
            let filter = state.filter.as_mut().expect("the exact path has a filter");
            if pass.next_round(&store, filter, &mut state.pending) {
                return true;
            }
            state.mode = Some(Mode::Done);
            false
        }
        Mode::Ranked(pass) => {
            let filter = state.filter.as_mut().expect("the exact path has a filter");
            match pass.step(&store, filter, &mut state.pending) {
                Step::Queued => true,
                Step::Done => {
                    state.mode = Some(Mode::Done);
                    false
                }
                Step::HandOver(candidates, skip, after) => {
                    let query = state.query.as_deref().and_then(|q| store.metric.prepare(q));
                    let query = query.expect("the exact path has a query");
                    let pass = ExactPass::new(&query, candidates, skip, after);
                    state.mode = Some(Mode::Exact(Box::new(pass)));
                    true
                }
            }
        }
        Mode::Coded(_) => unreachable!("served above"),
        Mode::Graph(search, switch) => {
            state.batch.clear();
            let mut found = match state.filter.as_mut() {
                None => {
                    let skip = &state.skip;
                    search.next_batch(&store, |id| !skip.contains(&id), &mut state.batch)
                }
                Some(filter) => {
                    let filtered = FilteredStore::new(&store, filter);
                    let skip = &state.skip;
                    let keep = |id| !skip.contains(&id) && filtered.passes(id);
                    search.next_batch(&filtered, keep, &mut state.batch)
                }
            };
            // A batch the switch's cap cut short holds what the search had found, not the
            // nearest matches: drop it and let the exact path answer (skipping earlier batches).
            if switch
                .as_ref()
                .is_some_and(|switch| search.visited() >= switch.at)
            {
                state.batch.clear();
                found = 0;
            }
            if found == 0 {
                if let Some(switch) = switch.take() {
                    let Switch {
                        candidates,
                        returned,
                        ..
                    } = *switch;
                    let query = state
                        .query
                        .as_deref()
                        .and_then(|q| store.metric.prepare(q))
                        .expect("a graph search has a query");
                    let paths = ["graph, then exact", "graph, then exact (codes)"];
                    state.mode = Some(exact_path(&store, &query, candidates, returned, paths));
                    return true;
                }
                let limit = MAX_SCAN_TUPLES.get() as usize;
                if search.visited() >= limit {
                    notice!("xhnsw scan stopped after visiting {limit} index elements (xhnsw.max_scan_tuples); fewer rows than asked for may be returned");
                }
                state.mode = Some(Mode::Done);
                return false;
            }
            for s in &state.batch {
                if let Some(switch) = switch.as_mut() {
                    switch.returned.insert(s.id);
                }
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

thread_local! {
    /// The path the latest xhnsw scan of this backend took (see `xmodal.xhnsw_last_scan_path`).
    static LAST_PATH: Cell<&'static str> = const { Cell::new("none") };
}

/// How the scan will run.
fn start(store: &PageStore, query: Option<&[f32]>, filter: Option<&mut KeyFilter>) -> Mode {
    let Some(query) = query else {
        LAST_PATH.set("sequential");
        return Mode::Sequential(1);
    };
    let dims = store.layout.dims;
    if dims != 0 && query.len() != dims {
        crate::vector::error::VectorError::dimension_mismatch(dims, query.len()).raise();
    }
    let Some(prepared) = store.metric.prepare(query) else {
        LAST_PATH.set("sequential");
        return Mode::Sequential(1);
    };
    let mut max_visited = MAX_SCAN_TUPLES.get() as usize;
    let mut switch = None;
    let mut filter = filter;
    match filter.as_mut().map(|filter| plan_filtered(store, filter)) {
        Some(FilterPlan::Exact(candidates)) => {
            let paths = match candidates {
                Candidates::Listed(_) => ["directory"; 2],
                Candidates::Directory(_) => ["exact", "exact (codes)"],
            };
            return exact_path(store, &prepared, candidates, HashSet::new(), paths);
        }
        Some(FilterPlan::Graph {
            candidates,
            switch_at,
        }) => {
            max_visited = max_visited.min(switch_at);
            switch = Some(Box::new(Switch {
                candidates,
                at: max_visited,
                returned: HashSet::new(),
            }));
        }
        Some(FilterPlan::GraphOnly) | None => {}
    }
    if store.meta.code_layout().is_some() && !STRICT_ORDER.get() {
        return coded_scan(store, &prepared, filter, max_visited, switch);
    }
    LAST_PATH.set("graph");
    graph_search(&prepared, max_visited, switch)
}

/// The search over codes (coded.rs), under the filter if there is one; at most `max_visited`
/// elements expanded. When that cap cuts a filtered search short, its switch hands over to the
/// exact path at once: what the search found is not the nearest of all the matches.
fn coded_scan(
    store: &PageStore,
    prepared: &[f32],
    filter: Option<&mut KeyFilter>,
    max_visited: usize,
    switch: Option<Box<Switch>>,
) -> Mode {
    let ef = EF_SEARCH.get() as usize;
    // Under a filter, twice what the full-precision search's first batch holds.
    let ef = CODED_EF_FACTOR
        * if filter.is_some() {
            narrowed_ef(ef)
        } else {
            ef
        };
    // Room for what a search of this ef reaches, so that the set does not grow by rehashing.
    let visited = HashVisited::try_with_capacity(ef * store.m).unwrap_or_default();
    let mut scratch = SearchScratch::with_visited(visited);
    let table = store.query_table(prepared);
    let (results, capped) = match filter {
        None => {
            let found = coded_search(
                store,
                &mut scratch,
                prepared,
                &table,
                ef,
                max_visited,
                |_| true,
            );
            (found.results, found.capped)
        }
        Some(filter) => {
            let filtered = FilteredStore::new(store, filter);
            let found = coded_search(
                &filtered,
                &mut scratch,
                prepared,
                &table,
                ef,
                max_visited,
                Option::is_some,
            );
            let results = found.results.into_iter();
            let results = results.filter_map(|(s, read)| Some((s, read?))).collect();
            (results, found.capped)
        }
    };
    let switch = match switch {
        Some(switch) if capped => {
            let paths = [
                "graph (codes), then exact",
                "graph (codes), then exact (codes)",
            ];
            return exact_path(store, prepared, switch.candidates, HashSet::new(), paths);
        }
        switch => switch,
    };
    LAST_PATH.set("graph (codes)");
    Mode::Coded(Box::new(CodedScan {
        results,
        next: 0,
        max_visited,
        switch,
    }))
}

/// The exact path over `candidates`, skipping `skip`: over codes first where the index has
/// code pages, the candidates are the directory's and `xhnsw.strict_order` is off (ranked.rs),
/// else reading every one; the
/// scan's path is named `paths[0]` or, over codes, `paths[1]`.
fn exact_path(
    store: &PageStore,
    prepared: &[f32],
    candidates: Candidates,
    skip: HashSet<Tid>,
    paths: [&'static str; 2],
) -> Mode {
    let code_pages = code_pages_of(&store.meta).filter(|_| !STRICT_ORDER.get());
    match (candidates, code_pages) {
        (Candidates::Directory(tags), Some(code_bytes)) => {
            LAST_PATH.set(paths[1]);
            let pass = RankedPass::collect(store, prepared, tags, skip, code_bytes);
            Mode::Ranked(Box::new(pass))
        }
        (candidates, _) => {
            LAST_PATH.set(paths[0]);
            Mode::Exact(Box::new(ExactPass::new(prepared, candidates, skip, None)))
        }
    }
}

/// The full-precision graph search (resumable.rs).
fn graph_search(prepared: &[f32], max_visited: usize, switch: Option<Box<Switch>>) -> Mode {
    let options = ResumableOptions {
        max_visited,
        strict: STRICT_ORDER.get(),
        ..ResumableOptions::new(EF_SEARCH.get() as usize)
    };
    let search = ResumableSearch::new(prepared, options, HashVisited::default());
    Mode::Graph(Box::new(search), switch)
}

/// The path of a filtered scan (see the module comment).
enum FilterPlan {
    Exact(Candidates),
    /// The graph search, handing over to the exact path after `switch_at` visited elements.
    Graph {
        candidates: Candidates,
        switch_at: usize,
    },
    /// No directory (or `xhnsw.exact_filter_limit = 0`): the graph search alone.
    GraphOnly,
}

/// Elements of the candidates read, at most, to choose between the exact path and the graph
/// search (`filter::sampled_choice` stops early when the choice is clear).
const CHOICE_SAMPLE: usize = 256;
/// ... and to decide a graph trial (`filter::graph_trial_visits`): it pays when as few as
/// 0.3% of the candidates pass, which 256 elements cannot tell from none, and it is weighed
/// only on the way to an exact path that reads most of the index.
const TRIAL_SAMPLE: usize = 1024;

fn plan_filtered(store: &PageStore, filter: &mut KeyFilter) -> FilterPlan {
    if !store.meta.has_directory(store.index) {
        return FilterPlan::GraphOnly;
    }
    let ef = EF_SEARCH.get() as usize;
    let elements = store.meta.elements as f64;
    let limit = exact_filter_limit(elements, ef);
    if limit == 0 {
        return FilterPlan::GraphOnly;
    }
    let tags = filter.tag_filter().clone();
    let survey = directory::survey(
        store.index,
        &store.meta,
        |tag| tags.may_match(tag),
        limit + 1,
        TRIAL_SAMPLE,
    );
    if survey.count <= limit {
        return FilterPlan::Exact(Candidates::Listed(survey.first));
    }
    let candidates_read = survey.count as f64;
    let mut passes = |i: usize| {
        store.with_element(survey.sample[i], |e| !e.deleted && filter.matches(e.extras))
            == Some(true)
    };
    let exact = sampled_choice(
        survey.sample.len().min(CHOICE_SAMPLE),
        &mut passes,
        |pass_rate| {
            let matches = candidates_read * pass_rate;
            let graph = expected_graph_visits(ef, store.m, elements, matches / elements.max(1.0));
            exact_beats_graph(candidates_read, graph)
        },
    );
    let candidates = Candidates::Directory(tags);
    if !exact.yes {
        return FilterPlan::Graph {
            candidates,
            switch_at: survey.count,
        };
    }
    let trial = |pass_rate| graph_trial_visits(ef, candidates_read, elements, pass_rate);
    if trial(1.0).is_none() {
        return FilterPlan::Exact(candidates);
    }
    // The sample's first elements are read again: buffer hits, against an exact path that
    // reads most of the index.
    let worth_it = sampled_choice(survey.sample.len(), &mut passes, |rate| {
        trial(rate).is_some()
    });
    match trial(worth_it.pass_rate).filter(|_| worth_it.yes) {
        Some(switch_at) => FilterPlan::Graph {
            candidates,
            switch_at,
        },
        None => FilterPlan::Exact(candidates),
    }
}

/// Heap TIDs of every live element on one page that passes the filter.
fn collect_page(
    store: &PageStore,
    block: u32,
    mut filter: Option<&mut KeyFilter>,
    out: &mut VecDeque<Tid>,
) {
    let locked = Locked::read(store.index, block, false);
    for (_, e) in unsafe { buffer::page_elements(locked.page(), store.layout) } {
        let passes = filter.as_mut().is_none_or(|f| f.matches(e.extras));
        if !e.deleted && passes {
            out.extend(e.heap_tids.iter().copied());
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

impl<'a> FilteredStore<'a> {
    fn new(store: &'a PageStore, filter: &'a mut KeyFilter) -> Self {
        FilteredStore {
            store,
            filter: RefCell::new(filter),
            last: Cell::new(None),
        }
    }

    fn passes(&self, id: Tid) -> bool {
        match self.last.get() {
            Some((last, passes)) if last == id => passes,
            _ => self
                .store
                .with_element(id, |e| self.filter.borrow_mut().matches(e.extras))
                .unwrap_or(false),
        }
    }
}

impl GraphStore for FilteredStore<'_> {
    type Id = Tid;

    fn distance(&self, query: &[f32], id: Tid) -> f32 {
        self.store
            .with_element(id, |e| {
                self.last
                    .set(Some((id, self.filter.borrow_mut().matches(e.extras))));
                e.vector.distance(self.store.metric, query)
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

impl CodedStore for FilteredStore<'_> {
    /// The element's deleted flag and heap TIDs when it passes the filter.
    type Read = Option<(bool, Vec<Tid>)>;

    fn expand(
        &self,
        id: Tid,
        layer: usize,
        query: &[f32],
        table: &QueryTable,
        fresh: impl FnMut(Tid) -> bool,
        out: &mut Vec<Scored<Tid>>,
    ) -> Option<(f32, Self::Read)> {
        self.store
            .expand_with(id, layer, query, table, fresh, out, |e| {
                let passes = self.filter.borrow_mut().matches(e.extras);
                passes.then_some((e.deleted, e.heap_tids))
            })
    }
}

#[pg_schema]
mod xmodal {
    use pgrx::prelude::*;

    /// The path the latest xhnsw index scan of this session took: `directory` (a selective
    /// filter's candidates listed by the filter directory, ranked exactly), `exact` (every
    /// element the directory's tags let through read and ranked exactly; `exact (codes)`: the
    /// nearest of them by their codes read first), `graph`, `graph, then exact` (the graph
    /// search handed over to the exact path), the same with `(codes)` for searches and exact
    /// paths over codes, `sequential` (NULL query), or `none`. EXPLAIN cannot show it: the
    /// scan chooses when it starts.
    #[pg_extern(volatile, parallel_restricted)]
    fn xhnsw_last_scan_path() -> &'static str {
        super::LAST_PATH.get()
    }
}
