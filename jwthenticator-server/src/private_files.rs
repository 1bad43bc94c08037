//! Files and directories that only the server's own user may read: the data directory, the
//! embedded database with its WAL and shared-memory files, generated keys and secrets.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Creates `dir` and its missing parents, each readable by its owner only (0700). An existing
/// directory is left as it is.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes a new file readable by its owner only (0600), creating its missing parent directories
/// as [`create_dir`] does; fails if the file exists.
pub(crate) fn create_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(parent)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}

/// Takes the group's and others' permissions off an existing file; `false` when there were
/// none or the file does not exist.
pub(crate) fn restrict(path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match fs::metadata(path) {
            Ok(metadata) => metadata.permissions().mode(),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(err),
        };
        if mode & 0o077 == 0 {
            return Ok(false);
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o700))?;
        Ok(true)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(false)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn new_directories_and_files_are_the_owner_s_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a/b/secret");
        create_file(&file, b"x").expect("create");
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert!(create_file(&file, b"y").is_err(), "never overwrites");
    }

    #[test]
    fn restrict_takes_group_and_other_permissions_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("db");
        fs::write(&file, b"x").expect("write");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o664)).expect("chmod");
        assert!(restrict(&file).expect("restrict"));
        assert_eq!(mode(&file), 0o600);
        assert!(!restrict(&file).expect("again"));
        assert!(!restrict(&dir.path().join("missing")).expect("missing"));
    }
}
