//! `PageStore`: the graph of graph.rs read from and written to index pages through the buffer
//! manager. Node ids are element ItemPointers. Reads take a share lock on one page at a time;
//! writes take an exclusive lock on one page at a time and log it with GenericXLog. Every
//! graph walk (scans, inserts, vacuum's repair) reads elements through it, so it is also where
//! long walks check for interrupts.

use pgrx::pg_sys;
use std::cell::{Cell, OnceCell};
use std::collections::HashMap;

use super::code::{self, QueryTable};
use super::coded::CodedStore;
use super::graph::{EntryPoint, GraphStore, GraphStoreMut, Scored};
use super::page::{
    buffer::{self, Locked, Xlog},
    format::{self, Layout, MetaPage, Tid, META_BLOCK},
};
use crate::vector::metric::Metric;

pub struct PageStore {
    pub index: pg_sys::Relation,
    pub meta: MetaPage,
    pub metric: Metric,
    pub layout: Layout,
    pub m: usize,
    /// Vacuum replaces a deleted entry point unconditionally; inserts only raise it.
    pub replace_entry: bool,
    /// Element reads since the last interrupt check.
    reads: Cell<u32>,
    /// The codes' centroid, read when first needed.
    centroid: OnceCell<Vec<f32>>,
}

/// Element reads between two interrupt checks.
const READS_PER_INTERRUPT_CHECK: u32 = 1000;

/// What one element read returns besides the vector.
pub struct ElementInfo {
    pub deleted: bool,
    pub level: usize,
    pub neighbour_tid: Tid,
    pub heap_tids: Vec<Tid>,
}

impl PageStore {
    pub fn open(index: pg_sys::Relation) -> PageStore {
        let meta = buffer::read_meta_of(index);
        PageStore {
            index,
            meta,
            metric: Metric::from_u32(meta.metric).expect("read_meta checks the metric"),
            layout: meta.layout(),
            m: meta.m as usize,
            replace_entry: false,
            reads: Cell::new(0),
            centroid: OnceCell::new(),
        }
    }

    /// The centroid this index's codes are taken around (zeros for an index built empty).
    pub fn centroid(&self) -> &[f32] {
        self.centroid.get_or_init(|| {
            let dims = self.layout.dims;
            if self.meta.centroid_block == META_BLOCK {
                return vec![0.0; dims];
            }
            let locked = Locked::read(self.index, self.meta.centroid_block, false);
            unsafe {
                let item = buffer::item_ptr(locked.page(), 1).unwrap_or_else(|| {
                    format::Corrupt("no centroid item on the centroid page".into()).raise()
                });
                format::parse_centroid(item.bytes(), dims).unwrap_or_else(|c| c.raise())
            }
        })
    }

    /// A query prepared for the codes of this index.
    pub fn query_table(&self, query: &[f32]) -> QueryTable {
        QueryTable::new(self.metric, self.centroid(), query)
    }

    /// The codes of `list`, in order, for the list on `layer` of the neighbour item at
    /// `neighbour_tid`, when that list carries codes: copied from the item where it holds
    /// them already, encoded from the element otherwise. Reads pages one at a time and holds
    /// no lock on return.
    fn codes_of(
        &self,
        neighbour_tid: Tid,
        layer: usize,
        list: &[Tid],
        layout: format::CodeLayout,
    ) -> Option<Vec<u8>> {
        let mut known: HashMap<Tid, Vec<u8>> = HashMap::new();
        {
            let locked = Locked::read(self.index, neighbour_tid.block, false);
            let item = unsafe { buffer::item_ptr(locked.page(), neighbour_tid.offset) }?;
            let coded = unsafe {
                format::for_each_coded_neighbour(item.bytes(), self.m, layout, layer, |t, c| {
                    known.insert(t, c.to_vec());
                })
            };
            if !coded.unwrap_or_else(|c| c.raise()) {
                return None;
            }
        }
        let code_bytes = layout.code_bytes;
        let mut codes = vec![0u8; list.len() * code_bytes];
        for (&id, out) in list.iter().zip(codes.chunks_exact_mut(code_bytes)) {
            match known.get(&id) {
                Some(code) => out.copy_from_slice(code),
                None => {
                    if let Some(vector) = self.with_element(id, |e| e.vector.to_vec()) {
                        code::encode(self.centroid(), &vector, out);
                    }
                }
            }
        }
        Some(codes)
    }

    /// Count one element read; every READS_PER_INTERRUPT_CHECK, honour cancel and timeouts
    /// (no buffer lock is held here).
    fn count_read(&self) {
        let reads = self.reads.get() + 1;
        if reads >= READS_PER_INTERRUPT_CHECK {
            pgrx::check_for_interrupts!();
            self.reads.set(0);
        } else {
            self.reads.set(reads);
        }
    }

    /// Run `f` on the element at `id` under a share lock; None if there is no element there.
    pub fn with_element<R>(&self, id: Tid, f: impl FnOnce(&format::ElementData) -> R) -> Option<R> {
        if !id.is_valid() {
            return None;
        }
        self.count_read();
        let locked = Locked::read(self.index, id.block, false);
        self.element_on(&locked, id).map(|element| f(&element))
    }

    /// Run `f` on each element of `ids` that exists, in turn, under a share lock; consecutive
    /// ids on one page share one pin and lock (candidates listed in physical order mostly do).
    pub fn for_each_element(&self, ids: &[Tid], mut f: impl FnMut(Tid, &format::ElementData)) {
        let mut held: Option<(u32, Locked)> = None;
        for &id in ids {
            if !id.is_valid() {
                continue;
            }
            if held.as_ref().is_none_or(|(block, _)| *block != id.block) {
                drop(held.take()); // released before count_read may check for interrupts
                self.count_read();
                held = Some((id.block, Locked::read(self.index, id.block, false)));
            }
            let (_, locked) = held.as_ref().expect("held above");
            if let Some(element) = self.element_on(locked, id) {
                f(id, &element);
            }
        }
    }

    /// The element `id` on its locked page, if there is one. ERROR when it is corrupt, its
    /// level above what `m` allows and an invalid neighbour item address included.
    fn element_on<'a>(&self, locked: &'a Locked, id: Tid) -> Option<format::ElementData<'a>> {
        unsafe {
            let (_, element) = buffer::element_at(locked.page(), id.offset, self.layout)?;
            // (An invalid block would read as P_NEW: a read that extends the relation.)
            if element.level > format::max_level_for(self.m) || !element.neighbour_tid.is_valid() {
                format::Corrupt(format!(
                    "element at level {} for m = {}, neighbours at {:?}",
                    element.level, self.m, element.neighbour_tid
                ))
                .raise();
            }
            Some(element)
        }
    }

    pub fn element_info(&self, id: Tid) -> Option<ElementInfo> {
        self.with_element(id, |e| ElementInfo {
            deleted: e.deleted,
            level: e.level,
            neighbour_tid: e.neighbour_tid,
            heap_tids: e.heap_tids.clone(),
        })
    }

    /// Read the list of `id` on `level`; returns where the neighbour item is. An element and
    /// its neighbour item are usually on one page: then that page is locked once.
    fn read_list(&self, id: Tid, level: usize, out: &mut Vec<Tid>) -> Option<Tid> {
        out.clear();
        if !id.is_valid() {
            return None;
        }
        self.count_read();
        let mut locked = Locked::read(self.index, id.block, false);
        let neighbour_tid = self.element_on(&locked, id)?.neighbour_tid;
        if neighbour_tid.block != id.block {
            drop(locked);
            locked = Locked::read(self.index, neighbour_tid.block, false);
        }
        unsafe {
            if let Some(item) = buffer::item_ptr(locked.page(), neighbour_tid.offset) {
                buffer::read_neighbours(item, self.m, level, out);
            }
        }
        Some(neighbour_tid)
    }

    fn write_list(
        &self,
        neighbour_tid: Tid,
        level: usize,
        list: &[Tid],
        expect: Option<&[Tid]>,
    ) -> bool {
        let layout = self.meta.code_layout();
        let codes = layout.and_then(|l| self.codes_of(neighbour_tid, level, list, l));
        let locked = Locked::read(self.index, neighbour_tid.block, true);
        unsafe {
            let Some(current_item) = buffer::item_ptr(locked.page(), neighbour_tid.offset) else {
                return false;
            };
            if let Some(expected) = expect {
                let mut now = Vec::new();
                buffer::read_neighbours(current_item, self.m, level, &mut now);
                if now != expected {
                    return false;
                }
            }
            let xlog = Xlog::begin(self.index, &locked, false);
            if let Some(item) = buffer::item_ptr(xlog.page(), neighbour_tid.offset) {
                buffer::write_neighbours(item, self.m, level, list);
                if let (Some(layout), Some(codes)) = (layout, &codes) {
                    format::put_codes(item.bytes_mut(), self.m, layout, level, codes)
                        .unwrap_or_else(|c| c.raise());
                }
            }
            xlog.finish();
        }
        true
    }
}

impl GraphStore for PageStore {
    type Id = Tid;

    fn distance(&self, query: &[f32], id: Tid) -> f32 {
        self.with_element(id, |e| e.vector.distance(self.metric, query))
            .unwrap_or(f32::INFINITY)
    }

    fn distance_between(&self, a: Tid, b: Tid) -> f32 {
        let Some(first) = self.with_element(a, |e| e.vector.to_vec()) else {
            return f32::INFINITY;
        };
        self.distance(&first, b)
    }

    fn level(&self, id: Tid) -> usize {
        self.with_element(id, |e| e.level).unwrap_or(0)
    }

    fn neighbours(&self, id: Tid, level: usize, out: &mut Vec<Tid>) {
        self.read_list(id, level, out);
    }

    fn entry_point(&self) -> Option<EntryPoint<Tid>> {
        self.meta.entry.is_valid().then_some(EntryPoint {
            id: self.meta.entry,
            level: self.meta.entry_level as usize,
        })
    }

    fn is_deleted(&self, id: Tid) -> bool {
        self.with_element(id, |e| e.deleted).unwrap_or(true)
    }
}

impl GraphStoreMut for PageStore {
    fn set_neighbours(&mut self, id: Tid, level: usize, neighbours: &[Tid]) {
        if let Some(neighbour_tid) = self.with_element(id, |e| e.neighbour_tid) {
            self.write_list(neighbour_tid, level, neighbours, None);
        }
    }

    fn set_entry_point(&mut self, entry: Option<EntryPoint<Tid>>) {
        let locked = Locked::read(self.index, META_BLOCK, true);
        let xlog = Xlog::begin(self.index, &locked, false);
        unsafe {
            let mut meta = buffer::read_meta(xlog.page());
            let raise = match entry {
                Some(e) => !meta.entry.is_valid() || e.level > meta.entry_level as usize,
                None => false,
            };
            if self.replace_entry || raise {
                meta.entry = entry.map_or(Tid::INVALID, |e| e.id);
                meta.entry_level = entry.map_or(0, |e| e.level as u32);
                buffer::write_meta(xlog.page(), &meta);
            }
            self.meta = meta;
        }
        xlog.finish();
    }

    /// Optimistic: compute the new list without holding a lock (the callback reads other
    /// pages, and holding this page meanwhile could deadlock with another inserter), then write
    /// it only if no concurrent writer changed the list in between. If one did, this edge is
    /// skipped: HNSW tolerates a missing edge, and the other writer's list is kept intact.
    fn update_neighbours<F>(&mut self, id: Tid, level: usize, f: F)
    where
        F: FnOnce(&Self, &mut Vec<Tid>) -> bool,
    {
        let mut before = Vec::new();
        let Some(neighbour_tid) = self.read_list(id, level, &mut before) else {
            return;
        };
        let mut list = before.clone();
        if f(self, &mut list) {
            self.write_list(neighbour_tid, level, &list, Some(&before));
        }
    }
}

impl PageStore {
    /// [`CodedStore::expand`], with what `read` takes from the element (under its page's lock)
    /// for what else was read.
    #[allow(clippy::too_many_arguments)]
    pub fn expand_with<R>(
        &self,
        id: Tid,
        layer: usize,
        query: &[f32],
        table: &QueryTable,
        mut fresh: impl FnMut(Tid) -> bool,
        out: &mut Vec<Scored<Tid>>,
        read: impl FnOnce(format::ElementData) -> R,
    ) -> Option<(f32, R)> {
        out.clear();
        let layout = self.meta.code_layout()?;
        if !id.is_valid() {
            return None;
        }
        self.count_read();
        let mut locked = Locked::read(self.index, id.block, false);
        let (dist, read, neighbour_tid) = {
            let element = self.element_on(&locked, id)?;
            let dist = element.vector.distance(self.metric, query);
            let neighbour_tid = element.neighbour_tid;
            (dist, read(element), neighbour_tid)
        };
        if neighbour_tid.block != id.block {
            drop(locked);
            locked = Locked::read(self.index, neighbour_tid.block, false);
        }
        let mut uncoded = Vec::new();
        unsafe {
            if let Some(item) = buffer::item_ptr(locked.page(), neighbour_tid.offset) {
                let coded = format::for_each_coded_neighbour(
                    item.bytes(),
                    self.m,
                    layout,
                    layer,
                    |t, code| {
                        if fresh(t) {
                            out.push(Scored {
                                dist: table.estimate(code),
                                id: t,
                            })
                        }
                    },
                )
                .unwrap_or_else(|c| c.raise());
                if !coded {
                    buffer::read_neighbours(item, self.m, layer, &mut uncoded);
                }
            }
        }
        drop(locked);
        // A list without codes (an upper layer of a high element): exact distances.
        for t in uncoded {
            if fresh(t) {
                out.push(Scored {
                    dist: self.distance(query, t),
                    id: t,
                });
            }
        }
        Some((dist, read))
    }
}

impl CodedStore for PageStore {
    /// Whether the element is deleted, and its heap TIDs.
    type Read = (bool, Vec<Tid>);

    fn expand(
        &self,
        id: Tid,
        layer: usize,
        query: &[f32],
        table: &QueryTable,
        fresh: impl FnMut(Tid) -> bool,
        out: &mut Vec<Scored<Tid>>,
    ) -> Option<(f32, Self::Read)> {
        self.expand_with(id, layer, query, table, fresh, out, |e| {
            (e.deleted, e.heap_tids)
        })
    }
}
