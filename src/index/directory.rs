//! The filter directory of an index with filter columns: a chain of pages listing every
//! element's TID with the tag of its filter values (tags.rs), 581 to a page, the tags of a page
//! in one array so that a scan tests them in a tight loop. A filtered scan first counts the
//! elements whose tags pass (a survey); when the filter matches few rows it reads just those
//! instead of walking the graph and ranks the ones that pass every clause exactly (exact.rs,
//! scan.rs). Without it a 1% filter makes the graph search visit some hundred elements for
//! each one that matches.
//!
//! The build writes the directory after the graph's pages. An insert adds the entry of a new
//! element in the same WAL record as the element itself, so after a crash the directory lists
//! exactly the elements that exist. Entries are never removed: vacuum marks elements deleted
//! but leaves them in place (REINDEX reclaims both), and the scan skips deleted elements.
//!
//! Locking: a directory page is locked after an element page or the metapage, never before
//! one, and the tail is extended while it is locked, so concurrent inserts cannot deadlock
//! and cannot both extend it.

use pgrx::pg_sys;
use std::ops::ControlFlow;

use super::page::{
    buffer::{self, DirectoryEntries, Locked, Xlog},
    format::{MetaPage, Tid, META_BLOCK},
};

/// Write the directory of a freshly built graph on new pages from `first_block` on (the build
/// logs all pages afterwards); returns its head and tail, META_BLOCK for none.
pub fn write_built(
    index: pg_sys::Relation,
    first_block: u32,
    entries: impl Iterator<Item = (Tid, u64)>,
) -> (u32, u32) {
    let (mut head, mut current) = (META_BLOCK, None::<Locked>);
    for (element, tag) in entries {
        let added = current
            .as_ref()
            .is_some_and(|c| unsafe { buffer::push_directory_entry(c.page(), element, tag) });
        if !added {
            let next = Locked::extend(index);
            if next.block() < first_block {
                pgrx::error!(
                    "xhnsw: build expected block {first_block} or later, got {}",
                    next.block()
                );
            }
            buffer::init_directory_page(next.page());
            unsafe { pg_sys::MarkBufferDirty(next.buffer) };
            match &current {
                Some(previous) => unsafe {
                    buffer::set_next_directory_page(previous.page(), next.block())
                },
                None => head = next.block(),
            }
            unsafe { buffer::push_directory_entry(next.page(), element, tag) };
            current = Some(next);
        }
    }
    let tail = current.as_ref().map_or(META_BLOCK, |c| c.block());
    (head, tail)
}

/// Add the entry of a new element to the directory, as part of the WAL record `xlog` that
/// creates the element. Returns the buffers to release after `xlog.finish()`, and the new
/// tail when the directory grew (the caller records it in the metapage as a hint).
pub fn append(
    index: pg_sys::Relation,
    xlog: &mut Xlog,
    element: Tid,
    tag: u64,
) -> (Vec<Locked>, Option<u32>) {
    let mut meta = buffer::read_meta_of(index);
    if meta.directory_head == META_BLOCK {
        if let Some(held) = start_directory(index, xlog, element, tag) {
            return held;
        }
        meta = buffer::read_meta_of(index); // another insert started it
    }
    let tail = lock_tail(index, meta.directory_tail, xlog);
    let tail_page = xlog.register(&tail, false);
    if unsafe { buffer::push_directory_entry(tail_page, element, tag) } {
        return (vec![tail], None);
    }
    let fresh = Locked::extend(index);
    let fresh_page = xlog.register(&fresh, true);
    buffer::init_directory_page(fresh_page);
    unsafe {
        buffer::push_directory_entry(fresh_page, element, tag);
        buffer::set_next_directory_page(tail_page, fresh.block());
    }
    let new_tail = fresh.block();
    (vec![tail, fresh], Some(new_tail))
}

/// The first directory page, created under the metapage's lock; None when another insert
/// created it first.
fn start_directory(
    index: pg_sys::Relation,
    xlog: &mut Xlog,
    element: Tid,
    tag: u64,
) -> Option<(Vec<Locked>, Option<u32>)> {
    let meta_locked = Locked::read(index, META_BLOCK, true);
    let mut meta = unsafe { buffer::read_meta(meta_locked.page()) };
    if meta.directory_head != META_BLOCK {
        return None;
    }
    let fresh = Locked::extend(index);
    let fresh_page = xlog.register(&fresh, true);
    buffer::init_directory_page(fresh_page);
    unsafe { buffer::push_directory_entry(fresh_page, element, tag) };
    meta.directory_head = fresh.block();
    meta.directory_tail = fresh.block();
    let meta_page = xlog.register(&meta_locked, false);
    unsafe { buffer::write_meta(meta_page, &meta) };
    Some((vec![meta_locked, fresh], None))
}

/// The last directory page, locked exclusively: from the metapage's hint, follow the chain.
/// A hint or link to a page that `xlog` holds already is corrupt (locking it would
/// self-deadlock).
fn lock_tail(index: pg_sys::Relation, hint: u32, xlog: &Xlog) -> Locked {
    let mut bound = ChainBound::new(index);
    let mut block = hint;
    while bound.step(block) {
        if xlog.holds(block) {
            break;
        }
        let locked = Locked::read(index, block, true);
        if !unsafe { buffer::is_directory_page(locked.page()) } {
            break;
        }
        block = unsafe { buffer::next_directory_page(locked.page()) };
        if block == META_BLOCK {
            return locked;
        }
    }
    corrupt(index)
}

/// Visit the directory's pages in chain order from `head`, each under a share lock, until
/// `visit` breaks. A chain that leaves the relation, reaches another kind of page or loops is
/// corrupt: ERROR.
pub fn for_each_page(
    index: pg_sys::Relation,
    head: u32,
    mut visit: impl FnMut(&DirectoryEntries) -> ControlFlow<()>,
) {
    let mut bound = ChainBound::new(index);
    let mut block = head;
    while block != META_BLOCK {
        if !bound.step(block) {
            corrupt(index)
        }
        let locked = Locked::read(index, block, false);
        let Some(entries) = (unsafe { buffer::directory_entries(locked.page()) }) else {
            corrupt(index)
        };
        if visit(&entries).is_break() {
            return;
        }
        block = unsafe { buffer::next_directory_page(locked.page()) };
        drop(locked);
        pgrx::check_for_interrupts!();
    }
}

/// What makes a chain walk corrupt: a block past the end of the relation, or more steps than
/// the relation has pages (a loop). The relation's size is read again before either verdict:
/// concurrent inserts extend the chain onto new pages while a walk runs, so a size read when
/// the walk began can be older than the link that leads past it (the race that made scans and
/// inserts report a sound directory as corrupt under concurrent inserts).
struct ChainBound {
    index: pg_sys::Relation,
    blocks: u32,
    steps: u32,
}

impl ChainBound {
    fn new(index: pg_sys::Relation) -> ChainBound {
        ChainBound {
            index,
            blocks: buffer::block_count(index),
            steps: 0,
        }
    }

    /// Counts a step onto `block`; false when the chain is corrupt.
    fn step(&mut self, block: u32) -> bool {
        self.steps += 1;
        if block >= self.blocks || self.steps > self.blocks {
            self.blocks = buffer::block_count(self.index);
        }
        block != META_BLOCK && block < self.blocks && self.steps <= self.blocks
    }
}

/// What one pass over the directory's tags found: how many elements pass `may_match`, the
/// first `keep` of them, and an even sample of them all (reservoir sampling, in random
/// order), from which a scan estimates how many of them pass the whole filter.
pub struct Survey {
    pub count: usize,
    pub first: Vec<Tid>,
    pub sample: Vec<Tid>,
}

/// Count the elements whose tags pass `may_match` (a tight loop over the tags, no element is
/// read), keeping the first `keep` and a sample of up to `sample` of them.
pub fn survey(
    index: pg_sys::Relation,
    meta: &MetaPage,
    may_match: impl Fn(u64) -> bool,
    keep: usize,
    sample: usize,
) -> Survey {
    let mut survey = Survey {
        count: 0,
        first: Vec::new(),
        sample: Vec::new(),
    };
    // A fixed-seed generator: the same directory gives the same sample, so plans repeat.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for_each_page(index, meta.directory_head, |entries| {
        for (position, &tag) in entries.tags.iter().enumerate() {
            if !may_match(tag) {
                continue;
            }
            let element = entries.element(position);
            survey.count += 1;
            if survey.first.len() < keep {
                survey.first.push(element);
            }
            if survey.sample.len() < sample {
                survey.sample.push(element);
            } else {
                let slot = (random() % survey.count as u64) as usize;
                if slot < sample {
                    survey.sample[slot] = element;
                }
            }
        }
        ControlFlow::Continue(())
    });
    // Slots that were never replaced keep the directory's order: shuffle, so that every prefix
    // of the sample (scans read it a chunk at a time) is a random sample too.
    for i in (1..survey.sample.len()).rev() {
        let j = (random() % (i as u64 + 1)) as usize;
        survey.sample.swap(i, j);
    }
    survey
}

/// Every element whose tag passes `may_match`, a directory page at a time: `visit` gets each
/// page's elements, with their positions in the directory (0 for its first entry), after that
/// page's lock is released, so it may read the elements (element pages are never locked after
/// a directory page). Checks for interrupts after each page.
pub fn for_each_matching(
    index: pg_sys::Relation,
    meta: &MetaPage,
    may_match: impl Fn(u64) -> bool,
    mut visit: impl FnMut(&[Tid], &[usize]),
) {
    let mut bound = ChainBound::new(index);
    let mut block = meta.directory_head;
    let mut first_position = 0;
    let (mut elements, mut positions) = (Vec::new(), Vec::new());
    while block != META_BLOCK {
        if !bound.step(block) {
            corrupt(index)
        }
        elements.clear();
        positions.clear();
        {
            let locked = Locked::read(index, block, false);
            let Some(entries) = (unsafe { buffer::directory_entries(locked.page()) }) else {
                corrupt(index)
            };
            for (slot, &tag) in entries.tags.iter().enumerate() {
                if may_match(tag) {
                    elements.push(entries.element(slot));
                    positions.push(first_position + slot);
                }
            }
            first_position += entries.tags.len();
            block = unsafe { buffer::next_directory_page(locked.page()) };
        }
        visit(&elements, &positions);
        pgrx::check_for_interrupts!();
    }
}

fn corrupt(index: pg_sys::Relation) -> ! {
    let name = unsafe { std::ffi::CStr::from_ptr((*(*index).rd_rel).relname.data.as_ptr()) };
    pgrx::ereport!(
        ERROR,
        pgrx::PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
        format!(
            "xhnsw: the filter directory of index \"{}\" is corrupt; REINDEX it",
            name.to_string_lossy()
        )
    );
}
