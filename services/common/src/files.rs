//! Reading a file whose size the service does not control, without ever
//! holding more than a bound of it; writing a private key so that it is
//! owner-only however it was before; and the start-up check that a private
//! key file is not open to others.

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

/// Permission bits a private key file may keep at start-up: owner read and
/// write, and group read, because Kubernetes mounts the TLS Secrets 0440 on
/// a read-only volume so that the pod's `fsGroup` can read them.
pub const KEY_FILE_ALLOWED_MODE: u32 = 0o640;
/// The mode a private key file is given when it is written or tightened.
pub const KEY_FILE_MODE: u32 = 0o600;

/// A private key file whose permissions are too open and cannot be fixed.
#[derive(Debug, thiserror::Error)]
#[error(
    "private key file {} is mode {mode:04o}, readable beyond its owner, and setting it to 0600 failed: {source}",
    path.display()
)]
pub struct KeyFileError {
    pub path: std::path::PathBuf,
    pub mode: u32,
    pub source: std::io::Error,
}

/// Start-up check of a private key file: when its mode allows more than
/// [`KEY_FILE_ALLOWED_MODE`] (any access for others, group write or execute,
/// owner execute), sets it to [`KEY_FILE_MODE`] and logs a warning naming the
/// file; returns the mode it had then. When the mode cannot be changed (a
/// read-only mount), refuses: the error names the file and its mode. A file
/// that cannot be inspected is left to the loader, whose error names it.
pub fn tighten_key_file(path: &Path) -> Result<Option<u32>, KeyFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let Ok(metadata) = std::fs::metadata(path) else {
            return Ok(None);
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & !KEY_FILE_ALLOWED_MODE == 0 {
            return Ok(None);
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(KEY_FILE_MODE)).map_err(
            |source| KeyFileError {
                path: path.to_owned(),
                mode,
                source,
            },
        )?;
        tracing::warn!(
            path = %path.display(),
            was = format!("{mode:04o}"),
            now = format!("{KEY_FILE_MODE:04o}"),
            "private key file was readable beyond its owner; set to 0600"
        );
        Ok(Some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(None)
    }
}

/// Writes `contents` to `path` as a private key: mode [`KEY_FILE_MODE`]
/// whether the file is new or already existed with another mode (a mode
/// given to `open` applies only when the file is created).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(KEY_FILE_MODE);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // Before the key is written, so it is never readable by others.
        file.set_permissions(std::fs::Permissions::from_mode(KEY_FILE_MODE))?;
    }
    std::io::Write::write_all(&mut file, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn an_open_key_file_is_tightened_at_start_up_and_others_are_left() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, b"secret").unwrap();
        for open in [0o644, 0o604, 0o660, 0o700, 0o666] {
            chmod(&key, open);
            assert_eq!(tighten_key_file(&key).unwrap(), Some(open), "{open:o}");
            assert_eq!(mode(&key), 0o600, "{open:o}");
        }
        // Owner-only, and the 0440 of a Kubernetes Secret volume, are fine.
        for fine in [0o600, 0o400, 0o440, 0o640] {
            chmod(&key, fine);
            assert_eq!(tighten_key_file(&key).unwrap(), None, "{fine:o}");
            assert_eq!(mode(&key), fine);
        }
        // Missing: left to the loader.
        assert_eq!(tighten_key_file(&dir.path().join("nope")).unwrap(), None);
    }

    #[test]
    fn the_refusal_names_the_file_and_its_mode() {
        // A read-only mount cannot be made in a test; the message can be read.
        let err = KeyFileError {
            path: "/etc/tls/tls.key".into(),
            mode: 0o644,
            source: std::io::Error::from(std::io::ErrorKind::ReadOnlyFilesystem),
        };
        let text = err.to_string();
        assert!(text.contains("/etc/tls/tls.key"), "{text}");
        assert!(text.contains("mode 0644"), "{text}");
        assert!(text.contains("0600"), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn a_rewritten_key_becomes_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        write_private(&key, b"one").unwrap();
        assert_eq!(mode(&key), 0o600);
        // An existing file keeps its mode through open(); not this one.
        chmod(&key, 0o644);
        write_private(&key, b"two").unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(std::fs::read(&key).unwrap(), b"two");
    }

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
