//! Reading a space file as text. A file that is not UTF-8 is a problem at the line and column
//! of its first invalid byte, so that it can be found and fixed like any other.

use std::path::Path;

use super::diagnostic::slash_path;
use super::{Diagnostic, Loc};

/// Why a space file could not be read as text.
pub(crate) enum ReadError {
    /// The file could not be read at all (missing, a folder, no permission).
    Io(std::io::Error),
    /// It was read, and is not UTF-8: the diagnostic points at the first invalid byte.
    NotUtf8(Diagnostic),
}

/// Reads `root`/`rel` as UTF-8 text.
pub(crate) fn read_text(root: &Path, rel: &Path) -> Result<String, ReadError> {
    let bytes = std::fs::read(root.join(rel)).map_err(ReadError::Io)?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let valid = std::str::from_utf8(&bytes[..at]).expect("valid up to here");
        let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
        let loc = Loc {
            file: rel.to_path_buf(),
            line: valid.matches('\n').count() + 1,
            col: valid[line_start..].chars().count() + 1,
            len: 1,
        };
        ReadError::NotUtf8(
            Diagnostic::error(
                Some(loc),
                format!(
                    "{} is not UTF-8 text: invalid byte 0x{:02X}",
                    slash_path(rel),
                    bytes[at]
                ),
            )
            .with_help("save the file as UTF-8"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_the_first_invalid_byte() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("space.yaml"),
            b"name: x\nspec: \xc3\xa9 \xff\n",
        )
        .unwrap();
        let Err(ReadError::NotUtf8(d)) = read_text(dir.path(), Path::new("space.yaml")) else {
            panic!("expected a UTF-8 error");
        };
        assert_eq!(d.loc.as_ref().unwrap().to_string(), "space.yaml:2:9");
        assert_eq!(d.message, "space.yaml is not UTF-8 text: invalid byte 0xFF");
        assert!(matches!(
            read_text(dir.path(), Path::new("missing.yaml")),
            Err(ReadError::Io(_))
        ));
    }
}
