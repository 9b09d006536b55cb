//! failwal against the disk itself: a raw `write(2)` loop, a raw `write` +
//! `fdatasync` loop and an ideal group commit loop, in one interleaved run.
//!
//! ```sh
//! cargo bench --bench peers                 # the full run (a few minutes)
//! PEERS_QUICK=1 cargo bench --bench peers   # about a minute
//! ```
//!
//! The comparison with other Rust WALs (`okaywal`, `raft-engine`, `fjall`)
//! runs the same harness from `peers/`, a crate outside the workspace:
//! `cd peers && PEERS_QUICK=1 cargo bench --bench peers`. `cargo test` runs
//! this binary as a smoke test of the harness and the failwal side (see
//! `benches/peers/harness.rs`).

#[path = "peers/harness.rs"]
mod harness;

fn main() {
    harness::run(&[]);
}
