//! The exact path over codes, for an index whose build wrote code pages beside its filter
//! directory (format 7): the candidates' codes, read from those pages in the directory's order,
//! give each candidate a lower bound on its distance (the estimate less [`ERRORS`] times the
//! estimate's error); candidates are then read in order of their bounds, each checked against
//! every clause and ranked by its true distance, and a match is handed out once no unread
//! candidate's bound is below its distance. So a broad category reads the directory, its code
//! pages and the few elements nearest the query, instead of every candidate.
//!
//! The order is exact but for estimates that miss by more than [`ERRORS`] standard deviations
//! (none in `code::tests::errors_stay_within_their_reported_spread`, about 1 in 1,000 beyond
//! 3), and only when such a miss hides a match nearer than the ones handed out. Elements inserted after the
//! build have no code: their bound is minus infinity, so they are read first, as the plain
//! exact path reads every candidate. Memory is bounded: past [`MAX_CANDIDATES`] candidates
//! only the ones with the lowest bounds are kept, and once the matches reach the lowest
//! dropped bound the plain exact path (exact.rs) goes on after the last match handed out.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};

use super::directory;
use super::exact::{Candidates, Ranked};
use super::filter::KeyFilter;
use super::graph::Scored;
use super::page::{
    buffer::{self, Locked},
    format::{self, Tid},
};
use super::store::PageStore;
use super::tags::TagFilter;

/// Standard deviations of an estimate's error below it that a candidate's bound lies. On
/// fashion-mnist's hybrid filters, 3 gave recall 0.994-0.997, 4 0.997-1.000 and 5 1.000,
/// reading 9% more pages than 3 (bench/README.md).
const ERRORS: f32 = 5.0;
/// Candidates kept in memory (12 bytes each; twice as many are held before the excess is
/// dropped: 6 MB).
const MAX_CANDIDATES: usize = 1 << 18;

pub struct RankedPass {
    query: Vec<f32>,
    tags: TagFilter,
    /// Elements a graph search returned before the scan came here.
    skip: HashSet<Tid>,
    order: BoundedOrder<Vec<Tid>>,
    last: Option<Scored<Tid>>,
}

/// What a step of the pass did.
pub enum Step {
    /// Queued the heap TIDs of the next match.
    Queued,
    /// No match is left.
    Done,
    /// Past the horizon: the plain exact path goes on with these candidates, skipping these
    /// elements, after this match.
    HandOver(Candidates, HashSet<Tid>, Option<Scored<Tid>>),
}

/// The size of the codes on the index's code pages; None when it has none.
pub fn code_pages_of(meta: &format::MetaPage) -> Option<usize> {
    let layout = meta.code_layout()?;
    (meta.coded_entries > 0).then_some(layout.code_bytes)
}

impl RankedPass {
    /// The candidates of `tags` and their bounds, from code pages of `code_bytes` codes.
    pub fn collect(
        store: &PageStore,
        query: &[f32],
        tags: TagFilter,
        skip: HashSet<Tid>,
        code_bytes: usize,
    ) -> RankedPass {
        let meta = &store.meta;
        let table = store.query_table(query);
        let per_page = format::codes_per_page(code_bytes);
        let mut pass = RankedPass {
            query: query.to_vec(),
            tags,
            skip,
            order: BoundedOrder::new(MAX_CANDIDATES),
            last: None,
        };
        let coded = meta.coded_entries as usize;
        let blocks = buffer::block_count(store.index);
        let tags = pass.tags.clone();
        directory::for_each_matching(
            store.index,
            meta,
            |tag| tags.may_match(tag),
            |elements, positions| {
                let mut page: Option<(usize, Locked)> = None;
                for (&element, &position) in elements.iter().zip(positions) {
                    if pass.skip.contains(&element) {
                        continue;
                    }
                    if position >= coded {
                        pass.order.push(f32::NEG_INFINITY, element);
                        continue;
                    }
                    let ordinal = position / per_page;
                    if page.as_ref().is_none_or(|(held, _)| *held != ordinal) {
                        drop(page.take());
                        let block = meta.code_pages as usize + ordinal;
                        if block >= blocks as usize {
                            corrupt(format!("code page {block} past the end of the index"));
                        }
                        page = Some((ordinal, Locked::read(store.index, block as u32, false)));
                    }
                    let (_, locked) = page.as_ref().expect("read above");
                    let slot = position % per_page;
                    let Some(code) = (unsafe { buffer::code_at(locked.page(), slot, code_bytes) })
                    else {
                        corrupt(format!("no code for directory entry {position}"))
                    };
                    let (estimate, error) = table.estimate_with_error(code);
                    pass.order.push(estimate - ERRORS * error, element);
                }
            },
        );
        pass.order.seal();
        pass
    }

    /// Read candidates until the nearest match can be handed out, and queue its heap TIDs.
    pub fn step(
        &mut self,
        store: &PageStore,
        filter: &mut KeyFilter,
        out: &mut VecDeque<Tid>,
    ) -> Step {
        let query = &self.query;
        // with_element checks for interrupts as it counts reads.
        let read = |element: Tid| {
            let read = store.with_element(element, |e| {
                (!e.deleted && filter.matches(e.extras))
                    .then(|| (e.vector.distance(store.metric, query), e.heap_tids.clone()))
            });
            read.flatten()
        };
        match self.order.next(read) {
            Next::Match(Ranked(scored, heap_tids)) => {
                self.last = Some(scored);
                out.extend(heap_tids);
                Step::Queued
            }
            Next::Exhausted => Step::Done,
            Next::Horizon => {
                let candidates = Candidates::Directory(self.tags.clone());
                Step::HandOver(candidates, std::mem::take(&mut self.skip), self.last)
            }
        }
    }
}

/// Candidates by a lower bound on their distance, and the matches read from them, handed out
/// in exact distance order (no Postgres here). At most `2 * cap` candidates are held: past
/// that, only the `cap` lowest bounds are kept, and the lowest bound dropped is the horizon
/// beyond which no match can be handed out.
pub(super) struct BoundedOrder<T> {
    /// Candidates not read yet; by descending bound once sealed (the next one is last).
    unread: Vec<(f32, Tid)>,
    /// Matches read and not handed out yet, nearest first.
    matches: BinaryHeap<Reverse<Ranked<T>>>,
    horizon: f32,
    cap: usize,
}

pub(super) enum Next<T> {
    Match(Ranked<T>),
    /// Every candidate was read and every match handed out.
    Exhausted,
    /// The next match may lie beyond the horizon (candidates were dropped).
    Horizon,
}

impl<T> BoundedOrder<T> {
    pub(super) fn new(cap: usize) -> Self {
        BoundedOrder {
            unread: Vec::new(),
            matches: BinaryHeap::new(),
            horizon: f32::INFINITY,
            cap: cap.max(1),
        }
    }

    pub(super) fn push(&mut self, bound: f32, id: Tid) {
        // A NaN bound (a code with corrupt corrections) must not hide the candidate: read it first.
        let bound = if bound.is_nan() {
            f32::NEG_INFINITY
        } else {
            bound
        };
        if self.unread.len() >= 2 * self.cap {
            let cap = self.cap;
            self.unread
                .select_nth_unstable_by(cap, |a, b| a.0.total_cmp(&b.0));
            let dropped = self.unread[cap..].iter().map(|c| c.0);
            self.horizon = dropped.fold(self.horizon, f32::min);
            self.unread.truncate(cap);
        }
        if bound < self.horizon {
            self.unread.push((bound, id));
        }
    }

    /// Done pushing: order the candidates for reading.
    pub(super) fn seal(&mut self) {
        self.unread.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    }

    /// The nearest match not handed out yet: reads candidates (`read` gives a match's distance
    /// and payload, None for a candidate that does not match) until no unread bound lies below
    /// the nearest match read.
    pub(super) fn next(&mut self, mut read: impl FnMut(Tid) -> Option<(f32, T)>) -> Next<T> {
        loop {
            let bound = self.unread.last().map_or(self.horizon, |c| c.0);
            if let Some(Reverse(nearest)) = self.matches.peek() {
                if nearest.0.dist <= bound.min(self.horizon) {
                    let Reverse(nearest) = self.matches.pop().expect("peeked");
                    return Next::Match(nearest);
                }
            }
            let Some((_, id)) = self.unread.pop() else {
                return if self.horizon.is_finite() {
                    Next::Horizon
                } else {
                    Next::Exhausted
                };
            };
            if let Some((dist, payload)) = read(id) {
                self.matches
                    .push(Reverse(Ranked(Scored { dist, id }, payload)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(i: usize) -> Tid {
        Tid {
            block: 1 + i as u32 / 100,
            offset: 1 + (i % 100) as u16,
        }
    }

    /// A candidate whose bound is NaN (corrupt code corrections) is read first, not dropped.
    #[test]
    fn a_nan_bound_is_read_first() {
        let mut order = BoundedOrder::new(10);
        order.push(1.0, tid(1));
        order.push(f32::NAN, tid(2));
        order.seal();
        let mut read = Vec::new();
        let next = order.next(|t| {
            read.push(t);
            Some((if t == tid(2) { 0.5 } else { 1.0 }, ()))
        });
        assert!(matches!(next, Next::Match(Ranked(s, ())) if s.id == tid(2)));
        assert_eq!(read, [tid(2)]);
    }

    /// 2,000 candidates whose bounds lie below their distances by random amounts, a third of
    /// them not matching: the matches come out in exact order, each candidate read at most
    /// once and fewer read than all when the bounds are tight.
    #[test]
    fn matches_come_out_in_distance_order() {
        let mut seed = 7u64;
        let mut random = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        let dist: Vec<f32> = (0..2000).map(|_| random() * 100.0).collect();
        let slack: Vec<f32> = (0..2000).map(|_| random()).collect();
        let matching = |i: usize| i % 3 != 0;
        let mut expected: Vec<usize> = (0..2000).filter(|&i| matching(i)).collect();
        expected.sort_by(|&a, &b| {
            Scored {
                dist: dist[a],
                id: tid(a),
            }
            .cmp(&Scored {
                dist: dist[b],
                id: tid(b),
            })
        });
        for cap in [10_000, 300] {
            let mut order = BoundedOrder::new(cap);
            for i in 0..2000 {
                order.push(dist[i] - slack[i], tid(i));
            }
            order.seal();
            let mut reads = vec![0; 2000];
            let mut out = Vec::new();
            let index_of = |t: Tid| (t.block as usize - 1) * 100 + t.offset as usize - 1;
            let end = loop {
                let next = order.next(|t| {
                    let i = index_of(t);
                    reads[i] += 1;
                    matching(i).then_some((dist[i], i))
                });
                match next {
                    Next::Match(Ranked(_, i)) => {
                        out.push(i);
                        if out.len() == 10 && cap == 10_000 {
                            // The first ten need only the candidates bounded below the tenth.
                            let read: usize = reads.iter().sum();
                            assert!(read < 200, "{read} reads for 10 matches");
                        }
                    }
                    end => break end,
                }
            };
            assert!(reads.iter().all(|&r| r <= 1));
            if cap == 10_000 {
                assert!(matches!(end, Next::Exhausted));
                assert_eq!(out, expected);
            } else {
                // Bounded: a prefix of the exact order, then the horizon.
                assert!(matches!(end, Next::Horizon));
                assert!(
                    out.len() >= 100 && out.len() < expected.len(),
                    "{}",
                    out.len()
                );
                assert_eq!(out, expected[..out.len()]);
            }
        }
    }
}

fn corrupt(what: String) -> ! {
    format::Corrupt(what).raise()
}
