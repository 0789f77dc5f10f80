//! `xmodal.index_check(index)`: walk an xhnsw index and count structural problems, for DBAs
//! and for the crash tests. Every count but the first three should be 0; `unreachable` can be
//! above 0 after a crash in the middle of an insert (an element written, not yet linked).
//! `directory_mismatches` counts elements missing from the filter directory, entries that point
//! at no element, and duplicate entries; `code_mismatches` the entries the build listed whose
//! code on the code pages (ranked.rs) is missing or is not the code of their element's vector.
//!
//! Only the table's owner (or a superuser) may run it: it locks the index and reports row
//! counts. Relation kind, access method and ownership are checked in the system caches before
//! any lock is taken. Memory stays small and proportional to the element count (a few bytes
//! each, dense ids and bitmaps; no per-element maps or copied lists), and the walk checks for
//! interrupts. A corrupt page is an ERROR (XX002), not a count.

use pgrx::prelude::*;
use std::collections::VecDeque;

use super::code;
use super::directory;
use super::page::{
    buffer::{self, Locked},
    format::{self, Layout, Tid},
};
use super::ranked;
use super::store::PageStore;

/// Every element of the index by a dense id (its rank in physical order), with its level and
/// deleted flag: 3 bytes and 2 bits an element, plus 4 bytes a page.
struct Elements {
    /// Dense id of the first element of each block (one more entry at the end).
    block_start: Vec<u32>,
    /// Offset of each element on its page.
    offsets: Vec<u16>,
    /// Level, and DELETED.
    info: Vec<u8>,
}

const DELETED: u8 = 0x80;

impl Elements {
    fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Dense id of the element at `tid`, if there is one.
    fn id(&self, tid: Tid) -> Option<usize> {
        let block = tid.block as usize;
        let (start, end) = (
            *self.block_start.get(block)? as usize,
            *self.block_start.get(block + 1)? as usize,
        );
        self.offsets[start..end]
            .binary_search(&tid.offset)
            .ok()
            .map(|i| start + i)
    }

    fn tid(&self, id: usize) -> Tid {
        let block = self
            .block_start
            .partition_point(|&start| start as usize <= id)
            - 1;
        Tid {
            block: block as u32,
            offset: self.offsets[id],
        }
    }

    fn level(&self, id: usize) -> usize {
        (self.info[id] & !DELETED) as usize
    }

    fn deleted(&self, id: usize) -> bool {
        self.info[id] & DELETED != 0
    }
}

struct Bitmap(Vec<u64>);

impl Bitmap {
    fn new(bits: usize) -> Bitmap {
        let mut words = Vec::new();
        reserve(&mut words, bits.div_ceil(64));
        words.resize(bits.div_ceil(64), 0);
        Bitmap(words)
    }

    /// Sets the bit; false when it was set already.
    fn insert(&mut self, bit: usize) -> bool {
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        let fresh = self.0[word] & mask == 0;
        self.0[word] |= mask;
        fresh
    }

    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// Grow `v` for `more` items, or ERROR 53200 instead of aborting the backend.
fn reserve<T>(v: &mut Vec<T>, more: usize) {
    if v.try_reserve(more).is_err() {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
            "xhnsw: out of memory checking the index"
        );
    }
}

/// Visit every element in physical order, each page under a share lock.
fn for_each_element(
    index: pg_sys::Relation,
    layout: Layout,
    visit: impl FnMut(Tid, &format::ElementData),
) {
    let check_interrupts = || {
        pgrx::check_for_interrupts!();
    };
    buffer::for_each_element(index, layout, check_interrupts, visit);
}

/// Heap TIDs of the live elements: what VACUUM reports when it had nothing to delete. Share
/// locks only.
pub(crate) fn live_heap_tids(index: pg_sys::Relation) -> f64 {
    let layout = buffer::read_meta_of(index).layout();
    let mut live = 0.0;
    for_each_element(index, layout, |_, e| {
        if !e.deleted {
            live += e.heap_tids.len() as f64;
        }
    });
    live
}

/// The layer lists of element `tid`; None when its neighbour item is missing, outside the
/// relation or not a neighbour item.
fn with_lists(
    index: pg_sys::Relation,
    m: usize,
    layout: Layout,
    tid: Tid,
    blocks: u32,
    mut f: impl FnMut(usize, &[Tid]),
) -> Option<()> {
    let (level, neighbour_tid) = {
        let locked = Locked::read(index, tid.block, false);
        let (_, e) = unsafe { buffer::element_at(locked.page(), tid.offset, layout) }?;
        (e.level, e.neighbour_tid)
    };
    if !neighbour_tid.is_valid() || neighbour_tid.block >= blocks {
        return None;
    }
    let locked = Locked::read(index, neighbour_tid.block, false);
    let item = unsafe { buffer::item_ptr(locked.page(), neighbour_tid.offset) }
        .filter(|&item| !buffer::is_element(item))?;
    let mut list = Vec::new();
    for layer in 0..=level {
        unsafe { buffer::read_neighbours(item, m, layer, &mut list) };
        f(layer, &list);
    }
    Some(())
}

/// Counts by name, in a fixed order.
pub(crate) fn check_index(index: pg_sys::Relation) -> Vec<(String, i64)> {
    let meta = buffer::read_meta_of(index);
    let (layout, m) = (meta.layout(), meta.m as usize);
    let blocks = buffer::block_count(index);

    // Pass 1: the elements, in physical order.
    let mut elements = Elements {
        block_start: Vec::new(),
        offsets: Vec::new(),
        info: Vec::new(),
    };
    reserve(&mut elements.block_start, blocks as usize + 1);
    elements.block_start.extend([0, 0]); // the metapage holds none
    let mut heap_tids = 0i64;
    let mut current = 1;
    for_each_element(index, layout, |tid, e| {
        while current < tid.block {
            elements.block_start.push(elements.offsets.len() as u32);
            current += 1;
        }
        reserve(&mut elements.offsets, 1);
        reserve(&mut elements.info, 1);
        elements.offsets.push(tid.offset);
        elements
            .info
            .push(e.level.min(127) as u8 | if e.deleted { DELETED } else { 0 });
        heap_tids += e.heap_tids.len() as i64;
    });
    while elements.block_start.len() < blocks.max(1) as usize + 1 {
        elements.block_start.push(elements.offsets.len() as u32);
    }
    let count = elements.len();
    let live = (0..count).filter(|&id| !elements.deleted(id)).count() as i64;

    // Pass 2: every live element's links.
    let (mut bad_links, mut links_to_deleted, mut level_violations, mut bad_neighbour_items) =
        (0i64, 0i64, 0i64, 0i64);
    for id in 0..count {
        if id % 1000 == 0 {
            pgrx::check_for_interrupts!();
        }
        if elements.deleted(id) {
            continue;
        }
        let found = with_lists(index, m, layout, elements.tid(id), blocks, |layer, list| {
            for &n in list {
                match elements.id(n) {
                    None => bad_links += 1,
                    Some(target) if elements.deleted(target) => links_to_deleted += 1,
                    Some(target) if elements.level(target) < layer => level_violations += 1,
                    Some(_) => {}
                }
            }
        });
        if found.is_none() {
            bad_neighbour_items += 1;
        }
    }

    let entry = elements.id(meta.entry);
    let entry_problem = match entry {
        _ if live == 0 => 0,
        Some(e) if !elements.deleted(e) && elements.level(e) == meta.entry_level as usize => 0,
        _ => 1,
    };
    let directory_mismatches = if meta.has_directory(index) {
        directory_mismatches(index, meta.directory_head, &elements)
    } else {
        0
    };
    let code_mismatches = match ranked::code_pages_of(&meta) {
        Some(code_bytes) => code_mismatches(index, &meta, code_bytes, blocks),
        None => 0,
    };
    let reached = entry.map_or(0, |entry| {
        reachable(index, m, layout, blocks, entry, &elements)
    });
    let unreachable = if live == 0 { 0 } else { live - reached as i64 };
    vec![
        ("elements".into(), count as i64),
        ("deleted_elements".into(), count as i64 - live),
        ("heap_tids".into(), heap_tids),
        ("bad_entry_point".into(), entry_problem),
        ("bad_neighbour_items".into(), bad_neighbour_items),
        ("bad_links".into(), bad_links),
        ("links_to_deleted".into(), links_to_deleted),
        ("level_violations".into(), level_violations),
        ("unreachable".into(), unreachable),
        ("directory_mismatches".into(), directory_mismatches),
        ("code_mismatches".into(), code_mismatches),
    ]
}

/// Elements (deleted ones too: they keep their entry) the directory misses, plus entries
/// that name no element or repeat one.
fn directory_mismatches(index: pg_sys::Relation, head: u32, elements: &Elements) -> i64 {
    let mut listed = Bitmap::new(elements.len());
    let mut problems = 0i64;
    directory::for_each_page(index, head, |entries| {
        for position in 0..entries.tags.len() {
            match elements.id(entries.element(position)) {
                Some(id) if listed.insert(id) => {}
                _ => problems += 1,
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    problems + (elements.len() - listed.count()) as i64
}

/// The build's directory entries whose code is missing from the code pages or differs from
/// the code of their element's vector (an entry naming no element counts too).
fn code_mismatches(
    index: pg_sys::Relation,
    meta: &format::MetaPage,
    code_bytes: usize,
    blocks: u32,
) -> i64 {
    let store = PageStore::open(index);
    let per_page = format::codes_per_page(code_bytes);
    let coded = meta.coded_entries as usize;
    let (mut listed, mut problems) = (0usize, 0i64);
    let mut expected = vec![0u8; code_bytes];
    directory::for_each_matching(
        index,
        meta,
        |_| true,
        |elements, positions| {
            for (&element, &position) in elements.iter().zip(positions) {
                if position >= coded {
                    return;
                }
                listed += 1;
                let Some(vector) = store.with_element(element, |e| e.vector.to_vec()) else {
                    problems += 1;
                    continue;
                };
                code::encode(store.centroid(), &vector, &mut expected);
                let block = meta.code_pages as usize + position / per_page;
                let same = block < blocks as usize && {
                    let locked = Locked::read(index, block as u32, false);
                    let slot = position % per_page;
                    let code = unsafe { buffer::code_at(locked.page(), slot, code_bytes) };
                    code == Some(&expected[..])
                };
                problems += !same as i64;
            }
        },
    );
    problems + (coded - listed.min(coded)) as i64
}

/// Live elements reached on layer 0 from the entry point (deleted ones are not crossed).
fn reachable(
    index: pg_sys::Relation,
    m: usize,
    layout: Layout,
    blocks: u32,
    entry: usize,
    elements: &Elements,
) -> usize {
    if elements.deleted(entry) {
        return 0;
    }
    let mut seen = Bitmap::new(elements.len());
    let mut queue = VecDeque::new();
    seen.insert(entry);
    queue.push_back(entry as u32);
    let mut visits = 0usize;
    while let Some(id) = queue.pop_front() {
        visits += 1;
        if visits % 1000 == 0 {
            pgrx::check_for_interrupts!();
        }
        with_lists(
            index,
            m,
            layout,
            elements.tid(id as usize),
            blocks,
            |layer, list| {
                if layer != 0 {
                    return;
                }
                for &n in list {
                    if let Some(next) = elements.id(n).filter(|&next| !elements.deleted(next)) {
                        if seen.insert(next) {
                            if queue.len() == queue.capacity()
                                && queue.try_reserve(queue.len().max(64)).is_err()
                            {
                                ereport!(
                                    ERROR,
                                    PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
                                    "xhnsw: out of memory checking the index"
                                );
                            }
                            queue.push_back(next as u32);
                        }
                    }
                }
            },
        );
    }
    seen.count()
}

/// Open an xhnsw index for `index_check`: it must exist, be an xhnsw index, and the caller
/// must own its table (superusers do); all checked in the system caches before the lock is
/// taken, then the kind and access method again under the lock (the OID may have been
/// reused meanwhile).
fn open_for_check(oid: pg_sys::Oid) -> pg_sys::Relation {
    let check_kind = |relkind: std::ffi::c_char, relam: pg_sys::Oid| {
        let am_name = unsafe { pg_sys::get_am_name(relam) };
        let is_xhnsw =
            !am_name.is_null() && unsafe { std::ffi::CStr::from_ptr(am_name) } == c"xhnsw";
        if relkind != pg_sys::RELKIND_INDEX as std::ffi::c_char || !is_xhnsw {
            let name = unsafe { pg_sys::get_rel_name(oid) };
            let name = if name.is_null() {
                oid.to_u32().to_string()
            } else {
                unsafe { std::ffi::CStr::from_ptr(name) }
                    .to_string_lossy()
                    .into_owned()
            };
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                format!("\"{name}\" is not an xhnsw index")
            );
        }
    };
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as _,
            pg_sys::Datum::from(oid),
        );
        if tuple.is_null() {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("relation with OID {} does not exist", oid.to_u32())
            );
        }
        let class = pg_sys::GETSTRUCT(tuple) as *const pg_sys::FormData_pg_class;
        let (relkind, relam) = ((*class).relkind, (*class).relam);
        pg_sys::ReleaseSysCache(tuple);
        check_kind(relkind, relam);
        let table = pg_sys::IndexGetRelation(oid, true);
        if table == pg_sys::InvalidOid || !owns(table) {
            let name = pg_sys::get_rel_name(table);
            let name = if name.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(name)
                    .to_string_lossy()
                    .into_owned()
            };
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "permission denied: xmodal.index_check needs ownership of table \"{name}\""
                )
            );
        }
        let index = pg_sys::index_open(oid, pg_sys::AccessShareLock as _);
        check_kind((*(*index).rd_rel).relkind, (*(*index).rd_rel).relam);
        index
    }
}

/// Does the current user own the table (or is a superuser)? PostgreSQL 15 has no
/// pg_maintain role; on 17 and later its members may check any index too.
fn owns(table: pg_sys::Oid) -> bool {
    unsafe {
        let user = pg_sys::GetUserId();
        #[cfg(feature = "pg15")]
        let owner = pg_sys::pg_class_ownercheck(table, user);
        #[cfg(not(feature = "pg15"))]
        let owner = pg_sys::object_ownercheck(pg_sys::RelationRelationId, table, user);
        #[cfg(not(any(feature = "pg15", feature = "pg16")))]
        let owner =
            owner || pg_sys::has_privs_of_role(user, pg_sys::Oid::from(pg_sys::ROLE_PG_MAINTAIN));
        owner
    }
}

#[pg_schema]
mod xmodal {
    use pgrx::prelude::*;

    /// Structural check of an xhnsw index: one row per counter. Declared in sql/xhnsw.sql
    /// (its argument is a regclass, read as an OID so that nothing opens the relation before
    /// the checks).
    #[pg_extern(sql = false, strict)]
    fn index_check(
        index: pg_sys::Oid,
    ) -> TableIterator<'static, (name!(check_name, String), name!(value, i64))> {
        let relation = super::open_for_check(index);
        let counts = super::check_index(relation);
        // The lock stays until the end of the transaction, as for other relations.
        unsafe { pg_sys::index_close(relation, pg_sys::NoLock as _) };
        TableIterator::new(counts)
    }
}
