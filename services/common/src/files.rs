//! Reading a file whose size the service does not control, without ever
//! holding more than a bound of it.

use std::io::Read as _;
use std::path::Path;

/// Why [`read_bounded`] returned nothing.
#[derive(Debug)]
pub enum BoundedReadError {
    /// Opening or reading failed.
    Io(std::io::Error),
    /// The file holds more than the limit; no more than the limit (plus one
    /// byte) was read.
    TooLarge,
}

/// The bytes of `path`, or [`BoundedReadError::TooLarge`] when it holds more
/// than `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    let file = std::fs::File::open(path).map_err(BoundedReadError::Io)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(BoundedReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(BoundedReadError::TooLarge);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_at_the_limit_is_read_and_one_past_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_bounded(&path, 5).unwrap(), b"12345");
        assert!(matches!(
            read_bounded(&path, 4),
            Err(BoundedReadError::TooLarge)
        ));
        assert!(matches!(
            read_bounded(&dir.path().join("missing"), 5),
            Err(BoundedReadError::Io(_))
        ));
    }
}
