//! The layer-0 search behind index scans: results in batches, in (near) distance order, for as
//! long as the caller keeps asking, with an optional filter. Storage-agnostic like graph.rs,
//! whose building blocks (descent, heaps, visited sets) it uses.
//!
//! Under a filter, every node reached is evaluated (distance) and goes to the frontier,
//! matching or not, so the search stays connected however selective the filter is; only
//! matching nodes are results. (An ACORN-style variant that crosses non-matching nodes two hops
//! at a time without evaluating them was tried and measured worse: see bench/README.md.)

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::graph::{
    beyond_results, offer, visit_neighbours, GraphStore, NodeId, Scored, SearchScratch, VisitedSet,
};

/// Largest result set a resumed search grows to (see [`ResumableSearch::next_batch`]).
const MAX_RESUMED_EF: usize = 1000;

/// The first batch's size under a selective filter: half of `ef`, at least 10 (or `ef`).
///
/// Why: to hold `ef` matching nodes the search evaluates about `ef / selectivity` nodes around
/// the query, covering its surroundings far more densely than an unfiltered search with the
/// same `ef`; half the result set keeps recall@10 at 0.97-1.00 on fashion-mnist at 10% and 1%
/// selectivity, for up to half the work (bench/README.md). A filter that most nearby nodes
/// pass is like no filter, and keeps the full `ef`.
pub fn narrowed_ef(ef: usize) -> usize {
    (ef / 2).max(ef.min(10))
}

/// Options of a [`ResumableSearch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumableOptions {
    /// Result-set size: a batch holds at most `ef` nodes; larger means better ordering.
    pub ef: usize,
    /// Stop expanding once this many nodes have been evaluated (distance computed). One
    /// expansion may overshoot by up to `2m`. Nodes already found are still returned.
    pub max_visited: usize,
    /// Drop any result closer than one already returned: see [`ResumableSearch`].
    pub strict: bool,
}

impl ResumableOptions {
    pub fn new(ef: usize) -> Self {
        ResumableOptions {
            ef: ef.max(1),
            max_visited: usize::MAX,
            strict: false,
        }
    }
}

/// Layer-0 search that returns results in batches and can be resumed for more.
///
/// It is algorithm 2 with nothing thrown away: every node evaluated goes to the frontier C
/// (expanded closest first), and every evaluated node that passes the filter goes to the
/// result set W (the best `ef`) or, when it does not fit, to the discarded heap D. Each call to
/// [`next_batch`](Self::next_batch) expands until algorithm 2 would stop (W is full and the
/// closest unexpanded node is further than all of W), or C is empty, or the visited cap is hit;
/// then it returns W sorted, refills W with the closest `ef` of D, and keeps C for next time.
/// The stopping rule only counts matching nodes. When W first holds [`narrowed_ef`] nodes and
/// fewer than half the nodes evaluated so far passed the filter, the first batch is narrowed
/// to that size.
///
/// Guarantees:
/// - Every node reachable on layer 0 from the nodes met while descending, that passes the
///   filter, is returned exactly once, unless the visited cap stops the expansion first.
/// - Without a filter, the first batch is exactly the result set of
///   [`knn_search`](super::graph::knn_search) with the same `ef` (same expansions, same order).
/// - Each batch is sorted by distance (ties: larger id first, see [`Scored`]). When a batch is
///   returned, every node found so far and not yet returned is at least as far as the batch's
///   furthest node; so the only results that can come back out of order are nodes first
///   reached after an earlier batch was returned and closer than that batch's furthest node
///   (the graph search found a better region late). Once the cap stops expansion, the
///   remaining batches are in exact order.
/// - With `strict`, distances returned across all batches never decrease: such late, closer
///   nodes are dropped instead of returned (they are lost to this scan).
pub struct ResumableSearch<Id, V> {
    /// Its visited set, C (`candidates`) and W (`results`) are this search's.
    scratch: SearchScratch<Id, V>,
    /// D: matching nodes reached but pushed out of W, closest on top. Invariant: D is empty
    /// or W is full, and nothing in D is closer than anything in W.
    discarded: BinaryHeap<Reverse<Scored<Id>>>,
    query: Vec<f32>,
    options: ResumableOptions,
    visited: usize,
    /// Evaluated nodes that passed the filter.
    passed: usize,
    /// Whether the first batch's size has been settled (see [`narrowed_ef`]).
    settled: bool,
    started: bool,
    last_returned: Option<f32>,
}

impl<Id: NodeId, V: VisitedSet<Id>> ResumableSearch<Id, V> {
    pub fn new(query: &[f32], options: ResumableOptions, visited: V) -> Self {
        ResumableSearch {
            scratch: SearchScratch::with_visited(visited),
            discarded: BinaryHeap::new(),
            query: query.to_vec(),
            options: ResumableOptions {
                ef: options.ef.max(1),
                ..options
            },
            visited: 0,
            passed: 0,
            settled: false,
            started: false,
            last_returned: None,
        }
    }

    /// Nodes evaluated (distance computed) so far.
    pub fn visited(&self) -> usize {
        self.visited
    }

    /// Appends the next batch to `out` and returns its length; 0 means the search is over.
    /// `filter` must be the same predicate on every call; it is called once per node reached.
    pub fn next_batch<S: GraphStore<Id = Id>>(
        &mut self,
        store: &S,
        mut filter: impl FnMut(Id) -> bool,
        out: &mut Vec<Scored<Id>>,
    ) -> usize {
        if !self.started {
            self.started = true;
            self.seed(store, &mut filter);
        }
        loop {
            self.expand(store, &mut filter);
            if self.scratch.results.is_empty() {
                return 0; // D is empty too (invariant), and C can give nothing more
            }
            let before = out.len();
            self.emit(out);
            if out.len() > before {
                return out.len() - before; // strict mode may have dropped a whole batch
            }
        }
    }

    /// Descends to layer 0 and puts every node evaluated on the way into C, W and D.
    fn seed<S: GraphStore<Id = Id>>(&mut self, store: &S, filter: &mut impl FnMut(Id) -> bool) {
        if !self.scratch.start_at_layer0(store, &self.query) {
            return;
        }
        let scratch = &mut self.scratch;
        scratch.candidates.clear();
        scratch.results.clear();
        self.visited = scratch.seen.len();
        for s in scratch.seen.drain(..) {
            scratch.candidates.push(Reverse(s));
            if filter(s.id) {
                self.passed += 1;
                admit(
                    &mut scratch.results,
                    &mut self.discarded,
                    s,
                    self.options.ef,
                );
            }
        }
    }

    /// Algorithm 2's loop, keeping unexpanded and discarded nodes.
    fn expand<S: GraphStore<Id = Id>>(&mut self, store: &S, filter: &mut impl FnMut(Id) -> bool) {
        while let Some(&Reverse(c)) = self.scratch.candidates.peek() {
            self.settle_first_batch();
            let ef = self.options.ef;
            let Self {
                scratch,
                discarded,
                query,
                options,
                visited: count,
                passed,
                ..
            } = self;
            let SearchScratch {
                visited,
                candidates,
                results,
                neighbours,
                ..
            } = scratch;
            if *count >= options.max_visited || beyond_results(results, ef, c) {
                break;
            }
            candidates.pop();
            visit_neighbours(
                store,
                visited,
                neighbours,
                c.id,
                0,
                &mut |id| store.distance(query, id),
                |s| {
                    *count += 1;
                    candidates.push(Reverse(s));
                    if filter(s.id) {
                        *passed += 1;
                        admit(results, discarded, s, ef);
                    }
                },
            );
        }
    }

    /// Narrows the first batch under a selective filter (see [`narrowed_ef`]); W's surplus
    /// moves to D.
    fn settle_first_batch(&mut self) {
        let narrow = narrowed_ef(self.options.ef);
        if self.settled || self.scratch.results.len() < narrow {
            return;
        }
        self.settled = true;
        if self.passed * 2 < self.visited {
            self.options.ef = narrow;
            while self.scratch.results.len() > narrow {
                let worst = self.scratch.results.pop().expect("longer than narrow");
                self.discarded.push(Reverse(worst));
            }
        }
    }

    /// Moves W, sorted, to `out` (dropping regressions in strict mode), then refills W from D.
    fn emit(&mut self, out: &mut Vec<Scored<Id>>) {
        self.scratch.sort_results();
        for &s in &self.scratch.ordered {
            if self.options.strict && self.last_returned.is_some_and(|last| s.dist < last) {
                continue;
            }
            self.last_returned = Some(s.dist);
            out.push(s);
        }
        // A caller that wants more than one batch is filtering rows out after the index (or
        // the filter is selective): widen the result set for the next batches, so that each is
        // settled against a wider frontier and comes in better order. Capped to bound memory.
        self.options.ef = (self.options.ef * 2).min(MAX_RESUMED_EF.max(self.options.ef));
        while self.scratch.results.len() < self.options.ef {
            let Some(Reverse(s)) = self.discarded.pop() else {
                break;
            };
            self.scratch.results.push(s);
        }
    }
}

/// Puts a matching node into W, or into D whatever does not fit in W.
fn admit<Id: Ord + Copy>(
    results: &mut BinaryHeap<Scored<Id>>,
    discarded: &mut BinaryHeap<Reverse<Scored<Id>>>,
    s: Scored<Id>,
    ef: usize,
) {
    if let Some(out) = offer(results, s, ef) {
        discarded.push(Reverse(out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::graph::{DenseVisited, HnswParams, MemGraph};

    fn line_graph(n: usize) -> MemGraph<fn(&[f32], &[f32]) -> f32> {
        let l2: fn(&[f32], &[f32]) -> f32 =
            |a, b| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        let mut graph = MemGraph::new(2, HnswParams::new(8, 32), l2, 3);
        for i in 0..n {
            graph.push(&[(i % 97) as f32, (i / 97) as f32]);
        }
        graph
            .build(1, &mut crate::index::graph::Unattended)
            .unwrap();
        graph
    }

    fn first_batch_len(
        graph: &MemGraph<fn(&[f32], &[f32]) -> f32>,
        keep: impl Fn(u32) -> bool,
    ) -> usize {
        let mut search = ResumableSearch::new(
            &[40.0, 20.0],
            ResumableOptions::new(40),
            DenseVisited::new(0),
        );
        let mut out = Vec::new();
        search.next_batch(graph, keep, &mut out)
    }

    #[test]
    fn first_batch_narrows_only_under_a_selective_filter() {
        let graph = line_graph(5000);
        assert_eq!(first_batch_len(&graph, |_| true), 40, "no filter: full ef");
        assert_eq!(
            first_batch_len(&graph, |id| id % 10 != 3),
            40,
            "90% pass: full ef"
        );
        assert_eq!(
            first_batch_len(&graph, |id| id % 10 == 3),
            20,
            "10% pass: half"
        );
        assert_eq!(
            first_batch_len(&graph, |id| id % 100 == 3),
            20,
            "1% pass: half"
        );
        assert_eq!(narrowed_ef(40), 20);
        assert_eq!(narrowed_ef(12), 10);
        assert_eq!(narrowed_ef(4), 4);
    }
}
