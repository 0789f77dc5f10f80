//! The exact path of a filtered scan: the elements that pass every filter clause, ranked by
//! their true distance to the query and handed out in rounds of [`ROUND`], for as long as the
//! executor asks. The candidates are a list found in the filter directory, or the directory
//! itself (every element whose tag passes), read again for each round; memory stays bounded by
//! a round whatever the number of matches. Elements a graph search already returned before the
//! scan switched here are skipped.

use std::collections::{BinaryHeap, HashSet, VecDeque};

use super::directory;
use super::filter::KeyFilter;
use super::graph::Scored;
use super::page::format::{ElementData, Tid};
use super::store::PageStore;
use super::tags::TagFilter;

/// Matches handed out per round (a LIMIT up to this takes one pass over the candidates).
const ROUND: usize = 1000;

/// Where the candidates come from.
pub enum Candidates {
    /// Every candidate, found by a survey of the directory.
    Listed(Vec<Tid>),
    /// Every element whose tag passes this test, read from the directory at each round.
    Directory(TagFilter),
}

pub struct ExactPass {
    query: Vec<f32>,
    candidates: Candidates,
    /// Elements already returned (by the graph search before a switch).
    skip: HashSet<Tid>,
    /// The last match handed out: the next round starts after it.
    after: Option<Scored<Tid>>,
    done: bool,
}

impl ExactPass {
    /// The matches beyond `after` (all when None), skipping `skip`.
    pub fn new(
        query: &[f32],
        candidates: Candidates,
        skip: HashSet<Tid>,
        after: Option<Scored<Tid>>,
    ) -> ExactPass {
        ExactPass {
            query: query.to_vec(),
            candidates,
            skip,
            after,
            done: false,
        }
    }

    /// Queue the heap TIDs of the next round's matches, in distance order; false when no match
    /// is left.
    pub fn next_round(
        &mut self,
        store: &PageStore,
        filter: &mut KeyFilter,
        out: &mut VecDeque<Tid>,
    ) -> bool {
        if self.done {
            return false;
        }
        let Self {
            query,
            candidates,
            skip,
            after,
            ..
        } = self;
        // The ROUND closest matches beyond `after`, furthest on top, with their heap TIDs.
        let mut best: BinaryHeap<Ranked> = BinaryHeap::with_capacity(ROUND + 1);
        let mut consider = |id: Tid, e: &ElementData| {
            if e.deleted || skip.contains(&id) || !filter.matches(e.extras) {
                return;
            }
            let s = Scored {
                dist: e.vector.distance(store.metric, query),
                id,
            };
            if after.is_some_and(|a| s <= a)
                || best.len() == ROUND && best.peek().is_some_and(|worst| s >= worst.0)
            {
                return;
            }
            best.push(Ranked(s, e.heap_tids.clone()));
            if best.len() > ROUND {
                best.pop();
            }
        };
        match candidates {
            Candidates::Listed(ids) => {
                for chunk in ids.chunks(256) {
                    store.for_each_element(chunk, &mut consider);
                    pgrx::check_for_interrupts!();
                }
            }
            Candidates::Directory(tags) => directory::for_each_matching(
                store.index,
                &store.meta,
                |tag| tags.may_match(tag),
                |ids, _| store.for_each_element(ids, &mut consider),
            ),
        }
        self.done = best.len() < ROUND;
        let ranked = best.into_sorted_vec();
        self.after = ranked.last().map(|r| r.0).or(self.after);
        for Ranked(_, heap_tids) in &ranked {
            out.extend(heap_tids);
        }
        !ranked.is_empty()
    }
}

/// A match and what was read with it (its heap TIDs), ordered by the match alone (read once,
/// when it is ranked).
pub(super) struct Ranked<T = Vec<Tid>>(pub Scored<Tid>, pub T);

impl<T> Ord for Ranked<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl<T> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> PartialEq for Ranked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<T> Eq for Ranked<T> {}
