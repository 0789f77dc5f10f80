//! HNSW graph algorithms for the `xhnsw` access method, independent of storage.
//!
//! What this file owns: every graph decision of HNSW (Malkov & Yashunin, "Efficient and robust
//! approximate nearest neighbor search using Hierarchical Navigable Small World graphs"):
//! layer search (algorithm 2), greedy descent and k-NN search (algorithm 5), the
//! neighbour-selection heuristic (algorithm 4), level assignment, insertion (algorithm 1),
//! repair after deletes (VACUUM) and [`MemGraph`], an in-memory graph with a parallel builder
//! for CREATE INDEX. It knows nothing of Postgres and uses only `std`.
//!
//! # Storage
//! Storage is reached through two traits. The store owns the vectors and computes distances;
//! this file only compares `f32` distances, smaller meaning closer.
//! - [`GraphStore`] (reads): `distance` (query vector to node), `distance_between` (node to
//!   node), `level`, `neighbours` (one layer's list), `entry_point`, and an optional
//!   `prefetch` hint (called one node ahead of `distance`).
//! - [`GraphStoreMut`] (writes): `set_neighbours`, `update_neighbours` (read-modify-write of
//!   one list, atomic with respect to other writers; has a default), `set_entry_point`.
//!
//! Hot methods for a page-backed store, most called first: `neighbours` (once per expanded
//! node), `distance` (once per node a search reaches: a visited set guarantees that one search
//! never asks twice for the same node), `distance_between` (insert's heuristic: up to about
//! `m * (2m + 1)` calls for each full list it shrinks; also repair), `update_neighbours` (once
//! per reverse link). `level` is read only by repair. Searches hold no lock between calls;
//! [`insert`] needs the new node to exist (vector, level, empty lists) before it links it.
//!
//! Equal distances are broken by id, larger first (see [`Scored`]): this keeps graphs of
//! duplicate vectors connected.
//!
//! # API
//! - [`HnswParams`], [`LevelGenerator`]: parameters; seeded level `floor(-ln(U) / ln(m))`.
//! - [`SearchScratch`]: reusable search state (visited set, heaps, buffers). Its methods
//!   [`start`](SearchScratch::start), [`descend`](SearchScratch::descend),
//!   [`search_layer`](SearchScratch::search_layer) and
//!   [`sorted_results`](SearchScratch::sorted_results) are the algorithm's building blocks;
//!   [`knn_search`] combines them.
//! - The resumable layer-0 search that scans use is in resumable.rs, built on these blocks.
//! - [`select_neighbours`]: algorithm 4. [`insert`]: algorithm 1 on any [`GraphStoreMut`].
//! - [`repair_node`], [`relink`], [`reach_layer0`]: VACUUM's rewiring around deleted nodes, in
//!   pieces that VACUUM runs in batches (vacuum.rs).
//! - [`MemGraph`]: `push` vectors, [`build`](MemGraph::build) with N threads, then read the
//!   graph back through [`GraphStore`] (`level`, `neighbours`, `entry_point`) to write pages.
//!   After `build` every node is reachable on layer 0 from the entry point.
//! - [`VisitedSet`] with [`HashVisited`] (any id) and [`DenseVisited`] (dense `u32` ids).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet, TryReserveError};
use std::fmt::Debug;
use std::hash::Hash;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;

// ---------------------------------------------------------------------------------------------
// Parameters and level assignment

/// Graph parameters used by [`insert`], [`repair_node`] and [`MemGraph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnswParams {
    /// Neighbours chosen for a new node on every layer, and the list capacity on layers >= 1.
    /// Layer 0 lists hold up to `2 * m`.
    pub m: usize,
    /// Size of the result set searched while inserting (at least `m`).
    pub ef_construction: usize,
    /// Highest level a node can get.
    pub max_level: usize,
    /// Algorithm 4's keepPrunedConnections on layer 0 (see [`fills`](Self::fills)): fill a list
    /// up to its capacity with the closest candidates that the heuristic rejected.
    pub keep_pruned: bool,
}

impl HnswParams {
    /// `m >= 2` (the level multiplier is `1 / ln m`); `max_level` 16; `keep_pruned` off.
    pub fn new(m: usize, ef_construction: usize) -> Self {
        assert!(m >= 2, "HNSW needs m >= 2");
        HnswParams {
            m,
            ef_construction: ef_construction.max(m),
            max_level: 16,
            keep_pruned: false,
        }
    }

    /// Whether lists on `level` are filled with pruned candidates: only on layer 0, where
    /// the search gathers its results. The upper layers keep the heuristic's choice alone:
    /// filled with near neighbours, their few links lost the long hops that the descent
    /// needs, and a search could stay in the wrong cluster (in pg_test's xhnsw_filter, one
    /// query under a filter then found none of its true neighbours).
    pub fn fills(&self, level: usize) -> bool {
        self.keep_pruned && level == 0
    }

    /// Capacity of a neighbour list on `level`.
    pub fn max_neighbours(&self, level: usize) -> usize {
        if level == 0 {
            2 * self.m
        } else {
            self.m
        }
    }
}

/// SplitMix64: tiny, seedable, good enough for levels and test data.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Draws node levels `floor(-ln(U) * mL)`, `mL = 1 / ln(m)`, capped at `max_level`.
#[derive(Clone, Debug)]
pub struct LevelGenerator {
    rng: SplitMix64,
    multiplier: f64,
    max_level: usize,
}

impl LevelGenerator {
    pub fn new(params: &HnswParams, seed: u64) -> Self {
        LevelGenerator {
            rng: SplitMix64(seed),
            multiplier: 1.0 / (params.m as f64).ln(),
            max_level: params.max_level,
        }
    }

    pub fn next_level(&mut self) -> usize {
        let u = 1.0 - self.rng.next_f64(); // in (0, 1], so ln(u) is finite
        ((-u.ln() * self.multiplier) as usize).min(self.max_level)
    }
}

// ---------------------------------------------------------------------------------------------
// Storage traits

/// What a node id must support. Blanket-implemented.
pub trait NodeId: Copy + Eq + Hash + Ord + Debug {}
impl<T: Copy + Eq + Hash + Ord + Debug> NodeId for T {}

/// The node every search starts from, with its level (the graph's top level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryPoint<Id> {
    pub id: Id,
    pub level: usize,
}

/// Read access to a stored graph. A node of level `L` has one neighbour list on each layer
/// `0..=L`; every id in a layer-`l` list is a node of level `>= l`.
pub trait GraphStore {
    type Id: NodeId;

    /// Distance from `query` to the vector of `id`.
    fn distance(&self, query: &[f32], id: Self::Id) -> f32;
    /// Distance between the vectors of two nodes (the heuristic's `dist(e, r)`).
    fn distance_between(&self, a: Self::Id, b: Self::Id) -> f32;
    /// Level of `id`.
    fn level(&self, id: Self::Id) -> usize;
    /// Replaces the contents of `out` with the neighbours of `id` on `level`.
    fn neighbours(&self, id: Self::Id, level: usize, out: &mut Vec<Self::Id>);
    /// The entry point, or `None` for an empty graph.
    fn entry_point(&self) -> Option<EntryPoint<Self::Id>>;
    /// Hint: `distance` will soon be asked for `id` (searches call it one node ahead). A page
    /// store may start reading the node's page; the default does nothing.
    fn prefetch(&self, _id: Self::Id) {}
    /// A node deleted but maybe not yet unlinked everywhere (VACUUM repairs in batches while
    /// inserts run): searches pass through it, but [`insert`] never links to it.
    fn is_deleted(&self, _id: Self::Id) -> bool {
        false
    }
}

/// Write access. A node is created by the store (vector and level) before [`insert`] links it.
pub trait GraphStoreMut: GraphStore {
    /// Replaces the neighbour list of `id` on `level`; never longer than
    /// [`HnswParams::max_neighbours`].
    fn set_neighbours(&mut self, id: Self::Id, level: usize, neighbours: &[Self::Id]);

    /// [`insert`] calls this only when the new node's level is above that of the entry point
    /// it read when it started; a store with concurrent writers should re-check under its lock
    /// and keep the higher one. VACUUM calls it to replace a deleted entry point.
    fn set_entry_point(&mut self, entry: Option<EntryPoint<Self::Id>>);

    /// Adds `new` to the list of `owner` on `level`, re-selecting the list with the heuristic
    /// when it overflows (see [`insert`]). A store that caches what the heuristic needs may do
    /// this with fewer distances; the list it leaves must hold the same nodes.
    fn add_link(
        &mut self,
        params: &HnswParams,
        owner: Self::Id,
        new: Self::Id,
        level: usize,
        buffer: &mut Vec<Scored<Self::Id>>,
    ) {
        let capacity = params.max_neighbours(level);
        self.update_neighbours(owner, level, |reader, list| {
            if list.contains(&new) {
                return false;
            }
            list.push(new);
            if list.len() > capacity {
                shrink(reader, params.fills(level), owner, list, capacity, buffer);
            }
            true
        });
    }

    /// Read-modify-write of one list: `f` gets the current list and edits it in place, returning
    /// whether it changed (only then is it written). A store with concurrent writers must hold
    /// the list's lock around the whole call; `f` only calls `distance_between` on the store.
    fn update_neighbours<F>(&mut self, id: Self::Id, level: usize, f: F)
    where
        F: FnOnce(&Self, &mut Vec<Self::Id>) -> bool,
    {
        let mut list = Vec::new();
        self.neighbours(id, level, &mut list);
        if f(self, &mut list) {
            self.set_neighbours(id, level, &list);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scored ids and visited sets

/// A node with its distance to the current query. Ordered by distance (`f32::total_cmp`), then
/// by id DEScending, so that every heap and sort here is deterministic.
///
/// Why larger ids first: among equal distances (duplicate vectors) every search would otherwise
/// resolve ties the same way, so the lowest ids would become the only hubs and later duplicates
/// would lose all their in-links when full lists are re-selected. Preferring the larger (with
/// ids handed out in insertion order: the newer) node links each duplicate to the ones inserted
/// just before it and keeps it in their lists, which keeps all duplicates reachable.
#[derive(Clone, Copy, Debug)]
pub struct Scored<Id> {
    pub dist: f32,
    pub id: Id,
}

impl<Id: Ord> Ord for Scored<Id> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist
            .total_cmp(&other.dist)
            .then_with(|| other.id.cmp(&self.id))
    }
}

impl<Id: Ord> PartialOrd for Scored<Id> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<Id: Ord> PartialEq for Scored<Id> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<Id: Ord> Eq for Scored<Id> {}

/// The set of nodes a search has already evaluated.
pub trait VisitedSet<Id> {
    fn clear(&mut self);
    /// Marks `id`; returns true if it was not marked before.
    fn insert(&mut self, id: Id) -> bool;
}

/// A fast hasher for small keys such as node ids (the multiply-rotate of rustc's FxHash).
/// Not DoS-resistant, which is fine: the keys are the index's own item pointers.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(n as u64);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

pub type FastHash = std::hash::BuildHasherDefault<FastHasher>;

/// Visited set for any id type (a page store's TIDs, say).
#[derive(Clone, Debug)]
pub struct HashVisited<Id>(HashSet<Id, FastHash>);

impl<Id> Default for HashVisited<Id> {
    fn default() -> Self {
        HashVisited(HashSet::default())
    }
}

impl<Id: NodeId> HashVisited<Id> {
    /// Room for `capacity` ids, or the allocator's refusal (the caller reports it).
    pub fn try_with_capacity(capacity: usize) -> Result<Self, TryReserveError> {
        let mut set = HashSet::default();
        set.try_reserve(capacity)?;
        Ok(HashVisited(set))
    }
}

impl<Id: NodeId> VisitedSet<Id> for HashVisited<Id> {
    fn clear(&mut self) {
        self.0.clear();
    }

    fn insert(&mut self, id: Id) -> bool {
        self.0.insert(id)
    }
}

/// Visited set for dense `u32` ids: one stamp per id, and `clear` just starts a new
/// generation, so reusing it across searches costs nothing. Grows on demand.
#[derive(Clone, Debug)]
pub struct DenseVisited {
    stamps: Vec<u32>,
    generation: u32,
}

impl DenseVisited {
    pub fn new(capacity: usize) -> Self {
        DenseVisited {
            stamps: vec![0; capacity],
            generation: 1,
        }
    }

    /// As `new`, or the allocator's refusal.
    pub fn try_new(capacity: usize) -> Result<Self, TryReserveError> {
        let mut stamps = Vec::new();
        stamps.try_reserve_exact(capacity)?;
        stamps.resize(capacity, 0);
        Ok(DenseVisited {
            stamps,
            generation: 1,
        })
    }

    /// Bytes one set for `nodes` ids holds.
    pub fn bytes_for(nodes: usize) -> usize {
        nodes * mem::size_of::<u32>()
    }
}

impl VisitedSet<u32> for DenseVisited {
    fn clear(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // Wrapped: stamps from 2^32 searches ago would look current.
            self.stamps.fill(0);
            self.generation = 1;
        }
    }

    fn insert(&mut self, id: u32) -> bool {
        let index = id as usize;
        if index >= self.stamps.len() {
            self.stamps.resize(index + 1, 0);
        }
        let stamp = &mut self.stamps[index];
        let fresh = *stamp != self.generation;
        *stamp = self.generation;
        fresh
    }
}

// ---------------------------------------------------------------------------------------------
// Search

/// Reusable state of one search (and of one insert). Create one per thread or backend and pass
/// it to every call: after warm-up, searching allocates nothing.
pub struct SearchScratch<Id, V> {
    pub(super) visited: V,
    /// Frontier C: reached, not yet expanded; closest on top.
    pub(super) candidates: BinaryHeap<Reverse<Scored<Id>>>,
    /// Result set W: the best `ef` reached; furthest on top.
    pub(super) results: BinaryHeap<Scored<Id>>,
    /// Every node evaluated since `start`, with its distance. Each layer's search is seeded
    /// with all of them (not just the previous layer's result), so that no node's distance is
    /// asked for twice while descending and no evaluated node is lost.
    pub(super) seen: Vec<Scored<Id>>,
    /// Buffers: one neighbour list; candidates sorted for selection; a selection; deleted
    /// nodes still to look through (repair).
    pub(super) neighbours: Vec<Id>,
    pub(super) ordered: Vec<Scored<Id>>,
    selected: Vec<Id>,
    deleted: Vec<Id>,
}

impl<Id: NodeId> Default for SearchScratch<Id, HashVisited<Id>> {
    fn default() -> Self {
        SearchScratch::with_visited(HashVisited::default())
    }
}

impl<Id: NodeId> SearchScratch<Id, HashVisited<Id>> {
    /// Scratch with a hash-based visited set, usable with any store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<Id: NodeId, V: VisitedSet<Id>> SearchScratch<Id, V> {
    pub fn with_visited(visited: V) -> Self {
        SearchScratch {
            visited,
            candidates: BinaryHeap::new(),
            results: BinaryHeap::new(),
            seen: Vec::new(),
            neighbours: Vec::new(),
            ordered: Vec::new(),
            selected: Vec::new(),
            deleted: Vec::new(),
        }
    }

    /// Begins a search at `entry`, whose distance to the query is `dist`.
    pub fn start(&mut self, entry: Id, dist: f32) {
        self.visited.clear();
        self.candidates.clear();
        self.results.clear();
        self.seen.clear();
        self.visited.insert(entry);
        self.seen.push(Scored { dist, id: entry });
    }

    /// Greedy descent: `search_layer` with `ef = 1` on layers `top` down to `bottom + 1`.
    pub fn descend<S: GraphStore<Id = Id>>(
        &mut self,
        store: &S,
        mut dist: impl FnMut(Id) -> f32,
        top: usize,
        bottom: usize,
    ) {
        for level in (bottom + 1..=top).rev() {
            self.search_layer(store, &mut dist, level, 1);
        }
    }

    /// Algorithm 2 on `level`, seeded with every node evaluated since `start`; keeps the best
    /// `ef` in the result set. `dist(id)` is the distance from the query to `id`.
    pub fn search_layer<S: GraphStore<Id = Id>>(
        &mut self,
        store: &S,
        mut dist: impl FnMut(Id) -> f32,
        level: usize,
        ef: usize,
    ) {
        let ef = ef.max(1);
        self.candidates.clear();
        self.results.clear();
        for &s in &self.seen {
            self.candidates.push(Reverse(s));
            offer(&mut self.results, s, ef);
        }
        while let Some(Reverse(c)) = self.candidates.pop() {
            if beyond_results(&self.results, ef, c) {
                break;
            }
            let (candidates, results, seen) =
                (&mut self.candidates, &mut self.results, &mut self.seen);
            let (visited, buffer) = (&mut self.visited, &mut self.neighbours);
            visit_neighbours(store, visited, buffer, c.id, level, &mut dist, |s| {
                seen.push(s);
                // A node that cannot enter W could never be expanded before the loop stops.
                if offer(results, s, ef) != Some(s) {
                    candidates.push(Reverse(s));
                }
            });
        }
    }

    /// The result set of the last `search_layer`, closest first. Empties the result set.
    pub fn sorted_results(&mut self) -> &[Scored<Id>] {
        self.sort_results();
        &self.ordered
    }

    pub(super) fn sort_results(&mut self) {
        self.ordered.clear();
        self.ordered.extend(self.results.drain());
        self.ordered.sort_unstable();
    }

    /// Starts a search for `query` at the store's entry point and descends to layer 0, leaving
    /// the nodes it evaluated in `seen`. False for an empty graph.
    pub(super) fn start_at_layer0<S: GraphStore<Id = Id>>(
        &mut self,
        store: &S,
        query: &[f32],
    ) -> bool {
        let Some(entry) = store.entry_point() else {
            return false;
        };
        self.start(entry.id, store.distance(query, entry.id));
        self.descend(store, |id| store.distance(query, id), entry.level, 0);
        true
    }
}

/// Offers `s` to the bounded max-heap `heap`. Returns what did not fit: `None` if `s` was added
/// with room to spare, `Some(s)` if `s` was rejected, or `Some(evicted)` otherwise.
pub(super) fn offer<Id: Ord + Copy>(
    heap: &mut BinaryHeap<Scored<Id>>,
    s: Scored<Id>,
    bound: usize,
) -> Option<Scored<Id>> {
    if heap.len() < bound {
        heap.push(s);
        return None;
    }
    match heap.peek_mut() {
        Some(mut top) if s < *top => Some(mem::replace(&mut *top, s)),
        _ => Some(s),
    }
}

/// Algorithm 2's stopping rule: the closest candidate is worse than every result, and the
/// result set is full.
pub(super) fn beyond_results<Id: Ord>(
    results: &BinaryHeap<Scored<Id>>,
    ef: usize,
    c: Scored<Id>,
) -> bool {
    results.len() >= ef && results.peek().is_some_and(|furthest| c > *furthest)
}

/// Evaluates the not-yet-visited neighbours of `node` on `level`, handing each to `found`.
pub(super) fn visit_neighbours<S: GraphStore, V: VisitedSet<S::Id>>(
    store: &S,
    visited: &mut V,
    buffer: &mut Vec<S::Id>,
    node: S::Id,
    level: usize,
    dist: &mut impl FnMut(S::Id) -> f32,
    mut found: impl FnMut(Scored<S::Id>),
) {
    store.neighbours(node, level, buffer);
    buffer.retain(|&n| visited.insert(n));
    // Fetching a vector costs more than comparing it: overlap the next fetch with this distance.
    if let Some(&first) = buffer.first() {
        store.prefetch(first);
    }
    for (i, &n) in buffer.iter().enumerate() {
        if let Some(&next) = buffer.get(i + 1) {
            store.prefetch(next);
        }
        found(Scored {
            dist: dist(n),
            id: n,
        });
    }
}

/// Algorithm 5: the `k` nodes nearest to `query` found with a layer-0 result set of
/// `max(ef, k)`, closest first.
pub fn knn_search<S: GraphStore, V: VisitedSet<S::Id>>(
    store: &S,
    scratch: &mut SearchScratch<S::Id, V>,
    query: &[f32],
    k: usize,
    ef: usize,
) -> Vec<Scored<S::Id>> {
    if k == 0 || !scratch.start_at_layer0(store, query) {
        return Vec::new();
    }
    scratch.search_layer(store, |id| store.distance(query, id), 0, ef.max(k));
    let mut out = scratch.sorted_results().to_vec();
    out.truncate(k);
    out
}

// ---------------------------------------------------------------------------------------------
// Neighbour selection and insertion

/// Distances this close to 0 count as "the same vector" in [`select_neighbours`].
const DUPLICATE_DISTANCE: f32 = 1e-6;

/// Algorithm 4 (without extendCandidates). `candidates` are sorted closest first, with their
/// distance to the base node; `dist(a, b)` is the distance between two candidates. A candidate
/// is kept unless an already kept one is closer to it than the base is (ties keep it, so
/// duplicates of the base stay connected, up to half the list). With `keep_pruned`, the closest rejected candidates
/// then fill the list up to `max`. Replaces the contents of `out`.
pub fn select_neighbours<Id: Copy + PartialEq>(
    candidates: &[Scored<Id>],
    max: usize,
    keep_pruned: bool,
    mut dist: impl FnMut(Id, Id) -> f32,
    out: &mut Vec<Id>,
) {
    out.clear();
    // Copies of the owner's own vector (distance ~0 under L2 and cosine) would pass the heuristic
    // forever and could fill the whole list, cutting every other node off from the owner: they
    // get at most half the slots. (Under inner product distances are -a·b, rarely near 0.)
    let max_duplicates = (max / 2).max(1);
    let mut duplicates = 0;
    for c in candidates {
        if out.len() >= max {
            break;
        }
        if c.dist.abs() <= DUPLICATE_DISTANCE {
            if duplicates >= max_duplicates {
                continue;
            }
            duplicates += 1;
        }
        if out.iter().all(|&kept| dist(c.id, kept) >= c.dist) {
            out.push(c.id);
        }
    }
    if keep_pruned {
        for c in candidates {
            if out.len() >= max {
                break;
            }
            if !out.contains(&c.id) {
                out.push(c.id);
            }
        }
    }
}

/// Algorithm 1: links node `id` (already created in the store with `vector` and `level`) into
/// the graph: on each layer from `min(level, top)` down to 0 it searches `ef_construction`
/// candidates, keeps `m` with the heuristic, and adds the reverse links (re-selecting a list
/// that overflows its capacity). Raises the entry point if `level` is above the top.
pub fn insert<S: GraphStoreMut, V: VisitedSet<S::Id>>(
    store: &mut S,
    scratch: &mut SearchScratch<S::Id, V>,
    params: &HnswParams,
    id: S::Id,
    vector: &[f32],
    level: usize,
) {
    let Some(entry) = store.entry_point() else {
        store.set_entry_point(Some(EntryPoint { id, level }));
        return;
    };
    scratch.start(entry.id, store.distance(vector, entry.id));
    scratch.visited.insert(id); // a concurrent insert may already link to `id`: never to itself
    scratch.descend(&*store, |n| store.distance(vector, n), entry.level, level);
    for l in (0..=level.min(entry.level)).rev() {
        scratch.search_layer(
            &*store,
            |n| store.distance(vector, n),
            l,
            params.ef_construction,
        );
        scratch.sort_results();
        scratch.ordered.retain(|s| !store.is_deleted(s.id));
        sort_for(id, &mut scratch.ordered);
        let reader = &*store;
        let distance = |a, b| reader.distance_between(a, b);
        select_neighbours(
            &scratch.ordered,
            params.m,
            params.fills(l),
            distance,
            &mut scratch.selected,
        );
        store.set_neighbours(id, l, &scratch.selected);
        for &neighbour in &scratch.selected {
            store.add_link(params, neighbour, id, l, &mut scratch.ordered);
        }
    }
    if level > entry.level {
        store.set_entry_point(Some(EntryPoint { id, level }));
    }
}

/// Sorts candidates for `owner`'s list closest first, ties in an order of their own for each
/// owner. Ordered by id instead, copies of one vector (all at distance 0 from each other) would
/// rank alike in every list, and as more copies arrive each full list would drop the same ones
/// until no list holds them: unreachable (`copies_inserted_after_a_build_stay_reachable`).
fn sort_for<Id: NodeId>(owner: Id, candidates: &mut [Scored<Id>]) {
    use std::hash::Hasher;
    let rank = |id: Id| {
        let mut hasher = FastHasher::default();
        owner.hash(&mut hasher);
        id.hash(&mut hasher);
        hasher.finish()
    };
    candidates.sort_unstable_by(|a, b| {
        a.dist
            .total_cmp(&b.dist)
            .then_with(|| rank(a.id).cmp(&rank(b.id)))
    });
}

/// Re-selects `list`, the neighbours of `owner`, down to `capacity` with the heuristic.
fn shrink<S: GraphStore + ?Sized>(
    store: &S,
    keep_pruned: bool,
    owner: S::Id,
    list: &mut Vec<S::Id>,
    capacity: usize,
    buffer: &mut Vec<Scored<S::Id>>,
) {
    buffer.clear();
    buffer.extend(list.iter().map(|&n| Scored {
        dist: store.distance_between(owner, n),
        id: n,
    }));
    sort_for(owner, buffer);
    select_neighbours(
        buffer,
        capacity,
        keep_pruned,
        |a, b| store.distance_between(a, b),
        list,
    );
}

// ---------------------------------------------------------------------------------------------
// Repair after deletes

/// Re-selects every list of `node` that holds a deleted node (see [`repair_list`]); returns
/// how many it rewrote. VACUUM calls it for the in-neighbours of the nodes it deleted, batch by
/// batch; afterwards no list of `node` holds a node for which `is_deleted` is true.
pub fn repair_node<S: GraphStoreMut, V: VisitedSet<S::Id>>(
    store: &mut S,
    scratch: &mut SearchScratch<S::Id, V>,
    params: &HnswParams,
    node: S::Id,
    is_deleted: &impl Fn(S::Id) -> bool,
) -> usize {
    (0..=store.level(node))
        .filter(|&level| repair_list(store, scratch, params, node, level, is_deleted))
        .count()
}

/// Re-selects the list of `node` on `level` if it holds a deleted node. True if rewritten.
///
/// The candidates are the live nodes among: the old neighbours, their neighbours, and the
/// neighbours of deleted nodes met there (so a chain of two deleted nodes is looked through).
fn repair_list<S: GraphStoreMut, V: VisitedSet<S::Id>>(
    store: &mut S,
    scratch: &mut SearchScratch<S::Id, V>,
    params: &HnswParams,
    node: S::Id,
    level: usize,
    is_deleted: &impl Fn(S::Id) -> bool,
) -> bool {
    // `selected` first holds the current list, then the new one; `deleted` the second-hop
    // deleted nodes whose lists are still to be read.
    let SearchScratch {
        visited,
        neighbours: hop,
        ordered,
        selected: list,
        deleted,
        ..
    } = scratch;
    store.neighbours(node, level, list);
    if !list.iter().any(|&n| is_deleted(n)) {
        return false;
    }
    visited.clear();
    visited.insert(node);
    ordered.clear();
    deleted.clear();
    let reader = &*store;
    // Scores `c` if it is new and live; true if it is new and deleted.
    let mut consider = |c: S::Id, ordered: &mut Vec<Scored<S::Id>>| {
        if !visited.insert(c) {
            return false;
        }
        if is_deleted(c) {
            return true;
        }
        ordered.push(Scored {
            dist: reader.distance_between(node, c),
            id: c,
        });
        false
    };
    for &n in list.iter() {
        consider(n, ordered);
    }
    for &n in list.iter() {
        reader.neighbours(n, level, hop);
        for &c in hop.iter() {
            if consider(c, ordered) && is_deleted(n) {
                deleted.push(c);
            }
        }
    }
    for &d in deleted.iter() {
        reader.neighbours(d, level, hop);
        for &c in hop.iter() {
            consider(c, ordered);
        }
    }
    ordered.sort_unstable();
    let distance = |a, b| reader.distance_between(a, b);
    select_neighbours(
        ordered,
        params.max_neighbours(level),
        params.fills(level),
        distance,
        list,
    );
    store.set_neighbours(node, level, list);
    true
}

/// Most passes of the reachability check; each relinks what the previous one's edits cut off
/// (a link into a full list drops one of its neighbours, whose last in-link it may have been).
pub const RELINK_PASSES: usize = 4;

/// Links each node of `nodes` that no layer-0 path from the entry point reaches back into the
/// graph, pass after pass while some remain (a relink can cut another node off). Returns how
/// many were relinked and how many are still unreachable; None when `stop` said so (polled
/// once per node relinked). `reached` is the walk's visited set.
fn relink_unreachable<S: GraphStoreMut, V: VisitedSet<S::Id>, R: VisitedSet<S::Id>>(
    store: &mut S,
    scratch: &mut SearchScratch<S::Id, V>,
    params: &HnswParams,
    nodes: impl Iterator<Item = S::Id> + Clone,
    reached: &mut R,
    stop: &mut dyn FnMut() -> bool,
) -> Option<(usize, usize)> {
    let mut relinked = 0;
    let mut lost = Vec::new();
    for _ in 0..RELINK_PASSES {
        reach_layer0(store, reached, || {});
        lost.clear();
        lost.extend(nodes.clone().filter(|&id| reached.insert(id)));
        if lost.is_empty() {
            return Some((relinked, 0));
        }
        relinked += relink(store, scratch, params, &lost, stop)?;
    }
    reach_layer0(store, reached, || {});
    Some((relinked, nodes.filter(|&id| reached.insert(id)).count()))
}

/// Marks in `reached` (cleared first) every node a layer-0 path from the entry point reaches;
/// `on_node` runs once per node reached (a caller's interrupt or delay point).
pub fn reach_layer0<S: GraphStore, R: VisitedSet<S::Id>>(
    store: &S,
    reached: &mut R,
    mut on_node: impl FnMut(),
) {
    reached.clear();
    let Some(entry) = store.entry_point() else {
        return;
    };
    reached.insert(entry.id);
    let (mut stack, mut list) = (vec![entry.id], Vec::new());
    while let Some(node) = stack.pop() {
        on_node();
        store.neighbours(node, 0, &mut list);
        stack.extend(list.iter().filter(|&&n| reached.insert(n)));
    }
}

/// Links each node of `lost` into the layer-0 list of one of its nearest reachable nodes.
/// Returns how many were linked; None when `stop` (polled once per node) said so.
pub fn relink<S: GraphStoreMut, V: VisitedSet<S::Id>>(
    store: &mut S,
    scratch: &mut SearchScratch<S::Id, V>,
    params: &HnswParams,
    lost: &[S::Id],
    stop: &mut dyn FnMut() -> bool,
) -> Option<usize> {
    let Some(entry) = store.entry_point() else {
        return Some(0);
    };
    for &node in lost {
        if stop() {
            return None;
        }
        // Search layer 0 from the entry point with `node` itself as the query: it finds only
        // nodes that a layer-0 walk from the entry reaches. (Descending through the upper
        // layers could land in a group of nodes that only upper-layer links lead to, and link
        // `node` to that unreachable group.)
        scratch.start(entry.id, store.distance_between(node, entry.id));
        scratch.visited.insert(node);
        scratch.search_layer(
            &*store,
            |n| store.distance_between(node, n),
            0,
            params.ef_construction,
        );
        scratch.sort_results();
        scratch.ordered.retain(|s| !store.is_deleted(s.id));
        scratch.selected.clear();
        scratch
            .selected
            .extend(scratch.ordered.iter().map(|s| s.id).take(params.m));
        let accepted = scratch
            .selected
            .iter()
            .any(|&host| link_if_kept(store, params, host, node, &mut scratch.ordered));
        if !accepted {
            if let Some(&host) = scratch.selected.first() {
                force_link(store, params, host, node, &mut scratch.ordered);
            }
        }
    }
    Some(lost.len())
}

/// Adds `node` to the layer-0 list of `host` if the heuristic keeps it there. True if added.
fn link_if_kept<S: GraphStoreMut>(
    store: &mut S,
    params: &HnswParams,
    host: S::Id,
    node: S::Id,
    buffer: &mut Vec<Scored<S::Id>>,
) -> bool {
    let capacity = params.max_neighbours(0);
    let mut kept = false;
    store.update_neighbours(host, 0, |reader, list| {
        let mut edited = list.clone();
        edited.push(node);
        if edited.len() > capacity {
            shrink(reader, params.fills(0), host, &mut edited, capacity, buffer);
        }
        kept = edited.contains(&node);
        if kept {
            *list = edited;
        }
        kept
    });
    kept
}

/// Puts `node` into the layer-0 list of `host`. A full list makes room by dropping its furthest
/// neighbour; with `keep_pruned`, its furthest neighbour that the heuristic rejects (one close
/// to a kept neighbour, which most likely links to it: dropping the furthest of a full list
/// would often cut that node off in turn).
fn force_link<S: GraphStoreMut>(
    store: &mut S,
    params: &HnswParams,
    host: S::Id,
    node: S::Id,
    buffer: &mut Vec<Scored<S::Id>>,
) {
    let capacity = params.max_neighbours(0);
    store.update_neighbours(host, 0, |reader, list| {
        if list.len() >= capacity && params.fills(0) {
            shrink(reader, true, host, list, capacity - 1, buffer);
        } else if list.len() >= capacity {
            let furthest = (0..list.len()).max_by(|&a, &b| {
                let (da, db) = (
                    reader.distance_between(host, list[a]),
                    reader.distance_between(host, list[b]),
                );
                da.total_cmp(&db)
            });
            list.remove(furthest.unwrap_or(0));
        }
        list.push(node);
        true
    });
}

// ---------------------------------------------------------------------------------------------
// In-memory graph and parallel build

/// An in-memory HNSW graph with dense `u32` ids (push order), contiguous vectors and a
/// parallel builder. CREATE INDEX pushes every vector, calls [`build`](Self::build), then reads
/// each node's level and lists through [`GraphStore`] to write pages.
///
/// Its [`GraphStoreMut`] impl (exclusive access) serves [`repair_node`] and tests; link
/// pushed nodes with `build`, not with [`insert`].
pub struct MemGraph<D> {
    dim: usize,
    params: HnswParams,
    metric: D,
    vectors: Vec<f32>,
    levels: Vec<u8>,
    /// Per node, all of its lists in one boxed slice behind one lock (as hnswlib): layer 0 at
    /// offset 0 as `[header, 2m links]`, then each upper layer as `[header, m links]`.
    links: Vec<Mutex<Box<[Link]>>>,
    entry: Mutex<Option<EntryPoint<u32>>>,
    /// Nodes `0..linked` are in the graph; the rest are pushed and wait for `build`.
    linked: usize,
    level_generator: LevelGenerator,
}

impl<D: Fn(&[f32], &[f32]) -> f32> MemGraph<D> {
    /// An empty graph of `dim`-dimensional vectors; `metric(a, b)` is the distance kernel
    /// (L2 squared, negative inner product, cosine distance...); `seed` fixes the levels.
    pub fn new(dim: usize, params: HnswParams, metric: D, seed: u64) -> Self {
        assert!(
            params.max_level <= u8::MAX as usize,
            "max_level must fit in a u8"
        );
        MemGraph {
            dim,
            params,
            metric,
            vectors: Vec::new(),
            levels: Vec::new(),
            links: Vec::new(),
            entry: Mutex::new(None),
            linked: 0,
            level_generator: LevelGenerator::new(&params, seed),
        }
    }

    /// Reserves room for `additional` more vectors.
    pub fn reserve(&mut self, additional: usize) {
        self.vectors.reserve(additional * self.dim);
        self.levels.reserve(additional);
        self.links.reserve(additional);
    }

    /// As [`push`](Self::push), but reserving its memory fallibly: the allocator's refusal is
    /// returned instead of aborting the process.
    pub fn try_push(&mut self, vector: &[f32]) -> Result<u32, TryReserveError> {
        let (offset, capacity) = self.slot(self.params.max_level);
        self.vectors.try_reserve(self.dim)?;
        self.levels.try_reserve(1)?;
        self.links.try_reserve(1)?;
        // The largest list block a node can draw, so that `push` cannot fail after this.
        let mut probe: Vec<Link> = Vec::new();
        probe.try_reserve_exact(offset + 1 + capacity)?;
        drop(probe);
        Ok(self.push(vector))
    }

    /// Adds a node (not yet linked: call `build`) and returns its id.
    pub fn push(&mut self, vector: &[f32]) -> u32 {
        assert_eq!(
            vector.len(),
            self.dim,
            "vector has the wrong number of dimensions"
        );
        let id = u32::try_from(self.levels.len()).expect("MemGraph holds fewer than 2^32 nodes");
        let level = self.level_generator.next_level();
        let (offset, capacity) = self.slot(level);
        self.vectors.extend_from_slice(vector);
        self.levels.push(level as u8);
        self.links.push(Mutex::new(
            vec![Link::EMPTY; offset + 1 + capacity].into_boxed_slice(),
        ));
        id
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn params(&self) -> &HnswParams {
        &self.params
    }

    pub fn vector(&self, id: u32) -> &[f32] {
        let start = id as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    /// Bytes of list storage a node of level 0 takes (a build's memory estimate).
    pub fn list_bytes_per_node(m: usize) -> usize {
        (2 * m + 1) * std::mem::size_of::<Link>()
    }

    /// Where the list of `level` lives in a node's links: (offset of its header, capacity).
    fn slot(&self, level: usize) -> (usize, usize) {
        let m = self.params.m;
        match level {
            0 => (0, 2 * m),
            _ => (2 * m + 1 + (level - 1) * (m + 1), m),
        }
    }

    fn lock(&self, id: u32) -> MutexGuard<'_, Box<[Link]>> {
        // A panicking build worker already fails the build through thread::scope.
        self.links[id as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<D: Fn(&[f32], &[f32]) -> f32 + Sync> MemGraph<D> {
    /// Links every pushed, unlinked node, in id order, with `threads` workers (at least one;
    /// the calling thread is one of them). With one thread the graph depends only on the
    /// vectors, the parameters and the seed; with more, on the interleaving too, with the
    /// same quality. Workers share an atomic counter for the next node, lock a node while
    /// reading or changing its lists (never two at once), and each own a [`SearchScratch`]
    /// with a [`DenseVisited`], so the hot loop allocates nothing. Those sets (4 bytes a node
    /// each, one per thread and one for the reachability pass) are reserved first, fallibly.
    ///
    /// Finally, as HNSW can leave a rare node with no in-link (every list that held it was
    /// re-selected without it), such nodes are linked back (as VACUUM does), so that
    /// every node is reachable on layer 0 from the entry point and a scan can return it.
    /// Returns how many nodes that pass relinked.
    ///
    /// `control.stop()` is polled on the calling thread every [`POLL_EVERY`] nodes; when it
    /// says stop, every worker stops after its current node and this returns
    /// [`BuildHalt::Stopped`]; the nodes linked so far stay linked, and calling `build` again
    /// carries on from there.
    pub fn build(
        &mut self,
        threads: usize,
        control: &mut impl BuildControl,
    ) -> Result<usize, BuildHalt> {
        let (first, end) = (self.linked, self.len());
        let dense = || DenseVisited::try_new(end).map_err(|_| BuildHalt::OutOfMemory);
        let mut scratches = Vec::new();
        scratches
            .try_reserve_exact(threads.max(1))
            .map_err(|_| BuildHalt::OutOfMemory)?;
        for _ in 0..threads.max(1) {
            scratches.push(SearchScratch::with_visited(dense()?));
        }
        let mut reached = dense()?;
        let mut mine = scratches.pop().expect("one scratch per thread");
        if first < end {
            let (next, stop) = (&AtomicUsize::new(first), &AtomicBool::new(false));
            if self.entry_point().is_none() {
                // The first node alone: concurrent workers would each see an empty graph.
                self.link_until(next, first + 1, &mut mine, stop, &mut || false);
                next.store(first + 1, AtomicOrdering::Relaxed); // the call overshot by one
            }
            let graph = &*self;
            thread::scope(|scope| {
                control.spawning(&mut || {
                    for mut scratch in scratches.drain(..) {
                        scope.spawn(move || {
                            graph.link_until(next, end, &mut scratch, stop, &mut || false)
                        });
                    }
                });
                graph.link_until(next, end, &mut mine, stop, &mut || control.stop());
            });
            // Every node handed out before the stop was linked completely.
            self.linked = next.load(AtomicOrdering::Relaxed).min(end);
            if self.linked < end {
                return Err(BuildHalt::Stopped);
            }
        }
        let params = self.params;
        match relink_unreachable(
            self,
            &mut mine,
            &params,
            0..end as u32,
            &mut reached,
            &mut || control.stop(),
        ) {
            Some((relinked, _)) => Ok(relinked),
            None => Err(BuildHalt::Stopped),
        }
    }

    /// A worker: inserts the nodes `next` hands out until it reaches `end` or `stop` is set;
    /// sets `stop` itself when `poll` (called every [`POLL_EVERY`] nodes) says so.
    fn link_until(
        &self,
        next: &AtomicUsize,
        end: usize,
        scratch: &mut SearchScratch<u32, DenseVisited>,
        stop: &AtomicBool,
        poll: &mut dyn FnMut() -> bool,
    ) {
        let mut worker = Worker {
            graph: self,
            list: Vec::new(),
            links: Vec::new(),
            kept: Vec::new(),
        };
        for round in 1usize.. {
            if stop.load(AtomicOrdering::Relaxed) {
                return;
            }
            if round % POLL_EVERY == 0 && poll() {
                stop.store(true, AtomicOrdering::Relaxed);
                return;
            }
            let id = next.fetch_add(1, AtomicOrdering::Relaxed);
            if id >= end {
                return;
            }
            let id = id as u32;
            let level = self.levels[id as usize] as usize;
            insert(
                &mut worker,
                scratch,
                &self.params,
                id,
                self.vector(id),
                level,
            );
        }
    }
}

/// How often (in nodes) a build polls [`BuildControl::stop`].
pub const POLL_EVERY: usize = 64;

/// What drives [`MemGraph::build`] from outside.
pub trait BuildControl {
    /// Polled on the calling thread; true stops the build.
    fn stop(&mut self) -> bool {
        false
    }
    /// Runs `spawn`, which starts the worker threads (a Postgres backend blocks its signals
    /// around it, so that its signal handlers run only on its main thread).
    fn spawning(&mut self, spawn: &mut dyn FnMut()) {
        spawn()
    }
}

/// A build nothing stops.
pub struct Unattended;

impl BuildControl for Unattended {}

/// Why [`MemGraph::build`] returned early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildHalt {
    /// `BuildControl::stop` said so.
    Stopped,
    /// The visited sets could not be reserved.
    OutOfMemory,
}

impl<D: Fn(&[f32], &[f32]) -> f32> GraphStore for MemGraph<D> {
    type Id = u32;

    fn distance(&self, query: &[f32], id: u32) -> f32 {
        (self.metric)(query, self.vector(id))
    }

    fn distance_between(&self, a: u32, b: u32) -> f32 {
        (self.metric)(self.vector(a), self.vector(b))
    }

    fn level(&self, id: u32) -> usize {
        self.levels[id as usize] as usize
    }

    fn neighbours(&self, id: u32, level: usize, out: &mut Vec<u32>) {
        read_slot(&self.lock(id), self.slot(level), out);
    }

    fn entry_point(&self) -> Option<EntryPoint<u32>> {
        *self.entry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn prefetch(&self, id: u32) {
        #[cfg(target_arch = "x86_64")]
        for line in self.vector(id).chunks(16) {
            // SAFETY: a prefetch is only a hint: it cannot fault and changes no program state.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    line.as_ptr().cast(),
                )
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = id;
    }
}

impl<D: Fn(&[f32], &[f32]) -> f32> GraphStoreMut for MemGraph<D> {
    fn set_neighbours(&mut self, id: u32, level: usize, neighbours: &[u32]) {
        let slot = self.slot(level);
        let links = self.links[id as usize]
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        write_slot(links, slot, neighbours);
    }

    fn set_entry_point(&mut self, entry: Option<EntryPoint<u32>>) {
        *self.entry.get_mut().unwrap_or_else(PoisonError::into_inner) = entry;
    }
}

/// One build worker's view of a shared [`MemGraph`]: writes take the node's lock.
struct Worker<'a, D> {
    graph: &'a MemGraph<D>,
    /// The list being edited by `update_neighbours`.
    list: Vec<u32>,
    /// The list being edited by `add_link`, and the nodes its re-selection keeps.
    links: Vec<Link>,
    kept: Vec<u32>,
}

impl<D: Fn(&[f32], &[f32]) -> f32> GraphStore for Worker<'_, D> {
    type Id = u32;

    fn distance(&self, query: &[f32], id: u32) -> f32 {
        self.graph.distance(query, id)
    }

    fn distance_between(&self, a: u32, b: u32) -> f32 {
        self.graph.distance_between(a, b)
    }

    fn level(&self, id: u32) -> usize {
        self.graph.level(id)
    }

    fn neighbours(&self, id: u32, level: usize, out: &mut Vec<u32>) {
        self.graph.neighbours(id, level, out);
    }

    fn entry_point(&self) -> Option<EntryPoint<u32>> {
        self.graph.entry_point()
    }

    fn prefetch(&self, id: u32) {
        self.graph.prefetch(id);
    }
}

impl<D: Fn(&[f32], &[f32]) -> f32> GraphStoreMut for Worker<'_, D> {
    fn set_neighbours(&mut self, id: u32, level: usize, neighbours: &[u32]) {
        write_slot(&mut self.graph.lock(id), self.graph.slot(level), neighbours);
    }

    fn set_entry_point(&mut self, entry: Option<EntryPoint<u32>>) {
        // Two inserts may both rise above the top level they read: keep the higher.
        let mut current = self
            .graph
            .entry
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match (entry, *current) {
            (Some(new), Some(old)) if new.level <= old.level => {}
            _ => *current = entry,
        }
    }

    /// As the default, with the distances to `owner` and the heuristic's verdicts cached in
    /// the list (see [`reselect`]).
    fn add_link(
        &mut self,
        params: &HnswParams,
        owner: u32,
        new: u32,
        level: usize,
        _buffer: &mut Vec<Scored<u32>>,
    ) {
        let graph = self.graph;
        let (offset, capacity) = graph.slot(level);
        let mut node = graph.lock(owner);
        let len = node[offset].id as usize;
        let stored = &node[offset + 1..offset + 1 + len];
        if stored.iter().any(|l| l.id == new) {
            return;
        }
        let links = &mut self.links;
        links.clear();
        links.extend_from_slice(stored);
        if links.iter().any(|l| l.dist.is_nan()) {
            // Written without distances (`set_neighbours`): measure and sort it once.
            for l in links.iter_mut() {
                l.dist = graph.distance_between(owner, l.id);
                l.status = Verdict::Unknown;
            }
            links.sort_unstable_by_key(|l| l.scored());
        }
        let added = Link {
            id: new,
            dist: graph.distance_between(owner, new),
            status: Verdict::Unknown,
        };
        add_to_links(
            links,
            added,
            capacity,
            params.fills(level),
            |a, b| graph.distance_between(a, b),
            &mut self.kept,
        );
        node[offset].id = links.len() as u32;
        node[offset + 1..offset + 1 + links.len()].copy_from_slice(links);
    }

    fn update_neighbours<F>(&mut self, id: u32, level: usize, f: F)
    where
        F: FnOnce(&Self, &mut Vec<u32>) -> bool,
    {
        let graph = self.graph;
        let slot = graph.slot(level);
        let mut links = graph.lock(id);
        let mut list = mem::take(&mut self.list);
        read_slot(&links, slot, &mut list);
        if f(self, &mut list) {
            write_slot(&mut links, slot, &list);
        }
        self.list = list;
    }
}

/// One entry of a [`MemGraph`] list: a neighbour, its distance to the list's owner (NaN when
/// not measured yet) and the heuristic's verdict on it, cached for [`reselect`]. The first
/// entry of each list is its header, whose `id` is the list's length.
#[derive(Clone, Copy, Debug)]
struct Link {
    id: u32,
    dist: f32,
    status: Verdict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Not evaluated against the list as it is now.
    Unknown,
    Selected,
    Rejected,
}

impl Link {
    const EMPTY: Link = Link {
        id: 0,
        dist: f32::NAN,
        status: Verdict::Unknown,
    };

    fn scored(&self) -> Scored<u32> {
        Scored {
            dist: self.dist,
            id: self.id,
        }
    }
}

/// Puts `added` into `links` (sorted closest first, verdicts cached) and re-selects them when
/// they are more than `capacity`.
fn add_to_links(
    links: &mut Vec<Link>,
    added: Link,
    capacity: usize,
    keep_pruned: bool,
    dist: impl FnMut(u32, u32) -> f32,
    kept: &mut Vec<u32>,
) {
    let at = links.partition_point(|l| l.scored() < added.scored());
    links.insert(at, added);
    links[at..]
        .iter_mut()
        .for_each(|l| l.status = Verdict::Unknown);
    if links.len() > capacity {
        reselect(links, capacity, keep_pruned, dist, kept);
    }
}

/// [`select_neighbours`] over `links` (sorted closest first, one more than `capacity` or
/// more), done in place: afterwards `links` holds the same nodes as that function's output,
/// closest first, with their verdicts. The heuristic's verdict on a link depends only on the
/// links before it, so a verdict left by an earlier call on an unchanged prefix is reused
/// instead of measured again (as pgvector caches its "closer" flags); callers reset the
/// verdicts from the first changed position on.
fn reselect(
    links: &mut Vec<Link>,
    capacity: usize,
    keep_pruned: bool,
    mut dist: impl FnMut(u32, u32) -> f32,
    kept: &mut Vec<u32>,
) {
    let max_duplicates = (capacity / 2).max(1);
    let mut duplicates = 0;
    kept.clear();
    for i in 0..links.len() {
        if kept.len() >= capacity {
            links[i..]
                .iter_mut()
                .for_each(|l| l.status = Verdict::Unknown);
            break;
        }
        let c = links[i];
        if c.dist.abs() <= DUPLICATE_DISTANCE {
            if duplicates >= max_duplicates {
                links[i].status = Verdict::Rejected;
                continue;
            }
            duplicates += 1;
        }
        let selected = match c.status {
            Verdict::Selected => true,
            Verdict::Rejected => false,
            Verdict::Unknown => kept.iter().all(|&k| dist(c.id, k) >= c.dist),
        };
        links[i].status = if selected {
            Verdict::Selected
        } else {
            Verdict::Rejected
        };
        if selected {
            kept.push(c.id);
        }
    }
    if !keep_pruned {
        links.retain(|l| l.status == Verdict::Selected);
        return;
    }
    // Keep the closest of the others: drop the furthest ones that were not selected.
    let mut i = links.len();
    while links.len() > capacity {
        i -= 1;
        if links[i].status != Verdict::Selected {
            let dropped = links.remove(i);
            if dropped.dist.abs() <= DUPLICATE_DISTANCE {
                // It counted towards the duplicates of the links after it.
                links[i..]
                    .iter_mut()
                    .for_each(|l| l.status = Verdict::Unknown);
            }
        }
    }
}

fn read_slot(links: &[Link], (offset, _): (usize, usize), out: &mut Vec<u32>) {
    let len = links[offset].id as usize;
    out.clear();
    out.extend(links[offset + 1..offset + 1 + len].iter().map(|l| l.id));
}

/// Writes a list without distances (see [`Link`]).
fn write_slot(links: &mut [Link], (offset, capacity): (usize, usize), ids: &[u32]) {
    assert!(
        ids.len() <= capacity,
        "neighbour list over capacity: {} > {capacity}",
        ids.len()
    );
    links[offset].id = ids.len() as u32;
    for (slot, &id) in links[offset + 1..].iter_mut().zip(ids) {
        *slot = Link { id, ..Link::EMPTY };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::resumable::{ResumableOptions, ResumableSearch};
    use std::cell::RefCell;
    use std::collections::HashMap;

    type Metric = fn(&[f32], &[f32]) -> f32;
    type Rows = Vec<Vec<f32>>;

    fn l2(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    }

    fn neg_dot(a: &[f32], b: &[f32]) -> f32 {
        -a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
    }

    fn uniform(rng: &mut SplitMix64, n: usize, dim: usize) -> Rows {
        (0..n)
            .map(|_| {
                (0..dim)
                    .map(|_| rng.next_f64() as f32 * 2.0 - 1.0)
                    .collect()
            })
            .collect()
    }

    fn gaussian(rng: &mut SplitMix64) -> f32 {
        let (u, v) = (1.0 - rng.next_f64(), rng.next_f64());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }

    /// `n` rows and `queries` queries scattered (sigma 0.15) around the same `clusters`
    /// uniform centres.
    fn clustered(
        rng: &mut SplitMix64,
        n: usize,
        queries: usize,
        dim: usize,
        clusters: usize,
    ) -> (Rows, Rows) {
        let centres = uniform(rng, clusters, dim);
        let mut rows: Rows = (0..n + queries)
            .map(|_| {
                let centre = &centres[rng.next_u64() as usize % clusters];
                centre.iter().map(|c| c + 0.15 * gaussian(rng)).collect()
            })
            .collect();
        let queries = rows.split_off(n);
        (rows, queries)
    }

    fn normalised(rows: Rows) -> Rows {
        rows.into_iter()
            .map(|r| {
                let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt();
                r.iter().map(|x| x / norm).collect()
            })
            .collect()
    }

    fn build(rows: &[Vec<f32>], metric: Metric, threads: usize) -> MemGraph<Metric> {
        build_with(rows, metric, threads, HnswParams::new(16, 64))
    }

    fn build_with(
        rows: &[Vec<f32>],
        metric: Metric,
        threads: usize,
        params: HnswParams,
    ) -> MemGraph<Metric> {
        let mut graph = MemGraph::new(rows[0].len(), params, metric, 1);
        graph.reserve(rows.len());
        for row in rows {
            graph.push(row);
        }
        graph.build(threads, &mut Unattended).unwrap();
        graph
    }

    /// Ids of the `k` rows nearest to `query` among those `keep` accepts.
    fn exact(
        rows: &[Vec<f32>],
        metric: Metric,
        query: &[f32],
        k: usize,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<u32> {
        let mut all: Vec<Scored<u32>> = (0..rows.len() as u32)
            .filter(|&id| keep(id))
            .map(|id| Scored {
                dist: metric(query, &rows[id as usize]),
                id,
            })
            .collect();
        all.sort_unstable();
        all.iter().take(k).map(|s| s.id).collect()
    }

    fn overlap(found: &[u32], truth: &[u32]) -> usize {
        found.iter().filter(|id| truth.contains(id)).count()
    }

    /// recall@10 at ef = 100 over `queries`.
    fn recall(
        graph: &MemGraph<Metric>,
        rows: &[Vec<f32>],
        queries: &[Vec<f32>],
        metric: Metric,
    ) -> f64 {
        recall_at(graph, rows, queries, metric, 100)
    }

    fn recall_at(
        graph: &MemGraph<Metric>,
        rows: &[Vec<f32>],
        queries: &[Vec<f32>],
        metric: Metric,
        ef: usize,
    ) -> f64 {
        let mut scratch = SearchScratch::with_visited(DenseVisited::new(rows.len()));
        let hits: usize = queries
            .iter()
            .map(|q| {
                let found: Vec<u32> = knn_search(graph, &mut scratch, q, 10, ef)
                    .iter()
                    .map(|s| s.id)
                    .collect();
                overlap(&found, &exact(rows, metric, q, 10, |_| true))
            })
            .sum();
        hits as f64 / (10 * queries.len()) as f64
    }

    fn assert_lists_within_capacity(graph: &MemGraph<Metric>) {
        let mut list = Vec::new();
        for id in 0..graph.len() as u32 {
            for level in 0..=graph.level(id) {
                graph.neighbours(id, level, &mut list);
                assert!(list.len() <= graph.params().max_neighbours(level));
                assert!(!list.contains(&id), "self link at {id}");
            }
        }
    }

    /// Every node reachable on layer 0 from the entry point.
    fn reachable(graph: &MemGraph<Metric>) -> HashSet<u32> {
        let mut reached = DenseVisited::new(graph.len());
        reach_layer0(graph, &mut reached, || {});
        (0..graph.len() as u32)
            .filter(|&id| !reached.insert(id))
            .collect()
    }

    #[test]
    fn recall_l2_uniform() {
        let mut rng = SplitMix64(1);
        let rows = uniform(&mut rng, 4000, 32);
        let queries = uniform(&mut rng, 100, 32);
        let r = recall(&build(&rows, l2, 1), &rows, &queries, l2);
        println!("recall@10 {r}");
        assert!(r >= 0.98, "recall {r}");
    }

    #[test]
    fn recall_l2_clustered() {
        let mut rng = SplitMix64(2);
        let (rows, queries) = clustered(&mut rng, 4000, 100, 128, 20);
        let r = recall(&build(&rows, l2, 1), &rows, &queries, l2);
        println!("recall@10 {r}");
        assert!(r >= 0.98, "recall {r}");
    }

    #[test]
    fn recall_inner_product_normalised() {
        let mut rng = SplitMix64(3);
        let rows = normalised(uniform(&mut rng, 4000, 32));
        let queries = normalised(uniform(&mut rng, 100, 32));
        let r = recall(&build(&rows, neg_dot, 1), &rows, &queries, neg_dot);
        println!("recall@10 {r}");
        assert!(r >= 0.98, "recall {r}");
    }

    #[test]
    fn parallel_build_matches_single_thread() {
        let mut rng = SplitMix64(4);
        let (rows, queries) = clustered(&mut rng, 4000, 100, 64, 10);
        let single = build(&rows, l2, 1);
        let parallel = build(&rows, l2, 4);
        assert_lists_within_capacity(&parallel);
        assert_eq!(reachable(&single).len(), 4000);
        assert_eq!(reachable(&parallel).len(), 4000);
        let (r1, r4) = (
            recall(&single, &rows, &queries, l2),
            recall(&parallel, &rows, &queries, l2),
        );
        println!("recall@10: 1 thread {r1}, 4 threads {r4}");
        assert!(
            r1 >= 0.98 && r4 >= 0.98 && (r1 - r4).abs() <= 0.01,
            "1 thread {r1}, 4 threads {r4}"
        );
    }

    #[test]
    fn single_thread_build_is_deterministic() {
        let mut rng = SplitMix64(5);
        let rows = uniform(&mut rng, 1000, 16);
        let (a, b) = (build(&rows, l2, 1), build(&rows, l2, 1));
        assert_eq!(a.entry_point(), b.entry_point());
        let (mut la, mut lb) = (Vec::new(), Vec::new());
        for id in 0..1000 {
            assert_eq!(a.level(id), b.level(id));
            for level in 0..=a.level(id) {
                a.neighbours(id, level, &mut la);
                b.neighbours(id, level, &mut lb);
                assert_eq!(la, lb);
            }
        }
    }

    #[test]
    fn incremental_build_links_new_nodes() {
        let mut rng = SplitMix64(6);
        let (rows, queries) = clustered(&mut rng, 3000, 50, 32, 8);
        let mut graph = build(&rows[..1000], l2, 2);
        for row in &rows[1000..] {
            graph.push(row);
        }
        graph.build(2, &mut Unattended).unwrap();
        assert_eq!(reachable(&graph).len(), 3000);
        assert!(recall(&graph, &rows, &queries, l2) >= 0.98);
    }

    /// Stops at its `polls`-th poll; counts the spawning calls.
    struct StopAfter {
        polls: usize,
        spawned: usize,
    }

    impl BuildControl for StopAfter {
        fn stop(&mut self) -> bool {
            self.polls = self.polls.saturating_sub(1);
            self.polls == 0
        }
        fn spawning(&mut self, spawn: &mut dyn FnMut()) {
            self.spawned += 1;
            spawn()
        }
    }

    #[test]
    fn stopped_build_resumes() {
        let mut rng = SplitMix64(8);
        let (rows, queries) = clustered(&mut rng, 3000, 50, 32, 8);
        let mut graph = MemGraph::new(32, HnswParams::new(16, 64), l2 as Metric, 1);
        for row in &rows {
            graph.push(row);
        }
        let mut control = StopAfter {
            polls: 2,
            spawned: 0,
        };
        assert_eq!(graph.build(3, &mut control), Err(BuildHalt::Stopped));
        assert_eq!(control.spawned, 1, "workers are started inside `spawning`");
        assert!(
            graph.linked > 0 && graph.linked < 3000,
            "stopped after {} nodes",
            graph.linked
        );
        graph.build(3, &mut Unattended).unwrap();
        assert_eq!(reachable(&graph).len(), 3000);
        assert!(recall(&graph, &rows, &queries, l2) >= 0.98);
    }

    #[test]
    fn empty_graph() {
        let mut graph = MemGraph::new(4, HnswParams::new(16, 64), l2 as Metric, 1);
        assert_eq!(graph.build(4, &mut Unattended), Ok(0));
        assert!(graph.is_empty() && graph.entry_point().is_none());
        assert!(knn_search(&graph, &mut SearchScratch::new(), &[0.0; 4], 10, 10).is_empty());
        let mut search =
            ResumableSearch::new(&[0.0; 4], ResumableOptions::new(10), HashVisited::default());
        assert_eq!(search.next_batch(&graph, |_| true, &mut Vec::new()), 0);
    }

    #[test]
    fn one_and_two_nodes() {
        let graph = build(&[vec![1.0, 0.0]], l2, 2);
        let found = knn_search(&graph, &mut SearchScratch::new(), &[0.0, 0.0], 10, 10);
        assert_eq!(
            found.iter().map(|s| (s.id, s.dist)).collect::<Vec<_>>(),
            vec![(0, 1.0)]
        );

        let graph = build(&[vec![1.0, 0.0], vec![3.0, 0.0]], l2, 2);
        let found = knn_search(&graph, &mut SearchScratch::new(), &[4.0, 0.0], 10, 10);
        assert_eq!(found.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1, 0]);
        let mut list = Vec::new();
        graph.neighbours(0, 0, &mut list);
        assert_eq!(list, vec![1]);
        graph.neighbours(1, 0, &mut list);
        assert_eq!(list, vec![0]);
    }

    #[test]
    fn identical_vectors() {
        let rows = vec![vec![0.5; 8]; 1000];
        let graph = build(&rows, l2, 2);
        assert_lists_within_capacity(&graph);
        let found = knn_search(&graph, &mut SearchScratch::new(), &[0.5; 8], 10, 40);
        assert_eq!(found.len(), 10);
        assert!(found.iter().all(|s| s.dist == 0.0));
        assert_eq!(reachable(&graph).len(), 1000);
        let mut search =
            ResumableSearch::new(&[0.5; 8], ResumableOptions::new(40), DenseVisited::new(0));
        assert_eq!(drain(&graph, &mut search, |_| true).len(), 1000);
    }

    /// Drains a resumable search; checks each batch is sorted.
    fn drain(
        graph: &MemGraph<Metric>,
        search: &mut ResumableSearch<u32, DenseVisited>,
        filter: impl Fn(u32) -> bool,
    ) -> Vec<Scored<u32>> {
        let mut out = Vec::new();
        loop {
            let start = out.len();
            if search.next_batch(graph, &filter, &mut out) == 0 {
                return out;
            }
            assert!(
                out[start..].windows(2).all(|w| w[0] <= w[1]),
                "batch not sorted"
            );
        }
    }

    #[test]
    fn resumable_returns_every_reachable_node_once() {
        let mut rng = SplitMix64(7);
        let (rows, queries) = clustered(&mut rng, 2000, 1, 32, 10);
        let graph = build(&rows, l2, 2);
        let query = &queries[0];
        let mut search =
            ResumableSearch::new(query, ResumableOptions::new(50), DenseVisited::new(0));
        let all = drain(&graph, &mut search, |_| true);
        let ids: HashSet<u32> = all.iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), all.len(), "a node was returned twice");
        assert!(reachable(&graph).is_subset(&ids));
        // Near order: the first 100 returned are mostly the true first 100.
        let first: Vec<u32> = all[..100].iter().map(|s| s.id).collect();
        assert!(overlap(&first, &exact(&rows, l2, query, 100, |_| true)) >= 95);
    }

    #[test]
    fn resumable_first_batch_matches_knn() {
        let mut rng = SplitMix64(8);
        let (rows, queries) = clustered(&mut rng, 3000, 20, 32, 10);
        let graph = build(&rows, l2, 1);
        let mut scratch = SearchScratch::with_visited(DenseVisited::new(0));
        for query in queries {
            let knn = knn_search(&graph, &mut scratch, &query, 10, 100);
            let mut search =
                ResumableSearch::new(&query, ResumableOptions::new(100), DenseVisited::new(0));
            let mut batch = Vec::new();
            assert_eq!(search.next_batch(&graph, |_| true, &mut batch), 100);
            assert_eq!(knn, batch[..10]);
        }
    }

    #[test]
    fn resumable_with_selective_filter_finds_true_top10() {
        let mut rng = SplitMix64(9);
        let (rows, queries) = clustered(&mut rng, 5000, 20, 32, 10);
        let graph = build(&rows, l2, 2);
        let keep = |id: u32| id % 100 == 7; // 1% of the nodes
        let options = ResumableOptions {
            max_visited: 3000,
            ..ResumableOptions::new(40)
        };
        let mut hits = 0;
        for query in &queries {
            let mut search = ResumableSearch::new(query, options, DenseVisited::new(0));
            let mut found = Vec::new();
            while found.len() < 10 && search.next_batch(&graph, keep, &mut found) > 0 {}
            assert!(found.iter().all(|s| keep(s.id)));
            assert!(search.visited() <= options.max_visited + 32);
            let first: Vec<u32> = found.iter().take(10).map(|s| s.id).collect();
            hits += overlap(&first, &exact(&rows, l2, query, 10, keep));
        }
        let r = hits as f64 / (10 * queries.len()) as f64;
        println!("filtered recall@10 {r}");
        assert!(r >= 0.95, "filtered recall {r}");
    }

    #[test]
    fn strict_mode_never_goes_back() {
        let mut rng = SplitMix64(10);
        let rows = uniform(&mut rng, 2000, 16);
        let graph = build(&rows, l2, 1);
        for query in uniform(&mut rng, 10, 16) {
            let options = ResumableOptions {
                strict: true,
                ..ResumableOptions::new(10)
            };
            let mut search = ResumableSearch::new(&query, options, DenseVisited::new(0));
            let all = drain(&graph, &mut search, |_| true);
            assert!(all.windows(2).all(|w| w[0].dist <= w[1].dist));
            assert!(
                all.len() >= 1900,
                "strict mode dropped {} nodes",
                2000 - all.len()
            );
        }
    }

    /// Mean length of the layer-0 lists.
    fn mean_list_len(graph: &MemGraph<Metric>) -> f64 {
        let mut list = Vec::new();
        let total: usize = (0..graph.len() as u32)
            .map(|id| {
                graph.neighbours(id, 0, &mut list);
                list.len()
            })
            .sum();
        total as f64 / graph.len() as f64
    }

    #[test]
    fn keep_pruned_fills_lists_and_finds_more_per_ef() {
        let mut rng = SplitMix64(13);
        let (rows, queries) = clustered(&mut rng, 4000, 200, 48, 10);
        let sparse = build(&rows, l2, 1);
        let dense = build_with(
            &rows,
            l2,
            2,
            HnswParams {
                keep_pruned: true,
                ..HnswParams::new(16, 64)
            },
        );
        assert_lists_within_capacity(&dense);
        assert_eq!(reachable(&dense).len(), 4000);
        let (sparse_len, dense_len) = (mean_list_len(&sparse), mean_list_len(&dense));
        let (sparse_recall, dense_recall) = (
            recall_at(&sparse, &rows, &queries, l2, 10),
            recall_at(&dense, &rows, &queries, l2, 10),
        );
        println!(
            "layer-0 lists {sparse_len:.1} -> {dense_len:.1}; recall@10 at ef 10 {sparse_recall} -> {dense_recall}"
        );
        // A new node picks m = 16 (as the heuristic does): its list fills up to 2m from the
        // links back of later nodes.
        assert!(dense_len >= 1.5 * sparse_len, "{sparse_len} -> {dense_len}");
        assert!(
            dense_recall > sparse_recall,
            "{sparse_recall} -> {dense_recall}"
        );
    }

    #[test]
    fn delete_half_and_repair() {
        delete_half_and_repair_with(false);
    }

    #[test]
    fn delete_half_and_repair_full_lists() {
        delete_half_and_repair_with(true);
    }

    fn delete_half_and_repair_with(keep_pruned: bool) {
        let mut rng = SplitMix64(11);
        let (rows, queries) = clustered(&mut rng, 4000, 100, 32, 10);
        let params = HnswParams {
            keep_pruned,
            ..HnswParams::new(16, 64)
        };
        let mut graph = build_with(&rows, l2, 2, params);
        let entry = graph.entry_point().unwrap().id;
        let deleted: HashSet<u32> = (0..4000)
            .filter(|&id| id == entry || rng.next_u64().is_multiple_of(2))
            .collect();
        let live: Vec<u32> = (0..4000).filter(|id| !deleted.contains(id)).collect();
        // As VACUUM does it: a live entry point, the lists that held deleted nodes, relinks.
        let top =
            live.iter()
                .map(|&id| (graph.level(id), id))
                .reduce(|a, b| if b.0 > a.0 { b } else { a });
        graph.set_entry_point(top.map(|(level, id)| EntryPoint { id, level }));
        let is_deleted = |id| deleted.contains(&id);
        let mut scratch = SearchScratch::new();
        let rewritten: usize = live
            .iter()
            .map(|&id| repair_node(&mut graph, &mut scratch, &params, id, &is_deleted))
            .sum();
        let mut reached = DenseVisited::new(4000);
        let (relinked, unreachable) = relink_unreachable(
            &mut graph,
            &mut scratch,
            &params,
            live.iter().copied(),
            &mut reached,
            &mut || false,
        )
        .unwrap();
        assert!(
            rewritten > live.len() && unreachable == 0,
            "{rewritten} {relinked} {unreachable}"
        );

        let new_entry = graph.entry_point().unwrap();
        assert!(!deleted.contains(&new_entry.id));
        assert!(live.iter().all(|&id| graph.level(id) <= new_entry.level));
        let reached = reachable(&graph);
        assert!(live.iter().all(|id| reached.contains(id)));
        let mut list = Vec::new();
        for &id in &live {
            for level in 0..=graph.level(id) {
                graph.neighbours(id, level, &mut list);
                assert!(
                    list.iter().all(|n| !deleted.contains(n)),
                    "{id} still links a deleted node"
                );
            }
        }
        let mut scratch = SearchScratch::new();
        let hits: usize = queries
            .iter()
            .map(|q| {
                let found: Vec<u32> = knn_search(&graph, &mut scratch, q, 10, 100)
                    .iter()
                    .map(|s| s.id)
                    .collect();
                overlap(
                    &found,
                    &exact(&rows, l2, q, 10, |id| !deleted.contains(&id)),
                )
            })
            .sum();
        let r = hits as f64 / 1000.0;
        println!("{rewritten} lists rewritten, {relinked} relinked; recall@10 over survivors {r}");
        assert!(r >= 0.95, "recall after repair {r}");
    }

    /// A store with sparse u64 ids (like TIDs), the default `update_neighbours`, and a log of
    /// the nodes whose distance was asked for.
    #[derive(Default)]
    struct MapStore {
        nodes: HashMap<u64, (Vec<f32>, Vec<Vec<u64>>)>,
        entry: Option<EntryPoint<u64>>,
        asked: RefCell<Vec<u64>>,
    }

    impl GraphStore for MapStore {
        type Id = u64;
        fn distance(&self, query: &[f32], id: u64) -> f32 {
            self.asked.borrow_mut().push(id);
            l2(query, &self.nodes[&id].0)
        }
        fn distance_between(&self, a: u64, b: u64) -> f32 {
            l2(&self.nodes[&a].0, &self.nodes[&b].0)
        }
        fn level(&self, id: u64) -> usize {
            self.nodes[&id].1.len() - 1
        }
        fn neighbours(&self, id: u64, level: usize, out: &mut Vec<u64>) {
            out.clone_from(&self.nodes[&id].1[level]);
        }
        fn entry_point(&self) -> Option<EntryPoint<u64>> {
            self.entry
        }
    }

    impl GraphStoreMut for MapStore {
        fn set_neighbours(&mut self, id: u64, level: usize, neighbours: &[u64]) {
            self.nodes.get_mut(&id).unwrap().1[level] = neighbours.to_vec();
        }
        fn set_entry_point(&mut self, entry: Option<EntryPoint<u64>>) {
            self.entry = entry;
        }
    }

    impl MapStore {
        fn no_repeated_distance(&self) -> bool {
            let asked = self.asked.take();
            asked.len() == asked.iter().collect::<HashSet<_>>().len()
        }
    }

    #[test]
    fn generic_store_insert_and_search() {
        let mut rng = SplitMix64(12);
        let (rows, queries) = clustered(&mut rng, 1500, 50, 24, 6);
        let params = HnswParams::new(8, 40);
        let mut levels = LevelGenerator::new(&params, 5);
        let mut store = MapStore::default();
        let mut scratch = SearchScratch::new();
        let tid = |i: usize| (i as u64) << 16 | 3;
        for (i, row) in rows.iter().enumerate() {
            let level = levels.next_level();
            store
                .nodes
                .insert(tid(i), (row.clone(), vec![Vec::new(); level + 1]));
            insert(&mut store, &mut scratch, &params, tid(i), row, level);
            assert!(
                store.no_repeated_distance(),
                "insert {i} asked twice for a node"
            );
        }
        let mut hits = 0;
        for q in &queries {
            let found: Vec<u32> = knn_search(&store, &mut scratch, q, 10, 64)
                .iter()
                .map(|s| (s.id >> 16) as u32)
                .collect();
            assert!(
                store.no_repeated_distance(),
                "search asked twice for a node"
            );
            hits += overlap(&found, &exact(&rows, l2, q, 10, |_| true));
        }
        let r = hits as f64 / 500.0;
        println!("recall@10 {r}");
        assert!(r >= 0.98, "recall {r}");
    }

    /// Copies of one vector (a placeholder embedding) inserted after a parallel build of copies,
    /// as `pg_test/sql/xhnsw.sql`'s `dup` table (125 elements of one vector and one other
    /// built, then 63 more copies inserted): every distance between them ties at 0, and no copy
    /// may lose its last in-link. With ties ordered by id, 54 of 300 seeds left one to three
    /// copies without an in-link.
    #[test]
    fn copies_inserted_after_a_build_stay_reachable() {
        let mut unreachable = Vec::new();
        for seed in 0..100 {
            let params = HnswParams {
                keep_pruned: true,
                ..HnswParams::new(16, 64)
            };
            let mut graph = MemGraph::new(3, params.clone(), l2, seed);
            for i in 0..126 {
                graph.push(&if i == 125 { [5.0; 3] } else { [1.0; 3] });
            }
            graph.build(4, &mut Unattended).unwrap();
            let mut scratch = SearchScratch::new();
            for _ in 0..63 {
                let id = graph.push(&[1.0; 3]);
                let level = graph.level(id);
                insert(&mut graph, &mut scratch, &params, id, &[1.0; 3], level);
            }
            let mut reached = DenseVisited::new(graph.len());
            reach_layer0(&graph, &mut reached, || {});
            let lost = (0..graph.len() as u32)
                .filter(|&id| reached.insert(id))
                .count();
            if lost > 0 {
                unreachable.push((seed, lost));
            }
        }
        assert!(
            unreachable.is_empty(),
            "(seed, unreachable): {unreachable:?}"
        );
    }

    #[test]
    fn levels_follow_the_geometric_law() {
        let params = HnswParams {
            max_level: 3,
            ..HnswParams::new(16, 64)
        };
        let mut levels = LevelGenerator::new(&params, 9);
        let drawn: Vec<usize> = (0..200_000).map(|_| levels.next_level()).collect();
        let at_least =
            |l: usize| drawn.iter().filter(|&&x| x >= l).count() as f64 / drawn.len() as f64;
        assert!(
            (at_least(1) - 1.0 / 16.0).abs() < 0.003,
            "P(level >= 1) = {}",
            at_least(1)
        );
        assert!(
            (at_least(2) - 1.0 / 256.0).abs() < 0.001,
            "P(level >= 2) = {}",
            at_least(2)
        );
        assert!(drawn.iter().all(|&l| l <= 3) && drawn.contains(&3));
        let mut again = LevelGenerator::new(&params, 9);
        assert!(drawn.iter().take(1000).all(|&l| l == again.next_level()));
    }

    #[test]
    fn heuristic_prunes_shadowed_candidates() {
        let points: [[f32; 2]; 3] = [[1.0, 0.0], [1.1, 0.1], [0.0, 1.2]];
        let base = [0.0, 0.0];
        let candidates: Vec<Scored<usize>> = (0..3)
            .map(|id| Scored {
                dist: l2(&base, &points[id]),
                id,
            })
            .collect();
        let dist = |a: usize, b: usize| l2(&points[a], &points[b]);
        let mut out = Vec::new();
        select_neighbours(&candidates, 3, false, dist, &mut out);
        assert_eq!(out, vec![0, 2]); // 1 is closer to 0 than to the base
        select_neighbours(&candidates, 3, true, dist, &mut out);
        assert_eq!(out, vec![0, 2, 1]);
        select_neighbours(&candidates, 1, true, dist, &mut out);
        assert_eq!(out, vec![0]);
    }

    /// The cached re-selection of the build keeps the same nodes as re-selecting from scratch,
    /// list after list, duplicates of the owner included.
    #[test]
    fn cached_reselection_matches_the_heuristic() {
        let mut rng = SplitMix64(14);
        for round in 0..200 {
            let dim = 1 + round % 8;
            let capacity = 2 + round % 9;
            let keep_pruned = round % 2 == 0;
            let mut points = uniform(&mut rng, 60, dim);
            let owner = points[0].clone();
            for p in points.iter_mut().skip(1).step_by(7) {
                p.clone_from(&owner); // duplicates of the owner
            }
            let dist = |a: u32, b: u32| l2(&points[a as usize], &points[b as usize]);
            let (mut links, mut kept, mut reference) = (Vec::new(), Vec::new(), Vec::new());
            let mut buffer = Vec::new();
            for new in 1..points.len() as u32 {
                let added = Link {
                    id: new,
                    dist: dist(0, new),
                    status: Verdict::Unknown,
                };
                add_to_links(&mut links, added, capacity, keep_pruned, dist, &mut kept);
                reference.push(new);
                if reference.len() > capacity {
                    buffer.clear();
                    buffer.extend(reference.iter().map(|&id| Scored {
                        dist: dist(0, id),
                        id,
                    }));
                    buffer.sort_unstable();
                    select_neighbours(&buffer, capacity, keep_pruned, dist, &mut reference);
                }
                let mut cached: Vec<u32> = links.iter().map(|l| l.id).collect();
                let mut expected = reference.clone();
                cached.sort_unstable();
                expected.sort_unstable();
                assert_eq!(cached, expected, "round {round}, after adding {new}");
            }
        }
    }

    #[test]
    fn dense_visited_survives_generation_wrap() {
        let mut visited = DenseVisited::new(4);
        assert!(visited.insert(2) && !visited.insert(2));
        visited.generation = u32::MAX;
        assert!(visited.insert(2));
        visited.clear(); // wraps to 0: stamps reset
        assert!(visited.insert(2) && visited.insert(3) && !visited.insert(3));
        assert!(visited.insert(10), "grows on demand");
    }
}
