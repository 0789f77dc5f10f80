//! The xhnsw index access method, one file per part of an index's life:
//! handler (AM routine, cost estimate), options (WITH options, GUCs and the limits an index
//! checks), page/ (format: the on-page bytes; buffer: locks, WAL, items in place), store (the
//! graph over pages), code (one-bit codes of vectors and their distance estimates) and coded
//! (the search that orders its frontier by them), filter (filter columns and scan keys), tags and directory (the filter
//! directory that selective filters read instead of the graph), exact (ranking a filter's
//! matches exactly) and ranked (the same, reading the matches nearest by their codes first), build, insert, scan, vacuum, check (`xmodal.index_check`). graph.rs holds
//! the HNSW algorithms with no Postgres types.

pub mod build;
pub mod check;
pub mod code;
pub mod coded;
pub mod directory;
pub mod exact;
pub mod filter;
pub mod graph;
pub mod handler;
pub mod insert;
pub mod options;
pub mod page;
pub mod ranked;
pub mod resumable;
pub mod scan;
pub mod store;
pub mod tags;
pub mod vacuum;
