//! Two root filesystems compared entry by entry, as the differential test and the fuzz
//! oracle compare capsa-image's rootfs with `umoci unpack`'s: names (raw bytes), types,
//! modes, owners, link targets, device numbers, xattrs, contents, mtimes, and which paths are
//! hardlinks of each other. Not atimes: umoci reads every file after unpacking (its mtree
//! manifest), which sets them to "now" (tests/unpack.rs checks capsa's). Self-contained (std and capsa-image's `sys`), so the fuzz target
//! includes it by path.
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// One entry of a tree.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    /// symlink target (raw bytes, escaped)
    pub link: Option<String>,
    /// regular file: size and a hash of the content
    pub content: Option<(u64, u64)>,
    /// (name, value) sorted; overlay's own and SELinux labels left out
    pub xattrs: Vec<(String, Vec<u8>)>,
    pub mtime: (i64, i64),
}

/// A tree: escaped path relative to the root ("" is the root) -> entry; and the groups of
/// paths that share an inode (regular files with more than one link).
#[derive(Debug, Default)]
pub struct Tree {
    pub entries: BTreeMap<String, Entry>,
    pub links: Vec<Vec<String>>,
}

/// What to leave out of a comparison.
#[derive(Default, Clone)]
pub struct Ignore {
    /// directories whose mtime is "now" on both sides: made implicitly (no tar entry), and
    /// their parent (umoci's MkdirAll changes it, and nothing restores it)
    pub dir_mtimes: Vec<String>,
    /// hardlink groups (capsa copies a link to a lower layer's file: its own inode)
    pub links: bool,
}

fn esc(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// FNV-1a: enough to tell contents apart in a test.
fn hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

pub fn snapshot(root: &Path) -> Tree {
    let mut t = Tree::default();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    let mut todo = vec![Vec::<u8>::new()];
    while let Some(rel) = todo.pop() {
        let p = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(OsStr::from_bytes(&rel))
        };
        let m = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        let key = esc(&rel);
        let (dir, name) = match p.parent() {
            Some(d) if !rel.is_empty() => (d.to_path_buf(), p.file_name().unwrap().to_owned()),
            _ => (p.clone(), OsStr::new(".").to_owned()),
        };
        let dfd = capsa_image::sys::open_dir(&dir).expect("open parent");
        let mut xattrs: Vec<(String, Vec<u8>)> = capsa_image::sys::lxattrs(dfd.as_raw_fd(), &name)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v))
            .filter(|(k, _)| !k.starts_with("trusted.overlay.") && k != "security.selinux")
            .collect();
        xattrs.sort();
        let content = ft.is_file().then(|| {
            let d = fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            (d.len() as u64, hash(&d))
        });
        if ft.is_file() && m.nlink() > 1 {
            inodes
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(key.clone());
        }
        t.entries.insert(
            key,
            Entry {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                rdev: if ft.is_char_device() || ft.is_block_device() {
                    m.rdev()
                } else {
                    0
                },
                link: ft
                    .is_symlink()
                    .then(|| esc(fs::read_link(&p).unwrap().as_os_str().as_bytes())),
                content,
                xattrs,
                mtime: (m.mtime(), m.mtime_nsec()),
            },
        );
        if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                let n = e.unwrap().file_name();
                let mut r = rel.clone();
                if !r.is_empty() {
                    r.push(b'/');
                }
                r.extend_from_slice(n.as_bytes());
                todo.push(r);
            }
        }
    }
    t.links = inodes
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    t.links.sort();
    t
}

/// The differences between `ours` and `theirs` (empty: the same tree).
pub fn compare(ours: &Tree, theirs: &Tree, ignore: &Ignore) -> Vec<String> {
    let mut d = Vec::new();
    for (k, a) in &ours.entries {
        let Some(b) = theirs.entries.get(k) else {
            d.push(format!("only in capsa: {k:?} {a:?}"));
            continue;
        };
        let mut a = a.clone();
        let mut b = b.clone();
        if a.kind == "dir" && ignore.dir_mtimes.contains(k) {
            a.mtime = (0, 0);
            b.mtime = (0, 0);
        }
        if a != b {
            d.push(format!("{k:?}: capsa {a:?} != umoci {b:?}"));
        }
    }
    for (k, b) in &theirs.entries {
        if !ours.entries.contains_key(k) {
            d.push(format!("only in umoci: {k:?} {b:?}"));
        }
    }
    if !ignore.links && ours.links != theirs.links {
        d.push(format!(
            "hardlinks: capsa {:?} != umoci {:?}",
            ours.links, theirs.links
        ));
    }
    d
}
