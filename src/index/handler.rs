//! The access-method handler (what `CREATE ACCESS METHOD xhnsw` points at), the planner's cost
//! estimate, and opclass validation.

use pgrx::prelude::*;

use super::filter::{
    exact_beats_graph, expected_graph_visits, ranked_reads, GRAPH_VISIT_READS, SAMPLE_CHUNK,
};
use super::page::{
    buffer,
    format::{self, directory_capacity},
};
use super::ranked::code_pages_of;
use super::tags::TagColumns;
use super::{build, insert, options, scan, vacuum};

#[pg_extern(sql = false)]
fn xhnsw_handler(_fcinfo: pg_sys::FunctionCallInfo) -> PgBox<pg_sys::IndexAmRoutine> {
    let mut am =
        unsafe { PgBox::<pg_sys::IndexAmRoutine>::alloc_node(pg_sys::NodeTag::T_IndexAmRoutine) };
    am.amstrategies = 0;
    am.amsupport = 1;
    am.amcanorderbyop = true;
    am.amcanmulticol = true; // columns after the vector are filter columns
    am.amoptionalkey = true;
    // col = ANY (array), i.e. IN (...), checked inside the index: only on PostgreSQL 15, which
    // never makes it a condition of an ordered scan anyway. 18 does, and the filtered scan's
    // survey does not yet test array keys correctly there (pg_test/sql/xhnsw_filter.sql gave
    // recall under 0.9), so on 18 an IN list stays a filter after the index, as on 15.
    am.amsearcharray = cfg!(feature = "pg15");
    am.amkeytype = pg_sys::InvalidOid;
    am.amusemaintenanceworkmem = true;
    am.ambuild = Some(build::ambuild);
    am.ambuildempty = Some(build::ambuildempty);
    am.aminsert = Some(insert::aminsert);
    am.ambulkdelete = Some(vacuum::ambulkdelete);
    am.amvacuumcleanup = Some(vacuum::amvacuumcleanup);
    am.amcostestimate = Some(amcostestimate);
    am.amoptions = Some(options::amoptions);
    am.amvalidate = Some(amvalidate);
    am.ambuildphasename = Some(build::ambuildphasename);
    am.ambeginscan = Some(scan::ambeginscan);
    am.amrescan = Some(scan::amrescan);
    am.amgettuple = Some(scan::amgettuple);
    am.amendscan = Some(scan::amendscan);
    am.into_pg_boxed()
}

/// An operator class for vectors (one with support function 1) must order by the distance it
/// builds with: its strategy-1 operator must be implemented by support function 1, one of
/// the distances the graph knows. Classes without support function 1 are filter classes.
/// PostgreSQL calls this only for `amvalidate()`; a build checks the same (build.rs).
#[pg_guard]
unsafe extern "C-unwind" fn amvalidate(opclass: pg_sys::Oid) -> bool {
    unsafe {
        let family = pg_sys::get_opclass_family(opclass);
        let input = pg_sys::get_opclass_input_type(opclass);
        match build::ordering_problem(family, input) {
            None => true,
            Some(problem) => {
                ereport!(
                    INFO,
                    PgSqlErrorCode::ERRCODE_INVALID_OBJECT_DEFINITION,
                    problem
                );
                false
            }
        }
    }
}

/// Cost of a path the index must not take: above any real plan's, disable_cost included, and
/// finite, so that the planner's sums and products of costs stay numbers.
const DISABLED_COST: f64 = 1.0e100;

/// Does the path order by exactly one distance, to the index's first column? The graph
/// answers nothing else (scan.rs refuses other orderings).
unsafe fn orders_by_first_column(path: *mut pg_sys::IndexPath) -> bool {
    unsafe {
        pg_sys::list_length((*path).indexorderbys) == 1
            && pg_sys::list_nth_int((*path).indexorderbycols, 0) == 0
    }
}

/// The index is only useful for `ORDER BY vector-distance LIMIT k`. A search visits about
/// `8 * ef` elements (`ef`: the first batch, see resumable.rs) plus a few per layer of the
/// descent, divided by the selectivity of the filter-column clauses (it must reach that many
/// more elements to find enough matching ones), at most the table; all of it happens before
/// the first row, so it is startup cost. Returning every row would visit every element: that
/// is the total cost, so a query without LIMIT never prefers the index. Each visit reads one
/// element, mostly from shared buffers (the graph's hot part stays cached): a tenth of a
/// random page read, plus a distance.
///
/// With filter clauses the scan chooses its path as scan.rs does, from the same estimates: it
/// surveys the filter directory (a tag test per element, sequential pages), then either reads
/// the C elements whose tags pass (C: the selectivity of the clauses tags check, times the
/// table) and ranks the matches exactly, or searches the graph, which hands over to that exact
/// path after C visits at most.
#[pg_guard]
unsafe extern "C-unwind" fn amcostestimate(
    root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
    loop_count: f64,
    startup_cost: *mut pg_sys::Cost,
    total_cost: *mut pg_sys::Cost,
    selectivity: *mut pg_sys::Selectivity,
    correlation: *mut f64,
    pages: *mut f64,
) {
    unsafe {
        if !orders_by_first_column(path) {
            // Not usable without ORDER BY, or for another ordering: make sure the planner
            // never picks it. PostgreSQL 18 ranks disabled paths before costs (a seq scan
            // under enable_seqscan = off would lose to this one), so mark it disabled twice,
            // as pgvector does.
            #[cfg(feature = "pg18")]
            {
                (*path).path.disabled_nodes = 2;
            }
            *startup_cost = DISABLED_COST;
            *total_cost = DISABLED_COST;
            *selectivity = 0.0;
            *correlation = 0.0;
            *pages = 0.0;
            return;
        }
        let info = (*path).indexinfo;
        let tuples = (*info).tuples.max(1.0);
        let (m, tag_clauses, clauses, code_pages) = index_facts((*info).indexoid, path);
        let ef = options::EF_SEARCH.get() as usize;
        let per_visit = 0.1 * pg_sys::random_page_cost
            + pg_sys::cpu_index_tuple_cost
            + 4.0 * pg_sys::cpu_operator_cost;

        // Selectivity of the filter-column clauses (the ORDER BY has none).
        let mut costs: pg_sys::GenericCosts = std::mem::zeroed();
        pg_sys::genericcostestimate(root, path, loop_count, &mut costs);
        let filter_selectivity = costs.indexSelectivity.clamp(1.0 / tuples, 1.0);
        let graph = expected_graph_visits(ef, m, tuples, filter_selectivity);
        *selectivity = costs.indexSelectivity;
        *correlation = 0.0;
        *total_cost = tuples * per_visit;
        let limit = options::exact_filter_limit(tuples, ef) as f64;
        if clauses == 0 || limit == 0.0 {
            let visited = graph.min((options::MAX_SCAN_TUPLES.get() as f64).max(ef as f64));
            *startup_cost = visited * per_visit;
            *pages = (visited / tuples * (*info).pages as f64).ceil();
            return;
        }
        let relid = (*(*info).rel).relid as i32;
        let tag_selectivity = if tag_clauses.is_null() {
            1.0
        } else {
            pg_sys::clauselist_selectivity(
                root,
                tag_clauses,
                relid,
                pg_sys::JoinType::JOIN_INNER,
                std::ptr::null_mut(),
            )
        };
        let candidates = (tag_selectivity.max(filter_selectivity) * tuples).ceil();
        let directory_pages = (tuples / directory_capacity() as f64).ceil();
        let survey = directory_pages * pg_sys::seq_page_cost + tuples * pg_sys::cpu_operator_cost;
        let ranked_at_start = candidates <= limit || exact_beats_graph(candidates, graph);
        let (visited, read_cost) = if ranked_at_start {
            // Candidates are read in the directory's (physical) order, their lists never; over
            // codes, their code pages and the nearest of them.
            let reads = match code_pages {
                Some(code_pages) if candidates > limit => {
                    let matches = filter_selectivity * tuples;
                    ranked_reads(candidates, matches, code_pages, ef)
                }
                _ => candidates,
            };
            (reads, reads * per_visit / GRAPH_VISIT_READS)
        } else {
            // The graph path is costed where the choice is clear: its sample settles after
            // one chunk.
            let visits = graph + SAMPLE_CHUNK as f64;
            (visits, visits * per_visit)
        };
        *startup_cost = survey + read_cost;
        *pages = directory_pages + (visited / tuples * (*info).pages as f64).ceil();
        if ranked_at_start {
            // The directory or exact path reads and ranks every candidate before its first row:
            // the rest is handing them out, not the graph's worst case. (Costing it as a walk
            // of the whole graph made a LIMIT on 1% of the rows look dearer than a bitmap scan
            // and a sort, which ran 4x slower: bench/README.md.)
            *total_cost = *startup_cost + candidates * pg_sys::cpu_index_tuple_cost;
        }
    }
}

/// `m` of an index, the path's filter clauses that the filter directory's tags can check (as
/// a list of RestrictInfos, NIL for none), how many filter clauses the path has, and the
/// index's code pages when its exact path runs over codes (ranked.rs); the planner already
/// holds a lock on the index.
unsafe fn index_facts(
    oid: pg_sys::Oid,
    path: *mut pg_sys::IndexPath,
) -> (usize, *mut pg_sys::List, usize, Option<f64>) {
    unsafe {
        let index = pg_sys::index_open(oid, pg_sys::NoLock as _);
        let m = options::index_options(index).m;
        let meta = buffer::read_meta_of(index);
        let code_pages = code_pages_of(&meta)
            .filter(|_| !options::STRICT_ORDER.get())
            .map(|code_bytes| {
                (meta.coded_entries as f64 / format::codes_per_page(code_bytes) as f64).ceil()
            });
        let tags = TagColumns::of(index);
        pg_sys::index_close(index, pg_sys::NoLock as _);
        let info = (*path).indexinfo;
        let clauses = (*path).indexclauses;
        let mut tagged: *mut pg_sys::List = std::ptr::null_mut();
        let mut count = 0;
        for i in 0..pg_sys::list_length(clauses) {
            let clause = pg_sys::list_nth(clauses, i) as *mut pg_sys::IndexClause;
            let column = (*clause).indexcol as usize;
            let quals = (*clause).indexquals;
            for j in 0..pg_sys::list_length(quals) {
                let rinfo = pg_sys::list_nth(quals, j) as *mut pg_sys::RestrictInfo;
                count += 1;
                let Some(operator) = operator_of((*rinfo).clause) else {
                    continue;
                };
                let strategy =
                    pg_sys::get_op_opfamily_strategy(operator, *(*info).opfamily.add(column));
                if tags.checks(column, strategy as u16) {
                    tagged = pg_sys::lappend(tagged, rinfo as *mut std::ffi::c_void);
                }
            }
        }
        (m, tagged, count, code_pages)
    }
}

/// The operator of `col op value` or `col op ANY (array)`.
unsafe fn operator_of(clause: *mut pg_sys::Expr) -> Option<pg_sys::Oid> {
    unsafe {
        match (*clause).type_ {
            pg_sys::NodeTag::T_OpExpr => Some((*(clause as *mut pg_sys::OpExpr)).opno),
            pg_sys::NodeTag::T_ScalarArrayOpExpr => {
                Some((*(clause as *mut pg_sys::ScalarArrayOpExpr)).opno)
            }
            _ => None,
        }
    }
}
