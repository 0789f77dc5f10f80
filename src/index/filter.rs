//! Filter columns: `CREATE INDEX ... USING xhnsw (emb, category, tenant_id)` stores the values
//! of the columns after the vector in each element, as an index tuple whose vector column is
//! NULL. A scan turns the WHERE clauses the planner hands to the index (scan keys, `IN (...)`
//! lists included) into a predicate that the graph search checks for each element it reaches,
//! before any heap access. Non-matching elements are still traversed, so the search stays
//! connected however selective the filter is. The keys that tags can check (tags.rs) also
//! give the test a scan applies to the filter directory (directory.rs). The cost model shared
//! by the scan's choice of path and the planner's estimate is here too.

use pgrx::prelude::*;
use pgrx::PgMemoryContexts;

use super::resumable::narrowed_ef;
use super::tags::{TagColumns, TagFilter};

/// The extra columns of one row as index-tuple bytes; empty for a single-column index.
///
/// # Safety
/// `values`/`isnull` must hold one entry per index column.
pub unsafe fn extras_of(
    index: pg_sys::Relation,
    values: *const pg_sys::Datum,
    isnull: *const bool,
) -> Vec<u8> {
    unsafe {
        let desc = (*index).rd_att;
        let natts = (*desc).natts as usize;
        if natts <= 1 {
            return Vec::new();
        }
        let mut vals: Vec<pg_sys::Datum> = std::slice::from_raw_parts(values, natts).to_vec();
        let mut nulls: Vec<bool> = std::slice::from_raw_parts(isnull, natts).to_vec();
        vals[0] = pg_sys::Datum::from(0usize); // the vector is stored once, in the element
        nulls[0] = true;
        let tuple = pg_sys::index_form_tuple(desc, vals.as_mut_ptr(), nulls.as_mut_ptr());
        let size = ((*tuple).t_info as u32 & pg_sys::INDEX_SIZE_MASK) as usize;
        let bytes = std::slice::from_raw_parts(tuple as *const u8, size).to_vec();
        pg_sys::pfree(tuple as *mut std::ffi::c_void);
        bytes
    }
}

struct Key {
    column: usize,
    strategy: u16,
    func: *mut pg_sys::FmgrInfo,
    collation: pg_sys::Oid,
    /// The right-hand side; several for `col = ANY (array)`, none for a NULL (matches nothing).
    arguments: Vec<pg_sys::Datum>,
}

pub struct KeyFilter {
    desc: pg_sys::TupleDesc,
    keys: Vec<Key>,
    /// The tests of the keys that tags can check.
    tags: TagFilter,
    values: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
    /// Reset after each element. Owned by the scan's memory context, which deletes it: never
    /// delete it here (Postgres deletes child contexts before the callback that drops us).
    scratch: pg_sys::MemoryContext,
}

/// A memory context that lives, and dies, with the current one.
pub fn child_context(name: &'static std::ffi::CStr) -> pg_sys::MemoryContext {
    unsafe {
        pg_sys::AllocSetContextCreateExtended(
            pg_sys::CurrentMemoryContext,
            name.as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        )
    }
}

impl KeyFilter {
    /// The scan's keys as a filter; None when there are none.
    ///
    /// # Safety
    /// `scan` must be a live index scan whose keyData was set by amrescan.
    pub unsafe fn from_scan(
        scan: pg_sys::IndexScanDesc,
        scratch: pg_sys::MemoryContext,
    ) -> Option<KeyFilter> {
        unsafe {
            let count = (*scan).numberOfKeys as usize;
            if count == 0 {
                return None;
            }
            let desc = (*(*scan).indexRelation).rd_att;
            let natts = (*desc).natts as usize;
            let keys: Vec<Key> = (0..count)
                .map(|i| key_of(&mut *(*scan).keyData.add(i)))
                .collect();
            let columns = TagColumns::of((*scan).indexRelation);
            let tags = TagFilter::new(
                keys.iter()
                    .filter_map(|k| columns.test(k.column, k.strategy, &k.arguments))
                    .collect(),
            );
            Some(KeyFilter {
                desc,
                keys,
                tags,
                values: vec![pg_sys::Datum::from(0usize); natts],
                nulls: vec![true; natts],
                scratch,
            })
        }
    }

    /// The tag tests of the keys that tags can check (none: every tag passes).
    pub fn tag_filter(&self) -> &TagFilter {
        &self.tags
    }

    /// False when an element with this tag certainly fails the filter.
    #[inline]
    pub fn may_match(&self, tag: u64) -> bool {
        self.tags.may_match(tag)
    }

    /// Does an element with these extras satisfy every key?
    pub fn matches(&mut self, extras: &[u8]) -> bool {
        if extras.is_empty() {
            return false;
        }
        let Self {
            desc,
            keys,
            values,
            nulls,
            scratch,
            ..
        } = self;
        // Operators may detoast or allocate: do it in a context reset after each element.
        // SAFETY: the closure allocates only in `scratch`, which is reset right after.
        let result = unsafe {
            PgMemoryContexts::For(*scratch).switch_to(|_| {
                // SAFETY: extras is a MAXALIGNed index tuple formed by extras_of for this index.
                pg_sys::index_deform_tuple(
                    extras.as_ptr() as pg_sys::IndexTuple,
                    *desc,
                    values.as_mut_ptr(),
                    nulls.as_mut_ptr(),
                );
                keys.iter().all(|key| {
                    !nulls[key.column]
                        && key.arguments.iter().any(|arg| {
                            pg_sys::FunctionCall2Coll(
                                key.func,
                                key.collation,
                                values[key.column],
                                *arg,
                            )
                            .value()
                                != 0
                        })
                })
            })
        };
        unsafe { pg_sys::MemoryContextReset(*scratch) };
        result
    }
}

/// Whether reading and ranking `candidates` elements beats a graph search expected to visit
/// `graph_visits`. A visit costs about two candidate reads (its neighbour list too, in random
/// order, where candidates are read in physical order), and the estimate assumes matches
/// spread evenly: a real category lies in a region of the space, often away from the query,
/// where the search visits far more. On fashion-mnist's classes (10%, 6,000 candidates against
/// an estimate of 3,360 visits) the graph search answered 27-53 queries/s at recall 0.70-0.99,
/// the exact path 84-93 at recall 1.000 (bench/filter/class_paths.sh, bench/README.md).
pub fn exact_beats_graph(candidates: f64, graph_visits: f64) -> bool {
    GRAPH_VISIT_READS * graph_visits >= candidates
}

/// Pages the exact path over codes (ranked.rs) reads for `candidates` of which `matches` pass
/// the filter: the code pages holding their codes, then the candidates nearest by their
/// bounds, about `10 * ef` (the bounds' slack) plus `ef` per fraction of candidates that
/// match. On fashion-mnist at ef 40 a scan read 1,670 pages for a class of 6,000 (this says
/// 1,475, plus the directory twice, the heap and the metapage: about 1,700) and 2,078 for the
/// class and a 10% range (1,835: about 2,060).
pub fn ranked_reads(candidates: f64, matches: f64, code_pages: f64, ef: usize) -> f64 {
    let ef = ef as f64;
    let nearest = 10.0 * ef + ef * candidates / matches.max(1.0);
    candidates.min(code_pages) + candidates.min(nearest)
}

/// What one graph visit costs in candidate reads (see [`exact_beats_graph`]).
pub const GRAPH_VISIT_READS: f64 = 2.0;

/// Elements a graph search visits to fill its first batch under a filter that a fraction
/// `selectivity` of the index's `elements` pass: about 8 times the (narrowed) result set,
/// plus a descent, divided by the selectivity; at most every element.
pub fn expected_graph_visits(ef: usize, m: usize, elements: f64, selectivity: f64) -> f64 {
    let ef = if selectivity < 0.5 {
        narrowed_ef(ef)
    } else {
        ef
    };
    ((8.0 * ef as f64 + elements.max(1.0).ln() * m as f64)
        / selectivity.max(1.0 / elements.max(1.0)))
    .min(elements)
}

/// Candidates of a sample read between two looks at the pass rate (see [`sampled_choice`]).
pub const SAMPLE_CHUNK: usize = 32;

/// What a sample of the candidates decided, and the pass rate it saw.
pub struct SampledChoice {
    pub yes: bool,
    pub pass_rate: f64,
}

/// A yes/no choice that depends on the share of the candidates that pass the whole filter
/// (`yes_at`, monotonic in it), made from a random sample of them, of which `passes` reads
/// one and says whether it passes. The sample is read a chunk at a time and reading stops as
/// soon as the choice is the same at both ends of the pass rate's confidence interval
/// (Wilson, three standard errors): for [`exact_beats_graph`], a broad filter far from the
/// threshold (a range that most rows pass, a category every candidate is in) settles after one
/// chunk instead of `len` element reads, about as many pages as the graph search itself
/// reads. Otherwise the whole sample decides.
pub fn sampled_choice(
    len: usize,
    mut passes: impl FnMut(usize) -> bool,
    yes_at: impl Fn(f64) -> bool,
) -> SampledChoice {
    let mut passed = 0;
    for read in 1..=len {
        passed += passes(read - 1) as usize;
        if read % SAMPLE_CHUNK == 0 && read < len {
            let (low, high) = pass_rate_interval(passed, read);
            let yes = yes_at(low);
            if yes == yes_at(high) {
                let pass_rate = passed as f64 / read as f64;
                return SampledChoice { yes, pass_rate };
            }
        }
    }
    let pass_rate = passed as f64 / len.max(1) as f64;
    SampledChoice {
        yes: yes_at(pass_rate),
        pass_rate,
    }
}

/// When the exact path would read most of the index (no tag narrows the candidates: a range
/// alone), the visits a graph search may try first, before the exact path takes over; None to
/// go straight to the exact path. [`exact_beats_graph`] assumes the search visits elements
/// away from the matches, which is right for a category lying far from the query and wrong by
/// 7x or more for matches spread evenly (a range over an unrelated column): those need about
/// `ef / selectivity` visits (`pct < 1` on fashion-mnist: recall 1.000 within 4,000 visits,
/// bench/README.md). The trial gets half the exact path's reads (so a failed one costs 1.5x
/// the exact path), and is made only when the spread estimate fits in it.
pub fn graph_trial_visits(
    ef: usize,
    candidates: f64,
    elements: f64,
    pass_rate: f64,
) -> Option<usize> {
    let budget = candidates / (2.0 * GRAPH_VISIT_READS);
    let selectivity = candidates * pass_rate / elements.max(1.0);
    let fits = selectivity > 0.0 && ef as f64 / selectivity <= budget;
    (candidates >= elements / 2.0 && fits).then_some(budget as usize)
}

/// Wilson's score interval at three standard errors for `passed` of `read`: where the true
/// pass rate lies but for about 3 samples in 1,000.
fn pass_rate_interval(passed: usize, read: usize) -> (f64, f64) {
    const Z2: f64 = 9.0;
    let (x, n) = (passed as f64, read as f64);
    let centre = (x + Z2 / 2.0) / (n + Z2);
    let half = Z2.sqrt() * (x * (n - x) / n + Z2 / 4.0).sqrt() / (n + Z2);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

unsafe fn key_of(key: &mut pg_sys::ScanKeyData) -> Key {
    let column = (key.sk_attno as usize).saturating_sub(1);
    let mut arguments = Vec::new();
    if key.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
        // col = NULL is never true
    } else if key.sk_flags & pg_sys::SK_SEARCHARRAY as i32 != 0 {
        arguments = unsafe { array_elements(key.sk_argument) };
    } else {
        arguments.push(key.sk_argument);
    }
    Key {
        column,
        strategy: key.sk_strategy,
        func: &mut key.sk_func,
        collation: key.sk_collation,
        arguments,
    }
}

/// Non-NULL elements of an array datum (the right side of `col = ANY (...)`).
unsafe fn array_elements(datum: pg_sys::Datum) -> Vec<pg_sys::Datum> {
    unsafe {
        let array = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *mut pg_sys::ArrayType;
        let elem_type = (*array).elemtype;
        let (mut len, mut byval, mut align) = (0i16, false, 0 as std::ffi::c_char);
        pg_sys::get_typlenbyvalalign(elem_type, &mut len, &mut byval, &mut align);
        let mut elems: *mut pg_sys::Datum = std::ptr::null_mut();
        let mut nulls: *mut bool = std::ptr::null_mut();
        let mut n = 0;
        pg_sys::deconstruct_array(
            array, elem_type, len as i32, byval, align, &mut elems, &mut nulls, &mut n,
        );
        (0..n as usize)
            .filter(|&i| !*nulls.add(i))
            .map(|i| *elems.add(i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The choice for fashion-mnist's 60,000 elements when the tags pass them all (a range
    /// alone): exact only below a pass rate of about 1%.
    fn choice_for_a_range(rate: f64) -> bool {
        let elements = 60_000.0;
        exact_beats_graph(elements, expected_graph_visits(40, 16, elements, rate))
    }

    /// Reads of a 256-element sample in which every `period`-th candidate passes, and the choice.
    fn sampled(period: usize) -> (usize, bool) {
        let mut reads = 0;
        let choice = sampled_choice(
            256,
            |i| {
                reads += 1;
                i % period == period - 1
            },
            choice_for_a_range,
        );
        (reads, choice.yes)
    }

    #[test]
    fn broad_filters_settle_after_one_chunk() {
        assert!(!choice_for_a_range(0.1) && choice_for_a_range(0.001));
        assert_eq!(sampled(10), (SAMPLE_CHUNK, false), "10% pass: the graph");
        assert_eq!(sampled(1), (SAMPLE_CHUNK, false), "all pass: the graph");
        // A category every candidate is in, when the candidates are a tenth of the index
        // (label = 3 on fashion-mnist): the exact path, also after one chunk.
        let mut reads = 0;
        let class = |rate: f64| {
            exact_beats_graph(
                6000.0,
                expected_graph_visits(40, 16, 60_000.0, 6000.0 * rate / 60_000.0),
            )
        };
        let choice = sampled_choice(
            256,
            |_| {
                reads += 1;
                true
            },
            class,
        );
        assert_eq!(
            (reads, choice.yes, choice.pass_rate),
            (SAMPLE_CHUNK, true, 1.0)
        );
    }

    #[test]
    fn rates_near_the_threshold_read_the_whole_sample() {
        // 2 in 256 (0.8%) passes: the interval straddles the threshold until the end, where
        // the point estimate picks the exact path; no pass at all does too.
        assert_eq!(sampled(128), (256, true));
        assert_eq!(sampled(usize::MAX), (256, true));
        // 4 in 256 (1.6%): the graph, from the whole sample.
        assert_eq!(sampled(64), (256, false));
    }

    #[test]
    fn ranked_reads_follow_the_measured_scans() {
        // fashion-mnist: 60,000 codes at 58 to a page.
        let code_pages = (60_000.0f64 / 58.0).ceil();
        assert_eq!(
            ranked_reads(6_000.0, 6_000.0, code_pages, 40),
            1035.0 + 440.0
        );
        assert_eq!(ranked_reads(6_000.0, 600.0, code_pages, 40), 1035.0 + 800.0);
        // Few candidates: each read once at most, code page and element.
        assert_eq!(ranked_reads(50.0, 5.0, code_pages, 40), 100.0);
    }

    #[test]
    fn the_interval_holds_the_observed_rate() {
        for read in [1, 32, 100, 256] {
            for passed in 0..=read {
                let (low, high) = pass_rate_interval(passed, read);
                let rate = passed as f64 / read as f64;
                assert!(
                    0.0 <= low && low <= rate && rate <= high && high <= 1.0,
                    "{passed}/{read}"
                );
            }
        }
    }

    #[test]
    fn only_a_range_over_most_of_the_index_tries_the_graph_first() {
        let elements = 60_000.0;
        // pct < 1: every element a candidate, 1% pass: 4,000 expected visits, budget 15,000.
        assert_eq!(
            graph_trial_visits(40, elements, elements, 0.01),
            Some(15_000)
        );
        // 0.1%: 40,000 expected visits do not fit; none seen in the sample: no trial either.
        assert_eq!(graph_trial_visits(40, elements, elements, 0.001), None);
        assert_eq!(graph_trial_visits(40, elements, elements, 0.0), None);
        // A category (tags narrow the candidates to a tenth): straight to the exact path.
        assert_eq!(graph_trial_visits(40, 6_000.0, elements, 0.1), None);
    }
}
