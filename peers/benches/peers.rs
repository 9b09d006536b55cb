//! failwal against the Rust WALs users pick instead (`okaywal`,
//! `raft-engine`, `fjall`) and against the disk itself, in one interleaved
//! run. The harness and the failwal side are the workspace's
//! `benches/peers/harness.rs`; this file adds the peers.
//!
//! ```sh
//! cd peers
//! cargo bench --bench peers                 # the full run (a few minutes)
//! PEERS_QUICK=1 cargo bench --bench peers   # under two minutes
//! ```
//!
//! Each peer runs with its default configuration, one synced commit per
//! 128-byte record, the way its documentation commits durably.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

#[path = "../../benches/peers/harness.rs"]
mod harness;

use harness::{Peer, SyncedLog};

fn main() {
    harness::run(&[
        Peer {
            name: "okaywal",
            key: "okaywal",
            open: OkaywalLog::open,
        },
        Peer {
            name: "raft-engine",
            key: "raft_engine",
            open: RaftEngineLog::open,
        },
        Peer {
            name: "fjall",
            key: "fjall",
            open: FjallLog::open,
        },
    ]);
}

/// `okaywal` 0.3 as its authors benchmark it (`benchmarks/benches/benchmarks.rs`
/// in its repository): default configuration, `LogVoid` checkpointing, and
/// per record `begin_entry`, `write_chunk`, `commit`. `commit` returns once
/// the entry is fsynced; concurrent committers share fsyncs.
struct OkaywalLog {
    log: okaywal::WriteAheadLog,
}

impl OkaywalLog {
    fn open(dir: &Path) -> Box<dyn SyncedLog> {
        let log = okaywal::Configuration::default_for(dir)
            .open(okaywal::LogVoid)
            .expect("open okaywal");
        Box::new(OkaywalLog { log })
    }
}

impl SyncedLog for OkaywalLog {
    fn append_sync(&self, record: &[u8]) {
        let mut entry = self.log.begin_entry().expect("begin_entry");
        entry.write_chunk(record).expect("write_chunk");
        entry.commit().expect("commit");
    }

    fn finish(self: Box<Self>) {
        self.log.shutdown().expect("shut okaywal down");
    }
}

/// `raft-engine` 0.4 (TiKV's log store), default configuration: per record
/// one `LogBatch` holding one key-value put of the record, written with
/// `Engine::write(batch, sync = true)`. Concurrent writers join its write
/// group and share an fsync.
struct RaftEngineLog {
    engine: raft_engine::Engine,
    next: AtomicU64,
}

impl RaftEngineLog {
    fn open(dir: &Path) -> Box<dyn SyncedLog> {
        let config = raft_engine::Config {
            dir: dir.to_str().expect("a UTF-8 directory").to_owned(),
            ..raft_engine::Config::default()
        };
        let engine = raft_engine::Engine::open(config).expect("open raft-engine");
        Box::new(RaftEngineLog {
            engine,
            next: AtomicU64::new(0),
        })
    }
}

impl SyncedLog for RaftEngineLog {
    fn append_sync(&self, record: &[u8]) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut batch = raft_engine::LogBatch::default();
        batch
            .put(1, n.to_be_bytes().to_vec(), record.to_vec())
            .expect("put");
        self.engine.write(&mut batch, true).expect("write");
    }

    fn finish(self: Box<Self>) {}
}

/// `fjall` 3 (an LSM-tree whose journal is its WAL), default configuration:
/// per record one write batch holding one insert, committed with
/// `PersistMode::SyncData` (the journal is written and fdatasynced before
/// `commit` returns).
struct FjallLog {
    db: fjall::Database,
    keyspace: fjall::Keyspace,
    next: AtomicU64,
}

impl FjallLog {
    fn open(dir: &Path) -> Box<dyn SyncedLog> {
        let db = fjall::Database::builder(dir).open().expect("open fjall");
        let keyspace = db
            .keyspace("records", fjall::KeyspaceCreateOptions::default)
            .expect("open a keyspace");
        Box::new(FjallLog {
            db,
            keyspace,
            next: AtomicU64::new(0),
        })
    }
}

impl SyncedLog for FjallLog {
    fn append_sync(&self, record: &[u8]) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut batch = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncData));
        batch.insert(&self.keyspace, n.to_be_bytes(), record);
        batch.commit().expect("commit");
    }

    fn finish(self: Box<Self>) {}
}
