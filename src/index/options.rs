//! xhnsw's knobs: index options (`WITH (m = 16, ef_construction = 64, keep_pruned = on,
//! codes = on)`), the graph parameters an index's metapage implies, and GUCs
//! (`xhnsw.ef_search`, `xhnsw.max_scan_tuples`, `xhnsw.strict_order`,
//! `xhnsw.exact_filter_limit`), and the limits that build and insert check before writing
//! (dimensions, an element's size).

use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::sync::atomic::{AtomicU32, Ordering};

use super::graph::HnswParams;
use super::page::format::{self, Layout, MetaPage, Storage};
use crate::vector::error::VectorError;

pub const DEFAULT_M: i32 = 16;
pub const DEFAULT_EF_CONSTRUCTION: i32 = 64;
pub const DEFAULT_KEEP_PRUNED: bool = true;
pub const DEFAULT_CODES: bool = true;
/// Limits of the `m` and `ef_construction` options (also checked in every metapage read).
pub const MIN_M: usize = 2;
pub const MAX_M: usize = 100;
pub const MAX_EF_CONSTRUCTION: usize = 1000;

pub static EF_SEARCH: GucSetting<i32> = GucSetting::<i32>::new(40);
pub static MAX_SCAN_TUPLES: GucSetting<i32> = GucSetting::<i32>::new(20000);
pub static STRICT_ORDER: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static EXACT_FILTER_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(-1);

/// Most index elements a filtered scan ranks exactly (found through the filter directory)
/// instead of searching the graph; `elements` is the index's size. A graph search under a
/// filter that a fraction p of the elements pass visits about EXACT_VERSUS_GRAPH * ef / p
/// elements; ranking the k = p * elements matches exactly reads k. The two meet at
/// k = sqrt(EXACT_VERSUS_GRAPH * ef * elements) (calibrated in bench/README.md).
pub fn exact_filter_limit(elements: f64, ef: usize) -> usize {
    const EXACT_VERSUS_GRAPH: f64 = 8.0;
    let limit = match EXACT_FILTER_LIMIT.get() {
        -1 => (EXACT_VERSUS_GRAPH * ef as f64 * elements).sqrt() as usize,
        n => n as usize,
    };
    limit.min(MAX_SCAN_TUPLES.get() as usize)
}

static RELOPT_KIND: AtomicU32 = AtomicU32::new(0);

/// The parsed `WITH (...)` options, laid out as build_reloptions fills them.
#[repr(C)]
pub struct Options {
    vl_len: i32,
    pub m: i32,
    pub ef_construction: i32,
    pub keep_pruned: bool,
    pub codes: bool,
}

pub fn init() {
    GucRegistry::define_int_guc(
        c"xhnsw.ef_search",
        c"Size of the candidate list of an xhnsw index scan",
        c"Larger finds more of the true nearest neighbours (recall) at the cost of speed.",
        &EF_SEARCH,
        1,
        1000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"xhnsw.max_scan_tuples",
        c"Most index elements one xhnsw scan visits when the executor keeps asking for rows",
        c"Bounds the iterative scan used when a WHERE clause removes rows; a NOTICE says when it is reached. Scans check for interrupts as they go, so statement_timeout and cancel stop them at any setting.",
        &MAX_SCAN_TUPLES,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"xhnsw.strict_order",
        c"Never return a row closer than one already returned",
        c"Off (default): rows come in near distance order and none is lost. On: exact order, but rows the search finds late are skipped; searches and exact paths use full precision only, not codes.",
        &STRICT_ORDER,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"xhnsw.exact_filter_limit",
        c"Most matching index elements a filtered xhnsw scan ranks exactly instead of searching the graph",
        c"When the filter-column clauses match at most this many elements, the scan finds them in the index's filter directory and returns them in exact distance order. -1 (default): chosen from the index size and xhnsw.ef_search; 0: always search the graph.",
        &EXACT_FILTER_LIMIT,
        -1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    unsafe {
        let kind = pg_sys::add_reloption_kind();
        RELOPT_KIND.store(kind as u32, Ordering::Relaxed);
        pg_sys::add_int_reloption(
            kind as _,
            c"m".as_ptr(),
            c"Neighbours per element (layer 0 keeps 2m)".as_ptr(),
            DEFAULT_M,
            MIN_M as i32,
            MAX_M as i32,
            pg_sys::AccessExclusiveLock as _,
        );
        pg_sys::add_int_reloption(
            kind as _,
            c"ef_construction".as_ptr(),
            c"Candidate list size while building the graph".as_ptr(),
            DEFAULT_EF_CONSTRUCTION,
            4,
            MAX_EF_CONSTRUCTION as i32,
            pg_sys::AccessExclusiveLock as _,
        );
        pg_sys::add_bool_reloption(
            kind as _,
            c"keep_pruned".as_ptr(),
            c"Fill neighbour lists with the closest candidates the selection heuristic pruned"
                .as_ptr(),
            DEFAULT_KEEP_PRUNED,
            pg_sys::AccessExclusiveLock as _,
        );
        pg_sys::add_bool_reloption(
            kind as _,
            c"codes".as_ptr(),
            c"Keep a one-bit code of each neighbour in layer-0 lists, so that a search reads one page per element it expands"
                .as_ptr(),
            DEFAULT_CODES,
            pg_sys::AccessExclusiveLock as _,
        );
    }
}

/// amoptions callback.
#[pg_guard]
pub unsafe extern "C-unwind" fn amoptions(
    reloptions: pg_sys::Datum,
    validate: bool,
) -> *mut pg_sys::bytea {
    let table = [
        pg_sys::relopt_parse_elt {
            optname: c"m".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(Options, m) as i32,
            // PostgreSQL 18's isset_offset: 0 = not recorded.
            ..Default::default()
        },
        pg_sys::relopt_parse_elt {
            optname: c"ef_construction".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
            offset: std::mem::offset_of!(Options, ef_construction) as i32,
            ..Default::default()
        },
        pg_sys::relopt_parse_elt {
            optname: c"keep_pruned".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_BOOL,
            offset: std::mem::offset_of!(Options, keep_pruned) as i32,
            ..Default::default()
        },
        pg_sys::relopt_parse_elt {
            optname: c"codes".as_ptr(),
            opttype: pg_sys::relopt_type::RELOPT_TYPE_BOOL,
            offset: std::mem::offset_of!(Options, codes) as i32,
            ..Default::default()
        },
    ];
    unsafe {
        pg_sys::build_reloptions(
            reloptions,
            validate,
            RELOPT_KIND.load(Ordering::Relaxed) as _,
            std::mem::size_of::<Options>(),
            table.as_ptr(),
            table.len() as i32,
        ) as *mut pg_sys::bytea
    }
}

/// The `WITH (...)` options of an index.
#[derive(Clone, Copy, Debug)]
pub struct IndexOptions {
    pub m: usize,
    pub ef_construction: usize,
    pub keep_pruned: bool,
    pub codes: bool,
}

/// An index's options, defaults where none were given.
pub(crate) fn index_options(index: pg_sys::Relation) -> IndexOptions {
    unsafe {
        let opts = (*index).rd_options as *const Options;
        if opts.is_null() {
            IndexOptions {
                m: DEFAULT_M as usize,
                ef_construction: DEFAULT_EF_CONSTRUCTION as usize,
                keep_pruned: DEFAULT_KEEP_PRUNED,
                codes: DEFAULT_CODES,
            }
        } else {
            IndexOptions {
                m: (*opts).m as usize,
                ef_construction: (*opts).ef_construction as usize,
                keep_pruned: (*opts).keep_pruned,
                codes: (*opts).codes,
            }
        }
    }
}

/// The graph parameters of an index: build, inserts and VACUUM all take them from here.
pub fn params_of(meta: &MetaPage) -> HnswParams {
    let m = meta.m as usize;
    HnswParams {
        max_level: format::max_level_for(m),
        keep_pruned: meta.keep_pruned != 0,
        ..HnswParams::new(m, meta.ef_construction as usize)
    }
}

/// ERROR unless an index on vectors of this layout can hold them (an element, with its
/// header, fits in one page).
pub fn check_index_dims(layout: Layout) {
    let max = layout.storage.max_dims();
    if layout.dims > max {
        let of = match layout.storage {
            Storage::Float4 => "xvector",
            Storage::Float2 => "xhalfvec",
        };
        VectorError::new(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "xhnsw indexes on {of} support at most {max} dimensions, not {}",
                layout.dims
            ),
        )
        .raise();
    }
}

/// An element must fit in a page with its line pointer (its neighbour item, at any level,
/// fits on another page: `format::max_level_for`).
pub fn check_element_fits(layout: Layout, extras: &[u8]) {
    let size = format::element_size(layout, extras.len());
    if size + std::mem::size_of::<pg_sys::ItemIdData>() > format::page_usable_space()
        || extras.len() > u16::MAX as usize
    {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("xhnsw: an index entry of {size} bytes does not fit in a page (the filter columns' values are too large)")
        );
    }
}
