//! An xhnsw index's pages: `format` is what the bytes of each item and of the metapage mean
//! (no buffers, tested with plain `cargo test`); `buffer` is how the access method reads and
//! changes them in shared buffers (locks, WAL, items in place, the walk over element pages).

pub mod buffer;
pub mod format;
