//! Arbitrary bytes as one log file: the record reader never panics, and
//! every record it returns is made of valid chunks (checksums, log number,
//! positions, padding re-checked independently); see
//! `wal_testkit::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    failwal_fuzz::check_record_reader(data);
});
