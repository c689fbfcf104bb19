//! The bytes a task's sandbox holds on disk.

use std::path::Path;

/// Entries looked at per sandbox at most: a task that writes a million
/// small files must not make every sample walk them all.
const MAX_ENTRIES: usize = 10_000;

/// Bytes of the files under `dir` (not following symlinks: the shared
/// release a sandbox links to is not the task's own), counted in allocated
/// blocks so sparse files count what they take. 0 if `dir` is gone.
pub fn size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut seen = 0usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return total;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_below_and_not_symlinked_ones() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("sub"))?;
        std::fs::write(dir.path().join("a"), vec![1u8; 64 * 1024])?;
        std::fs::write(dir.path().join("sub/b"), vec![1u8; 64 * 1024])?;
        let other = tempfile::tempdir()?;
        std::fs::write(other.path().join("big"), vec![1u8; 1 << 20])?;
        std::os::unix::fs::symlink(other.path(), dir.path().join("link"))?;
        let size = size(dir.path());
        assert!((128 * 1024..200 * 1024).contains(&size), "{size}");
        assert_eq!(super::size(&dir.path().join("missing")), 0);
        Ok(())
    }
}
