//! The xvector and xhalfvec types: storage format, text and binary I/O, validation, distance kernels,
//! SQL functions, casts and aggregates; the metrics an index orders by.

pub mod aggregate;
pub mod arrays;
pub mod binary;
pub mod datum;
pub mod error;
pub mod functions;
pub mod half;
pub mod io;
pub mod kernels;
pub mod metric;
pub mod text;
pub mod typmod;
pub mod validate;

pub use datum::Xvector;
