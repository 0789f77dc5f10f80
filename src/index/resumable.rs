//! The layer-0 search behind index scans: results in batches, in (near) distance order, for as
//! long as the caller keeps asking, with an optional filter. Storage-agnostic like graph.rs,
//! whose building blocks (descent, heaps, visited sets) it uses.
//!
//! Two ways to search under a filter:
//! - *Expand everything* (the default): every node reached is evaluated (distance) and goes to
//!   the frontier, matching or not, so the search stays connected however selective the filter
//!   is; but it evaluates about `ef / selectivity` nodes.
//! - *Bridged* ([`ResumableOptions::bridge`], for filters with a cheap pre-check): only nodes
//!   that may pass are evaluated. A non-matching neighbour of a matching node is a bridge: its
//!   own neighbours are looked at right away (two hops, as in ACORN, Patel et al. 2024), so the
//!   matching nodes form a connected graph of their own without evaluating the nodes between
//!   them. Non-matching nodes further away are set aside, unevaluated, and evaluated only when
//!   the matching nodes run out, so that nothing reachable is lost.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::graph::{beyond_results, offer, visit_neighbours, GraphStore, NodeId, Scored, SearchScratch, VisitedSet};

/// Largest result set a resumed search grows to (see [`ResumableSearch::next_batch`]).
const MAX_RESUMED_EF: usize = 1000;

/// Options of a [`ResumableSearch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumableOptions {
    /// Result-set size: a batch holds at most `ef` nodes; larger means better ordering.
    pub ef: usize,
    /// Stop expanding once this many nodes have been evaluated (distance computed) or crossed
    /// as bridges. One expansion may overshoot by up to `2m` (bridged: `2m * (2m + 1)`).
    /// Nodes already found are still returned.
    pub max_visited: usize,
    /// Drop any result closer than one already returned: see [`ResumableSearch`].
    pub strict: bool,
    /// Bridged filtered search (see the module docs); worth it only when
    /// [`NodeFilter::may_pass`] rules most non-matching nodes out without reading them.
    pub bridge: bool,
}

impl ResumableOptions {
    pub fn new(ef: usize) -> Self {
        ResumableOptions {
            ef: ef.max(1),
            max_visited: usize::MAX,
            strict: false,
            bridge: false,
        }
    }
}

/// The filter of a search. Any `FnMut(Id) -> bool` is one (without a pre-check).
pub trait NodeFilter<Id> {
    /// Cheap test on a node not yet read: false only when the node certainly fails.
    fn may_pass(&mut self, _id: Id) -> bool {
        true
    }
    /// Does the node pass? Asked right after the node's distance (a store may answer both
    /// from one read).
    fn passes(&mut self, id: Id) -> bool;
}

impl<Id, F: FnMut(Id) -> bool> NodeFilter<Id> for F {
    fn passes(&mut self, id: Id) -> bool {
        self(id)
    }
}

/// A frontier node and whether it passed the filter; ordered as its [`Scored`].
#[derive(Clone, Copy, Debug)]
struct Frontier<Id> {
    node: Scored<Id>,
    passes: bool,
}

impl<Id: Ord> Ord for Frontier<Id> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.node.cmp(&other.node)
    }
}

impl<Id: Ord> PartialOrd for Frontier<Id> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<Id: Ord> PartialEq for Frontier<Id> {
    fn eq(&self, other: &Self) -> bool {
        self.node == other.node
    }
}

impl<Id: Ord> Eq for Frontier<Id> {}

/// Layer-0 search that returns results in batches and can be resumed for more.
///
/// It is algorithm 2 with nothing thrown away: every node evaluated goes to the frontier C
/// (expanded closest first), and every evaluated node that passes the filter goes to the
/// result set W (the best `ef`) or, when it does not fit, to the discarded heap D. Each call to
/// [`next_batch`](Self::next_batch) expands until algorithm 2 would stop (W is full and the
/// closest unexpanded node is further than all of W), or C is empty, or the visited cap is hit;
/// then it returns W sorted, refills W with the closest `ef` of D, and keeps C for next time.
/// The stopping rule only counts matching nodes. Bridged searches also keep the set-aside
/// nodes (S), evaluated one at a time, closest origin first, whenever C is empty and W is not
/// full.
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
    /// Its visited set, W (`results`) and buffers are this search's.
    scratch: SearchScratch<Id, V>,
    /// C: evaluated, not yet expanded; closest on top.
    frontier: BinaryHeap<Reverse<Frontier<Id>>>,
    /// D: matching nodes reached but pushed out of W, closest on top. Invariant: D is empty
    /// or W is full, and nothing in D is closer than anything in W.
    discarded: BinaryHeap<Reverse<Scored<Id>>>,
    /// S (bridged only): non-matching nodes not evaluated yet, keyed by the distance of the
    /// node they were reached from.
    set_aside: BinaryHeap<Reverse<Scored<Id>>>,
    /// A bridge's neighbour list (the expanded node's is in the scratch).
    bridge_list: Vec<Id>,
    query: Vec<f32>,
    options: ResumableOptions,
    visited: usize,
    started: bool,
    last_returned: Option<f32>,
}

impl<Id: NodeId, V: VisitedSet<Id>> ResumableSearch<Id, V> {
    pub fn new(query: &[f32], options: ResumableOptions, visited: V) -> Self {
        ResumableSearch {
            scratch: SearchScratch::with_visited(visited),
            frontier: BinaryHeap::new(),
            discarded: BinaryHeap::new(),
            set_aside: BinaryHeap::new(),
            bridge_list: Vec::new(),
            query: query.to_vec(),
            options: ResumableOptions {
                ef: options.ef.max(1),
                ..options
            },
            visited: 0,
            started: false,
            last_returned: None,
        }
    }

    /// Nodes evaluated (distance computed) or crossed as bridges so far.
    pub fn visited(&self) -> usize {
        self.visited
    }

    /// Appends the next batch to `out` and returns its length; 0 means the search is over.
    /// `filter` must be the same predicate on every call.
    pub fn next_batch<S: GraphStore<Id = Id>>(
        &mut self,
        store: &S,
        filter: &mut impl NodeFilter<Id>,
        out: &mut Vec<Scored<Id>>,
    ) -> usize {
        if !self.started {
            self.started = true;
            self.seed(store, filter);
        }
        loop {
            if self.options.bridge {
                self.expand_bridged(store, filter);
            } else {
                self.expand(store, filter);
            }
            if self.scratch.results.is_empty() {
                return 0; // D and S are empty too, and C can give nothing more
            }
            let before = out.len();
            self.emit(out);
            if out.len() > before {
                return out.len() - before; // strict mode may have dropped a whole batch
            }
        }
    }

    /// Descends to layer 0 and puts every node evaluated on the way into C, W and D.
    fn seed<S: GraphStore<Id = Id>>(&mut self, store: &S, filter: &mut impl NodeFilter<Id>) {
        if !self.scratch.start_at_layer0(store, &self.query) {
            return;
        }
        self.scratch.results.clear(); // the descent's last layer left its result there
        self.visited = self.scratch.seen.len();
        let seen = std::mem::take(&mut self.scratch.seen);
        for &s in &seen {
            self.found(s, filter.passes(s.id));
        }
        self.scratch.seen = seen;
    }

    /// An evaluated node: to C, and to W or D when it passes.
    fn found(&mut self, node: Scored<Id>, passes: bool) {
        self.frontier.push(Reverse(Frontier { node, passes }));
        if passes {
            admit(&mut self.scratch.results, &mut self.discarded, node, self.options.ef);
        }
    }

    /// The next node to expand, unless the search should stop here.
    fn next_to_expand(&mut self) -> Option<Frontier<Id>> {
        let &Reverse(c) = self.frontier.peek()?;
        if self.visited >= self.options.max_visited || beyond_results(&self.scratch.results, self.options.ef, c.node) {
            return None;
        }
        self.frontier.pop();
        Some(c)
    }

    /// Algorithm 2's loop, keeping unexpanded and discarded nodes.
    fn expand<S: GraphStore<Id = Id>>(&mut self, store: &S, filter: &mut impl NodeFilter<Id>) {
        let ef = self.options.ef;
        let Self { scratch, frontier, discarded, query, options, visited: count, .. } = self;
        let SearchScratch { visited, results, neighbours, .. } = scratch;
        while let Some(&Reverse(c)) = frontier.peek() {
            if *count >= options.max_visited || beyond_results(results, ef, c.node) {
                break;
            }
            frontier.pop();
            visit_neighbours(store, visited, neighbours, c.node.id, 0, &mut |id| store.distance(query, id), |s| {
                *count += 1;
                let passes = filter.passes(s.id);
                frontier.push(Reverse(Frontier { node: s, passes }));
                if passes {
                    admit(results, discarded, s, ef);
                }
            });
        }
    }

    /// The bridged loop: evaluates only nodes that may pass, crosses non-matching neighbours
    /// of matching nodes, sets the rest aside, and takes them back when C runs dry.
    fn expand_bridged<S: GraphStore<Id = Id>>(&mut self, store: &S, filter: &mut impl NodeFilter<Id>) {
        loop {
            let Some(c) = self.next_to_expand() else {
                let starved = self.frontier.is_empty() && self.scratch.results.len() < self.options.ef;
                if starved && self.visited < self.options.max_visited && self.take_back(store, filter) {
                    continue;
                }
                return;
            };
            let mut list = std::mem::take(&mut self.scratch.neighbours);
            store.neighbours(c.node.id, 0, &mut list);
            list.retain(|&n| self.scratch.visited.insert(n));
            for &x in &list {
                let Err(known) = self.try_match(store, filter, x) else { continue };
                if c.passes {
                    self.cross(store, filter, x, c.node.dist);
                } else if self.scratch.results.is_empty() {
                    // Nothing matches yet: search as if unfiltered until something does.
                    let dist = known.unwrap_or_else(|| self.evaluate(store, x));
                    self.found(Scored { dist, id: x }, false);
                } else {
                    self.set_aside.push(Reverse(Scored { dist: known.unwrap_or(c.node.dist), id: x }));
                }
            }
            self.scratch.neighbours = list;
        }
    }

    /// Evaluates `x` if it may pass. Ok when it passes (it is then in C and W or D); otherwise
    /// its distance, if it was evaluated.
    fn try_match<S: GraphStore<Id = Id>>(&mut self, store: &S, filter: &mut impl NodeFilter<Id>, x: Id) -> Result<(), Option<f32>> {
        if !filter.may_pass(x) {
            return Err(None);
        }
        let dist = self.evaluate(store, x);
        if !filter.passes(x) {
            return Err(Some(dist));
        }
        self.found(Scored { dist, id: x }, true);
        Ok(())
    }

    /// Looks through the non-matching `bridge` at its neighbours: those that pass are found,
    /// the others set aside with the key of the node the bridge was reached from.
    fn cross<S: GraphStore<Id = Id>>(&mut self, store: &S, filter: &mut impl NodeFilter<Id>, bridge: Id, key: f32) {
        let mut list = std::mem::take(&mut self.bridge_list);
        store.neighbours(bridge, 0, &mut list);
        self.visited += 1;
        list.retain(|&n| self.scratch.visited.insert(n));
        for &y in &list {
            if let Err(known) = self.try_match(store, filter, y) {
                self.set_aside.push(Reverse(Scored { dist: known.unwrap_or(key), id: y }));
            }
        }
        self.bridge_list = list;
    }

    /// Evaluates the set-aside node with the closest key into C; false when none is left.
    fn take_back<S: GraphStore<Id = Id>>(&mut self, store: &S, filter: &mut impl NodeFilter<Id>) -> bool {
        let Some(Reverse(s)) = self.set_aside.pop() else { return false };
        let dist = self.evaluate(store, s.id);
        let passes = filter.passes(s.id);
        self.found(Scored { dist, id: s.id }, passes);
        true
    }

    fn evaluate<S: GraphStore<Id = Id>>(&mut self, store: &S, id: Id) -> f32 {
        self.visited += 1;
        store.distance(&self.query, id)
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
    use crate::index::graph::tests::{build, clustered, exact, l2, overlap, Metric};
    use crate::index::graph::{DenseVisited, EntryPoint, MemGraph, SplitMix64};
    use std::cell::Cell;
    use std::collections::HashSet;

    /// A graph that counts distance evaluations.
    struct Counting<'a> {
        graph: &'a MemGraph<Metric>,
        distances: Cell<usize>,
    }

    impl GraphStore for Counting<'_> {
        type Id = u32;
        fn distance(&self, query: &[f32], id: u32) -> f32 {
            self.distances.set(self.distances.get() + 1);
            self.graph.distance(query, id)
        }
        fn distance_between(&self, a: u32, b: u32) -> f32 {
            self.graph.distance_between(a, b)
        }
        fn level(&self, id: u32) -> usize {
            self.graph.level(id)
        }
        fn neighbours(&self, id: u32, level: usize, out: &mut Vec<u32>) {
            self.graph.neighbours(id, level, out)
        }
        fn entry_point(&self) -> Option<EntryPoint<u32>> {
            self.graph.entry_point()
        }
    }

    /// A filter with a pre-check that also lets through `noise` (false positives).
    struct Prechecked<K: Fn(u32) -> bool, N: Fn(u32) -> bool> {
        keep: K,
        noise: N,
    }

    impl<K: Fn(u32) -> bool, N: Fn(u32) -> bool> NodeFilter<u32> for Prechecked<K, N> {
        fn may_pass(&mut self, id: u32) -> bool {
            (self.keep)(id) || (self.noise)(id)
        }
        fn passes(&mut self, id: u32) -> bool {
            (self.keep)(id)
        }
    }

    fn bridged(ef: usize) -> ResumableOptions {
        ResumableOptions { bridge: true, ..ResumableOptions::new(ef) }
    }

    /// First 10 of a search for `query` under `filter`, and the distances it evaluated.
    fn top10(graph: &MemGraph<Metric>, query: &[f32], options: ResumableOptions, filter: impl NodeFilter<u32>) -> (Vec<u32>, usize) {
        let store = Counting { graph, distances: Cell::new(0) };
        let mut search = ResumableSearch::new(query, options, DenseVisited::new(0));
        let mut found = Vec::new();
        let mut filter = filter;
        while found.len() < 10 && search.next_batch(&store, &mut filter, &mut found) > 0 {}
        (found.iter().take(10).map(|s| s.id).collect(), store.distances.get())
    }

    #[test]
    fn bridged_returns_every_matching_node_once() {
        let mut rng = SplitMix64(21);
        let (rows, queries) = clustered(&mut rng, 2000, 2, 16, 8);
        let graph = build(&rows, l2, 2);
        let keep = |id: u32| id % 10 == 3;
        let everything: HashSet<u32> = (0..2000).filter(|&id| keep(id)).collect();
        let noises: [fn(u32) -> bool; 2] = [|_| false, |id| id % 7 == 0];
        for noise in noises {
            for query in &queries {
                let mut search = ResumableSearch::new(query, bridged(20), DenseVisited::new(0));
                let mut filter = Prechecked { keep, noise };
                let mut all = Vec::new();
                while search.next_batch(&graph, &mut filter, &mut all) > 0 {}
                let ids: HashSet<u32> = all.iter().map(|s| s.id).collect();
                assert_eq!(ids.len(), all.len(), "a node was returned twice");
                assert_eq!(ids, everything);
            }
        }
    }

    #[test]
    fn bridged_keeps_recall_and_evaluates_far_fewer_nodes() {
        let mut rng = SplitMix64(22);
        let (rows, queries) = clustered(&mut rng, 20000, 30, 32, 20);
        let graph = build(&rows, l2, 2);
        for (modulus, min_recall) in [(10u32, 0.95), (100, 0.95)] {
            let keep = move |id: u32| id % modulus == 7;
            let (mut hits, mut hits_plain, mut cost, mut cost_plain) = (0, 0, 0, 0);
            for query in &queries {
                let truth = exact(&rows, l2, query, 10, keep);
                let (found, evaluated) = top10(&graph, query, bridged(40), Prechecked { keep, noise: |_| false });
                let (plain, evaluated_plain) = top10(&graph, query, ResumableOptions::new(40), keep);
                hits += overlap(&found, &truth);
                hits_plain += overlap(&plain, &truth);
                cost += evaluated;
                cost_plain += evaluated_plain;
            }
            let n = (10 * queries.len()) as f64;
            let (recall, recall_plain) = (hits as f64 / n, hits_plain as f64 / n);
            println!("1/{modulus}: bridged recall {recall} with {cost} distances; expand-all {recall_plain} with {cost_plain}");
            assert!(recall >= min_recall, "bridged recall {recall} at 1/{modulus}");
            assert!(cost * 3 < cost_plain, "bridged evaluated {cost}, expand-all {cost_plain}");
        }
    }

    #[test]
    fn bridged_reaches_matches_far_from_the_query() {
        // The matching nodes are the 60 nearest to one far point: nothing near the query
        // passes, so the search must walk unfiltered until it finds them.
        let mut rng = SplitMix64(23);
        let (rows, queries) = clustered(&mut rng, 6000, 10, 16, 12);
        let graph = build(&rows, l2, 2);
        let far = &rows[0];
        let region: HashSet<u32> = exact(&rows, l2, far, 60, |_| true).into_iter().collect();
        let keep = |id: u32| region.contains(&id);
        let mut hits = 0;
        for query in &queries {
            let (found, _) = top10(&graph, query, bridged(40), Prechecked { keep, noise: |_| false });
            hits += overlap(&found, &exact(&rows, l2, query, 10, keep));
        }
        let recall = hits as f64 / (10 * queries.len()) as f64;
        assert!(recall >= 0.95, "recall {recall}");
    }

    #[test]
    fn bridged_respects_the_visit_cap() {
        let mut rng = SplitMix64(24);
        let (rows, queries) = clustered(&mut rng, 3000, 1, 16, 8);
        let graph = build(&rows, l2, 1);
        let options = ResumableOptions { max_visited: 200, ..bridged(10) };
        let mut search = ResumableSearch::new(&queries[0], options, DenseVisited::new(0));
        let mut nothing = Prechecked { keep: |_| false, noise: |_| false };
        let mut out = Vec::new();
        assert_eq!(search.next_batch(&graph, &mut nothing, &mut out), 0);
        assert!(search.visited() >= 200 && search.visited() <= 200 + 32 * 33, "{}", search.visited());
    }
}
