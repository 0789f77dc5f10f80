//! The pages of an xhnsw index in shared buffers: pinning and locking (`Locked`), WAL
//! (`Xlog`, GenericXLog), items read and changed in place through format.rs's codecs, the
//! metapage, the walk over every element page, and the filter directory's pages.
//!
//! Every change after the build goes through `Xlog`, one page at a time; no code holds two
//! buffer locks at once, so concurrent inserts and scans cannot deadlock.

use super::format::{
    directory_capacity, directory_item_size, item_bounds, max_offset, parse_element, parse_meta,
    parse_neighbours, put_heap_tids, put_neighbours, Corrupt, ElementData, Layout, MetaPage, Tid,
    DIRECTORY_COUNT_AT, DIRECTORY_HEADER_SIZE, DIRECTORY_KIND, DIRECTORY_SPECIAL_SIZE,
    ELEMENT_KIND, META_BLOCK, TID_SIZE,
};
use pgrx::pg_sys;
use std::ptr;

// ---------------------------------------------------------------------------------------------
// Buffers

/// A pinned and locked buffer, released on drop (also when an ERROR unwinds through Rust).
pub struct Locked {
    pub buffer: pg_sys::Buffer,
}

impl Locked {
    pub(crate) fn read(
        index: pg_sys::Relation,
        block: pg_sys::BlockNumber,
        exclusive: bool,
    ) -> Locked {
        unsafe {
            let buffer = pg_sys::ReadBufferExtended(
                index,
                pg_sys::ForkNumber::MAIN_FORKNUM,
                block,
                pg_sys::ReadBufferMode::RBM_NORMAL,
                ptr::null_mut(),
            );
            let mode = if exclusive {
                pg_sys::BUFFER_LOCK_EXCLUSIVE
            } else {
                pg_sys::BUFFER_LOCK_SHARE
            };
            pg_sys::LockBuffer(buffer, mode as i32);
            Locked { buffer }
        }
    }

    /// Extend the relation by one page, returned locked exclusively (not yet initialised).
    /// The last page is taken instead when it is new (all zeroes: left by an insert that
    /// failed after extending), so failed inserts leave no orphan pages behind. Only a
    /// conditional lock is tried on it: its holder may be waiting for the extension lock.
    pub(crate) fn extend(index: pg_sys::Relation) -> Locked {
        unsafe {
            pg_sys::LockRelationForExtension(index, pg_sys::ExclusiveLock as i32);
            let blocks = block_count(index);
            let mut reused = None;
            if blocks > 1 {
                let buffer = pg_sys::ReadBufferExtended(
                    index,
                    pg_sys::ForkNumber::MAIN_FORKNUM,
                    blocks - 1,
                    pg_sys::ReadBufferMode::RBM_NORMAL,
                    ptr::null_mut(),
                );
                if pg_sys::ConditionalLockBuffer(buffer) {
                    let header = pg_sys::BufferGetPage(buffer) as *const pg_sys::PageHeaderData;
                    if (*header).pd_upper == 0 {
                        reused = Some(Locked { buffer });
                    } else {
                        pg_sys::UnlockReleaseBuffer(buffer);
                    }
                } else {
                    pg_sys::ReleaseBuffer(buffer);
                }
            }
            let locked =
                reused.unwrap_or_else(|| Locked::read(index, pg_sys::InvalidBlockNumber, true));
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

/// One GenericXLog record over one buffer: `begin` gives the page to modify, `finish` logs it.
pub struct Xlog {
    state: *mut pg_sys::GenericXLogState,
    page: pg_sys::Page,
    /// The blocks registered, all locked exclusively by this backend.
    blocks: Vec<pg_sys::BlockNumber>,
}

impl Xlog {
    pub(crate) fn begin(index: pg_sys::Relation, locked: &Locked, full_image: bool) -> Xlog {
        unsafe {
            let state = pg_sys::GenericXLogStart(index);
            let flags = if full_image {
                pg_sys::GENERIC_XLOG_FULL_IMAGE as i32
            } else {
                0
            };
            let page = pg_sys::GenericXLogRegisterBuffer(state, locked.buffer, flags);
            Xlog {
                state,
                page,
                blocks: vec![locked.block()],
            }
        }
    }

    pub fn page(&self) -> pg_sys::Page {
        self.page
    }

    /// Add another buffer to the same record (GenericXLog takes up to four): the changes to
    /// all of them are replayed together or not at all.
    pub(crate) fn register(&mut self, locked: &Locked, full_image: bool) -> pg_sys::Page {
        let flags = if full_image {
            pg_sys::GENERIC_XLOG_FULL_IMAGE as i32
        } else {
            0
        };
        self.blocks.push(locked.block());
        unsafe { pg_sys::GenericXLogRegisterBuffer(self.state, locked.buffer, flags) }
    }

    /// Is `block` locked by this record already? (Locking it again would self-deadlock.)
    pub fn holds(&self, block: pg_sys::BlockNumber) -> bool {
        self.blocks.contains(&block)
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

/// An item of a locked page: where it starts and its length (`lp_len`), within the page.
#[derive(Clone, Copy)]
pub struct Item {
    ptr: *mut u8,
    pub len: usize,
}

impl Item {
    /// # Safety
    /// The page must stay pinned and locked while the bytes are used.
    pub unsafe fn bytes<'a>(&self) -> &'a [u8] {
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// # Safety
    /// As for `bytes`, on a writable page; no other reference to the item may be alive.
    pub unsafe fn bytes_mut<'a>(&self) -> &'a mut [u8] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// # Safety
/// `page` must point at a whole page.
unsafe fn page_bytes<'a>(page: pg_sys::Page) -> &'a [u8] {
    unsafe { std::slice::from_raw_parts(page as *const u8, pg_sys::BLCKSZ as usize) }
}

/// The item at `offset` of `page`, None when the offset is out of range; ERROR (XX002) when its
/// line pointer is corrupt.
///
/// # Safety
/// `page` must be a valid, locked page.
pub unsafe fn item_ptr(page: pg_sys::Page, offset: u16) -> Option<Item> {
    match item_bounds(unsafe { page_bytes(page) }, offset) {
        Ok(bounds) => bounds.map(|(start, len)| Item {
            ptr: unsafe { (page as *mut u8).add(start) },
            len,
        }),
        Err(corrupt) => corrupt.raise(),
    }
}

/// Line pointers on a locked page.
///
/// # Safety
/// `page` must be a valid, locked page.
pub unsafe fn page_max_offset(page: pg_sys::Page) -> u16 {
    max_offset(unsafe { page_bytes(page) })
}

/// Is this an initialised page of elements and neighbour items (no special space)?
///
/// # Safety
/// `page` must be a valid, locked page.
pub unsafe fn is_data_page(page: pg_sys::Page) -> bool {
    let header = page as *const pg_sys::PageHeaderData;
    unsafe { (*header).pd_upper != 0 && (*header).pd_special as usize == pg_sys::BLCKSZ as usize }
}

/// Free bytes for one more item on `page`.
pub(crate) fn free_space(page: pg_sys::Page) -> usize {
    unsafe { pg_sys::PageGetFreeSpace(page) }
}

/// Add an item; returns its offset. Callers check free space first, so a failure means the
/// page is not what its header says: ERROR (XX002).
///
/// # Safety
/// `page` must be writable (registered with GenericXLog, or a new page during build).
pub unsafe fn add_item(page: pg_sys::Page, bytes: &[u8]) -> u16 {
    let offset = unsafe {
        pg_sys::PageAddItemExtended(
            page,
            bytes.as_ptr() as pg_sys::Item,
            bytes.len(),
            pg_sys::InvalidOffsetNumber,
            0,
        )
    };
    if offset == pg_sys::InvalidOffsetNumber {
        Corrupt(format!(
            "no room for an item of {} bytes that should fit",
            bytes.len()
        ))
        .raise();
    }
    offset
}

/// # Safety
/// `page` must be the locked metapage.
pub unsafe fn read_meta(page: pg_sys::Page) -> MetaPage {
    parse_meta(unsafe { page_bytes(page) }).unwrap_or_else(|c| c.raise())
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
// Element and neighbour items in place

/// Decode an element item in place; None when the item is not an element. A corrupt item
/// (ERROR, see [`parse_element`]) is never read past its length.
///
/// # Safety
/// `item` must come from `item_ptr` on a page that stays pinned and locked while the result
/// is used.
pub unsafe fn decode_element<'a>(item: Item, layout: Layout) -> Option<ElementData<'a>> {
    parse_element(unsafe { item.bytes() }, layout).unwrap_or_else(|c| c.raise())
}

/// Rewrite the heap TIDs (and the deleted flag when none are left) of an element in place.
///
/// # Safety
/// `item` must be a writable element item (page registered with GenericXLog).
pub unsafe fn set_element_heap_tids(item: Item, heap_tids: &[Tid]) {
    put_heap_tids(unsafe { item.bytes_mut() }, heap_tids).unwrap_or_else(|c| c.raise())
}

/// Read the neighbour list of `layer` from a neighbour item; ERROR when it is corrupt.
///
/// # Safety
/// `item` must come from `item_ptr` on a locked page.
pub unsafe fn read_neighbours(item: Item, m: usize, layer: usize, out: &mut Vec<Tid>) {
    parse_neighbours(unsafe { item.bytes() }, m, layer, out).unwrap_or_else(|c| c.raise())
}

/// Overwrite the neighbour list of `layer` in place; ERROR when the item is corrupt.
///
/// # Safety
/// `item` must be a writable item (page registered with GenericXLog).
pub unsafe fn write_neighbours(item: Item, m: usize, layer: usize, list: &[Tid]) {
    put_neighbours(unsafe { item.bytes_mut() }, m, layer, list).unwrap_or_else(|c| c.raise())
}

pub(crate) fn is_element(item: Item) -> bool {
    unsafe { *item.ptr == ELEMENT_KIND }
}

/// The element at `offset` of a locked page; None for an unused offset or another kind of
/// item. ERROR (XX002) when the item is corrupt.
///
/// # Safety
/// `page` must stay pinned and locked while the result is used.
pub unsafe fn element_at<'a>(
    page: pg_sys::Page,
    offset: u16,
    layout: Layout,
) -> Option<(Item, ElementData<'a>)> {
    let item = unsafe { item_ptr(page, offset) }?;
    if !is_element(item) {
        return None;
    }
    unsafe { decode_element(item, layout) }.map(|element| (item, element))
}

/// Every element of a locked page with its offset, in offset order.
///
/// # Safety
/// `page` must stay pinned and locked while the iterator and its elements are used.
pub unsafe fn page_elements<'a>(
    page: pg_sys::Page,
    layout: Layout,
) -> impl Iterator<Item = (u16, ElementData<'a>)> {
    let max = unsafe { page_max_offset(page) };
    (1..=max).filter_map(move |offset| {
        unsafe { element_at(page, offset, layout) }.map(|(_, element)| (offset, element))
    })
}

/// Blocks of the index's main fork, the metapage included.
pub fn block_count(index: pg_sys::Relation) -> pg_sys::BlockNumber {
    unsafe { pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM) }
}

/// Run `visit` on every element of the index in physical order, one page at a time under a
/// share lock; `pause` runs before each page (interrupt checks, VACUUM's cost delay).
pub fn for_each_element(
    index: pg_sys::Relation,
    layout: Layout,
    mut pause: impl FnMut(),
    mut visit: impl FnMut(Tid, &ElementData),
) {
    for block in 1..block_count(index) {
        pause();
        let locked = Locked::read(index, block, false);
        for (offset, element) in unsafe { page_elements(locked.page(), layout) } {
            visit(Tid { block, offset }, &element);
        }
    }
}

/// The code in `slot` of a code page (ranked.rs); None when the page holds none there.
///
/// # Safety
/// `page` must be a locked page; the result borrows it.
pub unsafe fn code_at<'a>(page: pg_sys::Page, slot: usize, code_bytes: usize) -> Option<&'a [u8]> {
    let item = unsafe { item_ptr(page, 1) }?;
    let codes = super::format::parse_code_page(unsafe { item.bytes() }, code_bytes).ok()?;
    codes.get(slot * code_bytes..(slot + 1) * code_bytes)
}

// ---------------------------------------------------------------------------------------------
// Filter directory pages (directory.rs)

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
        let special = pg_sys::BLCKSZ as usize
            - (*(page as *const pg_sys::PageHeaderData)).pd_special as usize;
        if special != DIRECTORY_SPECIAL_SIZE {
            return None;
        }
        let item = item_ptr(page, 1)?;
        (item.len >= directory_item_size() && *item.ptr == DIRECTORY_KIND).then_some(item.ptr)
    }
}

/// The entry count of a directory item.
///
/// # Safety
/// `item` must be a directory item of a locked page.
unsafe fn directory_count(item: *const u8) -> u16 {
    u16::from_le_bytes(unsafe {
        ptr::read_unaligned(item.add(DIRECTORY_COUNT_AT) as *const [u8; 2])
    })
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
        let count = (directory_count(item) as usize).min(directory_capacity());
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
        let Some(item) = directory_item(page) else {
            return false;
        };
        let count = directory_count(item) as usize;
        let capacity = directory_capacity();
        if count >= capacity {
            return false;
        }
        ptr::write_unaligned(item.add(DIRECTORY_HEADER_SIZE + count * 8) as *mut u64, tag);
        let tid = std::slice::from_raw_parts_mut(
            item.add(DIRECTORY_HEADER_SIZE + capacity * 8 + count * TID_SIZE),
            TID_SIZE,
        );
        element.write(tid);
        ptr::write_unaligned(
            item.add(DIRECTORY_COUNT_AT) as *mut [u8; 2],
            (count as u16 + 1).to_le_bytes(),
        );
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
