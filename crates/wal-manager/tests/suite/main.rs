//! The managers' and the `Wal`'s integration tests, as one test binary
//! (one link step instead of ten; `tracing_events`, which installs a global
//! subscriber, has a binary of its own). Each module is a suite; DESIGN.md's
//! table says what each proves. Run one with
//! `cargo test -p wal-manager --test suite <module>::`.

mod archive_hook;
mod concurrency_model;
mod crash_recovery;
mod embedding;
mod error_paths;
mod failover_concurrency;
mod failover_scripts;
mod logical_reader;
mod manager;
mod pebble_batch;
mod pebble_reader;
mod wal_api;
mod wal_operating;
