//! The xvector type: storage format, text and binary I/O, validation, distance kernels,
//! SQL functions, casts and aggregates.

pub mod aggregate;
pub mod arrays;
pub mod binary;
pub mod datum;
pub mod error;
pub mod functions;
pub mod io;
pub mod kernels;
pub mod text;
pub mod validate;

pub use datum::Xvector;
