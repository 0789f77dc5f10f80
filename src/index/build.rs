//! CREATE INDEX / REINDEX: read the table, build the graph in memory with several threads
//! (graph::MemGraph; the threads touch only Rust data), write it to pages in one pass and
//! WAL-log the pages as full images. When the vectors outgrow maintenance_work_mem, the graph
//! built so far is written out and the remaining rows are inserted on disk (NOTICE).
//!
//! The graph's memory (sized by maintenance_work_mem, which any user may set) is reserved
//! fallibly: a refusal is ERROR 53200, never an abort. The build's worker threads start with
//! every signal blocked, so Postgres' handlers run only on the main thread, which polls for
//! interrupts and stops the workers (then raises the cancel or timeout).

use pgrx::prelude::*;
use pgrx::PgMemoryContexts;
use std::collections::HashMap;
use std::ffi::c_void;

use super::code;
use super::directory;
use super::filter::extras_of;
use super::graph::{BuildControl, BuildHalt, DenseVisited, GraphStore, HnswParams, MemGraph};
use super::insert::insert_vector;
use super::options::{self, check_element_fits, check_index_dims, params_of, IndexOptions};
use super::page::{
    buffer::{self, Locked},
    format::{self, Layout, MetaPage, Storage, Tid, MAX_HEAP_TIDS, META_BLOCK},
};
use super::tags::TagColumns;
use crate::vector::error::VectorError;
use crate::vector::half::index_elements;
use crate::vector::metric::Metric;

const PHASE_LOAD: i64 = 2;
const PHASE_GRAPH: i64 = 3;
const PHASE_WRITE: i64 = 4;

type DistanceFn = Box<dyn Fn(&[f32], &[f32]) -> f32 + Send + Sync>;

struct BuildState {
    index: pg_sys::Relation,
    metric: Metric,
    dims: usize,
    storage: Storage,
    params: HnswParams,
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
    /// Whether layer-0 lists carry codes (`MetaPage::codes`).
    codes: bool,
    on_disk: bool,
    heap_tuples: f64,
    index_tuples: f64,
    tuple_context: PgMemoryContexts,
}

impl BuildState {
    fn layout(&self) -> Layout {
        Layout {
            dims: self.dims,
            storage: self.storage,
        }
    }
}

fn progress(param: u32, value: i64) {
    unsafe { pg_sys::pgstat_progress_update_param(param as i32, value) };
}

/// The metric a distance function computes, by its name.
fn metric_named(name: &str) -> Option<Metric> {
    match name {
        "l2_distance" => Some(Metric::L2),
        "cosine_distance" => Some(Metric::Cosine),
        "negative_inner_product" => Some(Metric::InnerProduct),
        "l1_distance" => Some(Metric::L1),
        _ => None,
    }
}

fn function_name(proc: pg_sys::Oid) -> String {
    let name = unsafe { pg_sys::get_func_name(proc) };
    if name.is_null() {
        return String::new();
    }
    unsafe { std::ffi::CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

/// What is wrong with the ordering of an operator family for type `input`; None when
/// nothing is, or when it has no support function 1 (a filter class). Support function 1 must
/// be a distance the graph knows and implement the strategy-1 operator, the one queries order
/// by: otherwise the graph would be built for one distance and ordered by another.
pub(crate) fn ordering_problem(family: pg_sys::Oid, input: pg_sys::Oid) -> Option<String> {
    unsafe {
        let proc = pg_sys::get_opfamily_proc(family, input, input, 1);
        if proc == pg_sys::InvalidOid {
            return None;
        }
        let name = function_name(proc);
        if metric_named(&name).is_none() {
            return Some(format!("xhnsw: support function 1 \"{name}\" is none of l2_distance, cosine_distance, negative_inner_product, l1_distance"));
        }
        let operator = pg_sys::get_opfamily_member(family, input, input, 1);
        if operator == pg_sys::InvalidOid || pg_sys::get_opcode(operator) != proc {
            return Some(format!("xhnsw: the operator of strategy 1 is not implemented by support function 1 \"{name}\""));
        }
        None
    }
}

/// The opclass's support function 1 names the metric.
fn metric_of(index: pg_sys::Relation) -> Metric {
    unsafe {
        let proc = pg_sys::index_getprocid(index, 1, 1);
        if proc == pg_sys::InvalidOid {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                "xhnsw: the first column of an xhnsw index must be an xvector (with an xvector operator class)"
            );
        }
        if let Some(problem) = ordering_problem(*(*index).rd_opfamily, *(*index).rd_opcintype) {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_OBJECT_DEFINITION,
                problem
            );
        }
        metric_named(&function_name(proc)).expect("ordering_problem checks the name")
    }
}

/// Declared dimension of the indexed column, or 0.
fn column_dims(index: pg_sys::Relation) -> usize {
    unsafe {
        // PgTupleDesc reads attributes the way each PostgreSQL version lays them out.
        let desc = pgrx::PgTupleDesc::from_pg_unchecked((*index).rd_att);
        let typmod = desc.get(0).map_or(-1, |attr| attr.atttypmod);
        typmod.max(0) as usize
    }
}

/// Float2 elements for an index on xhalfvec (the input type of its operator class), whose
/// values are float2 already; float4 otherwise.
fn column_storage(index: pg_sys::Relation) -> Storage {
    // format_type_be_qualified gives schema.name; the type name itself never needs quoting.
    let name = unsafe {
        std::ffi::CStr::from_ptr(pg_sys::format_type_be_qualified(*(*index).rd_opcintype))
    };
    match name.to_bytes().rsplit(|&b| b == b'.').next() {
        Some(b"xhalfvec") => Storage::Float2,
        _ => Storage::Float4,
    }
}

/// The element layout an index on this column gets (dims 0 for an unconstrained column).
fn column_layout(index: pg_sys::Relation) -> Layout {
    Layout {
        dims: column_dims(index),
        storage: column_storage(index),
    }
}

fn new_meta(metric: Metric, layout: Layout, options: IndexOptions) -> MetaPage {
    MetaPage {
        magic: format::MAGIC,
        version: format::VERSION,
        dims: layout.dims as u32,
        storage: layout.storage as u32,
        m: options.m as u32,
        ef_construction: options.ef_construction as u32,
        keep_pruned: options.keep_pruned as u32,
        codes: if options.codes && code::supports(metric) {
            2 // upper lists too (format 6)
        } else {
            0
        },
        centroid_block: META_BLOCK,
        metric: metric as u32,
        entry: Tid::INVALID,
        entry_level: 0,
        insert_page: META_BLOCK,
        elements: 0,
        directory_head: META_BLOCK,
        directory_tail: META_BLOCK,
        code_pages: META_BLOCK,
        coded_entries: 0,
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn ambuild(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
) -> *mut pg_sys::IndexBuildResult {
    let options = options::index_options(index);
    let (m, ef_construction) = (options.m, options.ef_construction);
    if ef_construction < m {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("xhnsw: ef_construction ({ef_construction}) must be at least m ({m})")
        );
    }
    let metric = metric_of(index);
    let layout = column_layout(index);
    check_index_dims(layout);
    let meta = new_meta(metric, layout, options);
    let mut state = BuildState {
        index,
        metric,
        dims: layout.dims,
        storage: layout.storage,
        params: params_of(&meta),
        graph: None,
        heap_tids: Vec::new(),
        extras: Vec::new(),
        tags: Vec::new(),
        tag_columns: TagColumns::of(index),
        by_hash: HashMap::new(),
        memory_limit: unsafe { pg_sys::maintenance_work_mem } as usize * 1024,
        codes: meta.codes != 0,
        on_disk: false,
        heap_tuples: 0.0,
        index_tuples: 0.0,
        tuple_context: PgMemoryContexts::new("xhnsw build tuple"),
    };
    write_metapage(index, &meta);

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
        let result = pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBuildResult>())
            as *mut pg_sys::IndexBuildResult;
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
    let mut context = std::mem::replace(
        &mut state.tuple_context,
        PgMemoryContexts::CurrentMemoryContext,
    );
    context.switch_to(|_| {
        let vector = unsafe { index_elements(*values) };
        let extras = unsafe { extras_of(state.index, values, isnull) };
        let tag = unsafe { state.tag_columns.tag(values, isnull) };
        add_tuple(state, heap_tid, &vector, extras, tag);
    });
    unsafe { context.reset() };
    state.tuple_context = context;
    progress(
        pg_sys::PROGRESS_CREATEIDX_TUPLES_DONE,
        state.heap_tuples as i64,
    );
}

fn add_tuple(state: &mut BuildState, heap_tid: Tid, raw: &[f32], extras: Vec<u8>, tag: u64) {
    if state.on_disk {
        insert_vector(state.index, heap_tid, raw, &extras, tag);
        state.index_tuples += 1.0;
        return;
    }
    let Some(vector) = state.metric.prepare(raw) else {
        return;
    };
    if state.dims == 0 {
        check_index_dims(Layout {
            dims: vector.len(),
            storage: state.storage,
        });
        state.dims = vector.len();
    } else if vector.len() != state.dims {
        VectorError::dimension_mismatch(state.dims, vector.len()).raise();
    }
    check_element_fits(state.layout(), &extras);
    state.index_tuples += 1.0;
    if join_duplicate(state, heap_tid, &vector, &extras) {
        return;
    }
    let metric = state.metric;
    let (dims, params) = (state.dims, state.params);
    let graph = state.graph.get_or_insert_with(|| {
        let distance: DistanceFn = Box::new(move |a: &[f32], b: &[f32]| metric.distance(a, b));
        MemGraph::new(dims, params, distance, 0x5eed)
    });
    let reserved = state.heap_tids.try_reserve(1).is_ok()
        && state.extras.try_reserve(1).is_ok()
        && state.tags.try_reserve(1).is_ok()
        && state.by_hash.try_reserve(1).is_ok();
    let Some(id) = graph.try_push(&vector).ok().filter(|_| reserved) else {
        out_of_memory()
    };
    state.heap_tids.push(vec![heap_tid]);
    state.extras.push(extras);
    state.tags.push(tag);
    state
        .by_hash
        .entry(hash_bits(&vector))
        .or_default()
        .push(id);

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
    let (Some(graph), Some(candidates)) = (&state.graph, state.by_hash.get(&hash_bits(vector)))
    else {
        return false;
    };
    for &id in candidates {
        let same = graph
            .vector(id)
            .iter()
            .zip(vector)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        let tids = &mut state.heap_tids[id as usize];
        if same && state.extras[id as usize] == extras && tids.len() < MAX_HEAP_TIDS {
            tids.push(heap_tid);
            return true;
        }
    }
    false
}

/// Bytes the in-memory build holds: vectors, neighbour lists, TIDs, the hash table, the
/// visited sets of the build's threads and of its reachability pass, and the codes written
/// with the lists.
fn graph_memory(state: &BuildState) -> usize {
    let nodes = state.heap_tids.len();
    let extras: usize = state.extras.iter().map(|e| e.len() + 24).sum();
    // Budgeted for the most threads the setting allows, so the figure does not depend on the
    // machine's cores.
    let sets = unsafe { pg_sys::max_parallel_maintenance_workers }.max(0) as usize + 2;
    let visited = sets * DenseVisited::bytes_for(nodes);
    let codes = if state.codes {
        format::code_bytes_for(state.params.m, state.dims).unwrap_or(0)
    } else {
        0
    };
    nodes
        * (state.dims * 4
            + codes
            + MemGraph::<DistanceFn>::list_bytes_per_node(state.params.m)
            + 64
            + 48)
        + extras
        + visited
}

/// ERROR 53200: the build's memory could not be reserved.
fn out_of_memory() -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
        "xhnsw: out of memory for the in-memory graph; lower maintenance_work_mem so that the build continues on disk sooner"
    );
}

fn build_threads() -> usize {
    unsafe { pg_sys::max_parallel_maintenance_workers + 1 }.clamp(
        1,
        std::thread::available_parallelism().map_or(1, |n| n.get() as i32),
    ) as usize
}

/// The backend's side of a graph build: interrupts stop it, worker threads start with every
/// signal blocked.
struct Backend;

impl BuildControl for Backend {
    fn stop(&mut self) -> bool {
        // As INTERRUPTS_PENDING_CONDITION and INTERRUPTS_CAN_BE_PROCESSED: stop only for an
        // interrupt that CHECK_FOR_INTERRUPTS will serve.
        unsafe {
            std::ptr::read_volatile(&raw const pg_sys::InterruptPending) != 0
                && std::ptr::read_volatile(&raw const pg_sys::InterruptHoldoffCount) == 0
                && std::ptr::read_volatile(&raw const pg_sys::CritSectionCount) == 0
        }
    }

    fn spawning(&mut self, spawn: &mut dyn FnMut()) {
        crate::embed::pipeline::runtime::with_signals_blocked(spawn)
    }
}

/// Build the graph, serving interrupts: a stopped build raises the pending cancel or timeout,
/// or carries on when the interrupt was of another kind.
fn build_graph(graph: &mut MemGraph<DistanceFn>, threads: usize) {
    loop {
        match graph.build(threads, &mut Backend) {
            Ok(_) => return,
            Err(BuildHalt::Stopped) => {
                pgrx::check_for_interrupts!();
            }
            Err(BuildHalt::OutOfMemory) => out_of_memory(),
        }
    }
}

/// Build the in-memory graph, write it to pages after the metapage, log them.
fn flush(state: &mut BuildState) {
    let Some(mut graph) = state.graph.take() else {
        log_all_pages(state.index);
        return;
    };
    progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_GRAPH);
    build_graph(&mut graph, build_threads());
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
    let usable = format::page_usable_space();
    // First pass: addresses. Items are appended in order, so offsets are predictable.
    let (mut element_tid, mut neighbour_tid) = (Vec::new(), Vec::new());
    if element_tid.try_reserve_exact(n as usize).is_err()
        || neighbour_tid.try_reserve_exact(n as usize).is_err()
    {
        out_of_memory();
    }
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
    let m = state.params.m;
    let code_layout = state
        .codes
        .then(|| format::code_bytes_for(m, state.dims))
        .flatten()
        .map(|code_bytes| format::CodeLayout {
            code_bytes,
            upper: true,
        });
    for id in 0..n {
        element_tid.push(place(format::element_size(
            state.layout(),
            state.extras[id as usize].len(),
        )));
        neighbour_tid.push(place(format::neighbour_item_size(
            m,
            graph.level(id),
            code_layout,
        )));
    }
    let coded = code_layout.map(|layout| (layout, encode_all(graph, layout.code_bytes)));
    // Second pass: fill pages in block order.
    let mut current: Option<Locked> = None;
    let mut list = Vec::new();
    let mut tids = Vec::new();
    for id in 0..n {
        if id % 1024 == 0 {
            pgrx::check_for_interrupts!();
        }
        let level = graph.level(id);
        let e_tid = element_tid[id as usize];
        if current.as_ref().is_none_or(|c| c.block() != e_tid.block) {
            current = Some(new_page(state.index, e_tid.block));
        }
        let element = format::encode_element(
            level,
            neighbour_tid[id as usize],
            &state.heap_tids[id as usize],
            graph.vector(id),
            state.storage,
            &state.extras[id as usize],
        );
        add_at(current.as_ref().unwrap(), &element, e_tid.offset);

        let n_tid = neighbour_tid[id as usize];
        if current.as_ref().is_none_or(|c| c.block() != n_tid.block) {
            current = Some(new_page(state.index, n_tid.block));
        }
        let mut item = format::encode_coded_neighbours(m, level, code_layout);
        for layer in 0..=level {
            graph.neighbours(id, layer, &mut list);
            tids.clear();
            tids.extend(list.iter().map(|&nb| element_tid[nb as usize]));
            format::put_neighbours(&mut item, m, layer, &tids).expect("an item just encoded");
            if let Some((layout, codes)) = &coded {
                let cb = layout.code_bytes;
                let listed: Vec<u8> = list
                    .iter()
                    .flat_map(|&nb| &codes.codes[nb as usize * cb..(nb as usize + 1) * cb])
                    .copied()
                    .collect();
                format::put_codes(&mut item, m, *layout, layer, &listed)
                    .expect("an item just encoded");
            }
        }
        add_at(current.as_ref().unwrap(), &item, n_tid.offset);
    }
    drop(current);
    let last_block = neighbour_tid.last().map_or(META_BLOCK, |t| t.block);
    // The centroid gets a page of its own after the graph's, where inserts do not look.
    let centroid_block = match &coded {
        Some((_, codes)) => {
            let page = new_page(state.index, last_block + 1);
            add_at(&page, &format::encode_centroid(&codes.centroid), 1);
            last_block + 1
        }
        None => META_BLOCK,
    };
    let (directory, code_pages) = if buffer::has_filter_columns(state.index) {
        let directory = directory::write_built(
            state.index,
            last_block.max(centroid_block) + 1,
            element_tid.iter().copied().zip(state.tags.iter().copied()),
        );
        let code_pages = coded.as_ref().and_then(|(layout, codes)| {
            write_code_pages(state.index, &codes.codes, layout.code_bytes)
        });
        (directory, code_pages)
    } else {
        ((META_BLOCK, META_BLOCK), None)
    };
    update_meta_after_build(
        state,
        graph,
        &element_tid,
        last_block,
        directory,
        centroid_block,
        code_pages,
    );
}

/// The code of each element in the directory's order (node order), on consecutive pages after
/// the directory's (ranked.rs reads them); their first block, None when there are no nodes.
fn write_code_pages(index: pg_sys::Relation, codes: &[u8], code_bytes: usize) -> Option<u32> {
    let per_page = format::codes_per_page(code_bytes) * code_bytes;
    let first = buffer::block_count(index);
    for (i, chunk) in codes.chunks(per_page).enumerate() {
        pgrx::check_for_interrupts!();
        let page = new_page(index, first + i as u32);
        add_at(&page, &format::encode_code_page(chunk, code_bytes), 1);
    }
    (!codes.is_empty()).then_some(first)
}

/// Every node's code, and the centroid they are taken around (the nodes' mean).
struct Codes {
    centroid: Vec<f32>,
    codes: Vec<u8>,
}

fn encode_all(graph: &MemGraph<DistanceFn>, code_bytes: usize) -> Codes {
    let n = graph.len();
    let centroid = code::centroid((0..n as u32).map(|id| graph.vector(id)), graph.dim());
    let mut codes = Vec::new();
    if codes.try_reserve_exact(n * code_bytes).is_err() {
        out_of_memory();
    }
    codes.resize(n * code_bytes, 0);
    for (id, out) in codes.chunks_exact_mut(code_bytes).enumerate() {
        if id % 1024 == 0 {
            pgrx::check_for_interrupts!();
        }
        code::encode(&centroid, graph.vector(id as u32), out);
    }
    Codes { centroid, codes }
}

fn new_page(index: pg_sys::Relation, expected: u32) -> Locked {
    let locked = Locked::extend(index);
    if locked.block() != expected {
        error!(
            "xhnsw: build expected block {expected}, got {}",
            locked.block()
        );
    }
    buffer::init_page(locked.page());
    unsafe { pg_sys::MarkBufferDirty(locked.buffer) };
    locked
}

fn add_at(locked: &Locked, bytes: &[u8], expected: u16) {
    let offset = unsafe { buffer::add_item(locked.page(), bytes) };
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
    centroid_block: u32,
    code_pages: Option<u32>,
) {
    let locked = Locked::read(state.index, META_BLOCK, true);
    unsafe {
        let mut meta = buffer::read_meta(locked.page());
        meta.dims = state.dims as u32;
        if let Some(entry) = graph.entry_point() {
            meta.entry = element_tid[entry.id as usize];
            meta.entry_level = entry.level as u32;
        }
        meta.insert_page = last_block;
        meta.elements = element_tid.len() as u64;
        meta.directory_head = directory_head;
        meta.directory_tail = directory_tail;
        meta.centroid_block = centroid_block;
        if let Some(first) = code_pages {
            meta.code_pages = first;
            meta.coded_entries = element_tid.len() as u32;
        }
        buffer::write_meta(locked.page(), &meta);
        pg_sys::MarkBufferDirty(locked.buffer);
    }
}

fn write_metapage(index: pg_sys::Relation, meta: &MetaPage) {
    let locked = Locked::extend(index);
    if locked.block() != META_BLOCK {
        error!("xhnsw: index relation is not empty");
    }
    buffer::init_page(locked.page());
    unsafe {
        buffer::write_meta(locked.page(), meta);
        pg_sys::MarkBufferDirty(locked.buffer);
    }
}

/// Full-page WAL images of every page written so far (the build itself is not logged).
fn log_all_pages(index: pg_sys::Relation) {
    unsafe {
        if (*(*index).rd_rel).relpersistence == pg_sys::RELPERSISTENCE_PERMANENT as std::ffi::c_char
        {
            let blocks = buffer::block_count(index);
            pg_sys::log_newpage_range(index, pg_sys::ForkNumber::MAIN_FORKNUM, 0, blocks, true);
        }
    }
}

/// Unlogged tables: the init fork holds an empty index (a metapage).
#[pg_guard]
pub unsafe extern "C-unwind" fn ambuildempty(index: pg_sys::Relation) {
    let meta = new_meta(
        metric_of(index),
        column_layout(index),
        options::index_options(index),
    );
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
        buffer::init_page(page);
        buffer::write_meta(page, &meta);
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
