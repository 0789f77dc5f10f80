//! The search of an index with codes (`codes = on`): storage-agnostic like graph.rs.
//!
//! Expanding a node reads one element: its vector gives the node's exact distance, and its
//! list on the layer searched holds each neighbour's one-bit code (code.rs), whose estimated
//! distance orders the frontier. So a search reads one page per node it expands, not one per
//! node it reaches, and only expanded nodes are results: each result's distance is exact.
//! (An upper list too long to carry codes gives its neighbours' exact distances instead.)
//!
//! The descent is the same loop with one result per layer, seeded with every node reached
//! above. On layer 0 the loop is algorithm 2 with the frontier C ordered by estimate and the
//! result set W by exact distance; it stops when W holds `ef` nodes and the best estimate in
//! C is further than all of W. It returns one batch: a scan that wants more rows goes on with
//! the full-precision search of resumable.rs (scan.rs), whose later batches come in better
//! order than estimates would give.

use std::cmp::Reverse;
use std::collections::HashMap;

use super::code::QueryTable;
use super::graph::{beyond_results, offer, GraphStore, Scored, SearchScratch, VisitedSet};

/// A graph whose lists carry their neighbours' codes.
pub trait CodedStore: GraphStore {
    /// What expanding a node reads besides distances that a caller may want for the nodes it
    /// returns (a page store: the heap TIDs), so that they need not be read again.
    type Read;

    /// Reads node `id`: returns its exact distance to `query` and what else was read, and
    /// replaces `out` with those of its neighbours on `layer` that `fresh` accepts (called
    /// once on each), each with the distance `table` estimates from its code (or its exact
    /// distance where the list carries no codes). `None` when the node cannot be read.
    fn expand(
        &self,
        id: Self::Id,
        layer: usize,
        query: &[f32],
        table: &QueryTable,
        fresh: impl FnMut(Self::Id) -> bool,
        out: &mut Vec<Scored<Self::Id>>,
    ) -> Option<(f32, Self::Read)>;
}

/// What a search over codes found.
pub struct CodedFound<Id, R> {
    /// The nodes it kept, closest first, with exact distances and what their expansion read.
    pub results: Vec<(Scored<Id>, R)>,
    /// Nodes it expanded, on every layer.
    pub expanded: usize,
    /// It stopped at its cap on layer-0 expansions, not because it had found what it sought.
    pub capped: bool,
}

/// The `ef` nodes nearest to `query` that a search over codes finds among those whose read
/// `accept` takes (a filter's matches; every node for `|_| true`): the search goes through
/// every node, and only accepted ones enter the result set. It expands at most
/// `max_expanded` nodes on layer 0.
pub fn coded_search<S: CodedStore, V: VisitedSet<S::Id>>(
    store: &S,
    scratch: &mut SearchScratch<S::Id, V>,
    query: &[f32],
    table: &QueryTable,
    ef: usize,
    max_expanded: usize,
    mut accept: impl FnMut(&S::Read) -> bool,
) -> CodedFound<S::Id, S::Read> {
    let ef = ef.max(1);
    let Some(descended) = descend(store, scratch, query, table) else {
        return CodedFound {
            results: Vec::new(),
            expanded: 0,
            capped: false,
        };
    };
    let SearchScratch {
        visited,
        candidates,
        results,
        seen,
        ..
    } = scratch;
    // The descent's nodes seed the frontier; expanding them puts them in W.
    candidates.clear();
    results.clear();
    candidates.extend(seen.drain(..).map(Reverse));
    let mut found = Vec::new();
    let mut reads = HashMap::with_capacity(2 * ef);
    let (mut expanded, mut capped) = (0, false);
    while let Some(&Reverse(c)) = candidates.peek() {
        if beyond_results(results, ef, c) {
            break;
        }
        if expanded >= max_expanded {
            capped = true;
            break;
        }
        candidates.pop();
        expanded += 1;
        let fresh = |id| visited.insert(id);
        let Some((dist, read)) = store.expand(c.id, 0, query, table, fresh, &mut found) else {
            continue;
        };
        candidates.extend(found.drain(..).map(Reverse));
        if !accept(&read) {
            continue;
        }
        reads.insert(c.id, read);
        if let Some(out) = offer(results, Scored { dist, id: c.id }, ef) {
            reads.remove(&out.id); // never a result: drop what it read
        }
    }
    let results = scratch
        .sorted_results()
        .iter()
        .filter_map(|s| Some((*s, reads.remove(&s.id)?)))
        .collect();
    CodedFound {
        results,
        expanded: descended + expanded,
        capped,
    }
}

/// The descent from the entry point to layer 1 over codes: on each layer, expands the
/// closest node reached (by estimate, or exact once expanded) until the closest expanded one
/// is closer than every other estimate. Leaves every node reached in `scratch.seen`, with the
/// distance known best; returns how many nodes it expanded, None for an empty graph.
fn descend<S: CodedStore, V: VisitedSet<S::Id>>(
    store: &S,
    scratch: &mut SearchScratch<S::Id, V>,
    query: &[f32],
    table: &QueryTable,
) -> Option<usize> {
    let entry = store.entry_point()?;
    let SearchScratch {
        visited,
        candidates,
        seen,
        ..
    } = scratch;
    visited.clear();
    seen.clear();
    visited.insert(entry.id);
    // The entry's distance is known once it is expanded: it comes first on every layer.
    seen.push(Scored {
        dist: f32::NEG_INFINITY,
        id: entry.id,
    });
    let mut found = Vec::new();
    let mut expanded = 0;
    for layer in (1..=entry.level).rev() {
        candidates.clear();
        candidates.extend(seen.iter().copied().map(Reverse));
        let mut best: Option<Scored<S::Id>> = None;
        while let Some(Reverse(c)) = candidates.pop() {
            if best.is_some_and(|best| c > best) {
                break;
            }
            expanded += 1;
            let fresh = |id| visited.insert(id);
            let Some((dist, _)) = store.expand(c.id, layer, query, table, fresh, &mut found) else {
                continue;
            };
            let exact = Scored { dist, id: c.id };
            if let Some(s) = seen.iter_mut().find(|s| s.id == c.id) {
                *s = exact;
            }
            best = Some(best.map_or(exact, |best| best.min(exact)));
            seen.extend_from_slice(&found);
            candidates.extend(found.drain(..).map(Reverse));
        }
    }
    Some(expanded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::code::{self, QueryTable};
    use crate::index::graph::{knn_search, EntryPoint, HnswParams, MemGraph, SearchScratch};
    use crate::vector::metric::Metric;

    type L2Graph = MemGraph<fn(&[f32], &[f32]) -> f32>;

    /// A built [`MemGraph`] with a code per node; counts the nodes it reads.
    struct CodedMem<'a> {
        pub graph: &'a L2Graph,
        pub codes: Vec<u8>,
        pub code_bytes: usize,
        centroid: Vec<f32>,
        reads: std::cell::Cell<usize>,
    }

    impl<'a> CodedMem<'a> {
        pub fn new(graph: &'a L2Graph) -> Self {
            let dims = graph.dim();
            let centroid = code::centroid((0..graph.len() as u32).map(|id| graph.vector(id)), dims);
            let code_bytes = code::code_bytes(dims);
            let mut codes = vec![0u8; graph.len() * code_bytes];
            for (id, out) in codes.chunks_mut(code_bytes).enumerate() {
                code::encode(&centroid, graph.vector(id as u32), out);
            }
            CodedMem {
                graph,
                codes,
                code_bytes,
                centroid,
                reads: Default::default(),
            }
        }

        pub fn table(&self, query: &[f32]) -> QueryTable {
            QueryTable::new(Metric::L2, &self.centroid, query)
        }
    }

    impl GraphStore for CodedMem<'_> {
        type Id = u32;
        fn distance(&self, query: &[f32], id: u32) -> f32 {
            self.reads.set(self.reads.get() + 1);
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

    impl CodedStore for CodedMem<'_> {
        /// The node itself, for filters in tests.
        type Read = u32;

        fn expand(
            &self,
            id: u32,
            layer: usize,
            query: &[f32],
            table: &QueryTable,
            mut fresh: impl FnMut(u32) -> bool,
            out: &mut Vec<Scored<u32>>,
        ) -> Option<(f32, u32)> {
            self.reads.set(self.reads.get() + 1);
            let mut list = Vec::new();
            self.graph.neighbours(id, layer, &mut list);
            out.clear();
            out.extend(list.iter().filter(|&&n| fresh(n)).map(|&n| {
                let at = n as usize * self.code_bytes;
                Scored {
                    dist: table.estimate(&self.codes[at..at + self.code_bytes]),
                    id: n,
                }
            }));
            Some((self.graph.distance(query, id), id))
        }
    }

    /// `n` points of `dims` dimensions that lie near an 8-dimensional subspace, as embeddings
    /// do (uniform noise in every dimension would leave nothing for any index to find).
    fn clustered_graph(n: usize, dims: usize) -> L2Graph {
        let l2: fn(&[f32], &[f32]) -> f32 =
            |a, b| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        let mut graph = MemGraph::new(dims, HnswParams::new(8, 40), l2, 5);
        let mut seed = 11u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        let basis: Vec<f32> = (0..8 * dims).map(|_| next() - 0.5).collect();
        for _ in 0..n {
            let latent: Vec<f32> = (0..8).map(|_| next() * 4.0).collect();
            let v: Vec<f32> = (0..dims)
                .map(|d| {
                    let signal: f32 = (0..8).map(|k| latent[k] * basis[k * dims + d]).sum();
                    signal + 0.05 * next()
                })
                .collect();
            graph.push(&v);
        }
        graph
            .build(1, &mut crate::index::graph::Unattended)
            .unwrap();
        graph
    }

    /// At the same ef, the coded search finds what the exact search finds (recall against
    /// brute force within 0.05 of it, and at least 0.9) while expanding fewer nodes than the
    /// exact search evaluates; every returned distance is exact.
    #[test]
    fn coded_search_recalls_like_the_exact_search() {
        let (n, dims, k, ef) = (3000, 128, 10, 64);
        let graph = clustered_graph(n, dims);
        let coded = CodedMem::new(&graph);
        let (mut coded_hits, mut exact_hits, mut expanded) = (0, 0, 0);
        let queries: u32 = 30;
        for q in 0..queries {
            let query: Vec<f32> = graph.vector(q * 97 + 5).iter().map(|x| x + 0.05).collect();
            let mut truth: Vec<Scored<u32>> = (0..n as u32)
                .map(|id| Scored {
                    dist: graph.distance(&query, id),
                    id,
                })
                .collect();
            truth.sort_unstable();
            let truth: Vec<u32> = truth[..k].iter().map(|s| s.id).collect();
            let mut scratch = SearchScratch::new();
            let table = coded.table(&query);
            let found = coded_search(&coded, &mut scratch, &query, &table, ef, usize::MAX, |_| {
                true
            });
            let out = found.results;
            expanded += found.expanded;
            for (s, _) in &out {
                assert_eq!(s.dist, graph.distance(&query, s.id), "exact distances");
            }
            coded_hits += out[..k]
                .iter()
                .filter(|(s, _)| truth.contains(&s.id))
                .count();
            let mut scratch = SearchScratch::new();
            let exact = knn_search(&graph, &mut scratch, &query, k, ef);
            exact_hits += exact.iter().filter(|s| truth.contains(&s.id)).count();
        }
        let coded_recall = coded_hits as f64 / (queries as usize * k) as f64;
        let exact_recall = exact_hits as f64 / (queries as usize * k) as f64;
        assert!(
            coded_recall >= 0.9 && coded_recall >= exact_recall - 0.05,
            "coded {coded_recall} exact {exact_recall}"
        );
        assert!(expanded / (queries as usize) < n / 4, "expanded {expanded}");
    }

    /// The descent over codes reads far fewer nodes than the full-precision descent, which
    /// reads every neighbour of every node it passes, and ends as close to the query.
    #[test]
    fn the_coded_descent_reads_fewer_nodes() {
        let graph = clustered_graph(4000, 64);
        let coded = CodedMem::new(&graph);
        assert!(graph.entry_point().unwrap().level >= 2);
        let (mut plain_reads, mut coded_reads, mut plain_best, mut coded_best) = (0, 0, 0.0, 0.0);
        for q in 0..50u32 {
            let query: Vec<f32> = graph.vector(q * 71 + 3).iter().map(|x| x + 0.05).collect();
            let mut scratch = SearchScratch::new();
            coded.reads.set(0);
            scratch.start_at_layer0(&coded, &query);
            plain_reads += coded.reads.get();
            plain_best += scratch
                .seen
                .iter()
                .map(|s| s.dist)
                .fold(f32::INFINITY, f32::min);
            coded.reads.set(0);
            let table = coded.table(&query);
            let expanded = descend(&coded, &mut scratch, &query, &table).unwrap();
            assert_eq!(expanded, coded.reads.get());
            coded_reads += expanded;
            coded_best += scratch
                .seen
                .iter()
                .map(|s| graph.distance(&query, s.id))
                .fold(f32::INFINITY, f32::min);
        }
        assert!(
            coded_reads * 3 < plain_reads,
            "{coded_reads} vs {plain_reads}"
        );
        assert!(
            coded_best <= plain_best * 1.1,
            "{coded_best} vs {plain_best}"
        );
    }

    /// Under a filter the search goes through the nodes that fail it and keeps only those that
    /// pass: recall against brute force over the passing nodes stays high, at 10% and 50%.
    #[test]
    fn a_filtered_search_keeps_only_matches() {
        let (n, dims, k, ef) = (3000, 64, 10, 40);
        let graph = clustered_graph(n, dims);
        let coded = CodedMem::new(&graph);
        for modulus in [2, 10] {
            let passes = |id: u32| id % modulus == 1;
            let (mut hits, mut total) = (0, 0);
            for q in 0..30u32 {
                let query: Vec<f32> = graph.vector(q * 89 + 2).iter().map(|x| x + 0.05).collect();
                let mut truth: Vec<Scored<u32>> = (0..n as u32)
                    .filter(|&id| passes(id))
                    .map(|id| Scored {
                        dist: graph.distance(&query, id),
                        id,
                    })
                    .collect();
                truth.sort_unstable();
                let mut scratch = SearchScratch::new();
                let table = coded.table(&query);
                let found = coded_search(
                    &coded,
                    &mut scratch,
                    &query,
                    &table,
                    ef,
                    usize::MAX,
                    |&id| passes(id),
                );
                assert_eq!(found.results.len(), ef);
                assert!(found
                    .results
                    .iter()
                    .all(|(s, id)| passes(*id) && s.id == *id));
                hits += found.results[..k]
                    .iter()
                    .filter(|(s, _)| truth[..k].iter().any(|t| t.id == s.id))
                    .count();
                total += k;
            }
            let recall = hits as f64 / total as f64;
            assert!(recall >= 0.9, "1 in {modulus} pass: recall {recall}");
        }
    }

    /// The cap on expanded nodes holds, and what was found before it is returned.
    #[test]
    fn expansion_stops_at_the_cap() {
        let graph = clustered_graph(500, 64);
        let coded = CodedMem::new(&graph);
        let query = graph.vector(3).to_vec();
        let mut scratch = SearchScratch::new();
        let table = coded.table(&query);
        let all = |_: &u32| true;
        let found = coded_search(&coded, &mut scratch, &query, &table, 40, 0, all);
        let descent = found.expanded;
        assert!(
            found.results.is_empty() && descent > 0,
            "the cap holds on layer 0 only"
        );
        assert!(found.capped);
        let found = coded_search(&coded, &mut scratch, &query, &table, 40, 5, all);
        assert_eq!((found.expanded, found.capped), (descent + 5, true));
        assert!(!found.results.is_empty() && found.results.len() <= 5);
        let found = coded_search(&coded, &mut scratch, &query, &table, 40, usize::MAX, all);
        assert!(!found.capped);
        let out = found.results;
        assert_eq!(out.len(), 40);
        assert_eq!(out[0].0.id, 3, "the query's own vector first");
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0), "closest first");
    }
}
