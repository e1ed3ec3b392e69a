//! An upload (a firmware bundle, a backup) received into a new owner-only file, bounded: the
//! one way a request body reaches the disk.

use std::io;
use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Why an upload was not received.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// More than the caller's bound.
    #[error("larger than {max} bytes")]
    TooLarge { max: u64 },
    /// The body ended with an error (the client went away).
    #[error("the upload ended after {got} bytes: {reason}")]
    Upload { got: u64, reason: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

/// Streams `body` into an owner-only file at `path` (made or truncated), at most `max` bytes,
/// synced: its length.
pub async fn receive(
    body: &mut (impl AsyncRead + Unpin),
    path: &Path,
    max: u64,
) -> Result<u64, ReceiveError> {
    let file_err = |source| ReceiveError::Io {
        what: path.display().to_string(),
        source,
    };
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(file_err)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got: u64 = 0;
    loop {
        let n = body
            .read(&mut buf)
            .await
            .map_err(|e| ReceiveError::Upload {
                got,
                reason: e.to_string(),
            })?;
        if n == 0 {
            break;
        }
        got += n as u64;
        if got > max {
            return Err(ReceiveError::TooLarge { max });
        }
        file.write_all(buf.get(..n).unwrap_or_default())
            .await
            .map_err(file_err)?;
    }
    file.sync_all().await.map_err(file_err)?;
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn a_body_is_written_owner_only_and_a_larger_one_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("upload");
        let body = vec![7u8; 3 << 20];
        assert_eq!(
            receive(&mut body.as_slice(), &path, 3 << 20).await.unwrap(),
            3 << 20
        );
        assert_eq!(std::fs::read(&path).unwrap(), body);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = receive(&mut body.as_slice(), &path, (3 << 20) - 1)
            .await
            .unwrap_err();
        assert!(matches!(err, ReceiveError::TooLarge { .. }), "{err:?}");
    }
}
