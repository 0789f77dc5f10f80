//! aminsert: add one heap tuple to the graph. A vector equal to an existing element's joins
//! that element's heap TIDs (duplicates, non-HOT updates); otherwise a new element and its
//! neighbour item are written to a page with room (two pages when they do not fit on one
//! together), then linked in by graph::insert.

use pgrx::prelude::*;
use pgrx::PgMemoryContexts;

use super::directory;
use super::filter::extras_of;
use super::graph::{insert, knn_search, HashVisited, LevelGenerator, SearchScratch};
use super::options::{check_element_fits, check_index_dims, params_of};
use super::page::{
    buffer::{self, Locked, Xlog},
    format::{self, Layout, Tid, MAX_HEAP_TIDS, META_BLOCK},
};
use super::store::PageStore;
use super::tags::TagColumns;
use crate::vector::half::index_elements;

#[pg_guard]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C-unwind" fn aminsert(
    index: pg_sys::Relation,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    heap_tid: pg_sys::ItemPointer,
    _heap: pg_sys::Relation,
    _check_unique: pg_sys::IndexUniqueCheck::Type,
    _index_unchanged: bool,
    _index_info: *mut pg_sys::IndexInfo,
) -> bool {
    unsafe {
        if *isnull {
            return false;
        }
        let tid = Tid::from_pg(&*heap_tid);
        PgMemoryContexts::new("xhnsw insert").switch_to(|_| {
            let vector = index_elements(*values);
            let extras = extras_of(index, values, isnull);
            let tag = TagColumns::of(index).tag(values, isnull);
            insert_vector(index, tid, &vector, &extras, tag);
        });
    }
    false
}

/// Insert one vector (as given by the user; prepared here for the metric) and the row's
/// filter-column values and their tag (tags.rs).
pub(crate) fn insert_vector(
    index: pg_sys::Relation,
    heap_tid: Tid,
    raw: &[f32],
    extras: &[u8],
    tag: u64,
) {
    // Inserts share this lock; VACUUM's graph repair takes it exclusively.
    unsafe { pg_sys::LockPage(index, META_BLOCK, pg_sys::ShareLock as _) };
    let mut store = PageStore::open(index);
    let Some(vector) = store.metric.prepare(raw) else {
        unsafe { pg_sys::UnlockPage(index, META_BLOCK, pg_sys::ShareLock as _) };
        return; // zero vector under cosine: not indexed
    };
    check_dims(&mut store, vector.len());
    check_element_fits(store.layout, extras);
    let params = params_of(&store.meta);
    let mut scratch = SearchScratch::new();
    if !join_duplicate(&store, &mut scratch, heap_tid, &vector, extras) {
        let seed = store.meta.elements ^ ((heap_tid.block as u64) << 16 | heap_tid.offset as u64);
        let level = LevelGenerator::new(&params, seed).next_level();
        let id = add_element(&mut store, heap_tid, &vector, extras, tag, level);
        insert(&mut store, &mut scratch, &params, id, &vector, level);
    }
    unsafe { pg_sys::UnlockPage(index, META_BLOCK, pg_sys::ShareLock as _) };
}

fn check_dims(store: &mut PageStore, dims: usize) {
    if store.layout.dims == dims {
        return;
    }
    if store.layout.dims != 0 {
        crate::vector::error::VectorError::dimension_mismatch(store.layout.dims, dims).raise();
    }
    check_index_dims(Layout {
        dims,
        ..store.layout
    });
    // First vector of an index built empty on an unconstrained column: fix the dimension.
    let locked = Locked::read(store.index, META_BLOCK, true);
    let xlog = Xlog::begin(store.index, &locked, false);
    unsafe {
        let mut meta = buffer::read_meta(xlog.page());
        if meta.dims == 0 {
            meta.dims = dims as u32;
            buffer::write_meta(xlog.page(), &meta);
        }
        store.meta = meta;
        store.layout = meta.layout();
    }
    xlog.finish();
    if store.layout.dims != dims {
        crate::vector::error::VectorError::dimension_mismatch(store.layout.dims, dims).raise();
    }
}

/// If the nearest element holds exactly this vector (and filter values) and has room, add the
/// heap TID to it.
fn join_duplicate(
    store: &PageStore,
    scratch: &mut SearchScratch<Tid, HashVisited<Tid>>,
    heap_tid: Tid,
    vector: &[f32],
    extras: &[u8],
) -> bool {
    let nearest = knn_search(store, scratch, vector, 1, store.m);
    let Some(best) = nearest.first() else {
        return false;
    };
    let locked = Locked::read(store.index, best.id.block, true);
    unsafe {
        let Some(item) = buffer::item_ptr(locked.page(), best.id.offset) else {
            return false;
        };
        let Some(element) = buffer::decode_element(item, store.layout) else {
            return false;
        };
        if element.deleted
            || !element.vector.stores(vector)
            || element.extras != extras
            || element.heap_tids.len() >= MAX_HEAP_TIDS
        {
            return false;
        }
        let mut tids = element.heap_tids.clone();
        tids.push(heap_tid);
        let xlog = Xlog::begin(store.index, &locked, false);
        if let Some(item) = buffer::item_ptr(xlog.page(), best.id.offset) {
            buffer::set_element_heap_tids(item, &tids);
        }
        xlog.finish();
    }
    true
}

/// Write a new element and its (empty) neighbour item, and its filter directory entry, in one
/// WAL record; returns the element's TID. The two items share a page when they fit on one
/// together; otherwise (near the dimension limit, at high levels, with wide filter values) the
/// element gets a fresh page of its own and the neighbour item goes where there is room, as
/// the build places them.
fn add_element(
    store: &mut PageStore,
    heap_tid: Tid,
    vector: &[f32],
    extras: &[u8],
    tag: u64,
    level: usize,
) -> Tid {
    let neighbours = format::encode_coded_neighbours(store.m, level, store.meta.code_layout());
    let line_pointer = std::mem::size_of::<pg_sys::ItemIdData>();
    let layout = Layout {
        dims: vector.len(),
        ..store.layout
    };
    let element_need = format::element_size(layout, extras.len()) + line_pointer;
    let neighbour_need = neighbours.len() + line_pointer;
    let shared = element_need + neighbour_need <= format::page_usable_space();

    let (locked, fresh) = page_with_room(
        store,
        if shared {
            element_need + neighbour_need
        } else {
            neighbour_need
        },
    );
    let element_page = (!shared).then(|| Locked::extend(store.index));
    let mut xlog = Xlog::begin(store.index, &locked, fresh);
    let id = unsafe {
        if fresh {
            buffer::init_page(xlog.page());
        }
        let neighbour_tid = Tid {
            block: locked.block(),
            offset: buffer::add_item(xlog.page(), &neighbours),
        };
        let element = format::encode_element(
            level,
            neighbour_tid,
            &[heap_tid],
            vector,
            layout.storage,
            extras,
        );
        match &element_page {
            None => Tid {
                block: locked.block(),
                offset: buffer::add_item(xlog.page(), &element),
            },
            Some(own) => {
                let own_page = xlog.register(own, true);
                buffer::init_page(own_page);
                Tid {
                    block: own.block(),
                    offset: buffer::add_item(own_page, &element),
                }
            }
        }
    };
    let (directory_pages, directory_tail) = if store.meta.has_directory(store.index) {
        directory::append(store.index, &mut xlog, id, tag)
    } else {
        (Vec::new(), None)
    };
    xlog.finish();
    drop(directory_pages);
    drop(element_page);
    let block = locked.block();
    drop(locked);
    bump_meta(store, block, directory_tail);
    id
}

/// A page with `need` free bytes, locked exclusively: the metapage's insert hint when it is a
/// data page with room, else a fresh one (true: to be initialised).
fn page_with_room(store: &PageStore, need: usize) -> (Locked, bool) {
    let hint = store.meta.insert_page;
    let blocks = buffer::block_count(store.index);
    if hint != META_BLOCK && hint < blocks {
        let locked = Locked::read(store.index, hint, true);
        if unsafe { buffer::is_data_page(locked.page()) }
            && buffer::free_space(locked.page()) >= need
        {
            return (locked, false);
        }
    }
    (Locked::extend(store.index), true)
}

fn bump_meta(store: &mut PageStore, insert_page: u32, directory_tail: Option<u32>) {
    let locked = Locked::read(store.index, META_BLOCK, true);
    let xlog = Xlog::begin(store.index, &locked, false);
    unsafe {
        let mut meta = buffer::read_meta(xlog.page());
        meta.insert_page = insert_page;
        if let Some(tail) = directory_tail {
            meta.directory_tail = tail;
        }
        meta.elements += 1;
        buffer::write_meta(xlog.page(), &meta);
        // Keep our entry point view fresh: another insert may have raised it.
        store.meta = meta;
    }
    xlog.finish();
}
