//! Reading a [`File`] as a stream.

use std::io;

use crate::File;

/// A [`File`] read sequentially through [`File::read_at`], as an
/// [`io::Read`].
#[derive(Debug)]
pub struct FileReader {
    file: Box<dyn File>,
    pos: u64,
}

impl FileReader {
    /// Reads `file` from its start.
    pub fn new(file: Box<dyn File>) -> FileReader {
        FileReader::at(file, 0)
    }

    /// Reads `file` from offset `pos`.
    pub fn at(file: Box<dyn File>, pos: u64) -> FileReader {
        FileReader { file, pos }
    }

    /// The offset of the next byte read.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl io::Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .file
            .read_at(buf, self.pos)
            .map_err(|e| io::Error::new(e.kind(), e))?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::Path;

    use super::*;
    use crate::{Fs, MemFs};

    #[test]
    fn a_file_reads_as_a_stream_from_any_offset() {
        let mem = MemFs::new();
        mem.write_file(Path::new("/d/f"), b"0123456789").unwrap();
        let mut all = String::new();
        FileReader::new(mem.open(Path::new("/d/f")).unwrap())
            .read_to_string(&mut all)
            .unwrap();
        assert_eq!(all, "0123456789");
        let mut r = FileReader::at(mem.open(Path::new("/d/f")).unwrap(), 7);
        let mut tail = String::new();
        r.read_to_string(&mut tail).unwrap();
        assert_eq!((tail.as_str(), r.position()), ("789", 10));
    }
}
