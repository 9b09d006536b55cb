//! Tests of the in-memory filesystem and its crash model.

use super::*;
use crate::{File, Fs, Metadata};
use proptest::prelude::*;
use std::collections::HashSet;

const SEEDS: u64 = 300;

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// A filesystem with a durable `/wal` directory.
fn wal_fs() -> MemFs {
    let fs = MemFs::new();
    crate::create_dir_all_durably(&fs, p("/wal")).unwrap();
    fs
}

fn exists(fs: &MemFs, path: &str) -> bool {
    match fs.stat(p(path)) {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => panic!("stat {path}: {e}"),
    }
}

#[test]
fn write_read_size_and_list_round_trip() {
    let fs = wal_fs();
    let mut f = fs.create(p("/wal/b.log")).unwrap();
    f.write(b"hello ").unwrap();
    f.write(b"world").unwrap();
    assert_eq!(f.size().unwrap(), 11);
    let mut buf = [0; 5];
    assert_eq!(f.read_at(&mut buf, 6).unwrap(), 5);
    assert_eq!(&buf, b"world");
    assert_eq!(
        f.read_at(&mut buf, 9).unwrap(),
        2,
        "a short read at the end"
    );
    assert_eq!(f.read_at(&mut buf, 11).unwrap(), 0);
    assert_eq!(f.read_at(&mut buf, u64::MAX).unwrap(), 0);
    fs.create(p("/wal/a.log")).unwrap();
    assert_eq!(fs.list(p("/wal")).unwrap(), ["a.log", "b.log"]);
    assert_eq!(fs.list(p("/")).unwrap(), ["wal"]);
    assert_eq!(
        fs.stat(p("/wal/b.log")).unwrap(),
        Metadata {
            len: 11,
            is_dir: false
        }
    );
    assert!(fs.stat(p("/wal")).unwrap().is_dir);
    assert_eq!(fs.read_file(p("wal/./x/../b.log")).unwrap(), b"hello world");
}

#[test]
fn errors_name_the_operation_and_path() {
    let fs = wal_fs();
    let err = fs.open(p("/wal/missing.log")).unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.op(), Op::Open);
    assert!(err.to_string().contains("/wal/missing.log"), "{err}");
    let err = fs.create(p("/nodir/a")).unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.op(), Op::Create);
    assert_eq!(
        fs.open(p("/wal")).unwrap_err().kind(),
        io::ErrorKind::IsADirectory
    );
    assert_eq!(
        fs.remove(p("/wal")).unwrap_err().kind(),
        io::ErrorKind::IsADirectory
    );
    fs.write_file(p("/wal/f"), b"x").unwrap();
    let err = fs.create_dir_all(p("/wal/f/sub")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
    assert_eq!(err.op(), Op::CreateDir);
    assert_eq!(
        fs.list(p("/wal/f")).unwrap_err().kind(),
        io::ErrorKind::NotADirectory
    );
}

#[test]
fn write_through_a_read_handle_fails() {
    let fs = wal_fs();
    fs.write_file(p("/wal/a"), b"abc").unwrap();
    let mut r = fs.open(p("/wal/a")).unwrap();
    let err = r.write(b"x").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(err.path(), p("/wal/a"));
    assert_eq!(fs.read_file(p("/wal/a")).unwrap(), b"abc");
}

#[test]
fn clones_share_the_filesystem_and_crash_images_do_not() {
    let fs = wal_fs();
    let clone = fs.clone();
    clone.write_file(p("/wal/a"), b"1").unwrap();
    assert_eq!(fs.read_file(p("/wal/a")).unwrap(), b"1");
    let image = fs.crash_image(1);
    image.write_file(p("/wal/a"), b"2").unwrap();
    assert_eq!(fs.read_file(p("/wal/a")).unwrap(), b"1");
}

#[test]
fn reuse_for_write_overwrites_without_truncating() {
    let fs = wal_fs();
    fs.write_file(p("/wal/000001.log"), b"old old old").unwrap();
    let mut f = fs
        .reuse_for_write(p("/wal/000001.log"), p("/wal/000002.log"))
        .unwrap();
    f.write(b"NEW").unwrap();
    assert_eq!(f.size().unwrap(), 11);
    assert_eq!(f.path(), p("/wal/000002.log"));
    assert_eq!(fs.list(p("/wal")).unwrap(), ["000002.log"]);
    assert_eq!(fs.read_file(p("/wal/000002.log")).unwrap(), b"NEW old old");
    assert_eq!(
        fs.read_durable_file(p("/wal/000002.log")).unwrap(),
        b"old old old"
    );
}

#[test]
fn reuse_for_write_refuses_an_existing_target_and_a_missing_source() {
    let fs = wal_fs();
    fs.write_file(p("/wal/a"), b"a").unwrap();
    fs.write_file(p("/wal/b"), b"b").unwrap();
    let err = fs.reuse_for_write(p("/wal/a"), p("/wal/b")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(err.path(), p("/wal/b"));
    let err = fs.reuse_for_write(p("/wal/x"), p("/wal/y")).unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.path(), p("/wal/x"));
    assert_eq!(fs.list(p("/wal")).unwrap(), ["a", "b"]);
}

#[test]
fn rename_replaces_the_target_and_remove_unlinks() {
    let fs = wal_fs();
    fs.write_file(p("/wal/a"), b"a").unwrap();
    fs.write_file(p("/wal/b"), b"b").unwrap();
    fs.rename(p("/wal/a"), p("/wal/b")).unwrap();
    assert_eq!(fs.list(p("/wal")).unwrap(), ["b"]);
    assert_eq!(fs.read_file(p("/wal/b")).unwrap(), b"a");
    fs.rename(p("/wal/b"), p("/wal/b")).unwrap();
    assert_eq!(fs.read_file(p("/wal/b")).unwrap(), b"a");
    fs.remove(p("/wal/b")).unwrap();
    assert!(fs.remove(p("/wal/b")).unwrap_err().is_not_found());
    assert!(
        fs.rename(p("/wal/b"), p("/wal/c"))
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn an_open_handle_keeps_a_removed_file_alive() {
    let fs = wal_fs();
    let mut f = fs.create(p("/wal/a")).unwrap();
    fs.remove(p("/wal/a")).unwrap();
    f.write(b"still writable").unwrap();
    f.sync_data().unwrap();
    assert_eq!(f.size().unwrap(), 14);
    drop(f);
    assert!(fs.files().is_empty());
}

#[test]
fn truncate_is_durable_at_once() {
    let fs = wal_fs();
    let mut f = fs.create(p("/wal/a")).unwrap();
    f.write(b"0123456789").unwrap();
    fs.sync_dir(p("/wal")).unwrap();
    fs.truncate(p("/wal/a"), 4).unwrap();
    for seed in 0..SEEDS {
        let image = fs.crash_image(seed);
        assert_eq!(
            image.read_file(p("/wal/a")).unwrap(),
            b"0123",
            "seed {seed}"
        );
    }
    fs.truncate(p("/wal/a"), 6).unwrap();
    assert_eq!(fs.read_durable_file(p("/wal/a")).unwrap(), b"0123\0\0");
}

#[test]
fn lock_refuses_a_second_holder_until_dropped() {
    let fs = wal_fs();
    let guard = fs.lock(p("/wal")).unwrap();
    assert_eq!(guard.dir(), p("/wal"));
    let err = fs.clone().lock(p("/wal/../wal")).unwrap_err();
    assert!(err.is_locked());
    assert_eq!(err.path(), p("/wal/../wal"));
    assert!(
        fs.lock(p("/")).is_ok(),
        "another directory is a separate lock"
    );
    let image = fs.crash_image(0);
    drop(
        image
            .lock(p("/wal"))
            .expect("locks do not carry over to crash images"),
    );
    drop(guard);
    assert!(fs.lock(p("/wal")).is_ok());
    assert!(fs.lock(p("/none")).unwrap_err().is_not_found());
}

#[test]
fn files_reports_durable_and_unsynced_lengths() {
    let fs = wal_fs();
    fs.write_file(p("/wal/a"), b"abc").unwrap();
    let mut f = fs.create(p("/wal/b")).unwrap();
    f.write(b"12").unwrap();
    f.sync_data().unwrap();
    f.write(b"345").unwrap();
    let info = fs.files();
    assert_eq!(
        info,
        [
            FileInfo {
                path: PathBuf::from("/wal/a"),
                len: 3,
                durable_len: 3,
                unsynced_bytes: 0
            },
            FileInfo {
                path: PathBuf::from("/wal/b"),
                len: 5,
                durable_len: 2,
                unsynced_bytes: 3
            },
        ]
    );
}

#[test]
fn corrupt_overwrites_durable_bytes_in_place() {
    let fs = wal_fs();
    let mut f = fs.create(p("/wal/a")).unwrap();
    f.write(b"abcdef").unwrap();
    f.sync_data().unwrap();
    fs.corrupt(p("/wal/a"), 1, b"XY").unwrap();
    assert_eq!(fs.read_file(p("/wal/a")).unwrap(), b"aXYdef");
    assert_eq!(fs.read_durable_file(p("/wal/a")).unwrap(), b"aXYdef");
    let err = fs.corrupt(p("/wal/a"), 5, b"XY").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn corrupt_under_an_unsynced_overwrite_is_hidden_until_a_crash() {
    let fs = wal_fs();
    fs.write_file(p("/wal/a"), b"aaaa").unwrap();
    let mut f = fs.reuse_for_write(p("/wal/a"), p("/wal/b")).unwrap();
    fs.sync_dir(p("/wal")).unwrap();
    f.write(b"bb").unwrap();
    fs.corrupt(p("/wal/b"), 0, b"XXXX").unwrap();
    assert_eq!(fs.read_file(p("/wal/b")).unwrap(), b"bbXX");
    let options = CrashOptions::new().files(CrashMode::DropUnsynced);
    let (image, _) = fs.crash_image_with(0, options);
    assert_eq!(image.read_file(p("/wal/b")).unwrap(), b"XXXX");
    f.sync_data().unwrap();
    assert_eq!(fs.read_durable_file(p("/wal/b")).unwrap(), b"bbXX");
}

#[test]
fn synced_bytes_and_entries_survive_every_crash() {
    let fs = wal_fs();
    let mut f = fs.create(p("/wal/a.log")).unwrap();
    let synced: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 + 1).collect();
    f.write(&synced).unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(p("/wal")).unwrap();
    f.write(&[0xee; 9000]).unwrap();
    for seed in 0..SEEDS {
        let (image, report) = fs.crash_image_report(seed);
        let bytes = image.read_file(p("/wal/a.log")).unwrap();
        assert!(bytes.len() >= synced.len(), "{report:?}");
        assert_eq!(&bytes[..synced.len()], &synced[..], "{report:?}");
        assert!(
            bytes[synced.len()..].iter().all(|&b| b == 0xee || b == 0),
            "{report:?}"
        );
    }
}

#[test]
fn a_crash_image_is_fully_durable() {
    let fs = wal_fs();
    let mut f = fs.create(p("/wal/a")).unwrap();
    f.write(&vec![1; 20_000]).unwrap();
    for seed in 0..50 {
        let image = fs.crash_image(seed);
        for info in image.files() {
            assert_eq!(info.len, info.durable_len);
            assert_eq!(info.unsynced_bytes, 0);
        }
        let again = image.crash_image(seed + 1);
        assert_eq!(again.files(), image.files());
        for info in image.files() {
            assert_eq!(
                again.read_file(&info.path).unwrap(),
                image.read_file(&info.path).unwrap()
            );
        }
    }
}

#[test]
fn unsynced_entries_can_vanish_and_synced_ones_never_do() {
    let fs = wal_fs();
    fs.write_file(p("/wal/synced"), b"s").unwrap();
    let mut f = fs.create(p("/wal/created")).unwrap();
    f.write(b"c").unwrap();
    f.sync_data().unwrap();
    let mut outcomes = HashSet::new();
    for seed in 0..SEEDS {
        let (image, report) = fs.crash_image_report(seed);
        assert!(exists(&image, "/wal/synced"), "{report:?}");
        let created = exists(&image, "/wal/created");
        if created {
            assert_eq!(image.read_file(p("/wal/created")).unwrap(), b"c");
        }
        assert_eq!(report.entries.len(), 1);
        assert_eq!(report.entries[0].present, created);
        outcomes.insert(created);
    }
    assert_eq!(
        outcomes.len(),
        2,
        "the unsynced entry both survived and vanished"
    );

    fs.sync_dir(p("/wal")).unwrap();
    for seed in 0..SEEDS {
        let (image, report) = fs.crash_image_report(seed);
        assert!(exists(&image, "/wal/created"), "{report:?}");
        assert!(report.entries.is_empty());
    }
}

#[test]
fn a_new_directory_and_its_files_are_durable_only_once_its_parent_is_synced() {
    let fs = MemFs::new();
    fs.create_dir_all(p("/a/b")).unwrap();
    let mut f = fs.create(p("/a/b/f")).unwrap();
    f.write(b"x").unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(p("/a/b")).unwrap();
    let mut outcomes = HashSet::new();
    for seed in 0..SEEDS {
        let (image, report) = fs.crash_image_report(seed);
        let kept = exists(&image, "/a/b/f");
        if kept {
            assert_eq!(image.read_file(p("/a/b/f")).unwrap(), b"x", "{report:?}");
        }
        assert_eq!(
            kept,
            exists(&image, "/a") && exists(&image, "/a/b"),
            "{report:?}"
        );
        outcomes.insert(kept);
    }
    assert_eq!(
        outcomes.len(),
        2,
        "the new directories survived and vanished"
    );

    fs.sync_dir(p("/")).unwrap();
    fs.sync_dir(p("/a")).unwrap();
    for seed in 0..SEEDS {
        let (image, report) = fs.crash_image_report(seed);
        assert_eq!(image.read_file(p("/a/b/f")).unwrap(), b"x", "{report:?}");
        assert!(report.entries.is_empty(), "{report:?}");
    }
}

#[test]
fn create_dir_all_durably_syncs_every_new_level() {
    let fs = MemFs::new();
    crate::create_dir_all_durably(&fs, p("/a")).unwrap();
    crate::create_dir_all_durably(&fs, p("/a/b/c")).unwrap();
    let mut f = fs.create(p("/a/b/c/f")).unwrap();
    f.write(b"x").unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(p("/a/b/c")).unwrap();
    for seed in 0..SEEDS {
        let (image, report) = fs.crash_image_report(seed);
        assert_eq!(image.read_file(p("/a/b/c/f")).unwrap(), b"x", "{report:?}");
        assert!(report.entries.is_empty(), "{report:?}");
    }
    // An existing directory is left as it is.
    crate::create_dir_all_durably(&fs, p("/a/b/c")).unwrap();
    assert_eq!(fs.list(p("/a/b/c")).unwrap(), vec!["f".to_owned()]);
}

#[test]
fn unsynced_remove_may_be_undone_by_a_crash() {
    let fs = wal_fs();
    fs.write_file(p("/wal/a"), b"a").unwrap();
    fs.remove(p("/wal/a")).unwrap();
    let outcomes: HashSet<bool> = (0..SEEDS)
        .map(|seed| exists(&fs.crash_image(seed), "/wal/a"))
        .collect();
    assert_eq!(outcomes.len(), 2);
    fs.sync_dir(p("/wal")).unwrap();
    assert!((0..SEEDS).all(|seed| !exists(&fs.crash_image(seed), "/wal/a")));
}

#[test]
fn unsynced_rename_of_a_synced_file_keeps_exactly_one_name() {
    let fs = wal_fs();
    fs.write_file(p("/wal/000001.log"), b"recycled").unwrap();
    let mut f = fs
        .reuse_for_write(p("/wal/000001.log"), p("/wal/000007.log"))
        .unwrap();
    // Another unrelated unsynced entry, so that groups are exercised
    // next to independent entries.
    fs.create(p("/wal/other")).unwrap();
    f.write(b"R").unwrap();
    let mut outcomes = HashSet::new();
    for seed in 0..SEEDS {
        let (image, report) = fs.crash_image_report(seed);
        let old = exists(&image, "/wal/000001.log");
        let new = exists(&image, "/wal/000007.log");
        assert!(old != new, "exactly one name: {report:?}");
        let name = if old {
            "/wal/000001.log"
        } else {
            "/wal/000007.log"
        };
        let bytes = image.read_file(p(name)).unwrap();
        assert!(bytes == b"recycled" || bytes == b"Recycled", "{report:?}");
        outcomes.insert((old, exists(&image, "/wal/other")));
    }
    assert_eq!(
        outcomes.len(),
        4,
        "the rename and the create are independent"
    );

    fs.sync_dir(p("/wal")).unwrap();
    for seed in 0..SEEDS {
        let image = fs.crash_image(seed);
        assert!(exists(&image, "/wal/000007.log"));
        assert!(!exists(&image, "/wal/000001.log"));
    }
}

#[test]
fn unsynced_rename_over_a_synced_file_is_atomic() {
    let fs = wal_fs();
    fs.write_file(p("/wal/CURRENT"), b"old").unwrap();
    fs.write_file(p("/wal/CURRENT.tmp"), b"new").unwrap();
    fs.rename(p("/wal/CURRENT.tmp"), p("/wal/CURRENT")).unwrap();
    let mut outcomes = HashSet::new();
    for seed in 0..SEEDS {
        let image = fs.crash_image(seed);
        let current = image.read_file(p("/wal/CURRENT")).unwrap();
        let tmp = exists(&image, "/wal/CURRENT.tmp");
        // Before the rename: both files; after it: only the new one.
        let before = current == b"old" && tmp;
        let after = current == b"new" && !tmp;
        assert!(before || after, "seed {seed}");
        outcomes.insert(before);
    }
    assert_eq!(outcomes.len(), 2);
}

#[test]
fn recreating_a_path_crashes_to_the_old_or_the_new_file() {
    let fs = wal_fs();
    fs.write_file(p("/wal/a"), b"old").unwrap();
    let mut f = fs.create(p("/wal/a")).unwrap();
    f.write(b"new").unwrap();
    f.sync_data().unwrap();
    let contents: HashSet<Vec<u8>> = (0..SEEDS)
        .map(|seed| fs.crash_image(seed).read_file(p("/wal/a")).unwrap())
        .collect();
    assert_eq!(contents, HashSet::from([b"old".to_vec(), b"new".to_vec()]));
}

#[test]
fn entry_modes_force_the_entry_outcome() {
    let fs = wal_fs();
    fs.create(p("/wal/a")).unwrap();
    for seed in 0..20 {
        let durable = CrashOptions::new().entries(EntryMode::Durable);
        assert!(!exists(&fs.crash_image_with(seed, durable).0, "/wal/a"));
        let current = CrashOptions::new().entries(EntryMode::Current);
        assert!(exists(&fs.crash_image_with(seed, current).0, "/wal/a"));
    }
}

/// Writes `len` unsynced bytes of `byte` over a durable file of `durable`
/// bytes of `old` (rewriting from offset 0 like a recycled log).
fn overwritten_file(durable: usize, old: u8, len: usize, byte: u8) -> MemFs {
    let fs = wal_fs();
    fs.write_file(p("/wal/a"), &vec![old; durable]).unwrap();
    let mut f = fs.reuse_for_write(p("/wal/a"), p("/wal/b")).unwrap();
    fs.sync_dir(p("/wal")).unwrap();
    // Several writes, so that prefixes cut inside and between writes.
    for chunk in vec![byte; len].chunks(1000) {
        f.write(chunk).unwrap();
    }
    fs
}

#[test]
fn same_seed_gives_the_same_image_and_report() {
    let fs = overwritten_file(6000, 1, 20_000, 2);
    fs.create(p("/wal/c")).unwrap();
    for seed in [0, 1, 42, u64::MAX] {
        let (a, ra) = fs.crash_image_report(seed);
        let (b, rb) = fs.crash_image_report(seed);
        assert_eq!(ra, rb);
        assert_eq!(ra.seed, seed);
        assert_eq!(a.files(), b.files());
        for info in a.files() {
            assert_eq!(
                a.read_file(&info.path).unwrap(),
                b.read_file(&info.path).unwrap()
            );
        }
    }
    let reports: HashSet<String> = (0..20)
        .map(|seed| format!("{:?}", fs.crash_image_report(seed).1.files))
        .collect();
    assert!(reports.len() > 1, "different seeds crash differently");
}

#[test]
fn every_crash_mode_occurs() {
    let fs = overwritten_file(0, 0, 20_000, 7);
    let mut modes = HashSet::new();
    for seed in 0..100 {
        let (_, report) = fs.crash_image_report(seed);
        assert_eq!(report.files.len(), 1);
        modes.insert(std::mem::discriminant(&report.files[0].crash));
    }
    assert_eq!(
        modes.len(),
        4,
        "drop, prefix, torn sector and pages all occur"
    );
}

#[test]
fn drop_mode_keeps_exactly_the_durable_content() {
    let fs = overwritten_file(5000, 1, 8000, 2);
    let options = CrashOptions::new().files(CrashMode::DropUnsynced);
    let (image, report) = fs.crash_image_with(3, options);
    assert_eq!(image.read_file(p("/wal/b")).unwrap(), vec![1; 5000]);
    assert_eq!(report.files[0].crash, FileCrash::DropUnsynced);
}

#[test]
fn prefix_mode_keeps_the_first_unsynced_bytes_in_write_order() {
    let fs = overwritten_file(5000, 1, 8000, 2);
    let options = CrashOptions::new().files(CrashMode::KeepPrefix);
    let mut at_boundary = false;
    for seed in 0..SEEDS {
        let (image, report) = fs.crash_image_with(seed, options);
        let FileCrash::KeepPrefix { kept } = report.files[0].crash else {
            panic!("{report:?}");
        };
        let kept = kept as usize;
        at_boundary |= kept % 1000 == 0;
        let bytes = image.read_file(p("/wal/b")).unwrap();
        assert_eq!(bytes.len(), kept.max(5000));
        assert!(bytes[..kept].iter().all(|&b| b == 2), "{report:?}");
        assert!(bytes[kept..].iter().all(|&b| b == 1), "{report:?}");
        assert_eq!(report.files[0].len_after, bytes.len() as u64);
    }
    assert!(at_boundary, "some cuts fall on write boundaries");
}

#[test]
fn torn_sector_mixes_old_and_new_in_512_byte_units() {
    let fs = overwritten_file(9000, 1, 12_000, 2);
    let options = CrashOptions::new().files(CrashMode::TearSector);
    for seed in 0..SEEDS {
        let (image, report) = fs.crash_image_with(seed, options);
        let FileCrash::TearSector {
            kept,
            sector,
            new_mask,
        } = report.files[0].crash
        else {
            panic!("{report:?}");
        };
        assert!(kept >= 1);
        assert_eq!(sector, (kept - 1) / SECTOR_SIZE * SECTOR_SIZE, "{report:?}");
        let bytes = image.read_file(p("/wal/b")).unwrap();
        for (x, &b) in bytes.iter().enumerate() {
            let x = x as u64;
            let in_prefix = x < kept;
            let expected = if (sector..sector + SECTOR_SIZE).contains(&x) {
                let sub = (x - sector) / SUBSECTOR_SIZE;
                let new = new_mask & (1 << sub) != 0;
                if new && in_prefix {
                    2
                } else {
                    // Old: the durable byte (1), or a hole beyond it (0).
                    u8::from(x < 9000)
                }
            } else if in_prefix {
                2
            } else {
                1
            };
            assert_eq!(b, expected, "offset {x}: {report:?}");
        }
    }
}

#[test]
fn pages_mode_persists_whole_pages_in_any_order() {
    // Appends to an empty file: a page that did not persist is a hole
    // (zeros) if a later one did, or missing at the end.
    let fs = overwritten_file(0, 0, 5 * PAGE_SIZE as usize, 9);
    let options = CrashOptions::new().files(CrashMode::Pages);
    let mut saw_hole = false;
    for seed in 0..SEEDS {
        let (image, report) = fs.crash_image_with(seed, options);
        let FileCrash::Pages { pages, persisted } = report.files[0].crash else {
            panic!("{report:?}");
        };
        assert_eq!(pages, 5);
        let bytes = image.read_file(p("/wal/b")).unwrap();
        assert_eq!(bytes.len() % PAGE_SIZE as usize, 0);
        let mut count = 0;
        for page in bytes.chunks(PAGE_SIZE as usize) {
            if page.iter().all(|&b| b == 9) {
                count += 1;
            } else {
                assert!(page.iter().all(|&b| b == 0), "{report:?}");
                saw_hole = true;
            }
        }
        assert_eq!(count, persisted, "{report:?}");
    }
    assert!(saw_hole);
}

/// One step of [`crash_image_never_contains_bytes_never_written`].
#[derive(Clone, Debug)]
enum Step {
    /// Appends `len` bytes to file `file` at its write position.
    Write { file: usize, len: usize },
    /// Syncs file `file`.
    Sync { file: usize },
    /// Reopens file `file` to overwrite it from offset 0 (recycling).
    Rewind { file: usize },
    /// Checks a crash image.
    Crash { seed: u64 },
}

const FILES: usize = 3;

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..FILES, 1..9000usize).prop_map(|(file, len)| Step::Write { file, len }),
        2 => (0..FILES).prop_map(|file| Step::Sync { file }),
        1 => (0..FILES).prop_map(|file| Step::Rewind { file }),
        2 => any::<u64>().prop_map(|seed| Step::Crash { seed }),
    ]
}

/// What the test knows of one file.
#[derive(Default)]
struct Model {
    /// Every byte value ever written at each offset.
    written: Vec<Vec<u8>>,
    /// Current content.
    current: Vec<u8>,
    /// Durable content.
    durable: Vec<u8>,
    /// Byte values written at each offset since the last sync.
    unsynced: Vec<Vec<u8>>,
    /// The next write's offset.
    pos: usize,
}

impl Model {
    fn write(&mut self, data: &[u8]) {
        let end = self.pos + data.len();
        if self.current.len() < end {
            self.written.resize(end, Vec::new());
            self.unsynced.resize(end, Vec::new());
            self.current.resize(end, 0);
        }
        for (i, &b) in data.iter().enumerate() {
            self.written[self.pos + i].push(b);
            self.unsynced[self.pos + i].push(b);
        }
        self.current[self.pos..end].copy_from_slice(data);
        self.pos = end;
    }

    fn sync(&mut self) {
        self.durable.clone_from(&self.current);
        self.unsynced.iter_mut().for_each(Vec::clear);
    }

    fn check(&self, image: &[u8]) -> std::result::Result<(), String> {
        if image.len() < self.durable.len() || image.len() > self.current.len() {
            return Err(format!(
                "length {} outside durable {}..=current {}",
                image.len(),
                self.durable.len(),
                self.current.len()
            ));
        }
        for (x, &b) in image.iter().enumerate() {
            let durable = self.durable.get(x) == Some(&b);
            let written = self.written[x].contains(&b);
            let hole = b == 0 && x >= self.durable.len();
            if !(durable || written || hole) {
                return Err(format!("offset {x}: byte {b} was never written there"));
            }
            if x < self.durable.len() && !durable && !self.unsynced[x].contains(&b) {
                return Err(format!("offset {x}: durable byte lost for {b}"));
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The crash model's promise: an image holds at each offset a
    /// durable byte, a byte written there, or a zero beyond the durable
    /// length; durable bytes are only replaced by bytes written over
    /// them; the length is between the durable and the current one.
    #[test]
    fn crash_image_never_contains_bytes_never_written(
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let fs = wal_fs();
        let names: Vec<PathBuf> =
            (0..FILES).map(|i| PathBuf::from(format!("/wal/{i}.log"))).collect();
        let mut handles: Vec<Box<dyn File>> =
            names.iter().map(|n| fs.create(n).unwrap()).collect();
        fs.sync_dir(p("/wal")).unwrap();
        let mut models: Vec<Model> = (0..FILES).map(|_| Model::default()).collect();
        // Each write has its own byte values (never 0), so that a byte
        // from the wrong write or offset is caught.
        let mut tag = 0u8;
        for step in steps {
            match step {
                Step::Write { file, len } => {
                    tag = tag % 250 + 1;
                    let data: Vec<u8> =
                        (0..len).map(|i| ((usize::from(tag) * 7 + i) % 255) as u8 + 1).collect();
                    handles[file].write(&data).unwrap();
                    models[file].write(&data);
                }
                Step::Sync { file } => {
                    handles[file].sync_data().unwrap();
                    models[file].sync();
                }
                Step::Rewind { file } => {
                    // Reuse under a temporary name and rename back, so
                    // that the name keeps pointing at the same file.
                    let tmp = PathBuf::from("/wal/tmp");
                    handles[file] = fs.reuse_for_write(&names[file], &tmp).unwrap();
                    fs.rename(&tmp, &names[file]).unwrap();
                    models[file].pos = 0;
                }
                Step::Crash { seed } => {
                    let (image, report) = fs.crash_image_report(seed);
                    for (name, model) in names.iter().zip(&models) {
                        prop_assert_eq!(&fs.read_file(name).unwrap(), &model.current);
                        prop_assert_eq!(&fs.read_durable_file(name).unwrap(), &model.durable);
                        let bytes = image.read_file(name).unwrap();
                        if let Err(e) = model.check(&bytes) {
                            return Err(TestCaseError::fail(format!(
                                "{}: {e}\nseed {seed}: {report:?}", name.display()
                            )));
                        }
                    }
                }
            }
        }
    }
}
