//! The checks of the fuzz targets. They live in the main package's test
//! support (`tests/support/fuzzing.rs`) so that the replayed fuzz finds and
//! the property tests run exactly the same code on the stable toolchain.

#[path = "../../tests/support/fuzzing.rs"]
mod fuzzing;

pub use fuzzing::*;
