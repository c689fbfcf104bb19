//! Unpacking a release archive: a tar, gzip-compressed or not (told apart
//! by its first bytes, not its name, since URLs need not end in one).
//! The tar crate refuses entries that would land outside the target.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// The gzip magic number.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Unpacks `archive` into `into` (created if missing). Blocking.
pub(super) fn extract(archive: &Path, into: &Path) -> Result<(), String> {
    std::fs::create_dir_all(into).map_err(|e| format!("create {}: {e}", into.display()))?;
    let mut file = File::open(archive).map_err(|e| format!("open {}: {e}", archive.display()))?;
    let mut magic = [0u8; 2];
    let gzip = file.read_exact(&mut magic).is_ok() && magic == GZIP_MAGIC;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| format!("read {}: {e}", archive.display()))?;
    let reader = BufReader::new(file);
    let result = if gzip {
        unpack(
            tar::Archive::new(flate2::read::GzDecoder::new(reader)),
            into,
        )
    } else {
        unpack(tar::Archive::new(reader), into)
    };
    result.map_err(|e| format!("not a valid tar or tar.gz archive: {e}"))
}

fn unpack<R: Read>(mut archive: tar::Archive<R>, into: &Path) -> std::io::Result<()> {
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    archive.unpack(into)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A tar (gzip-compressed when asked) of `files` (path, contents, mode).
    pub(crate) fn archive(files: &[(&str, &[u8], u32)], gzip: bool) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data, mode) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(*mode);
            header.set_cksum();
            builder
                .append_data(&mut header, path, *data)
                .unwrap_or_else(|e| panic!("tar {path}: {e}"));
        }
        let tar = builder.into_inner().unwrap_or_default();
        if !gzip {
            return tar;
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, &tar).unwrap_or_default();
        encoder.finish().unwrap_or_default()
    }

    #[test]
    fn tar_and_tar_gz_unpack_with_their_modes() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        for gzip in [false, true] {
            let path = dir.path().join(format!("a-{gzip}"));
            std::fs::write(
                &path,
                archive(
                    &[
                        ("bin/run", b"#!/bin/sh\n", 0o755),
                        ("conf/a.yml", b"a: 1\n", 0o644),
                    ],
                    gzip,
                ),
            )?;
            let into = dir.path().join(format!("out-{gzip}"));
            extract(&path, &into).map_err(anyhow::Error::msg)?;
            assert_eq!(std::fs::read(into.join("conf/a.yml"))?, b"a: 1\n");
            let mode = std::fs::metadata(into.join("bin/run"))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o755);
        }
        let junk = dir.path().join("junk");
        std::fs::write(&junk, vec![7u8; 2000])?;
        let error = extract(&junk, &dir.path().join("x")).unwrap_err();
        assert!(error.contains("not a valid tar"), "{error}");
        Ok(())
    }
}
