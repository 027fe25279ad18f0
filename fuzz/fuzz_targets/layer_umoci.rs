//! Differential fuzzing of capsa-image's unpacker with `umoci unpack` as the oracle.
//! The input is decoded into one to three small layers (directories, files, symlinks,
//! hardlinks, fifos, whiteouts, opaque markers; names and link targets drawn from a few
//! components, `..`, `.` and a leading `/`, so that they meet each other). capsa-image
//! unpacks them as it does for an image (unpack_layer per layer over the ones below, then
//! the overlay mount a bundle uses); umoci unpacks an OCI layout of the same layers.
//! Invariant: where umoci succeeds, capsa-image gives the same tree (names, types, modes,
//! owners, link targets, xattrs, contents, mtimes of non-directories, hardlink groups
//! within one layer), or refuses with one of its deliberate refusals (a `..` climbing above
//! the root, a whiteout of `.` or `..`). Wherever umoci fails, capsa-image may do anything
//! but panic or write outside.
#![no_main]

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use capsa_image::unpack::unpack_layer;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../image/tests/common/difftree.rs"]
mod difftree;

const COMPS: &[&str] = &["a", "b", "lib", "usr", "..", "."];
const TARGETS: &[&str] = &[
    "a", "b", "/a", "/usr", "../a", "../../..", "/", "a/b", "usr/lib", "/usr/lib", "nowhere",
    "lib", "./a/../b",
];
const XATTRS: &[&str] = &[
    "user.x",
    "user.y",
    "trusted.overlay.opaque",
    "security.capability",
];

/// capsa-image's refusals of what umoci unpacks (docs/image.md): a `..` climbing above the
/// root (umoci clamps it), a whiteout of `.` or `..` (umoci removes the directory or its
/// parent).
const DELIBERATE_REFUSALS: &[&str] = &["climbs above the layer root", "whiteout names no file"];

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn pick<'b>(&mut self, from: &[&'b str]) -> Option<&'b str> {
        Some(from[self.byte()? as usize % from.len()])
    }
    /// A path of 1 to 3 components, sometimes absolute.
    fn path(&mut self) -> Option<String> {
        let b = self.byte()?;
        let mut p = String::new();
        if b & 0x80 != 0 {
            p.push('/');
        }
        for i in 0..=(b as usize % 3) {
            if i > 0 {
                p.push('/');
            }
            p += self.pick(COMPS)?;
        }
        Some(p)
    }
}

fn header(kind: tar::EntryType, name: &[u8], link: &[u8], mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(size);
    // raw bytes: the crate's setters refuse `..` and absolute names, which are the point
    let old = h.as_old_mut();
    old.name[..name.len()].copy_from_slice(name);
    old.linkname[..link.len()].copy_from_slice(link);
    h.set_cksum();
    h
}

/// The layers the input describes (plain tars), None when it is used up too early.
fn decode(data: &[u8]) -> Vec<Vec<u8>> {
    let mut inp = Input(data);
    let mut layers = Vec::new();
    let mut t = tar::Builder::new(Vec::new());
    let mut entries = 0;
    while let Some(op) = inp.byte() {
        if entries > 24 {
            break;
        }
        entries += 1;
        let Some(path) = inp.path() else { break };
        let mode = [0o755, 0o644, 0o4755, 0o700][op as usize / 16 % 4];
        let (kind, link, body): (tar::EntryType, String, Vec<u8>) = match op % 9 {
            0 => (tar::EntryType::Directory, String::new(), vec![]),
            1 | 2 => (
                tar::EntryType::Regular,
                String::new(),
                vec![op; op as usize % 5],
            ),
            3 => match inp.pick(TARGETS) {
                Some(tg) => (tar::EntryType::Symlink, tg.to_string(), vec![]),
                None => break,
            },
            4 => match inp.path() {
                Some(tg) => (tar::EntryType::Link, tg, vec![]),
                None => break,
            },
            5 => (tar::EntryType::Fifo, String::new(), vec![]),
            6 => {
                // a whiteout of the path's last component, or an opaque marker in it
                let wh = if op & 0x40 != 0 {
                    format!("{path}/.wh..wh..opq")
                } else {
                    match path.rsplit_once('/') {
                        Some((d, n)) => format!("{d}/.wh.{n}"),
                        None => format!(".wh.{path}"),
                    }
                };
                let h = header(tar::EntryType::Regular, wh.as_bytes(), b"", 0o644, 0);
                t.append(&h, std::io::empty()).unwrap();
                continue;
            }
            7 => {
                let Some(x) = inp.pick(XATTRS) else { break };
                let key = format!("SCHILY.xattr.{x}");
                let val: &[u8] = if x == "security.capability" {
                    &[
                        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    ]
                } else {
                    b"y"
                };
                t.append_pax_extensions([(key.as_str(), val)]).unwrap();
                (tar::EntryType::Regular, String::new(), b"x".to_vec())
            }
            _ => {
                if layers.len() == 2 {
                    continue;
                }
                layers.push(
                    std::mem::replace(&mut t, tar::Builder::new(Vec::new()))
                        .into_inner()
                        .unwrap(),
                );
                continue;
            }
        };
        let h = header(
            kind,
            path.as_bytes(),
            link.as_bytes(),
            mode,
            body.len() as u64,
        );
        t.append(&h, &body[..]).unwrap();
    }
    layers.push(t.into_inner().unwrap());
    layers
}

/// The layers' entries, one a line: "layer N: TYPE NAME [-> LINK]".
fn describe(layers: &[Vec<u8>]) -> String {
    let mut out = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let mut ar = tar::Archive::new(&l[..]);
        for e in ar.entries().unwrap().flatten() {
            let link = e
                .link_name_bytes()
                .map(|l| format!(" -> {}", String::from_utf8_lossy(&l)))
                .unwrap_or_default();
            out.push(format!(
                "layer {i}: {:?} {}{link}",
                e.header().entry_type(),
                String::from_utf8_lossy(&e.path_bytes())
            ));
        }
    }
    out.join("\n")
}

fn sha256(b: &[u8]) -> String {
    capsa_image::digest::Digest::of_bytes(b).hex().to_string()
}

/// An OCI layout of plain (uncompressed) layers, ref name "t", for umoci.
fn oci_layout(dir: &Path, layers: &[Vec<u8>]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha256(b);
        fs::write(blobs.join(&d), b).unwrap();
        (format!("sha256:{d}"), b.len())
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let (d, n) = put(l);
        descs.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{n}}}"#
        ));
        diff_ids.push(format!("\"{d}\""));
    }
    let cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let (cd, cn) = put(cfg.as_bytes());
    let man = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cn}}},"layers":[{}]}}"#,
        descs.join(",")
    );
    let (md, mn) = put(man.as_bytes());
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":{mn},"annotations":{{"org.opencontainers.image.ref.name":"t"}}}}]}}"#
        ),
    )
    .unwrap();
}

/// capsa-image's tree: each layer unpacked over the ones below, then mounted as a bundle's
/// rootfs is (overlay, top layer first); the snapshot, or the error.
fn capsa_tree(run: &Path, layers: &[Vec<u8>]) -> Result<difftree::Tree, String> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let d = run.join(format!("l{i}"));
        fs::create_dir_all(&d).unwrap();
        let lowers: Vec<PathBuf> = dirs.iter().rev().cloned().collect();
        let (res, _) = unpack_layer(Cursor::new(l.clone()), &d, "fuzz", None, &lowers);
        res.map_err(|e| e.to_string())?;
        dirs.push(d);
    }
    let mnt = run.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    // overlay wants two lower dirs at least: an empty one at the bottom
    let empty = run.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let mut lower: Vec<String> = dirs.iter().rev().map(|d| d.display().to_string()).collect();
    lower.push(empty.display().to_string());
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("ro,lowerdir={}", lower.join(":")))
        .arg(&mnt)
        .status()
        .expect("mount");
    assert!(st.success(), "mount the overlay");
    let t = difftree::snapshot(&mnt);
    let st = Command::new("umount").arg(&mnt).status().expect("umount");
    assert!(st.success(), "umount the overlay");
    Ok(t)
}

fuzz_target!(|data: &[u8]| {
    static N: AtomicU64 = AtomicU64::new(0);
    let layers = decode(data);
    if std::env::var_os("LAYER_UMOCI_SHOW").is_some() {
        eprintln!("{}", describe(&layers)); // to read a reproducer
    }
    let run = std::env::temp_dir().join(format!(
        "capsa-fuzz-umoci-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&run);
    fs::create_dir_all(&run).unwrap();
    let ours = capsa_tree(&run.join("capsa"), &layers);

    let layout = run.join("layout");
    oci_layout(&layout, &layers);
    let bundle = run.join("umoci");
    let u = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:t", layout.display()))
        .arg(&bundle)
        .output()
        .expect("run umoci");
    if u.status.success() {
        let theirs = difftree::snapshot(&bundle.join("rootfs"));
        match &ours {
            Ok(ours) => {
                // directory mtimes: both make some "now" (implicit parents, removals);
                // a hardlink to a lower layer's file is a copy in capsa
                let mut ignore = difftree::Ignore {
                    links: layers.len() > 1,
                    ..Default::default()
                };
                ignore.dir_mtimes = ours
                    .entries
                    .iter()
                    .filter(|(_, e)| e.kind == "dir")
                    .map(|(k, _)| k.clone())
                    .collect();
                let d = difftree::compare(ours, &theirs, &ignore);
                assert!(
                    d.is_empty(),
                    "capsa-image and umoci differ on\n{}\n{}",
                    describe(&layers),
                    d.join("\n")
                );
            }
            Err(e) => assert!(
                DELIBERATE_REFUSALS.iter().any(|r| e.contains(r)),
                "capsa-image refused what umoci unpacks:\n{}\n{e}",
                describe(&layers)
            ),
        }
    }
    fs::remove_dir_all(&run).expect("remove the run dir");
});
