//! `xmodal.index_check(index)`: walk an xhnsw index and count structural problems, for DBAs
//! and for the crash tests. Every count but the first three should be 0; `unreachable` can be
//! above 0 after a crash in the middle of an insert (an element written, not yet linked).
//! `directory_mismatches` counts elements missing from the filter directory, entries that point
//! at no element, and duplicate entries.

use pgrx::prelude::*;
use std::collections::{HashMap, HashSet, VecDeque};

use super::directory;
use super::page::{self, Locked, Tid};

struct Node {
    level: usize,
    deleted: bool,
    neighbour_tid: Tid,
}

/// Counts by name, in a fixed order.
pub(crate) fn check_index(index: pg_sys::Relation) -> Vec<(String, i64)> {
    let meta = page::read_meta_of(index);
    let (dims, m) = (meta.dims as usize, meta.m as usize);
    let blocks = unsafe { pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM) };
    let mut nodes: HashMap<Tid, Node> = HashMap::new();
    let mut heap_tids = 0i64;
    for block in 1..blocks {
        let locked = Locked::read(index, block, false);
        let max = unsafe { pg_sys::PageGetMaxOffsetNumber(locked.page()) };
        for offset in 1..=max {
            let Some(item) = (unsafe { page::item_ptr(locked.page(), offset) }) else { continue };
            if !page::is_element(item) {
                continue;
            }
            if let Some(e) = unsafe { page::decode_element(item, dims) } {
                heap_tids += e.heap_tids.len() as i64;
                nodes.insert(Tid { block, offset }, Node { level: e.level, deleted: e.deleted, neighbour_tid: e.neighbour_tid });
            }
        }
    }
    let (mut bad_links, mut links_to_deleted, mut level_violations, mut bad_neighbour_items) = (0i64, 0i64, 0i64, 0i64);
    let mut layer0: HashMap<Tid, Vec<Tid>> = HashMap::new();
    let mut list = Vec::new();
    for (&id, node) in &nodes {
        if node.deleted {
            continue;
        }
        let locked = Locked::read(index, node.neighbour_tid.block.min(blocks.saturating_sub(1)), false);
        let item = unsafe { page::item_ptr(locked.page(), node.neighbour_tid.offset) };
        let Some(item) = item.filter(|_| node.neighbour_tid.block < blocks && !page::is_element(item.unwrap())) else {
            bad_neighbour_items += 1;
            continue;
        };
        for layer in 0..=node.level {
            unsafe { page::read_neighbours(item, m, layer, &mut list) };
            for n in &list {
                match nodes.get(n) {
                    None => bad_links += 1,
                    Some(target) if target.deleted => links_to_deleted += 1,
                    Some(target) if target.level < layer => level_violations += 1,
                    Some(_) => {}
                }
            }
            if layer == 0 {
                layer0.insert(id, list.clone());
            }
        }
    }
    let live = nodes.values().filter(|n| !n.deleted).count() as i64;
    let entry_problem = match nodes.get(&meta.entry) {
        _ if live == 0 => 0,
        Some(e) if !e.deleted && e.level == meta.entry_level as usize => 0,
        _ => 1,
    };
    let directory_mismatches = if meta.has_directory(index) { directory_mismatches(index, meta.directory_head, &nodes) } else { 0 };
    let reached = reachable(meta.entry, &layer0);
    let unreachable = if live == 0 { 0 } else { live - reached as i64 };
    vec![
        ("elements".into(), nodes.len() as i64),
        ("deleted_elements".into(), nodes.len() as i64 - live),
        ("heap_tids".into(), heap_tids),
        ("bad_entry_point".into(), entry_problem),
        ("bad_neighbour_items".into(), bad_neighbour_items),
        ("bad_links".into(), bad_links),
        ("links_to_deleted".into(), links_to_deleted),
        ("level_violations".into(), level_violations),
        ("unreachable".into(), unreachable),
        ("directory_mismatches".into(), directory_mismatches),
    ]
}

/// Elements (deleted ones too: they keep their entry) the directory misses, plus entries
/// that name no element or repeat one.
fn directory_mismatches(index: pg_sys::Relation, head: u32, nodes: &HashMap<Tid, Node>) -> i64 {
    let mut listed = HashSet::new();
    let mut problems = 0i64;
    directory::for_each_page(index, head, |entries| {
        for position in 0..entries.tags.len() {
            let element = entries.element(position);
            if !nodes.contains_key(&element) || !listed.insert(element) {
                problems += 1;
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    problems + nodes.keys().filter(|id| !listed.contains(id)).count() as i64
}

fn reachable(entry: Tid, layer0: &HashMap<Tid, Vec<Tid>>) -> usize {
    let mut seen = HashSet::new();
    let mut queue = VecDeque::new();
    if layer0.contains_key(&entry) {
        seen.insert(entry);
        queue.push_back(entry);
    }
    while let Some(id) = queue.pop_front() {
        for n in layer0.get(&id).into_iter().flatten() {
            if layer0.contains_key(n) && seen.insert(*n) {
                queue.push_back(*n);
            }
        }
    }
    seen.len()
}

#[pg_schema]
mod xmodal {
    use pgrx::prelude::*;
    use pgrx::PgRelation;

    /// Structural check of an xhnsw index: one row per counter.
    #[pg_extern(strict)]
    fn index_check(
        index: PgRelation,
    ) -> TableIterator<'static, (name!(check_name, String), name!(value, i64))> {
        let am_name = unsafe { pg_sys::get_am_name((*(*index.as_ptr()).rd_rel).relam) };
        let is_xhnsw = !am_name.is_null() && unsafe { std::ffi::CStr::from_ptr(am_name) } == c"xhnsw";
        if !is_xhnsw {
            error!("\"{}\" is not an xhnsw index", index.name());
        }
        TableIterator::new(super::check_index(index.as_ptr()))
    }
}
