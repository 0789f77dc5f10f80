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
use super::page::format::Tid;
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
    pub fn new(query: &[f32], candidates: Candidates, skip: HashSet<Tid>) -> ExactPass {
        ExactPass {
            query: query.to_vec(),
            candidates,
            skip,
            after: None,
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
        // The ROUND closest matches beyond `after`, furthest on top.
        let mut best: BinaryHeap<Scored<Tid>> = BinaryHeap::with_capacity(ROUND + 1);
        let mut consider = |id: Tid| {
            if skip.contains(&id) {
                return;
            }
            let dist = store.with_element(id, |e| {
                (!e.deleted && filter.matches(e.extras))
                    .then(|| e.vector.distance(store.metric, query))
            });
            let Some(Some(dist)) = dist else { return };
            let s = Scored { dist, id };
            if after.is_some_and(|a| s <= a)
                || best.len() == ROUND && best.peek().is_some_and(|&worst| s >= worst)
            {
                return;
            }
            best.push(s);
            if best.len() > ROUND {
                best.pop();
            }
        };
        match candidates {
            Candidates::Listed(ids) => {
                for (i, &id) in ids.iter().enumerate() {
                    if i % 256 == 255 {
                        pgrx::check_for_interrupts!();
                    }
                    consider(id);
                }
            }
            Candidates::Directory(tags) => directory::for_each_matching(
                store.index,
                &store.meta,
                |tag| tags.may_match(tag),
                |ids| ids.iter().for_each(|&id| consider(id)),
            ),
        }
        self.done = best.len() < ROUND;
        let ranked = best.into_sorted_vec();
        self.after = ranked.last().copied().or(self.after);
        for s in &ranked {
            if let Some(info) = store.element_info(s.id) {
                if !info.deleted {
                    out.extend(info.heap_tids);
                }
            }
        }
        !ranked.is_empty()
    }
}
