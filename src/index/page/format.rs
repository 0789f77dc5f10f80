//! The on-page format of an xhnsw index, as bytes: what each item holds and where, how the
//! metapage reads, and the checks that keep a corrupt page from being read past its items.
//! Nothing here touches a buffer (buffer.rs does), so the codecs are tested with plain
//! `cargo test`, fuzzed pages included.
//!
//! Block 0 is the metapage. Every other block holds items of two kinds, reached by their
//! ItemPointer (block, offset):
//! - element: flags, level, the heap TIDs that share this vector (duplicates and non-HOT
//!   updates share one element), the ItemPointer of its neighbour item, the vector (float4, or
//!   float2 in an index on xhalfvec: `Storage`, in the metapage since format 3), and for a
//!   multi-column index the other columns' values as an index tuple (filters check them during
//!   the graph search, before any heap access);
//! - neighbours: per layer a count and fixed slots (2m on layer 0, m above) of ItemPointers;
//!   in an index with codes (`MetaPage::codes`), then one code (index/code.rs) per slot, of
//!   the neighbour in that slot, for layer 0 (format 5) and for as many upper layers as fit in
//!   a page (format 6: `CodeLayout::upper_layers`).
//! Both have a fixed size for their level, so changes overwrite them in place. The builder
//! and inserts put an element and its neighbour item on the same page when they fit.
//! Filter directory pages (directory.rs) hold one item each and the next page's number in
//! their special space. An index with codes built on rows has one more page, after the
//! graph's, whose only item is the centroid its codes are taken around; with a filter
//! directory too (format 7), consecutive code pages after the directory hold the code of each
//! element the build listed there, in the directory's order (`MetaPage::code_pages`), which the
//! exact path ranks before it reads any element (ranked.rs).

use crate::vector::metric::Metric;
use pgrx::pg_sys;
use std::ptr;

pub const META_BLOCK: pg_sys::BlockNumber = 0;
pub const MAGIC: u32 = 0x7868_6e73; // "xhns"
/// Version 2 added the filter directory (directory.rs); version 1 indexes are read without it.
/// 2: the filter directory; 3: `MetaPage::storage` (float2 elements for xhalfvec);
/// 4: `MetaPage::keep_pruned`; 5: `MetaPage::codes` (neighbours' codes in layer-0 lists);
/// 6: codes in upper lists too (`MetaPage::codes` = 2); 7: code pages beside the filter
/// directory (`MetaPage::code_pages`).
pub const VERSION: u32 = 7;
const OLDEST_READABLE_VERSION: u32 = 1;
/// Heap TIDs stored inline in one element; more copies of a vector get another element.
pub const MAX_HEAP_TIDS: usize = 8;
/// The first byte of every item says what it is.
pub(super) const ELEMENT_KIND: u8 = 1;
const NEIGHBOUR_KIND: u8 = 2;
pub(super) const DIRECTORY_KIND: u8 = 3;
/// The centroid the codes are taken around: float4 values after an 8-byte header.
const CENTROID_KIND: u8 = 4;
const CENTROID_HEADER: usize = 8;
/// Codes of the directory's elements, back to back after an 8-byte header.
const CODES_KIND: u8 = 5;
const CODES_HEADER: usize = 8;
const FLAG_DELETED: u8 = 1;

/// Where an element item's header fields lie (bytes 12..16 are unused).
mod element_at {
    pub const FLAGS: usize = 1;
    pub const LEVEL: usize = 2;
    pub const TID_COUNT: usize = 3;
    /// The neighbour item's ItemPointer (6 bytes).
    pub const NEIGHBOUR_TID: usize = 4;
    /// The extras' length (u16).
    pub const EXTRAS_LEN: usize = 10;
    /// `MAX_HEAP_TIDS` slots of 6 bytes.
    pub const HEAP_TIDS: usize = 16;
}

/// Where a neighbour item's header fields lie: the level, then one u16 count per layer.
mod neighbours_at {
    pub const LEVEL: usize = 1;
    pub const COUNTS: usize = 4;
}

/// An item's address: the graph's node id, and what heap TIDs are made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tid {
    pub block: u32,
    pub offset: u16,
}

impl Tid {
    pub const INVALID: Tid = Tid {
        block: u32::MAX,
        offset: 0,
    };

    pub fn is_valid(&self) -> bool {
        self.block != u32::MAX && self.offset != 0
    }

    pub fn from_pg(t: &pg_sys::ItemPointerData) -> Tid {
        let block = ((t.ip_blkid.bi_hi as u32) << 16) | t.ip_blkid.bi_lo as u32;
        Tid {
            block,
            offset: t.ip_posid,
        }
    }

    pub fn to_pg(self) -> pg_sys::ItemPointerData {
        pg_sys::ItemPointerData {
            ip_blkid: pg_sys::BlockIdData {
                bi_hi: (self.block >> 16) as u16,
                bi_lo: self.block as u16,
            },
            ip_posid: self.offset,
        }
    }

    pub(super) fn write(self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.block.to_le_bytes());
        out[4..6].copy_from_slice(&self.offset.to_le_bytes());
    }

    pub(super) fn read(bytes: &[u8]) -> Tid {
        Tid {
            block: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            offset: u16::from_le_bytes([bytes[4], bytes[5]]),
        }
    }
}

pub(super) const TID_SIZE: usize = 6;

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
    /// `Storage` of the elements: 0 float4 (also before version 3: PageInit's zeroes), 1 float2.
    pub storage: u32,
    /// 1: neighbour lists are filled with pruned candidates (`HnswParams::keep_pruned`). 0 in
    /// older formats (`parse_meta` clears it there: these bytes were struct padding in format 3).
    pub keep_pruned: u32,
    /// 1: layer-0 lists carry each neighbour's one-bit code (index/code.rs) after their
    /// ItemPointers, when [`code_bytes_for`] allows for this `m` and `dims`; 2: upper lists
    /// too, as many as fit (format 6). 0 before format 5.
    pub codes: u32,
    /// The page holding the codes' centroid as its only item; META_BLOCK when there is none
    /// (an index built empty): codes are then taken around zero.
    pub centroid_block: u32,
    /// The first code page (format 7): the codes of the first `coded_entries` elements of the
    /// filter directory, in its order, [`codes_per_page`] to a page on consecutive pages.
    /// META_BLOCK when there are none (no directory, no codes, or before format 7).
    pub code_pages: u32,
    pub coded_entries: u32,
}

impl MetaPage {
    /// Where this index's neighbour items carry codes; None when they carry none.
    pub fn code_layout(&self) -> Option<CodeLayout> {
        if self.codes == 0 {
            return None;
        }
        Some(CodeLayout {
            code_bytes: code_bytes_for(self.m as usize, self.dims as usize)?,
            upper: self.codes >= 2,
        })
    }

    /// The shape of this index's element items (`parse_meta` checked `storage`).
    pub fn layout(&self) -> Layout {
        Layout {
            dims: self.dims as usize,
            storage: Storage::from_u32(self.storage).unwrap_or(Storage::Float4),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Item encoding. Offsets are fixed per level, so neighbour updates rewrite bytes in place.

/// How an index's elements hold their vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Storage {
    /// 4-byte floats (xvector, and every index of format 1 and 2).
    Float4 = 0,
    /// 2-byte floats: an index on xhalfvec, whose values are float2 already.
    Float2 = 1,
}

impl Storage {
    fn bytes(self) -> usize {
        match self {
            Storage::Float4 => 4,
            Storage::Float2 => 2,
        }
    }

    /// Largest dimension an index accepts: an element (with its header) must fit in one page.
    pub fn max_dims(self) -> usize {
        match self {
            Storage::Float4 => 2000,
            Storage::Float2 => 4000,
        }
    }

    fn from_u32(v: u32) -> Option<Storage> {
        match v {
            0 => Some(Storage::Float4),
            1 => Some(Storage::Float2),
            _ => None,
        }
    }
}

/// The shape of an index's element items: every element holds `dims` values as `storage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub dims: usize,
    pub storage: Storage,
}

/// Bytes of an element item: header (kind, flags, level, tid count, neighbour tid, extras
/// length), heap tids, the vector, then the extra columns' index tuple (MAXALIGNed).
pub fn element_size(layout: Layout, extras_len: usize) -> usize {
    extras_offset(layout) + maxalign(extras_len)
}

fn extras_offset(layout: Layout) -> usize {
    maxalign(element_vector_offset() + layout.dims * layout.storage.bytes())
}

fn element_vector_offset() -> usize {
    // keep the vector 4-byte aligned inside a MAXALIGNed item
    (element_at::HEAP_TIDS + MAX_HEAP_TIDS * TID_SIZE).next_multiple_of(4)
}

pub fn neighbour_size(m: usize, level: usize) -> usize {
    maxalign(4 + (level + 1) * 2 + slot_count(m, level) * TID_SIZE)
}

/// Bytes a neighbour item with codes adds after its ItemPointers: one code per slot of layer
/// 0 and of `upper_layers` layers above it.
fn codes_size(m: usize, code_bytes: usize, upper_layers: usize) -> usize {
    maxalign(slot_count(m, upper_layers) * code_bytes)
}

/// Where the neighbour items of an index carry codes (`MetaPage::codes`): the codes lie
/// after the ItemPointers, one per slot in slot order, of layer 0 and of the upper layers
/// counted by `upper_layers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeLayout {
    pub code_bytes: usize,
    /// Upper layers carry codes too, as many as fit (format 6); layer 0 only otherwise.
    pub upper: bool,
}

impl CodeLayout {
    /// The upper layers (from layer 1 up) whose lists carry codes in an item of `level`: as
    /// many as fit in a page beside its ItemPointers.
    pub fn upper_layers(self, m: usize, level: usize) -> usize {
        if !self.upper {
            return 0;
        }
        let room = (page_usable_space() - 64).saturating_sub(neighbour_size(m, level));
        (0..=level)
            .rev()
            .find(|&k| codes_size(m, self.code_bytes, k) <= room)
            .unwrap_or(0)
    }

    fn item_size(self, m: usize, level: usize) -> usize {
        let upper = self.upper_layers(m, level);
        neighbour_size(m, level) + codes_size(m, self.code_bytes, upper)
    }
}

/// The size of a code for `dims` dimensions, when the codes of a full layer-0 list fit in a
/// neighbour item of the highest level beside an element's line pointer; None otherwise (or
/// before the dimension is known, or below `code::MIN_DIMS`).
pub fn code_bytes_for(m: usize, dims: usize) -> Option<usize> {
    let code_bytes = crate::index::code::code_bytes(dims);
    let size = neighbour_size(m, max_level_for(m)) + codes_size(m, code_bytes, 0);
    (dims >= crate::index::code::MIN_DIMS && size <= page_usable_space() - 64).then_some(code_bytes)
}

/// Bytes of a neighbour item of `level`, with codes laid out as `codes` says or none.
pub fn neighbour_item_size(m: usize, level: usize, codes: Option<CodeLayout>) -> usize {
    codes.map_or(neighbour_size(m, level), |c| c.item_size(m, level))
}

fn slot_count(m: usize, level: usize) -> usize {
    2 * m + level * m
}

fn maxalign(n: usize) -> usize {
    n.next_multiple_of(8)
}

/// No element is above this level, whatever `m` (the level generator's cap).
const LEVEL_CAP: usize = 16;

/// Highest level whose neighbour item still fits in a page for this `m`.
pub fn max_level_for(m: usize) -> usize {
    let usable = page_usable_space() - 64;
    let mut level = 0;
    while level < LEVEL_CAP && neighbour_size(m, level + 1) <= usable {
        level += 1;
    }
    level
}

/// Bytes available for items (and their line pointers) on an empty data page.
pub fn page_usable_space() -> usize {
    pg_sys::BLCKSZ as usize - std::mem::size_of::<pg_sys::PageHeaderData>()
}

/// A decoded element, borrowing from the page.
pub struct ElementData<'a> {
    pub deleted: bool,
    pub level: usize,
    pub neighbour_tid: Tid,
    pub heap_tids: Vec<Tid>,
    pub vector: ElementVector<'a>,
    /// Index tuple of the extra key columns (empty for a single-column index).
    pub extras: &'a [u8],
}

/// An element's vector as stored on its page.
#[derive(Clone, Copy)]
pub enum ElementVector<'a> {
    Float4(&'a [f32]),
    Float2(&'a [half::f16]),
}

thread_local! {
    /// A float2 vector widened for the distance kernels (they take float4).
    static WIDENED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl ElementVector<'_> {
    /// `metric`'s distance between `query` and this vector.
    pub fn distance(self, metric: Metric, query: &[f32]) -> f32 {
        match self {
            ElementVector::Float4(v) => metric.distance(query, v),
            ElementVector::Float2(v) => WIDENED.with_borrow_mut(|wide| {
                wide.clear();
                wide.extend(v.iter().map(|h| h.to_f32()));
                metric.distance(query, wide)
            }),
        }
    }

    pub fn to_vec(self) -> Vec<f32> {
        match self {
            ElementVector::Float4(v) => v.to_vec(),
            ElementVector::Float2(v) => v.iter().map(|h| h.to_f32()).collect(),
        }
    }

    /// Whether `vector`, stored in this one's format, would be bit for bit this one.
    pub fn stores(self, vector: &[f32]) -> bool {
        match self {
            ElementVector::Float4(v) => {
                v.len() == vector.len()
                    && v.iter()
                        .zip(vector)
                        .all(|(a, b)| a.to_bits() == b.to_bits())
            }
            ElementVector::Float2(v) => {
                v.len() == vector.len()
                    && v.iter()
                        .zip(vector)
                        .all(|(a, b)| a.to_bits() == half::f16::from_f32(*b).to_bits())
            }
        }
    }
}

/// An element item holding `vector` in `storage`.
pub fn encode_element(
    level: usize,
    neighbour_tid: Tid,
    heap_tids: &[Tid],
    vector: &[f32],
    storage: Storage,
    extras: &[u8],
) -> Vec<u8> {
    let layout = Layout {
        dims: vector.len(),
        storage,
    };
    let mut out = vec![0u8; element_size(layout, extras.len())];
    out[0] = ELEMENT_KIND;
    out[element_at::LEVEL] = level as u8;
    neighbour_tid.write(&mut out[element_at::NEIGHBOUR_TID..]);
    write_heap_tids(&mut out, heap_tids);
    out[element_at::EXTRAS_LEN..][..2].copy_from_slice(&(extras.len() as u16).to_le_bytes());
    let start = element_vector_offset();
    for (i, v) in vector.iter().enumerate() {
        match storage {
            Storage::Float4 => out[start + i * 4..][..4].copy_from_slice(&v.to_ne_bytes()),
            Storage::Float2 => {
                out[start + i * 2..][..2].copy_from_slice(&half::f16::from_f32(*v).to_ne_bytes())
            }
        }
    }
    let start = extras_offset(layout);
    out[start..start + extras.len()].copy_from_slice(extras);
    out
}

/// Decode the bytes of an item (its `lp_len` bytes) as an element of this layout; Ok(None)
/// when it is another kind of item. Checks the item's length against the size its header
/// implies, the level, the heap TID count and the extras' own length before slicing.
pub fn parse_element(bytes: &[u8], layout: Layout) -> Result<Option<ElementData<'_>>, Corrupt> {
    let dims = layout.dims;
    if bytes.first() != Some(&ELEMENT_KIND) {
        return Ok(None);
    }
    let header = element_vector_offset();
    if bytes.len() < header {
        return Err(Corrupt(format!("element item of {} bytes", bytes.len())));
    }
    let (level, count) = (
        bytes[element_at::LEVEL] as usize,
        bytes[element_at::TID_COUNT] as usize,
    );
    if level > LEVEL_CAP || count > MAX_HEAP_TIDS {
        return Err(Corrupt(format!(
            "element with level {level} and {count} heap TIDs"
        )));
    }
    let extras_len = read_u16(bytes, element_at::EXTRAS_LEN) as usize;
    let expected = element_size(layout, extras_len);
    if bytes.len() != expected {
        return Err(Corrupt(format!(
            "element item of {} bytes, expected {expected} for {dims} dimensions",
            bytes.len()
        )));
    }
    let extras = &bytes[extras_offset(layout)..extras_offset(layout) + extras_len];
    // The extras are an index tuple (filter.rs) that index_deform_tuple reads: its own length
    // must be what the element says.
    if !extras.is_empty()
        && (extras_len < 8
            || (u16::from_ne_bytes([extras[6], extras[7]]) & 0x1fff) as usize != extras_len)
    {
        return Err(Corrupt(format!(
            "filter values of {extras_len} bytes with a different length inside"
        )));
    }
    let vector_bytes = &bytes[header..header + dims * layout.storage.bytes()];
    if vector_bytes.as_ptr() as usize % std::mem::align_of::<f32>() != 0 {
        return Err(Corrupt("misaligned element".into()));
    }
    // SAFETY: in bounds (length checked above) and aligned for f32 (so for f16); every bit
    // pattern is an f32 or an f16.
    let vector = unsafe {
        match layout.storage {
            Storage::Float4 => ElementVector::Float4(std::slice::from_raw_parts(
                vector_bytes.as_ptr() as *const f32,
                dims,
            )),
            Storage::Float2 => ElementVector::Float2(std::slice::from_raw_parts(
                vector_bytes.as_ptr() as *const half::f16,
                dims,
            )),
        }
    };
    Ok(Some(ElementData {
        deleted: bytes[element_at::FLAGS] & FLAG_DELETED != 0,
        level,
        neighbour_tid: Tid::read(&bytes[element_at::NEIGHBOUR_TID..]),
        heap_tids: (0..count)
            .map(|i| Tid::read(&bytes[element_at::HEAP_TIDS + i * TID_SIZE..]))
            .collect(),
        vector,
        extras,
    }))
}

/// Rewrite the heap TIDs (and set the deleted flag when none are left) of an element item.
pub fn put_heap_tids(bytes: &mut [u8], heap_tids: &[Tid]) -> Result<(), Corrupt> {
    if bytes.first() != Some(&ELEMENT_KIND)
        || bytes.len() < element_vector_offset()
        || heap_tids.len() > MAX_HEAP_TIDS
    {
        return Err(Corrupt(format!("element item of {} bytes", bytes.len())));
    }
    write_heap_tids(bytes, heap_tids);
    if heap_tids.is_empty() {
        bytes[element_at::FLAGS] |= FLAG_DELETED;
    }
    Ok(())
}

fn write_heap_tids(bytes: &mut [u8], heap_tids: &[Tid]) {
    bytes[element_at::TID_COUNT] = heap_tids.len() as u8;
    for (i, t) in heap_tids.iter().enumerate() {
        t.write(&mut bytes[element_at::HEAP_TIDS + i * TID_SIZE..]);
    }
}

fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

pub fn encode_neighbours(m: usize, level: usize) -> Vec<u8> {
    encode_coded_neighbours(m, level, None)
}

/// An empty neighbour item with room for the codes `codes` lays out (or none).
pub fn encode_coded_neighbours(m: usize, level: usize, codes: Option<CodeLayout>) -> Vec<u8> {
    let mut out = vec![0u8; neighbour_item_size(m, level, codes)];
    out[0] = NEIGHBOUR_KIND;
    out[neighbours_at::LEVEL] = level as u8;
    out
}

/// The first slot of `layer` and its slot count: layer 0 first (2m slots), then m slots per
/// upper layer.
fn layer_slots(m: usize, layer: usize) -> (usize, usize) {
    match layer {
        0 => (0, 2 * m),
        _ => (2 * m + (layer - 1) * m, m),
    }
}

fn slots_offset(level: usize) -> usize {
    layer_count_at(level + 1)
}

fn layer_count_at(layer: usize) -> usize {
    neighbours_at::COUNTS + layer * 2
}

/// The level of a neighbour item written for this `m`; None when the item is another kind.
/// Its level byte and its length must agree with `m` (codes may follow the ItemPointers).
fn neighbour_level(bytes: &[u8], m: usize) -> Result<Option<usize>, Corrupt> {
    if bytes.first() != Some(&NEIGHBOUR_KIND) {
        return Ok(None);
    }
    let level = *bytes.get(neighbours_at::LEVEL).unwrap_or(&u8::MAX) as usize;
    if level > max_level_for(m) || bytes.len() < neighbour_size(m, level) {
        return Err(Corrupt(format!(
            "neighbour item of {} bytes with level {level} for m = {m}",
            bytes.len()
        )));
    }
    Ok(Some(level))
}

/// Read the list of `layer` from the bytes of a neighbour item (empty for another kind of
/// item or a layer above its level).
pub fn parse_neighbours(
    bytes: &[u8],
    m: usize,
    layer: usize,
    out: &mut Vec<Tid>,
) -> Result<(), Corrupt> {
    out.clear();
    let Some(level) = neighbour_level(bytes, m)? else {
        return Ok(());
    };
    if layer > level {
        return Ok(());
    }
    let count = read_u16(bytes, layer_count_at(layer)) as usize;
    let (start, cap) = layer_slots(m, layer);
    let base = slots_offset(level) + start * TID_SIZE;
    for i in 0..count.min(cap) {
        out.push(Tid::read(&bytes[base + i * TID_SIZE..]));
    }
    Ok(())
}

/// Overwrite the list of `layer` in the bytes of a neighbour item (truncated to the layer's
/// capacity; nothing for another kind of item or a layer above its level).
pub fn put_neighbours(
    bytes: &mut [u8],
    m: usize,
    layer: usize,
    list: &[Tid],
) -> Result<(), Corrupt> {
    let Some(level) = neighbour_level(bytes, m)? else {
        return Ok(());
    };
    if layer > level {
        return Ok(());
    }
    let (start, cap) = layer_slots(m, layer);
    let n = list.len().min(cap);
    bytes[layer_count_at(layer)..][..2].copy_from_slice(&(n as u16).to_le_bytes());
    let base = slots_offset(level) + start * TID_SIZE;
    for (i, t) in list[..n].iter().enumerate() {
        t.write(&mut bytes[base + i * TID_SIZE..]);
    }
    Ok(())
}

/// Hands each neighbour on `layer` of a neighbour item laid out as `codes` says to `f`, with
/// its code. Ok(false) when that list carries no codes (it is above the item's level, or
/// above the layers with codes) or the item is another kind; Corrupt when the item's length
/// is not its layout's.
pub fn for_each_coded_neighbour(
    bytes: &[u8],
    m: usize,
    codes: CodeLayout,
    layer: usize,
    mut f: impl FnMut(Tid, &[u8]),
) -> Result<bool, Corrupt> {
    let Some((level, at)) = coded_layer(bytes, m, codes, layer)? else {
        return Ok(false);
    };
    let count = (read_u16(bytes, layer_count_at(layer)) as usize).min(layer_slots(m, layer).1);
    let base = slots_offset(level) + layer_slots(m, layer).0 * TID_SIZE;
    let code_bytes = codes.code_bytes;
    for i in 0..count {
        let tid = Tid::read(&bytes[base + i * TID_SIZE..]);
        f(tid, &bytes[at + i * code_bytes..][..code_bytes]);
    }
    Ok(true)
}

/// Overwrites the codes of the list on `layer` of a neighbour item laid out as `codes` says:
/// `list_codes` holds one code per list entry, in list order. Nothing when that list carries
/// no codes.
pub fn put_codes(
    bytes: &mut [u8],
    m: usize,
    codes: CodeLayout,
    layer: usize,
    list_codes: &[u8],
) -> Result<(), Corrupt> {
    let Some((_, at)) = coded_layer(bytes, m, codes, layer)? else {
        return Ok(());
    };
    let n = list_codes
        .len()
        .min(layer_slots(m, layer).1 * codes.code_bytes);
    bytes[at..at + n].copy_from_slice(&list_codes[..n]);
    Ok(())
}

/// The level of a neighbour item laid out as `codes` says and where the codes of its list on
/// `layer` begin; None when that list carries none.
fn coded_layer(
    bytes: &[u8],
    m: usize,
    codes: CodeLayout,
    layer: usize,
) -> Result<Option<(usize, usize)>, Corrupt> {
    let Some(level) = neighbour_level(bytes, m)? else {
        return Ok(None);
    };
    if bytes.len() != codes.item_size(m, level) {
        return Err(Corrupt(format!(
            "neighbour item of {} bytes with level {level} has no room for codes of {} bytes",
            bytes.len(),
            codes.code_bytes
        )));
    }
    if layer > codes.upper_layers(m, level) {
        return Ok(None);
    }
    let at = neighbour_size(m, level) + layer_slots(m, layer).0 * codes.code_bytes;
    Ok(Some((level, at)))
}

/// A centroid item for `centroid`.
pub fn encode_centroid(centroid: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; maxalign(CENTROID_HEADER + centroid.len() * 4)];
    out[0] = CENTROID_KIND;
    for (chunk, x) in out[CENTROID_HEADER..].chunks_exact_mut(4).zip(centroid) {
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    out
}

/// The `dims` values of a centroid item.
pub fn parse_centroid(bytes: &[u8], dims: usize) -> Result<Vec<f32>, Corrupt> {
    if bytes.first() != Some(&CENTROID_KIND) || bytes.len() < CENTROID_HEADER + dims * 4 {
        return Err(Corrupt(format!(
            "centroid item of {} bytes for {dims} dimensions",
            bytes.len()
        )));
    }
    Ok(bytes[CENTROID_HEADER..CENTROID_HEADER + dims * 4]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Code pages (ranked.rs): one item each, its kind, a byte unused, the count of codes (u16), 4
// bytes unused, then the codes back to back.

/// Codes on one code page.
pub fn codes_per_page(code_bytes: usize) -> usize {
    let space = page_usable_space() - std::mem::size_of::<pg_sys::ItemIdData>();
    (space - CODES_HEADER - 7) / code_bytes.max(1) // 7: the item is MAXALIGNed
}

/// A code page's item for `codes` (at most `codes_per_page` of `code_bytes` each).
pub fn encode_code_page(codes: &[u8], code_bytes: usize) -> Vec<u8> {
    let count = codes.len() / code_bytes;
    debug_assert!(count <= codes_per_page(code_bytes));
    let mut out = vec![0u8; maxalign(CODES_HEADER + codes.len())];
    out[0] = CODES_KIND;
    out[2..4].copy_from_slice(&(count as u16).to_le_bytes());
    out[CODES_HEADER..CODES_HEADER + codes.len()].copy_from_slice(codes);
    out
}

/// The codes of a code page's item, `code_bytes` each, checked against the item's length.
pub fn parse_code_page(bytes: &[u8], code_bytes: usize) -> Result<&[u8], Corrupt> {
    let count = match bytes.get(..CODES_HEADER) {
        Some(header) if header[0] == CODES_KIND => u16::from_le_bytes([header[2], header[3]]),
        _ => return Err(Corrupt("not a code page".into())),
    } as usize;
    let end = CODES_HEADER + count * code_bytes;
    if count > codes_per_page(code_bytes) || end > bytes.len() {
        return Err(Corrupt(format!(
            "code page of {} bytes holding {count} codes of {code_bytes}",
            bytes.len()
        )));
    }
    Ok(&bytes[CODES_HEADER..end])
}

// ---------------------------------------------------------------------------------------------
// Filter directory pages (directory.rs). Each holds one item: a count, then the tags of up to
// `directory_capacity()` elements as one array (what a scan reads), then their TIDs in the same
// order. The special space holds the next directory page.

pub(super) const DIRECTORY_SPECIAL_SIZE: usize = 8;
/// The item's header: its kind, a byte unused, the entry count (u16), 4 bytes unused.
pub(super) const DIRECTORY_HEADER_SIZE: usize = 8;
pub(super) const DIRECTORY_COUNT_AT: usize = 2;

/// Entries per directory page (581 with 8 kB pages).
pub fn directory_capacity() -> usize {
    let space =
        page_usable_space() - DIRECTORY_SPECIAL_SIZE - std::mem::size_of::<pg_sys::ItemIdData>();
    (space - DIRECTORY_HEADER_SIZE - 7) / (8 + TID_SIZE) // 7: the item is MAXALIGNed
}

pub(super) fn directory_item_size() -> usize {
    DIRECTORY_HEADER_SIZE + directory_capacity() * (8 + TID_SIZE)
}

/// Why an index page cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub struct Corrupt(pub String);

impl Corrupt {
    /// ERROR with ERRCODE_INDEX_CORRUPTED (XX002).
    pub fn raise(&self) -> ! {
        pgrx::ereport!(
            ERROR,
            pgrx::PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
            format!("xhnsw: an index page is corrupt ({}); REINDEX it", self.0)
        );
    }
}

/// PostgreSQL's page header; pd_lower, pd_upper and pd_special are at bytes 12, 14 and 16.
const PAGE_HEADER_SIZE: usize = 24;

/// Line pointers on a page, from its header.
pub fn max_offset(page: &[u8]) -> u16 {
    let lower = u16::from_le_bytes([page[12], page[13]]) as usize;
    (lower.saturating_sub(PAGE_HEADER_SIZE) / std::mem::size_of::<pg_sys::ItemIdData>()) as u16
}

/// Where the item at `offset` lies on `page`: (start, length); None when the offset is out of
/// range. Its line pointer must be in use and its bytes between the header and the special
/// space (as amcheck's PageGetItemIdCareful checks), MAXALIGNed as PageAddItem places them.
pub fn item_bounds(page: &[u8], offset: u16) -> Result<Option<(usize, usize)>, Corrupt> {
    if page.len() != pg_sys::BLCKSZ as usize {
        return Err(Corrupt(format!("page of {} bytes", page.len())));
    }
    let field = |at: usize| u16::from_le_bytes([page[at], page[at + 1]]) as usize;
    let (lower, upper, special) = (field(12), field(14), field(16));
    if !(lower <= upper && upper <= special && special <= page.len()) {
        return Err(Corrupt(format!(
            "page header with lower {lower}, upper {upper}, special {special}"
        )));
    }
    if offset == 0 || offset > max_offset(page) {
        return Ok(None);
    }
    let at = PAGE_HEADER_SIZE + (offset as usize - 1) * 4;
    let id = u32::from_le_bytes([page[at], page[at + 1], page[at + 2], page[at + 3]]);
    let (start, flags, len) = ((id & 0x7fff) as usize, (id >> 15) & 3, (id >> 17) as usize);
    if flags != pg_sys::LP_NORMAL
        || len == 0
        || start < upper
        || start % 8 != 0
        || start + len > special
    {
        return Err(Corrupt(format!(
            "line pointer {offset} with offset {start}, length {len}, flags {flags}"
        )));
    }
    Ok(Some((start, len)))
}

/// The metapage's fields, checked against what any index can hold: every reader sizes its
/// reads by `dims` and `m`.
pub fn parse_meta(page: &[u8]) -> Result<MetaPage, Corrupt> {
    use crate::index::options::{MAX_EF_CONSTRUCTION, MAX_M, MIN_M};
    if page.len() < PAGE_HEADER_SIZE + std::mem::size_of::<MetaPage>() {
        return Err(Corrupt("short metapage".into()));
    }
    // SAFETY: in bounds; MetaPage is plain integers, valid for any bytes.
    let mut meta =
        unsafe { ptr::read_unaligned(page[PAGE_HEADER_SIZE..].as_ptr() as *const MetaPage) };
    if meta.magic != MAGIC {
        return Err(Corrupt("bad magic number in the metapage".into()));
    }
    if !(OLDEST_READABLE_VERSION..=VERSION).contains(&meta.version) {
        return Err(Corrupt(format!(
            "format version {}, this build reads {VERSION}",
            meta.version
        )));
    }
    if meta.version < 4 {
        meta.keep_pruned = 0;
    }
    if meta.version < 5 {
        meta.codes = 0;
        meta.centroid_block = META_BLOCK;
    }
    if meta.version < 7 {
        meta.code_pages = META_BLOCK;
        meta.coded_entries = 0;
    }
    let (dims, m, efc) = (
        meta.dims as usize,
        meta.m as usize,
        meta.ef_construction as usize,
    );
    let storage = Storage::from_u32(meta.storage);
    if storage.is_none_or(|s| dims > s.max_dims())
        || !(MIN_M..=MAX_M).contains(&m)
        || !(1..=MAX_EF_CONSTRUCTION).contains(&efc)
        || Metric::from_u32(meta.metric).is_none()
        || meta.entry_level as usize > max_level_for(m)
        || meta.keep_pruned > 1
        || meta.codes > 2
        || (meta.version < 6 && meta.codes > 1)
        || (meta.coded_entries > 0 && (meta.code_pages == META_BLOCK || meta.codes == 0))
    {
        return Err(Corrupt(format!(
            "metapage with dims {dims}, storage {}, m {m}, ef_construction {efc}, metric {}, entry level {}",
            meta.storage, meta.metric, meta.entry_level
        )));
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn neighbour_lists_round_trip() {
        let (m, level) = (4, 2);
        let mut item = encode_neighbours(m, level);
        let lists: [Vec<Tid>; 3] = [
            (1..=8)
                .map(|i| Tid {
                    block: i,
                    offset: i as u16,
                })
                .collect(),
            vec![Tid {
                block: 70000,
                offset: 3,
            }],
            vec![],
        ];
        for (layer, list) in lists.iter().enumerate() {
            put_neighbours(&mut item, m, layer, list).unwrap();
        }
        let mut out = Vec::new();
        for (layer, list) in lists.iter().enumerate() {
            parse_neighbours(&item, m, layer, &mut out).unwrap();
            assert_eq!(&out, list);
        }
        // longer than capacity is truncated; layers above the level read empty
        let long: Vec<Tid> = (0..20)
            .map(|i| Tid {
                block: i,
                offset: 1,
            })
            .collect();
        put_neighbours(&mut item, m, 1, &long).unwrap();
        parse_neighbours(&item, m, 1, &mut out).unwrap();
        assert_eq!(out.len(), m);
        parse_neighbours(&item, m, 3, &mut out).unwrap();
        assert!(out.is_empty());
        // a level byte above what m allows, or a length that does not match it, is corrupt
        let mut bad = item.clone();
        bad[1] = 255;
        assert!(parse_neighbours(&bad, m, 0, &mut out).is_err());
        assert!(parse_neighbours(&item[..item.len() - 8], m, 0, &mut out).is_err());
        assert!(put_neighbours(&mut bad, m, 0, &long).is_err());
    }

    /// `bytes` copied into 8-aligned memory, as items lie on a page.
    fn aligned(bytes: &[u8]) -> Vec<u64> {
        let mut out = vec![0u64; bytes.len().div_ceil(8)];
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr() as *mut u8, bytes.len())
        };
        out
    }

    fn as_bytes(words: &[u64], len: usize) -> &[u8] {
        unsafe { std::slice::from_raw_parts(words.as_ptr() as *const u8, len) }
    }

    /// Index-tuple bytes as extras_of makes them: t_info holds the (MAXALIGNed) size.
    fn fake_extras(len: usize) -> Vec<u8> {
        let mut extras = vec![0u8; len];
        extras[6..8].copy_from_slice(&(len as u16).to_ne_bytes());
        extras
    }

    fn float4(dims: usize) -> Layout {
        Layout {
            dims,
            storage: Storage::Float4,
        }
    }

    #[test]
    fn element_round_trip() {
        let v: Vec<f32> = (0..13).map(|i| i as f32 * 0.5).collect();
        let tids = [
            Tid {
                block: 5,
                offset: 2,
            },
            Tid {
                block: 1 << 20,
                offset: 9,
            },
        ];
        let extras = fake_extras(16);
        let bytes = encode_element(
            3,
            Tid {
                block: 7,
                offset: 4,
            },
            &tids,
            &v,
            Storage::Float4,
            &extras,
        );
        let words = aligned(&bytes);
        let item = as_bytes(&words, bytes.len());
        let e = parse_element(item, float4(v.len())).unwrap().unwrap();
        assert_eq!(
            (e.level, e.deleted, e.neighbour_tid),
            (
                3,
                false,
                Tid {
                    block: 7,
                    offset: 4
                }
            )
        );
        assert_eq!(e.heap_tids, tids);
        assert_eq!(e.vector.to_vec(), v);
        assert!(e.vector.stores(&v));
        assert_eq!(e.extras, &extras[..]);
        assert_eq!(
            (item.as_ptr() as usize + extras_offset(float4(v.len()))) % 8,
            0,
            "extras are MAXALIGNed"
        );
        // the wrong dimension, a cut item, a level or TID count out of range: corrupt
        assert!(parse_element(item, float4(v.len() + 4)).is_err());
        assert!(parse_element(&item[..item.len() - 8], float4(v.len())).is_err());
        for (at, value) in [(2, 17u8), (3, 9u8), (10, 200u8)] {
            let mut bad = bytes.clone();
            bad[at] = value;
            let words = aligned(&bad);
            assert!(
                parse_element(as_bytes(&words, bad.len()), float4(v.len())).is_err(),
                "byte {at} = {value}"
            );
        }
        assert!(
            parse_element(&encode_neighbours(4, 0), float4(v.len()))
                .unwrap()
                .is_none(),
            "another kind"
        );
    }

    #[test]
    fn heap_tids_are_rewritten_in_place() {
        let v = [1.0f32, 2.0, 3.0];
        let first = Tid {
            block: 3,
            offset: 1,
        };
        let mut bytes = encode_element(1, first, &[first, first], &v, Storage::Float4, &[]);
        let more: Vec<Tid> = (1..=MAX_HEAP_TIDS as u32)
            .map(|block| Tid { block, offset: 7 })
            .collect();
        put_heap_tids(&mut bytes, &more).unwrap();
        let words = aligned(&bytes);
        let e = parse_element(as_bytes(&words, bytes.len()), float4(3))
            .unwrap()
            .unwrap();
        assert_eq!((e.heap_tids, e.deleted, e.level), (more.clone(), false, 1));
        // none left: the element reads as deleted
        put_heap_tids(&mut bytes, &[]).unwrap();
        let words = aligned(&bytes);
        let e = parse_element(as_bytes(&words, bytes.len()), float4(3))
            .unwrap()
            .unwrap();
        assert!(e.heap_tids.is_empty() && e.deleted);
        // too many, or not an element: refused, nothing written
        let mut too_many = more.clone();
        too_many.push(first);
        assert!(put_heap_tids(&mut bytes, &too_many).is_err());
        let mut neighbours = encode_neighbours(4, 0);
        let before = neighbours.clone();
        assert!(put_heap_tids(&mut neighbours, &more).is_err());
        assert_eq!(neighbours, before);
    }

    #[test]
    fn float2_elements() {
        // xhalfvec values are float2 already: stored and read back exactly, at half the size.
        let v: Vec<f32> = (0..13)
            .map(|i| half::f16::from_f32(i as f32 * 0.3).to_f32())
            .collect();
        let half_layout = Layout {
            dims: v.len(),
            storage: Storage::Float2,
        };
        let bytes = encode_element(0, Tid::INVALID, &[], &v, Storage::Float2, &[]);
        assert_eq!(bytes.len(), element_size(half_layout, 0));
        assert!(bytes.len() < element_size(float4(v.len()), 0));
        let words = aligned(&bytes);
        let item = as_bytes(&words, bytes.len());
        let e = parse_element(item, half_layout).unwrap().unwrap();
        assert_eq!(e.vector.to_vec(), v);
        assert!(e.vector.stores(&v));
        let query: Vec<f32> = (0..13).map(|i| i as f32).collect();
        assert_eq!(
            e.vector.distance(Metric::L2, &query),
            Metric::L2.distance(&query, &v)
        );
        assert!(
            parse_element(item, float4(v.len())).is_err(),
            "read as float4"
        );
    }

    /// The metapage of an empty L2 float4 index of this format version.
    fn empty_meta(version: u32, dims: u32) -> MetaPage {
        MetaPage {
            magic: MAGIC,
            version,
            dims,
            m: 16,
            ef_construction: 64,
            metric: Metric::L2 as u32,
            entry: Tid::INVALID,
            entry_level: 0,
            insert_page: 0,
            elements: 0,
            directory_head: 0,
            directory_tail: 0,
            storage: 0,
            keep_pruned: 0,
            codes: 0,
            centroid_block: 0,
            code_pages: 0,
            coded_entries: 0,
        }
    }

    #[test]
    fn older_metapages_read_as_float4() {
        // A format-2 metapage ends before `storage`: PageInit's zeroes read as float4.
        let meta = empty_meta(2, 3000);
        let mut page = vec![0u8; BLOCK];
        let old_size = std::mem::offset_of!(MetaPage, storage);
        let bytes =
            unsafe { std::slice::from_raw_parts(&meta as *const MetaPage as *const u8, old_size) };
        page[PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + old_size].copy_from_slice(bytes);
        assert!(
            parse_meta(&page).is_err(),
            "3000 float4 dimensions do not fit"
        );
        page[PAGE_HEADER_SIZE + 8..PAGE_HEADER_SIZE + 12].copy_from_slice(&1536u32.to_ne_bytes());
        let read = parse_meta(&page).unwrap();
        assert_eq!(
            read.layout(),
            Layout {
                dims: 1536,
                storage: Storage::Float4
            }
        );
    }

    #[test]
    fn codes_are_read_from_format_5_on() {
        let mut meta = MetaPage {
            codes: 1,
            centroid_block: 7,
            ..empty_meta(4, 784)
        };
        let mut page = vec![0u8; BLOCK];
        let mut read_back = |meta: MetaPage| {
            unsafe {
                ptr::write_unaligned(page[PAGE_HEADER_SIZE..].as_mut_ptr() as *mut MetaPage, meta)
            };
            parse_meta(&page).unwrap()
        };
        let old = read_back(meta);
        assert_eq!(
            (old.codes, old.centroid_block, old.code_layout()),
            (0, META_BLOCK, None)
        );
        meta.version = 5;
        let new = read_back(meta);
        let layer0 = CodeLayout {
            code_bytes: 1024 / 8 + 12,
            upper: false,
        };
        assert_eq!((new.centroid_block, new.code_layout()), (7, Some(layer0)));
        meta.codes = 2;
        assert!(
            parse_meta(&page_of(meta)).is_err(),
            "format 5 has no upper codes"
        );
        meta.version = 6;
        let upper = CodeLayout {
            upper: true,
            ..layer0
        };
        assert_eq!(read_back(meta).code_layout(), Some(upper));
        meta.codes = 3;
        assert!(parse_meta(&page_of(meta)).is_err());
        meta.codes = 1;
        meta.dims = 2000;
        assert_eq!(
            read_back(meta).code_layout(),
            None,
            "a full list of codes must fit"
        );
    }

    #[test]
    fn code_pages_are_read_from_format_7_on() {
        let meta = MetaPage {
            codes: 2,
            centroid_block: 7,
            code_pages: 9,
            coded_entries: 100,
            ..empty_meta(6, 784)
        };
        let old = parse_meta(&page_of(meta)).unwrap();
        assert_eq!((old.code_pages, old.coded_entries), (META_BLOCK, 0));
        let new = parse_meta(&page_of(MetaPage { version: 7, ..meta })).unwrap();
        assert_eq!((new.code_pages, new.coded_entries), (9, 100));
        for broken in [
            MetaPage {
                code_pages: META_BLOCK,
                ..new
            },
            MetaPage { codes: 0, ..new },
        ] {
            assert!(parse_meta(&page_of(broken)).is_err(), "{broken:?}");
        }
    }

    #[test]
    fn code_pages_round_trip() {
        let code_bytes = crate::index::code::code_bytes(784);
        let per_page = codes_per_page(code_bytes);
        assert_eq!(per_page, 58, "8 kB pages");
        let codes: Vec<u8> = (0..per_page * code_bytes).map(|i| i as u8).collect();
        let item = encode_code_page(&codes, code_bytes);
        assert!(item.len() + 4 <= page_usable_space(), "{}", item.len());
        assert_eq!(parse_code_page(&item, code_bytes), Ok(&codes[..]));
        let few = encode_code_page(&codes[..3 * code_bytes], code_bytes);
        assert_eq!(
            parse_code_page(&few, code_bytes),
            Ok(&codes[..3 * code_bytes])
        );
        // A count beyond the item, another kind, a short item: corrupt.
        let mut lying = few.clone();
        lying[2] = 4;
        assert!(parse_code_page(&lying, code_bytes).is_err());
        assert!(parse_code_page(&encode_centroid(&[1.0; 8]), code_bytes).is_err());
        assert!(parse_code_page(&few[..4], code_bytes).is_err());
    }

    fn page_of(meta: MetaPage) -> Vec<u8> {
        let mut page = vec![0u8; BLOCK];
        unsafe {
            ptr::write_unaligned(page[PAGE_HEADER_SIZE..].as_mut_ptr() as *mut MetaPage, meta)
        };
        page
    }

    /// Upper lists carry codes as far as they fit: all of them for short codes, some for long
    /// ones, none at the highest level of long ones; every item fits beside a line pointer.
    #[test]
    fn upper_layers_with_codes_fit_a_page() {
        let short = CodeLayout {
            code_bytes: code_bytes_for(16, 128).unwrap(),
            upper: true,
        };
        assert_eq!(short.upper_layers(16, 3), 3);
        let long = CodeLayout {
            code_bytes: code_bytes_for(16, 784).unwrap(),
            upper: true,
        };
        assert_eq!((long.upper_layers(16, 1), long.upper_layers(16, 2)), (1, 1));
        assert_eq!(long.upper_layers(16, max_level_for(16)), 0);
        let layer0 = CodeLayout {
            upper: false,
            ..long
        };
        assert_eq!(layer0.upper_layers(16, 2), 0);
        for m in [2, 16, 48, 100] {
            for dims in [64, 128, 784, 1536] {
                let Some(code_bytes) = code_bytes_for(m, dims) else {
                    continue;
                };
                for level in 0..=max_level_for(m) {
                    let codes = CodeLayout {
                        code_bytes,
                        upper: true,
                    };
                    let size = neighbour_item_size(m, level, Some(codes));
                    assert!(
                        size <= page_usable_space() - 64,
                        "m {m} dims {dims} level {level}"
                    );
                }
            }
        }
    }

    #[test]
    fn coded_neighbour_items_round_trip() {
        let m = 16;
        let cb = code_bytes_for(m, 784).unwrap();
        for upper in [false, true] {
            let layout = CodeLayout {
                code_bytes: cb,
                upper,
            };
            for level in [0, 1, 3] {
                let mut item = encode_coded_neighbours(m, level, Some(layout));
                let lists: Vec<Vec<Tid>> = (0..=level)
                    .map(|layer| {
                        let len = if layer == 0 { 20 } else { 9 + layer };
                        (1..=len as u32)
                            .map(|i| Tid {
                                block: i + 100 * layer as u32,
                                offset: 2,
                            })
                            .collect()
                    })
                    .collect();
                let code_of = |t: &Tid| vec![(t.block % 251) as u8; cb];
                for (layer, list) in lists.iter().enumerate() {
                    put_neighbours(&mut item, m, layer, list).unwrap();
                    let codes: Vec<u8> = list.iter().flat_map(code_of).collect();
                    put_codes(&mut item, m, layout, layer, &codes).unwrap();
                }
                for (layer, list) in lists.iter().enumerate() {
                    let mut seen = Vec::new();
                    let coded = for_each_coded_neighbour(&item, m, layout, layer, |t, code| {
                        seen.push((t, code.to_vec()))
                    })
                    .unwrap();
                    let expect_codes = layer <= layout.upper_layers(m, level);
                    assert_eq!(
                        coded, expect_codes,
                        "upper {upper} level {level} layer {layer}"
                    );
                    if expect_codes {
                        let expected: Vec<_> = list.iter().map(|t| (*t, code_of(t))).collect();
                        assert_eq!(seen, expected);
                    } else {
                        assert!(seen.is_empty());
                    }
                    let mut out = Vec::new();
                    parse_neighbours(&item, m, layer, &mut out).unwrap();
                    assert_eq!(&out, list, "ItemPointers read as without codes");
                }
                let above = for_each_coded_neighbour(&item, m, layout, level + 1, |_, _| {});
                assert_eq!(above.unwrap(), false);
                let plain = encode_neighbours(m, level);
                assert!(for_each_coded_neighbour(&plain, m, layout, 0, |_, _| {}).is_err());
                let mut short = item[..plain.len()].to_vec();
                assert!(put_codes(&mut short, m, layout, 0, &[0; 8]).is_err());
            }
        }
    }

    #[test]
    fn centroid_items_round_trip() {
        let centroid: Vec<f32> = (0..784).map(|i| i as f32 * 0.5).collect();
        let item = encode_centroid(&centroid);
        assert_eq!(parse_centroid(&item, 784).unwrap(), centroid);
        assert!(parse_centroid(&item, 785).is_err());
        assert!(parse_centroid(&encode_neighbours(16, 0), 4).is_err());
    }

    #[test]
    fn keep_pruned_is_read_from_format_4_only() {
        // In format 3 the bytes of `keep_pruned` were the struct's tail padding: whatever they
        // hold, an index of format 3 or older has sparse lists.
        let mut meta = MetaPage {
            keep_pruned: 0xdead_beef,
            ..empty_meta(3, 8)
        };
        let mut page = vec![0u8; BLOCK];
        let mut read_back = |meta: MetaPage| {
            unsafe {
                ptr::write_unaligned(page[PAGE_HEADER_SIZE..].as_mut_ptr() as *mut MetaPage, meta)
            };
            parse_meta(&page)
        };
        assert_eq!(read_back(meta).unwrap().keep_pruned, 0);
        meta.version = 4;
        assert!(read_back(meta).is_err(), "format 4 checks the flag");
        meta.keep_pruned = 1;
        assert_eq!(read_back(meta).unwrap().keep_pruned, 1);
    }

    #[test]
    fn sizes_fit_a_page() {
        for storage in [Storage::Float4, Storage::Float2] {
            let widest = Layout {
                dims: storage.max_dims(),
                storage,
            };
            assert!(element_size(widest, 0) <= page_usable_space() - 8);
        }
        let directory = (directory_item_size() + 7) / 8 * 8;
        assert!(
            directory + 4 + DIRECTORY_SPECIAL_SIZE <= page_usable_space(),
            "{directory}"
        );
        assert_eq!(directory_capacity(), 581);
        for m in [2, 16, 48, 100] {
            let top = max_level_for(m);
            assert!(top >= 4, "m={m} top={top}");
            assert!(neighbour_size(m, top) <= page_usable_space());
        }
    }

    const BLOCK: usize = pg_sys::BLCKSZ as usize;

    /// A data page as PageInit and PageAddItem would lay it out: an element and its
    /// neighbour item.
    fn data_page(layout: Layout, m: usize, level: usize) -> Vec<u64> {
        let mut page = vec![0u8; BLOCK];
        let items = [
            encode_element(
                level,
                Tid {
                    block: 1,
                    offset: 2,
                },
                &[Tid {
                    block: 9,
                    offset: 1,
                }],
                &vec![0.25; layout.dims],
                layout.storage,
                &[],
            ),
            encode_neighbours(m, level),
        ];
        let mut upper = BLOCK;
        for (i, item) in items.iter().enumerate() {
            upper -= item.len();
            page[upper..upper + item.len()].copy_from_slice(item);
            let id = upper as u32 | pg_sys::LP_NORMAL << 15 | (item.len() as u32) << 17;
            page[PAGE_HEADER_SIZE + i * 4..PAGE_HEADER_SIZE + i * 4 + 4]
                .copy_from_slice(&id.to_le_bytes());
        }
        page[12..14].copy_from_slice(&((PAGE_HEADER_SIZE + 8) as u16).to_le_bytes());
        page[14..16].copy_from_slice(&(upper as u16).to_le_bytes());
        page[16..18].copy_from_slice(&(BLOCK as u16).to_le_bytes());
        aligned(&page)
    }

    /// What every reader does with a page: each item through `item_bounds`, then decoded as
    /// an element or a neighbour item (with codes too, and as a centroid). Returns whether the
    /// page was found corrupt.
    fn read_page(page: &[u8], layout: Layout, m: usize) -> bool {
        let mut out = Vec::new();
        for offset in 0..=max_offset(page).saturating_add(1) {
            match item_bounds(page, offset) {
                Err(_) => return true,
                Ok(None) => {}
                Ok(Some((start, len))) => {
                    let bytes = &page[start..start + len];
                    match parse_element(bytes, layout) {
                        Err(_) => return true,
                        Ok(Some(e)) => assert_eq!(e.vector.to_vec().len(), layout.dims),
                        Ok(None) => {
                            // Readers of codes and centroids may refuse these bytes (an item
                            // without codes is not corrupt), but never read past them.
                            if let Some(code_bytes) = code_bytes_for(m, layout.dims) {
                                for upper in [false, true] {
                                    let codes = CodeLayout { code_bytes, upper };
                                    for layer in 0..=LEVEL_CAP + 1 {
                                        let _ = for_each_coded_neighbour(
                                            bytes,
                                            m,
                                            codes,
                                            layer,
                                            |_, code| assert_eq!(code.len(), code_bytes),
                                        );
                                    }
                                }
                            }
                            let _ = parse_centroid(bytes, layout.dims);
                            for layer in 0..=LEVEL_CAP + 1 {
                                if parse_neighbours(bytes, m, layer, &mut out).is_err() {
                                    return true;
                                }
                            }
                        }
                    }
                }
            }
        }
        false
    }

    #[test]
    fn a_built_page_reads_back() {
        for storage in [Storage::Float4, Storage::Float2] {
            let layout = Layout { dims: 24, storage };
            let words = data_page(layout, 16, 2);
            assert!(!read_page(as_bytes(&words, BLOCK), layout, 16));
        }
        let words = data_page(float4(24), 16, 2);
        assert_eq!(item_bounds(as_bytes(&words, BLOCK), 3), Ok(None));
    }

    // Fuzzing on stable Rust: random pages and bit-flipped pages through the decoders must give
    // a decoded item or `Corrupt`, never a panic or a read past the page (bounds-checked
    // slices panic where an unchecked read would overrun). PROPTEST_CASES sets the number of
    // cases (bench/README.md: the long run).
    proptest! {
        #[test]
        fn random_pages_never_panic(bytes in proptest::collection::vec(any::<u8>(), BLOCK), dims in 0usize..4100, half in any::<bool>(), m in 2usize..=100) {
            let words = aligned(&bytes);
            let storage = if half { Storage::Float2 } else { Storage::Float4 };
            read_page(as_bytes(&words, BLOCK), Layout { dims, storage }, m);
            let _ = parse_meta(as_bytes(&words, BLOCK));
        }

        #[test]
        fn bit_flipped_pages_never_panic(
            flips in proptest::collection::vec((0usize..BLOCK, 0u8..8), 1..16),
            dims in 1usize..200,
            half in any::<bool>(),
            m in 2usize..=100,
            level in 0usize..4,
        ) {
            let level = level.min(max_level_for(m));
            let storage = if half { Storage::Float2 } else { Storage::Float4 };
            let layout = Layout { dims, storage };
            let mut words = data_page(layout, m, level);
            let page = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, BLOCK) };
            for (at, bit) in flips {
                page[at] ^= 1 << bit;
            }
            read_page(page, layout, m);
        }

        #[test]
        fn corrupt_metapages_are_refused(
            dims in any::<u32>(), m in any::<u32>(), efc in any::<u32>(), metric in any::<u32>(), level in any::<u32>(),
            storage in 0u32..3, keep_pruned in 0u32..3,
        ) {
            let meta = MetaPage {
                magic: MAGIC, version: VERSION, dims, m, ef_construction: efc, metric, entry: Tid::INVALID,
                entry_level: level, insert_page: 0, elements: 0, directory_head: 0, directory_tail: 0,
                storage, keep_pruned, codes: 0, centroid_block: 0, code_pages: 0, coded_entries: 0,
            };
            let mut page = vec![0u8; BLOCK];
            unsafe { ptr::write_unaligned(page[PAGE_HEADER_SIZE..].as_mut_ptr() as *mut MetaPage, meta) };
            if let Ok(read) = parse_meta(&page) {
                prop_assert!(read.layout().dims <= read.layout().storage.max_dims() && read.storage < 2 && (2..=100).contains(&read.m) && read.entry_level as usize <= max_level_for(read.m as usize) && read.keep_pruned < 2);
            }
        }
    }
}
