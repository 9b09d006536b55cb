//! Arbitrary bytes cut into two or three segment files in two directories:
//! the logical-log reader never panics and returns LSNs that increase by
//! exactly one; see `wal_testkit::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    failwal_fuzz::check_logical_reader(data);
});
