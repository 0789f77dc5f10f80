//! CREATE INDEX / REINDEX: read the table, build the graph in memory with several threads
//! (graph::MemGraph; the threads touch only Rust data), write it to pages in one pass and
//! WAL-log the pages as full images. When the vectors outgrow maintenance_work_mem, the graph
//! built so far is written out and the remaining rows are inserted on disk (NOTICE).

use pgrx::prelude::*;
use pgrx::PgMemoryContexts;
use std::collections::HashMap;
use std::ffi::c_void;

use super::directory;
use super::filter::extras_of;
use super::graph::{GraphStore, MemGraph};
use super::insert::{check_element_fits, insert_vector, params_of};
use super::options;
use super::page::{self, Locked, MetaPage, Metric, Tid, MAX_HEAP_TIDS, META_BLOCK};
use super::tags::TagColumns;
use crate::vector::error::VectorError;
use crate::vector::half::index_elements;

/// Largest dimension an index accepts: an element must fit in one page.
pub const MAX_INDEX_DIMS: usize = 2000;

const PHASE_LOAD: i64 = 2;
const PHASE_GRAPH: i64 = 3;
const PHASE_WRITE: i64 = 4;

type DistanceFn = Box<dyn Fn(&[f32], &[f32]) -> f32 + Send + Sync>;

struct BuildState {
    index: pg_sys::Relation,
    metric: Metric,
    dims: usize,
    m: usize,
    ef_construction: usize,
    graph: Option<MemGraph<DistanceFn>>,
    /// Heap TIDs and filter-column values of each in-memory node.
    heap_tids: Vec<Vec<Tid>>,
    extras: Vec<Vec<u8>>,
    /// Tags of the filter values of each node, for the filter directory.
    tags: Vec<u64>,
    tag_columns: TagColumns,
    /// Vector bits hash -> nodes with that hash, to share an element between equal vectors.
    by_hash: HashMap<u64, Vec<u32>>,
    memory_limit: usize,
    on_disk: bool,
    heap_tuples: f64,
    index_tuples: f64,
    tuple_context: PgMemoryContexts,
}

pub fn check_index_dims(dims: usize) {
    if dims > MAX_INDEX_DIMS {
        VectorError::new(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("xhnsw indexes support at most {MAX_INDEX_DIMS} dimensions, not {dims}"),
        )
        .raise();
    }
}

fn progress(param: u32, value: i64) {
    unsafe { pg_sys::pgstat_progress_update_param(param as i32, value) };
}

/// The opclass's support function 1 names the metric.
fn metric_of(index: pg_sys::Relation) -> Metric {
    unsafe {
        let proc = pg_sys::index_getprocid(index, 1, 1);
        let name = pg_sys::get_func_name(proc);
        let name = if name.is_null() { "" } else { std::ffi::CStr::from_ptr(name).to_str().unwrap_or("") };
        match name {
            "l2_distance" => Metric::L2,
            "cosine_distance" => Metric::Cosine,
            "negative_inner_product" => Metric::InnerProduct,
            "l1_distance" => Metric::L1,
            other => error!("xhnsw: unsupported distance function \"{other}\" in operator class"),
        }
    }
}

/// Declared dimension of the indexed column, or 0.
fn column_dims(index: pg_sys::Relation) -> usize {
    unsafe {
        let desc = (*index).rd_att;
        let typmod = (*(*desc).attrs.as_ptr()).atttypmod;
        typmod.max(0) as usize
    }
}

fn new_meta(metric: Metric, dims: usize, m: usize, ef_construction: usize) -> MetaPage {
    MetaPage {
        magic: page::MAGIC,
        version: page::VERSION,
        dims: dims as u32,
        m: m as u32,
        ef_construction: ef_construction as u32,
        metric: metric as u32,
        entry: Tid::INVALID,
        entry_level: 0,
        insert_page: META_BLOCK,
        elements: 0,
        directory_head: META_BLOCK,
        directory_tail: META_BLOCK,
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn ambuild(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
) -> *mut pg_sys::IndexBuildResult {
    let (m, ef_construction) = options::index_options(index);
    if ef_construction < m {
        error!("xhnsw: ef_construction ({ef_construction}) must be at least m ({m})");
    }
    let metric = metric_of(index);
    let dims = column_dims(index);
    check_index_dims(dims);
    let mut state = BuildState {
        index,
        metric,
        dims,
        m,
        ef_construction,
        graph: None,
        heap_tids: Vec::new(),
        extras: Vec::new(),
        tags: Vec::new(),
        tag_columns: TagColumns::of(index),
        by_hash: HashMap::new(),
        memory_limit: unsafe { pg_sys::maintenance_work_mem } as usize * 1024,
        on_disk: false,
        heap_tuples: 0.0,
        index_tuples: 0.0,
        tuple_context: PgMemoryContexts::new("xhnsw build tuple"),
    };
    write_metapage(index, &new_meta(metric, dims, m, ef_construction));

    progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_LOAD);
    unsafe {
        pg_sys::table_index_build_scan(
            heap,
            index,
            index_info,
            true,
            true,
            Some(build_callback),
            &mut state as *mut BuildState as *mut c_void,
            std::ptr::null_mut(),
        );
    }
    if !state.on_disk {
        flush(&mut state);
    }
    unsafe {
        let result = pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBuildResult>()) as *mut pg_sys::IndexBuildResult;
        (*result).heap_tuples = state.heap_tuples;
        (*result).index_tuples = state.index_tuples;
        result
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn build_callback(
    _index: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    _alive: bool,
    state: *mut c_void,
) {
    let state = unsafe { &mut *(state as *mut BuildState) };
    state.heap_tuples += 1.0;
    if unsafe { *isnull } {
        return;
    }
    let heap_tid = Tid::from_pg(unsafe { &*tid });
    let mut context = std::mem::replace(&mut state.tuple_context, PgMemoryContexts::CurrentMemoryContext);
    context.switch_to(|_| {
        let vector = unsafe { index_elements(*values) };
        let extras = unsafe { extras_of(state.index, values, isnull) };
        let tag = unsafe { state.tag_columns.tag(values, isnull) };
        add_tuple(state, heap_tid, &vector, extras, tag);
    });
    unsafe { context.reset() };
    state.tuple_context = context;
    progress(pg_sys::PROGRESS_CREATEIDX_TUPLES_DONE, state.heap_tuples as i64);
}

fn add_tuple(state: &mut BuildState, heap_tid: Tid, raw: &[f32], extras: Vec<u8>, tag: u64) {
    if state.on_disk {
        insert_vector(state.index, heap_tid, raw, &extras, tag);
        state.index_tuples += 1.0;
        return;
    }
    let Some(vector) = state.metric.prepare(raw) else { return };
    if state.dims == 0 {
        check_index_dims(vector.len());
        state.dims = vector.len();
    } else if vector.len() != state.dims {
        VectorError::dimension_mismatch(state.dims, vector.len()).raise();
    }
    check_element_fits(state.dims, &extras);
    state.index_tuples += 1.0;
    if join_duplicate(state, heap_tid, &vector, &extras) {
        return;
    }
    let metric = state.metric;
    let (dims, m, efc) = (state.dims, state.m, state.ef_construction);
    let graph = state.graph.get_or_insert_with(|| {
        let distance: DistanceFn = Box::new(move |a: &[f32], b: &[f32]| metric.distance(a, b));
        MemGraph::new(dims, params_of(m, efc), distance, 0x5eed)
    });
    let id = graph.push(&vector);
    state.heap_tids.push(vec![heap_tid]);
    state.extras.push(extras);
    state.tags.push(tag);
    state.by_hash.entry(hash_bits(&vector)).or_default().push(id);

    if graph_memory(state) > state.memory_limit {
        notice!(
            "xhnsw graph no longer fits into maintenance_work_mem after {} tuples; the rest of the build continues on disk, which is slower",
            state.index_tuples as i64
        );
        flush(state);
        state.on_disk = true;
    }
}

fn hash_bits(v: &[f32]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for x in v {
        x.to_bits().hash(&mut h);
    }
    h.finish()
}

/// Equal vectors with equal filter values share one element (up to MAX_HEAP_TIDS heap TIDs).
fn join_duplicate(state: &mut BuildState, heap_tid: Tid, vector: &[f32], extras: &[u8]) -> bool {
    let (Some(graph), Some(candidates)) = (&state.graph, state.by_hash.get(&hash_bits(vector))) else {
        return false;
    };
    for &id in candidates {
        let same = graph.vector(id).iter().zip(vector).all(|(a, b)| a.to_bits() == b.to_bits());
        let tids = &mut state.heap_tids[id as usize];
        if same && state.extras[id as usize] == extras && tids.len() < MAX_HEAP_TIDS {
            tids.push(heap_tid);
            return true;
        }
    }
    false
}

/// Bytes the in-memory build holds: vectors, neighbour lists, TIDs and the hash table.
fn graph_memory(state: &BuildState) -> usize {
    let nodes = state.heap_tids.len();
    let extras: usize = state.extras.iter().map(|e| e.len() + 24).sum();
    nodes * (state.dims * 4 + (2 * state.m + 2) * 4 + 64 + 48) + extras
}

/// Build the in-memory graph, write it to pages after the metapage, log them.
fn flush(state: &mut BuildState) {
    let Some(mut graph) = state.graph.take() else {
        log_all_pages(state.index);
        return;
    };
    progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_GRAPH);
    let threads = unsafe { pg_sys::max_parallel_maintenance_workers + 1 }
        .clamp(1, std::thread::available_parallelism().map_or(1, |n| n.get() as i32)) as usize;
    graph.build(threads);
    progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_WRITE);
    write_graph(state, &graph);
    log_all_pages(state.index);
    state.by_hash.clear();
    state.heap_tids.clear();
    state.extras.clear();
    state.tags.clear();
}

/// Place each node's element and neighbour item in order, page by page, then write them.
fn write_graph(state: &BuildState, graph: &MemGraph<DistanceFn>) {
    let n = graph.len() as u32;
    let item_overhead = std::mem::size_of::<pg_sys::ItemIdData>();
    let usable = page::page_usable_space();
    // First pass: addresses. Items are appended in order, so offsets are predictable.
    let mut element_tid = Vec::with_capacity(n as usize);
    let mut neighbour_tid = Vec::with_capacity(n as usize);
    let (mut block, mut offset, mut used) = (1u32, 0u16, 0usize);
    let mut place = |size: usize| {
        if used + size + item_overhead > usable {
            block += 1;
            offset = 0;
            used = 0;
        }
        used += size + item_overhead;
        offset += 1;
        Tid { block, offset }
    };
    for id in 0..n {
        element_tid.push(place(page::element_size(state.dims, state.extras[id as usize].len())));
        neighbour_tid.push(place(page::neighbour_size(state.m, graph.level(id))));
    }
    // Second pass: fill pages in block order.
    let mut current: Option<Locked> = None;
    let mut list = Vec::new();
    let mut tids = Vec::new();
    for id in 0..n {
        let level = graph.level(id);
        let e_tid = element_tid[id as usize];
        if current.as_ref().is_none_or(|c| c.block() != e_tid.block) {
            current = Some(new_page(state.index, e_tid.block));
        }
        let element = page::encode_element(
            level,
            neighbour_tid[id as usize],
            &state.heap_tids[id as usize],
            graph.vector(id),
            &state.extras[id as usize],
        );
        add_at(current.as_ref().unwrap(), &element, e_tid.offset);

        let n_tid = neighbour_tid[id as usize];
        if current.as_ref().is_none_or(|c| c.block() != n_tid.block) {
            current = Some(new_page(state.index, n_tid.block));
        }
        let mut item = page::encode_neighbours(state.m, level);
        for layer in 0..=level {
            graph.neighbours(id, layer, &mut list);
            tids.clear();
            tids.extend(list.iter().map(|&nb| element_tid[nb as usize]));
            unsafe { page::write_neighbours(item.as_mut_ptr(), state.m, layer, &tids) };
        }
        add_at(current.as_ref().unwrap(), &item, n_tid.offset);
    }
    drop(current);
    let last_block = neighbour_tid.last().map_or(META_BLOCK, |t| t.block);
    let directory = if page::has_filter_columns(state.index) {
        directory::write_built(state.index, last_block + 1, element_tid.iter().copied().zip(state.tags.iter().copied()))
    } else {
        (META_BLOCK, META_BLOCK)
    };
    update_meta_after_build(state, graph, &element_tid, last_block, directory);
}

fn new_page(index: pg_sys::Relation, expected: u32) -> Locked {
    let locked = Locked::extend(index);
    if locked.block() != expected {
        error!("xhnsw: build expected block {expected}, got {}", locked.block());
    }
    page::init_page(locked.page());
    unsafe { pg_sys::MarkBufferDirty(locked.buffer) };
    locked
}

fn add_at(locked: &Locked, bytes: &[u8], expected: u16) {
    let offset = unsafe { page::add_item(locked.page(), bytes) };
    if offset != expected {
        error!("xhnsw: build expected offset {expected}, got {offset}");
    }
    unsafe { pg_sys::MarkBufferDirty(locked.buffer) };
}

fn update_meta_after_build(
    state: &BuildState,
    graph: &MemGraph<DistanceFn>,
    element_tid: &[Tid],
    last_block: u32,
    (directory_head, directory_tail): (u32, u32),
) {
    let locked = Locked::read(state.index, META_BLOCK, true);
    unsafe {
        let mut meta = page::read_meta(locked.page());
        meta.dims = state.dims as u32;
        if let Some(entry) = graph.entry_point() {
            meta.entry = element_tid[entry.id as usize];
            meta.entry_level = entry.level as u32;
        }
        meta.insert_page = last_block;
        meta.elements = element_tid.len() as u64;
        meta.directory_head = directory_head;
        meta.directory_tail = directory_tail;
        page::write_meta(locked.page(), &meta);
        pg_sys::MarkBufferDirty(locked.buffer);
    }
}

fn write_metapage(index: pg_sys::Relation, meta: &MetaPage) {
    let locked = Locked::extend(index);
    if locked.block() != META_BLOCK {
        error!("xhnsw: index relation is not empty");
    }
    page::init_page(locked.page());
    unsafe {
        page::write_meta(locked.page(), meta);
        pg_sys::MarkBufferDirty(locked.buffer);
    }
}

/// Full-page WAL images of every page written so far (the build itself is not logged).
fn log_all_pages(index: pg_sys::Relation) {
    unsafe {
        if (*(*index).rd_rel).relpersistence == pg_sys::RELPERSISTENCE_PERMANENT as std::ffi::c_char {
            let blocks = pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM);
            pg_sys::log_newpage_range(index, pg_sys::ForkNumber::MAIN_FORKNUM, 0, blocks, true);
        }
    }
}

/// Unlogged tables: the init fork holds an empty index (a metapage).
#[pg_guard]
pub unsafe extern "C-unwind" fn ambuildempty(index: pg_sys::Relation) {
    let (m, ef_construction) = options::index_options(index);
    let meta = new_meta(metric_of(index), column_dims(index), m, ef_construction);
    unsafe {
        let buffer = pg_sys::ReadBufferExtended(
            index,
            pg_sys::ForkNumber::INIT_FORKNUM,
            pg_sys::InvalidBlockNumber,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        );
        pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
        let page = pg_sys::BufferGetPage(buffer);
        page::init_page(page);
        page::write_meta(page, &meta);
        pg_sys::MarkBufferDirty(buffer);
        pg_sys::log_newpage_buffer(buffer, true);
        pg_sys::UnlockReleaseBuffer(buffer);
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn ambuildphasename(phase: i64) -> *mut std::ffi::c_char {
    let name: &'static std::ffi::CStr = match phase {
        PHASE_LOAD => c"loading tuples",
        PHASE_GRAPH => c"building graph",
        PHASE_WRITE => c"writing pages",
        _ => return std::ptr::null_mut(),
    };
    name.as_ptr() as *mut std::ffi::c_char
}
