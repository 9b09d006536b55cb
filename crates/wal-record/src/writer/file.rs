//! The file a log writer writes to.

use std::io;

/// The file a [`LogWriter`](super::LogWriter) writes to: sequential writes and a data sync.
///
/// Implemented for [`std::fs::File`] and for `Vec<u8>` (whose sync does
/// nothing; for tests and in-memory use).
pub trait LogFile: Send + 'static {
    /// Writes all of `buf` at the current position.
    ///
    /// # Errors
    /// Any I/O error; it becomes the writer's sticky error.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;

    /// Makes everything written so far durable (`fdatasync`).
    ///
    /// # Errors
    /// Any I/O error; it becomes the writer's sticky error.
    fn sync_data(&mut self) -> io::Result<()>;

    /// Maintenance between rounds of I/O: the file may prepare the space
    /// its next writes will land in (`wal_fs::OsFs` zero-fills ahead of a
    /// log, so that later syncs commit no metadata). The flush thread calls
    /// it after a successful sync, about every `PREPARE_EVERY` bytes written,
    /// when no write or sync is in flight (appenders may be waiting: under a
    /// steady load there always are); never during close. The default does
    /// nothing.
    ///
    /// # Errors
    /// Any I/O error; it becomes the writer's sticky error (a failed sync of
    /// the prepared space means the disk is failing).
    fn prepare_ahead(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Closes the file after the writer's final sync. The default drops it.
    ///
    /// # Errors
    /// Any I/O error on close; [`LogWriter::close`](super::LogWriter::close) reports it.
    fn close(self) -> io::Result<()>
    where
        Self: Sized,
    {
        Ok(())
    }
}

impl LogFile for std::fs::File {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        io::Write::write_all(self, buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        std::fs::File::sync_data(self)
    }
}

impl LogFile for Vec<u8> {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.extend_from_slice(buf);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }
}
