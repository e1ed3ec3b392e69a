//! What a requested file name may mean: only an iPXE binary of the catalogue, by its exact
//! name. There is no directory to escape from: names never touch the file system, they map
//! through [`IpxeBinary::from_file_name`] and the catalogue decides the path.

use flakeboot_catalogue::IpxeBinary;

use crate::packet::ErrorCode;

/// Why a requested name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty file name")]
    Empty,
    #[error("file name contains a NUL byte")]
    NulByte,
    #[error("file name contains a `..` component")]
    ParentDirectory,
    #[error("file name is a path ({name:?}): only plain names are served")]
    Path { name: String },
    #[error("{name:?} is not in the boot catalogue")]
    NotFound { name: String },
}

impl NameError {
    /// The TFTP error the client gets: 1 for unknown names, 2 for names that try to leave the
    /// catalogue.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            NameError::Empty | NameError::NotFound { .. } => ErrorCode::FILE_NOT_FOUND,
            NameError::NulByte | NameError::ParentDirectory | NameError::Path { .. } => {
                ErrorCode::ACCESS_VIOLATION
            }
        }
    }
}

/// The iPXE binary a client asks for. One leading `/` is stripped (some firmware sends
/// `/undionly.kpxe`); nothing else is normalised.
pub fn requested_binary(requested: &str) -> Result<IpxeBinary, NameError> {
    let name = requested.strip_prefix('/').unwrap_or(requested);
    if name.contains('\0') {
        return Err(NameError::NulByte);
    }
    if name.split(['/', '\\']).any(|part| part == "..") {
        return Err(NameError::ParentDirectory);
    }
    if name.contains(['/', '\\']) {
        return Err(NameError::Path {
            name: requested.to_owned(),
        });
    }
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    IpxeBinary::from_file_name(name).ok_or_else(|| NameError::NotFound {
        name: requested.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_names_and_one_leading_slash() {
        for b in IpxeBinary::ALL {
            assert_eq!(requested_binary(b.file_name()), Ok(b));
            assert_eq!(requested_binary(&format!("/{}", b.file_name())), Ok(b));
        }
    }

    #[test]
    fn refusals_and_their_codes() {
        let cases: &[(&str, u16)] = &[
            ("", 1),
            ("/", 1),
            ("pxelinux.0", 1),
            ("UNDIONLY.KPXE", 1),
            ("undionly.kpxe ", 1),
            ("..", 2),
            ("../undionly.kpxe", 2),
            ("/../undionly.kpxe", 2),
            ("ipxe/../undionly.kpxe", 2),
            ("..\\..\\windows\\win.ini", 2),
            ("/etc/passwd", 2),
            ("//undionly.kpxe", 2),
            ("/srv/tftp/undionly.kpxe", 2),
            ("ipxe/undionly.kpxe", 2),
            ("C:\\undionly.kpxe", 2),
            ("undionly.kpxe\0", 2),
            ("undionly.kpxe\0../../etc/passwd", 2),
        ];
        for (name, code) in cases {
            let err = requested_binary(name).expect_err(name);
            assert_eq!(err.error_code().0, *code, "{name:?}: {err}");
        }
    }
}
