//! On-page format of an xhnsw index and the low-level buffer helpers.
//!
//! Block 0 is the metapage. Every other block holds items of two kinds, reached by their
//! ItemPointer (block, offset):
//! - element: flags, level, the heap TIDs that share this vector (duplicates and non-HOT
//!   updates share one element), the ItemPointer of its neighbour item, the vector, and for a
//!   multi-column index the other columns' values as an index tuple (filters check them during
//!   the graph search, before any heap access);
//! - neighbours: per layer a count and fixed slots (2m on layer 0, m above) of ItemPointers.
//! Both have a fixed size for their level, so changes overwrite them in place. The builder
//! and inserts put an element and its neighbour item on the same page when they fit.
//!
//! Every change after the build goes through `Xlog` (GenericXLog), one page at a time; no code
//! holds two buffer locks at once, so concurrent inserts and scans cannot deadlock.

use pgrx::pg_sys;
use std::ptr;

pub const META_BLOCK: pg_sys::BlockNumber = 0;
pub const MAGIC: u32 = 0x7868_6e73; // "xhns"
/// Version 2 added the filter directory (directory.rs); version 1 indexes are read without it.
pub const VERSION: u32 = 2;
const OLDEST_READABLE_VERSION: u32 = 1;
/// Heap TIDs stored inline in one element; more copies of a vector get another element.
pub const MAX_HEAP_TIDS: usize = 8;
const ELEMENT_KIND: u8 = 1;
const NEIGHBOUR_KIND: u8 = 2;
const DIRECTORY_KIND: u8 = 3;
const FLAG_DELETED: u8 = 1;

/// An item's address: the graph's node id, and what heap TIDs are made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tid {
    pub block: u32,
    pub offset: u16,
}

impl Tid {
    pub const INVALID: Tid = Tid { block: u32::MAX, offset: 0 };

    pub fn is_valid(&self) -> bool {
        self.block != u32::MAX && self.offset != 0
    }

    pub fn from_pg(t: &pg_sys::ItemPointerData) -> Tid {
        let block = ((t.ip_blkid.bi_hi as u32) << 16) | t.ip_blkid.bi_lo as u32;
        Tid { block, offset: t.ip_posid }
    }

    pub fn to_pg(self) -> pg_sys::ItemPointerData {
        pg_sys::ItemPointerData {
            ip_blkid: pg_sys::BlockIdData { bi_hi: (self.block >> 16) as u16, bi_lo: self.block as u16 },
            ip_posid: self.offset,
        }
    }

    fn write(self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.block.to_le_bytes());
        out[4..6].copy_from_slice(&self.offset.to_le_bytes());
    }

    fn read(bytes: &[u8]) -> Tid {
        Tid {
            block: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            offset: u16::from_le_bytes([bytes[4], bytes[5]]),
        }
    }
}

const TID_SIZE: usize = 6;

/// Distance the index orders by, taken from the opclass's support function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Metric {
    /// `<->`: ordered by squared L2 distance.
    L2 = 1,
    /// `<=>`: vectors are stored normalised; ordered by 1 - dot product.
    Cosine = 2,
    /// `<#>`: ordered by -dot product.
    InnerProduct = 3,
    /// `<+>`: ordered by L1 (taxicab) distance.
    L1 = 4,
}

impl Metric {
    pub fn from_u32(v: u32) -> Option<Metric> {
        match v {
            1 => Some(Metric::L2),
            2 => Some(Metric::Cosine),
            3 => Some(Metric::InnerProduct),
            4 => Some(Metric::L1),
            _ => None,
        }
    }

    /// Distance used inside the graph (monotone in the operator's value).
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        use crate::vector::kernels;
        match self {
            Metric::L2 => kernels::l2_squared(a, b),
            Metric::Cosine => 1.0 - kernels::dot(a, b),
            Metric::InnerProduct => -kernels::dot(a, b),
            Metric::L1 => kernels::l1(a, b),
        }
    }

    /// The vector as the index stores it; None when it cannot be indexed (zero under cosine).
    pub fn prepare(self, v: &[f32]) -> Option<Vec<f32>> {
        if self != Metric::Cosine {
            return Some(v.to_vec());
        }
        let norm = v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return None;
        }
        Some(v.iter().map(|x| (*x as f64 / norm) as f32).collect())
    }
}

/// Block 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MetaPage {
    pub magic: u32,
    pub version: u32,
    pub dims: u32,
    pub m: u32,
    pub ef_construction: u32,
    pub metric: u32,
    pub entry: Tid,
    pub entry_level: u32,
    /// Last page that received items: where inserts look for free space first.
    pub insert_page: u32,
    /// Elements ever created (level generator seed for inserts).
    pub elements: u64,
    /// First and last page of the filter directory; META_BLOCK while it has none (also in
    /// version 1 metapages, whose bytes here are the zeroes of PageInit).
    pub directory_head: u32,
    pub directory_tail: u32,
}

impl MetaPage {
    /// Does this index keep a filter directory (of all its elements)?
    pub fn has_directory(&self, index: pg_sys::Relation) -> bool {
        self.version >= 2 && has_filter_columns(index)
    }
}

/// Columns after the vector (filter columns), which a filter directory serves.
pub fn has_filter_columns(index: pg_sys::Relation) -> bool {
    unsafe { (*(*index).rd_att).natts > 1 }
}

// ---------------------------------------------------------------------------------------------
// Item encoding. Offsets are fixed per level, so neighbour updates rewrite bytes in place.

/// Bytes of an element item: header (kind, flags, level, tid count, neighbour tid, extras
/// length), heap tids, the vector, then the extra columns' index tuple (MAXALIGNed).
pub fn element_size(dims: usize, extras_len: usize) -> usize {
    extras_offset(dims) + maxalign(extras_len)
}

fn extras_offset(dims: usize) -> usize {
    maxalign(element_vector_offset() + dims * 4)
}

fn element_vector_offset() -> usize {
    // keep the vector 4-byte aligned inside a MAXALIGNed item
    (16 + MAX_HEAP_TIDS * TID_SIZE).next_multiple_of(4)
}

pub fn neighbour_size(m: usize, level: usize) -> usize {
    maxalign(4 + (level + 1) * 2 + slot_count(m, level) * TID_SIZE)
}

fn slot_count(m: usize, level: usize) -> usize {
    2 * m + level * m
}

fn maxalign(n: usize) -> usize {
    n.next_multiple_of(8)
}

/// Highest level whose neighbour item still fits in a page for this `m`.
pub fn max_level_for(m: usize) -> usize {
    let usable = page_usable_space() - 64;
    let mut level = 0;
    while level < 16 && neighbour_size(m, level + 1) <= usable {
        level += 1;
    }
    level
}

/// Bytes available for items (and their line pointers) on an empty data page.
pub fn page_usable_space() -> usize {
    pg_sys::BLCKSZ as usize - std::mem::size_of::<pg_sys::PageHeaderData>()
}

/// A decoded element (vector borrowed from the page or owned by the caller).
pub struct ElementData<'a> {
    pub deleted: bool,
    pub level: usize,
    pub neighbour_tid: Tid,
    pub heap_tids: Vec<Tid>,
    pub vector: &'a [f32],
    /// Index tuple of the extra key columns (empty for a single-column index).
    pub extras: &'a [u8],
}

pub fn encode_element(level: usize, neighbour_tid: Tid, heap_tids: &[Tid], vector: &[f32], extras: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; element_size(vector.len(), extras.len())];
    out[0] = ELEMENT_KIND;
    out[2] = level as u8;
    out[3] = heap_tids.len() as u8;
    neighbour_tid.write(&mut out[4..10]);
    for (i, t) in heap_tids.iter().enumerate() {
        t.write(&mut out[16 + i * TID_SIZE..]);
    }
    out[10..12].copy_from_slice(&(extras.len() as u16).to_le_bytes());
    let start = element_vector_offset();
    for (i, v) in vector.iter().enumerate() {
        out[start + i * 4..start + i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    let start = extras_offset(vector.len());
    out[start..start + extras.len()].copy_from_slice(extras);
    out
}

/// Decode an element item in place. `dims` comes from the metapage.
///
/// # Safety
/// `item` must point at an element item of at least `element_size(dims)` bytes that stays valid
/// (buffer pinned and locked) while the result is used.
pub unsafe fn decode_element<'a>(item: *const u8, dims: usize) -> Option<ElementData<'a>> {
    let head = unsafe { std::slice::from_raw_parts(item, 16 + MAX_HEAP_TIDS * TID_SIZE) };
    if head[0] != ELEMENT_KIND {
        return None;
    }
    let count = (head[3] as usize).min(MAX_HEAP_TIDS);
    let heap_tids = (0..count).map(|i| Tid::read(&head[16 + i * TID_SIZE..])).collect();
    let vector = unsafe { std::slice::from_raw_parts(item.add(element_vector_offset()) as *const f32, dims) };
    let extras_len = u16::from_le_bytes([head[10], head[11]]) as usize;
    let extras = unsafe { std::slice::from_raw_parts(item.add(extras_offset(dims)), extras_len) };
    Some(ElementData {
        deleted: head[1] & FLAG_DELETED != 0,
        level: head[2] as usize,
        neighbour_tid: Tid::read(&head[4..10]),
        heap_tids,
        vector,
        extras,
    })
}

/// Rewrite the heap TIDs (and the deleted flag when none are left) of an element in place.
///
/// # Safety
/// `item` must be a writable element item (page registered with GenericXLog).
pub unsafe fn set_element_heap_tids(item: *mut u8, heap_tids: &[Tid]) {
    let head = unsafe { std::slice::from_raw_parts_mut(item, 16 + MAX_HEAP_TIDS * TID_SIZE) };
    head[3] = heap_tids.len() as u8;
    for (i, t) in heap_tids.iter().enumerate() {
        t.write(&mut head[16 + i * TID_SIZE..]);
    }
    if heap_tids.is_empty() {
        head[1] |= FLAG_DELETED;
    }
}

pub fn encode_neighbours(m: usize, level: usize) -> Vec<u8> {
    let mut out = vec![0u8; neighbour_size(m, level)];
    out[0] = NEIGHBOUR_KIND;
    out[1] = level as u8;
    out
}

fn layer_slots(m: usize, level: usize, layer: usize) -> (usize, usize) {
    // layer 0 first (2m slots), then m slots per upper layer
    let start = if layer == 0 { 0 } else { 2 * m + (layer - 1) * m };
    let cap = if layer == 0 { 2 * m } else { m };
    let _ = level;
    (start, cap)
}

fn slots_offset(level: usize) -> usize {
    4 + (level + 1) * 2
}

/// Read the neighbour list of `layer` from a neighbour item.
///
/// # Safety
/// `item` must point at a neighbour item written for this `m`, valid while read.
pub unsafe fn read_neighbours(item: *const u8, m: usize, layer: usize, out: &mut Vec<Tid>) {
    out.clear();
    let level = unsafe { *item.add(1) } as usize;
    if unsafe { *item } != NEIGHBOUR_KIND || layer > level {
        return;
    }
    let bytes = unsafe { std::slice::from_raw_parts(item, neighbour_size(m, level)) };
    let count = u16::from_le_bytes([bytes[4 + layer * 2], bytes[5 + layer * 2]]) as usize;
    let (start, cap) = layer_slots(m, level, layer);
    let base = slots_offset(level) + start * TID_SIZE;
    for i in 0..count.min(cap) {
        out.push(Tid::read(&bytes[base + i * TID_SIZE..]));
    }
}

/// Overwrite the neighbour list of `layer` in place (truncated to the layer's capacity).
///
/// # Safety
/// `item` must be a writable neighbour item (page registered with GenericXLog) for this `m`.
pub unsafe fn write_neighbours(item: *mut u8, m: usize, layer: usize, list: &[Tid]) {
    let level = unsafe { *item.add(1) } as usize;
    if unsafe { *item } != NEIGHBOUR_KIND || layer > level {
        return;
    }
    let bytes = unsafe { std::slice::from_raw_parts_mut(item, neighbour_size(m, level)) };
    let (start, cap) = layer_slots(m, level, layer);
    let n = list.len().min(cap);
    bytes[4 + layer * 2..6 + layer * 2].copy_from_slice(&(n as u16).to_le_bytes());
    let base = slots_offset(level) + start * TID_SIZE;
    for (i, t) in list[..n].iter().enumerate() {
        t.write(&mut bytes[base + i * TID_SIZE..]);
    }
}

pub(crate) fn is_element(item: *const u8) -> bool {
    unsafe { *item == ELEMENT_KIND }
}

// ---------------------------------------------------------------------------------------------
// Filter directory pages (directory.rs). Each holds one item: a count, then the tags of up to
// `directory_capacity()` elements as one array (what a scan reads), then their TIDs in the same
// order. The special space holds the next directory page.

const DIRECTORY_SPECIAL_SIZE: usize = 8;
const DIRECTORY_HEADER_SIZE: usize = 8;

/// Entries per directory page (581 with 8 kB pages).
pub fn directory_capacity() -> usize {
    let space = page_usable_space() - DIRECTORY_SPECIAL_SIZE - std::mem::size_of::<pg_sys::ItemIdData>();
    (space - DIRECTORY_HEADER_SIZE - 7) / (8 + TID_SIZE) // 7: the item is MAXALIGNed
}

fn directory_item_size() -> usize {
    DIRECTORY_HEADER_SIZE + directory_capacity() * (8 + TID_SIZE)
}

/// A fresh directory page: its (empty) item, no next page.
pub(crate) fn init_directory_page(page: pg_sys::Page) {
    unsafe {
        pg_sys::PageInit(page, pg_sys::BLCKSZ as usize, DIRECTORY_SPECIAL_SIZE);
        set_next_directory_page(page, META_BLOCK);
        let mut item = vec![0u8; directory_item_size()];
        item[0] = DIRECTORY_KIND;
        add_item(page, &item);
    }
}

/// The directory item of a page; None unless it is a directory page (the special space and
/// the item have the directory's sizes), so that a corrupt chain cannot lead reads astray.
unsafe fn directory_item(page: pg_sys::Page) -> Option<*mut u8> {
    unsafe {
        let special = pg_sys::BLCKSZ as usize - (*(page as *const pg_sys::PageHeaderData)).pd_special as usize;
        if special != DIRECTORY_SPECIAL_SIZE {
            return None;
        }
        let item = item_ptr(page, 1)?;
        let length = (*pg_sys::PageGetItemId(page, 1)).lp_len() as usize;
        (length >= directory_item_size() && *item == DIRECTORY_KIND).then_some(item)
    }
}

/// # Safety
/// `page` must be a locked page.
pub unsafe fn is_directory_page(page: pg_sys::Page) -> bool {
    unsafe { directory_item(page).is_some() }
}

/// The tags of a directory page and, by position, the TID of each one's element.
pub struct DirectoryEntries<'a> {
    pub tags: &'a [u64],
    tids: &'a [u8],
}

impl DirectoryEntries<'_> {
    pub fn element(&self, position: usize) -> Tid {
        Tid::read(&self.tids[position * TID_SIZE..])
    }
}

/// # Safety
/// `page` must be a locked page; the result borrows it.
pub unsafe fn directory_entries<'a>(page: pg_sys::Page) -> Option<DirectoryEntries<'a>> {
    unsafe {
        let item = directory_item(page)?;
        let count = (u16::from_le_bytes([*item.add(2), *item.add(3)]) as usize).min(directory_capacity());
        let tags = std::slice::from_raw_parts(item.add(DIRECTORY_HEADER_SIZE) as *const u64, count);
        let tids_start = DIRECTORY_HEADER_SIZE + directory_capacity() * 8;
        let tids = std::slice::from_raw_parts(item.add(tids_start), count * TID_SIZE);
        Some(DirectoryEntries { tags, tids })
    }
}

/// Append an entry to a directory page; false when it is full.
///
/// # Safety
/// `page` must be a writable directory page.
pub unsafe fn push_directory_entry(page: pg_sys::Page, element: Tid, tag: u64) -> bool {
    unsafe {
        let Some(item) = directory_item(page) else { return false };
        let count = u16::from_le_bytes([*item.add(2), *item.add(3)]) as usize;
        let capacity = directory_capacity();
        if count >= capacity {
            return false;
        }
        ptr::write_unaligned(item.add(DIRECTORY_HEADER_SIZE + count * 8) as *mut u64, tag);
        let tid = std::slice::from_raw_parts_mut(item.add(DIRECTORY_HEADER_SIZE + capacity * 8 + count * TID_SIZE), TID_SIZE);
        element.write(tid);
        let count = (count as u16 + 1).to_le_bytes();
        *item.add(2) = count[0];
        *item.add(3) = count[1];
        true
    }
}

/// The directory page after this one, or META_BLOCK for the last.
///
/// # Safety
/// `page` must be a locked directory page (`is_directory_page`).
pub unsafe fn next_directory_page(page: pg_sys::Page) -> u32 {
    unsafe { ptr::read_unaligned(pg_sys::PageGetSpecialPointer(page) as *const u32) }
}

/// # Safety
/// `page` must be a writable directory page.
pub unsafe fn set_next_directory_page(page: pg_sys::Page, next: u32) {
    unsafe { ptr::write_unaligned(pg_sys::PageGetSpecialPointer(page) as *mut u32, next) }
}

// ---------------------------------------------------------------------------------------------
// Buffers

/// A pinned and locked buffer, released on drop (also when an ERROR unwinds through Rust).
pub struct Locked {
    pub buffer: pg_sys::Buffer,
}

impl Locked {
    pub(crate) fn read(index: pg_sys::Relation, block: pg_sys::BlockNumber, exclusive: bool) -> Locked {
        unsafe {
            let buffer = pg_sys::ReadBufferExtended(
                index,
                pg_sys::ForkNumber::MAIN_FORKNUM,
                block,
                pg_sys::ReadBufferMode::RBM_NORMAL,
                ptr::null_mut(),
            );
            let mode = if exclusive { pg_sys::BUFFER_LOCK_EXCLUSIVE } else { pg_sys::BUFFER_LOCK_SHARE };
            pg_sys::LockBuffer(buffer, mode as i32);
            Locked { buffer }
        }
    }

    /// Extend the relation by one page, returned locked exclusively (not yet initialised).
    pub(crate) fn extend(index: pg_sys::Relation) -> Locked {
        unsafe {
            pg_sys::LockRelationForExtension(index, pg_sys::ExclusiveLock as i32);
            let locked = Locked::read(index, pg_sys::InvalidBlockNumber, true);
            pg_sys::UnlockRelationForExtension(index, pg_sys::ExclusiveLock as i32);
            locked
        }
    }

    pub fn page(&self) -> pg_sys::Page {
        unsafe { pg_sys::BufferGetPage(self.buffer) }
    }

    pub fn block(&self) -> pg_sys::BlockNumber {
        unsafe { pg_sys::BufferGetBlockNumber(self.buffer) }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        unsafe { pg_sys::UnlockReleaseBuffer(self.buffer) }
    }
}

/// Pointer to the item at `offset` of `page`, or None when the offset is out of range.
///
/// # Safety
/// `page` must be a valid, locked page.
pub unsafe fn item_ptr(page: pg_sys::Page, offset: u16) -> Option<*mut u8> {
    unsafe {
        if offset == 0 || offset > pg_sys::PageGetMaxOffsetNumber(page) {
            return None;
        }
        let id = pg_sys::PageGetItemId(page, offset);
        if (*id).lp_flags() != pg_sys::LP_NORMAL {
            return None;
        }
        Some(pg_sys::PageGetItem(page, id) as *mut u8)
    }
}

/// Free bytes for one more item on `page`.
pub(crate) fn free_space(page: pg_sys::Page) -> usize {
    unsafe { pg_sys::PageGetFreeSpace(page) }
}

/// Add an item; returns its offset. Callers check free space first.
///
/// # Safety
/// `page` must be writable (registered with GenericXLog, or a new page during build).
pub unsafe fn add_item(page: pg_sys::Page, bytes: &[u8]) -> u16 {
    let offset = unsafe {
        pg_sys::PageAddItemExtended(page, bytes.as_ptr() as pg_sys::Item, bytes.len(), pg_sys::InvalidOffsetNumber, 0)
    };
    if offset == pg_sys::InvalidOffsetNumber {
        pgrx::error!("xhnsw: failed to add an item to an index page");
    }
    offset
}

/// One GenericXLog record over one buffer: `begin` gives the page to modify, `finish` logs it.
pub struct Xlog {
    state: *mut pg_sys::GenericXLogState,
    page: pg_sys::Page,
}

impl Xlog {
    pub(crate) fn begin(index: pg_sys::Relation, locked: &Locked, full_image: bool) -> Xlog {
        unsafe {
            let state = pg_sys::GenericXLogStart(index);
            let flags = if full_image { pg_sys::GENERIC_XLOG_FULL_IMAGE as i32 } else { 0 };
            let page = pg_sys::GenericXLogRegisterBuffer(state, locked.buffer, flags);
            Xlog { state, page }
        }
    }

    pub fn page(&self) -> pg_sys::Page {
        self.page
    }

    /// Add another buffer to the same record (GenericXLog takes up to four): the changes to
    /// all of them are replayed together or not at all.
    pub(crate) fn register(&mut self, locked: &Locked, full_image: bool) -> pg_sys::Page {
        let flags = if full_image { pg_sys::GENERIC_XLOG_FULL_IMAGE as i32 } else { 0 };
        unsafe { pg_sys::GenericXLogRegisterBuffer(self.state, locked.buffer, flags) }
    }

    pub fn finish(mut self) {
        unsafe { pg_sys::GenericXLogFinish(self.state) };
        self.state = ptr::null_mut();
    }
}

impl Drop for Xlog {
    fn drop(&mut self) {
        if !self.state.is_null() {
            unsafe { pg_sys::GenericXLogAbort(self.state) };
        }
    }
}

pub(crate) fn init_page(page: pg_sys::Page) {
    unsafe { pg_sys::PageInit(page, pg_sys::BLCKSZ as usize, 0) }
}

/// # Safety
/// `page` must be the locked metapage.
pub unsafe fn read_meta(page: pg_sys::Page) -> MetaPage {
    let meta = unsafe { ptr::read_unaligned(pg_sys::PageGetContents(page) as *const MetaPage) };
    if meta.magic != MAGIC {
        pgrx::error!("xhnsw: index metapage is corrupt (bad magic number)");
    }
    if !(OLDEST_READABLE_VERSION..=VERSION).contains(&meta.version) {
        pgrx::error!("xhnsw: index has format version {}, this build reads {}: REINDEX it", meta.version, VERSION);
    }
    meta
}

/// # Safety
/// `page` must be a writable metapage.
pub unsafe fn write_meta(page: pg_sys::Page, meta: &MetaPage) {
    unsafe {
        ptr::write_unaligned(pg_sys::PageGetContents(page) as *mut MetaPage, *meta);
        let header = page as *mut pg_sys::PageHeaderData;
        (*header).pd_lower = (pg_sys::PageGetContents(page) as usize - page as usize
            + std::mem::size_of::<MetaPage>()) as u16;
    }
}

pub fn read_meta_of(index: pg_sys::Relation) -> MetaPage {
    let locked = Locked::read(index, META_BLOCK, false);
    unsafe { read_meta(locked.page()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_lists_round_trip() {
        let (m, level) = (4, 2);
        let mut item = encode_neighbours(m, level);
        let lists: [Vec<Tid>; 3] = [
            (1..=8).map(|i| Tid { block: i, offset: i as u16 }).collect(),
            vec![Tid { block: 70000, offset: 3 }],
            vec![],
        ];
        for (layer, list) in lists.iter().enumerate() {
            unsafe { write_neighbours(item.as_mut_ptr(), m, layer, list) };
        }
        let mut out = Vec::new();
        for (layer, list) in lists.iter().enumerate() {
            unsafe { read_neighbours(item.as_ptr(), m, layer, &mut out) };
            assert_eq!(&out, list);
        }
        // longer than capacity is truncated; layers above the level read empty
        let long: Vec<Tid> = (0..20).map(|i| Tid { block: i, offset: 1 }).collect();
        unsafe { write_neighbours(item.as_mut_ptr(), m, 1, &long) };
        unsafe { read_neighbours(item.as_ptr(), m, 1, &mut out) };
        assert_eq!(out.len(), m);
        unsafe { read_neighbours(item.as_ptr(), m, 3, &mut out) };
        assert!(out.is_empty());
    }

    #[test]
    fn element_round_trip() {
        let v: Vec<f32> = (0..13).map(|i| i as f32 * 0.5).collect();
        let tids = [Tid { block: 5, offset: 2 }, Tid { block: 1 << 20, offset: 9 }];
        // keep the buffer 8-aligned like a page item
        let bytes = encode_element(3, Tid { block: 7, offset: 4 }, &tids, &v, b"extra!");
        let mut aligned = vec![0u64; bytes.len() / 8 + 1];
        let raw = aligned.as_mut_ptr() as *mut u8;
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), raw, bytes.len()) };
        let e = unsafe { decode_element(raw, v.len()) }.unwrap();
        assert_eq!((e.level, e.deleted, e.neighbour_tid), (3, false, Tid { block: 7, offset: 4 }));
        assert_eq!(e.heap_tids, tids);
        assert_eq!(e.vector, &v[..]);
        assert_eq!(e.extras, b"extra!");
        assert_eq!((raw as usize + extras_offset(v.len())) % 8, 0, "extras are MAXALIGNed");
        unsafe { set_element_heap_tids(raw, &[]) };
        assert!(unsafe { decode_element(raw, v.len()) }.unwrap().deleted);
    }

    #[test]
    fn sizes_fit_a_page() {
        assert!(element_size(2000, 0) <= page_usable_space() - 8);
        let directory = (directory_item_size() + 7) / 8 * 8;
        assert!(directory + 4 + DIRECTORY_SPECIAL_SIZE <= page_usable_space(), "{directory}");
        assert_eq!(directory_capacity(), 581);
        for m in [2, 16, 48, 100] {
            let top = max_level_for(m);
            assert!(top >= 4, "m={m} top={top}");
            assert!(neighbour_size(m, top) <= page_usable_space());
        }
    }
}
