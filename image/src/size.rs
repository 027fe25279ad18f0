//! Disk usage like `du -s -B1`: st_blocks * 512 of every entry including the top directory,
//! each hardlinked inode counted once; symlinks are not followed.
use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub fn disk_usage(path: &Path) -> io::Result<u64> {
    let mut seen = HashSet::new();
    du(path, &mut seen)
}

fn du(path: &Path, seen: &mut HashSet<(u64, u64)>) -> io::Result<u64> {
    let md = std::fs::symlink_metadata(path)?;
    if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
        return Ok(0);
    }
    let mut total = md.blocks() * 512;
    if md.is_dir() {
        for e in std::fs::read_dir(path)? {
            total += du(&e?.path(), seen)?;
        }
    }
    Ok(total)
}

/// Human-readable size (1024-based, like docker/podman's "MB" columns but exact units).
pub fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}
