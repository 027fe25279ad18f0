//! capsa-image's layer unpacker (tar entries, whiteouts, opaque markers, symlinks, hardlinks,
//! pax xattrs) on an arbitrary byte stream, over a small lower layer.
//! Invariants: no panic; nothing is written outside the layer dir: the dirs around it hold
//! nothing new, the lower layer is unchanged (content, mode, owner, link count, inode), and
//! the canary dir /tmp/capsa-fuzz-canary (which the seeds' absolute symlinks name) stays empty.
#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use capsa_image::unpack::unpack_layer;
use libfuzzer_sys::fuzz_target;

const CANARY: &str = "/tmp/capsa-fuzz-canary";

/// What a tree looks like, entry by entry (relative path -> description).
type Snapshot = BTreeMap<PathBuf, String>;

struct Sandbox {
    dir: PathBuf,
    base: PathBuf,
    base_snap: Snapshot,
}

fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let p = root.join(&rel);
        let m = fs::symlink_metadata(&p).expect("stat the lower layer");
        let mut d = format!(
            "mode={:o} uid={} gid={} nlink={} ino={} size={} mtime={}.{} rdev={}",
            m.mode(),
            m.uid(),
            m.gid(),
            m.nlink(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.rdev()
        );
        if m.file_type().is_symlink() {
            d += &format!(" -> {:?}", fs::read_link(&p).expect("readlink"));
        } else if m.is_file() {
            d += &format!(" data={:?}", fs::read(&p).expect("read"));
        } else if m.is_dir() {
            for e in fs::read_dir(&p).expect("read_dir") {
                todo.push(rel.join(e.expect("dir entry").file_name()));
            }
        }
        out.insert(rel, d);
    }
    out
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

/// The lower layer, in the overlay format the unpacker writes: files, a directory, symlinks
/// (relative, absolute, escaping), a file with two links, a whiteout device.
fn make_base(base: &Path) {
    let w = |p: &str, data: &str, mode: u32| {
        let p = base.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    w("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644);
    w("etc/shadow", "root:*:1::::::\n", 0o600);
    w("d/f", "f\n", 0o755);
    w("d/sub/g", "g\n", 0o644);
    fs::hard_link(base.join("d/f"), base.join("d/f2")).unwrap();
    std::os::unix::fs::symlink("d", base.join("link")).unwrap();
    std::os::unix::fs::symlink("/", base.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../..", base.join("up")).unwrap();
    std::os::unix::fs::symlink(CANARY, base.join("canary")).unwrap();
    let wh =
        std::ffi::CString::new(base.join("gone").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: mknod(2) with a valid NUL-terminated path; a 0:0 char device is overlay's whiteout.
    let r = unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR | 0o600, 0) };
    assert_eq!(r, 0, "mknod whiteout: {}", std::io::Error::last_os_error());
}

fn sandbox() -> &'static Sandbox {
    static SB: OnceLock<Sandbox> = OnceLock::new();
    SB.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("capsa-fuzz-layer-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let base = dir.join("base");
        fs::create_dir_all(&base).expect("create the sandbox");
        make_base(&base);
        fs::create_dir_all(CANARY).expect("create the canary dir");
        Sandbox {
            base_snap: snapshot(&base),
            dir,
            base,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    static N: AtomicU64 = AtomicU64::new(0);
    let sb = sandbox();
    // the layer dir sits 3 levels deep in this run's dir, so a relative escape lands in a
    // dir that must hold exactly one name
    let run = sb
        .dir
        .join(format!("w{}", N.fetch_add(1, Ordering::Relaxed)));
    let dest = run.join("x/y/root");
    fs::create_dir_all(&dest).expect("create the layer dir");

    let (res, blob) = unpack_layer(
        Cursor::new(data.to_vec()),
        &dest,
        "fuzz",
        None,
        std::slice::from_ref(&sb.base),
    );
    assert!(blob.is_some(), "the decompressing thread panicked");
    if let Err(e) = &res {
        assert!(!e.to_string().is_empty(), "an error without a message");
    }

    assert_eq!(names(&run), ["x"], "written outside the layer dir");
    assert_eq!(
        names(&run.join("x")),
        ["y"],
        "written outside the layer dir"
    );
    assert_eq!(
        names(&run.join("x/y")),
        ["root"],
        "written outside the layer dir"
    );
    let run_name = run.file_name().unwrap().to_string_lossy().into_owned();
    let mut want = vec!["base".to_string(), run_name];
    want.sort();
    assert_eq!(names(&sb.dir), want, "written outside the layer dir");
    assert!(names(Path::new(CANARY)).is_empty(), "written into {CANARY}");
    let now = snapshot(&sb.base);
    if now != sb.base_snap {
        let changed: Vec<_> = now
            .iter()
            .filter(|(k, v)| sb.base_snap.get(*k) != Some(v))
            .map(|(k, _)| k)
            .chain(sb.base_snap.keys().filter(|k| !now.contains_key(*k)))
            .collect();
        panic!("the lower layer changed: {changed:?}");
    }
    fs::remove_dir_all(&run).expect("remove the layer dir");
});
