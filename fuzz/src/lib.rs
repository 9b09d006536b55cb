//! The checks of the fuzz targets. They live in the test kit
//! (`wal_testkit::fuzzing`) so that the replayed fuzz finds and the property
//! tests run exactly the same code on the stable toolchain.

pub use wal_testkit::fuzzing::*;
