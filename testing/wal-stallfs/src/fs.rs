//! The FUSE request handlers: requests a test can stall go through the gate,
//! the rest straight to the backing directory.
//!
//! Left at fuser's defaults, with what the kernel does then:
//! * `access`, `lseek`, `copy_file_range`: ENOSYS, and the kernel falls back
//!   to its own generic code (access allowed, SEEK_DATA/HOLE treated as
//!   data, copies done by read and write).
//! * `getlk`, `setlk`, and flock: not negotiated (fuser does not ask for
//!   `FUSE_POSIX_LOCKS` or `FUSE_FLOCK_LOCKS`), so the kernel keeps POSIX
//!   and `flock(2)` locks itself, on the FUSE inode. They exclude each other
//!   through the mount as on a local filesystem, but are not taken on the
//!   backing file.
//! * xattrs, `symlink`, `link`, `mknod`, `readlink`: unsupported.
//! * `init` asks for nothing beyond fuser's defaults; in particular no
//!   writeback cache, so every `write(2)` waits for its request.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    BsdFileFlags, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request as FuseRequest, TimeOrNow, WriteFlags,
};

use crate::backing::SetAttr;
use crate::gate::{Request, Shared, TTL};

/// The filesystem fuser runs.
pub(crate) struct FuseFs {
    pub(crate) shared: Arc<Shared>,
}

impl Filesystem for FuseFs {
    fn lookup(&self, _req: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.shared.backing.lookup(parent.0, name) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &FuseRequest, ino: INodeNo, nlookup: u64) {
        self.shared.backing.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &FuseRequest, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.shared.backing.getattr(ino.0, fh.map(|fh| fh.0)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &FuseRequest,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        match self.shared.backing.setattr(ino.0, fh.map(|fh| fh.0), set) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &FuseRequest,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self.shared.backing.mkdir(parent.0, name, mode, umask) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.shared.backing.unlink(parent.0, name));
    }

    fn rmdir(&self, _req: &FuseRequest, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.shared.backing.rmdir(parent.0, name));
    }

    fn rename(
        &self,
        _req: &FuseRequest,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let renamed =
            self.shared
                .backing
                .rename(parent.0, name, newparent.0, newname, flags.bits());
        empty(reply, renamed);
    }

    fn open(&self, _req: &FuseRequest, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.shared.backing.open(ino.0, flags.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &FuseRequest,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.shared.backing.read(fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &FuseRequest,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.shared.submit(Request::Write {
            ino: ino.0,
            fh: fh.0,
            offset,
            data: Cow::Borrowed(data),
            reply,
        });
    }

    fn flush(
        &self,
        _req: &FuseRequest,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.shared.submit(Request::Flush {
            ino: ino.0,
            fh: fh.0,
            reply,
        });
    }

    fn release(
        &self,
        _req: &FuseRequest,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.backing.release(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &FuseRequest,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.submit(Request::Fsync {
            ino: ino.0,
            fh: fh.0,
            datasync,
            reply,
        });
    }

    fn opendir(&self, _req: &FuseRequest, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.shared.backing.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &FuseRequest,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.shared.backing.readdir(ino.0, fh.0, offset) {
            Ok(entries) => {
                for (next, entry) in (offset + 1..).zip(entries) {
                    if reply.add(INodeNo(entry.ino), next, entry.kind, &entry.name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &FuseRequest,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.shared.backing.release(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &FuseRequest,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.submit(Request::FsyncDir {
            ino: ino.0,
            fh: fh.0,
            reply,
        });
    }

    fn statfs(&self, _req: &FuseRequest, _ino: INodeNo, reply: ReplyStatfs) {
        match self.shared.backing.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &FuseRequest,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.shared.submit(Request::Create {
            parent: parent.0,
            name: name.to_os_string(),
            mode,
            umask,
            flags,
            reply,
        });
    }

    fn fallocate(
        &self,
        _req: &FuseRequest,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        empty(
            reply,
            self.shared.backing.fallocate(fh.0, offset, length, mode),
        );
    }
}

fn empty(reply: ReplyEmpty, result: crate::backing::Result<()>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}
