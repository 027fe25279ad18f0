//! Helpers shared by the integration tests: a private store and bundle area removed (and
//! unmounted) on drop, synthetic layers and images written with the tar crate, tree listings.
#![allow(dead_code)]
pub mod clients;
pub mod difftree;
pub mod registry;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_capsa-image");

pub fn require_root() {
    assert!(
        nix_is_root(),
        "these tests need root (mknod, chown, overlay mounts): run them as root"
    );
}

fn nix_is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A temp dir holding a store (`store/`) and bundles; on drop every mount under it is
/// unmounted and the tree removed, also when the test failed.
pub struct Env {
    pub dir: PathBuf,
}

impl Env {
    pub fn new(name: &str) -> Env {
        require_root();
        let base = std::env::var("CAPSA_IMAGE_TEST_TMP").unwrap_or_else(|_| "/var/tmp".into());
        let dir =
            PathBuf::from(base).join(format!("capsa-image-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Env { dir }
    }
    pub fn store(&self) -> PathBuf {
        self.dir.join("store")
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }
    /// A cgroup name of this test's own (its dir's name): builds put their RUN steps' cgroups
    /// under it (`--cgroup-parent`); removed on drop.
    pub fn cgroup_parent(&self) -> String {
        self.dir.file_name().unwrap().to_string_lossy().into_owned()
    }
    /// Runs capsa-image with --store; returns the output (no status check).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--store")
            .arg(self.store())
            .args(args)
            .output()
            .expect("run capsa-image")
    }
    /// Runs capsa-image and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "capsa-image {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    /// Runs capsa-image, asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "capsa-image {args:?} succeeded but should fail"
        );
        String::from_utf8(o.stderr).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let prefix = self.dir.to_string_lossy().to_string();
        if let Ok(info) = fs::read_to_string("/proc/self/mountinfo") {
            let mut mps: Vec<String> = info
                .lines()
                .filter_map(|l| l.split(' ').nth(4).map(String::from))
                .filter(|m| m.starts_with(&prefix))
                .collect();
            mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in mps {
                let _ = Command::new("umount").arg("-l").arg(&m).status();
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
        for d in cgroup_dirs(&self.cgroup_parent()) {
            remove_cgroup_tree(&d);
        }
    }
}

/// The cgroup dirs named `name` at the top of each hierarchy on this host (v1 controllers,
/// the hybrid cgroup2 mount, or a pure v2 root).
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        roots.extend(rd.flatten().map(|e| e.path()));
    }
    roots
        .into_iter()
        .map(|r| r.join(name))
        .filter(|d| d.is_dir())
        .collect()
}

/// The cgroups below `dir` (not `dir`), deepest first.
pub fn cgroup_children(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(cgroup_children(&e.path()));
                out.push(e.path());
            }
        }
    }
    out
}

/// Kills what is left in the cgroup tree `dir` and removes it, deepest first (best effort).
pub fn remove_cgroup_tree(dir: &Path) {
    let mut all = cgroup_children(dir);
    all.push(dir.to_path_buf());
    for d in &all {
        if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
            for pid in procs.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
    }
    for d in &all {
        for _ in 0..50 {
            if fs::remove_dir(d).is_ok() || !d.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

// ---------------------------------------------------------------- synthetic layers

pub enum E {
    Dir(&'static str, u32),
    /// path, mode, uid, gid
    DirOwned(&'static str, u32, u32, u32),
    File(&'static str, u32, &'static [u8]),
    FileOwned(&'static str, u32, u32, u32, &'static [u8]),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
    Char(&'static str, u32, u32),
    Fifo(&'static str),
    XattrFile(&'static str, &'static str, &'static [u8]),
    /// a raw path (may be malicious), regular file
    Raw(Vec<u8>),
}

fn hdr(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(0);
    h
}

/// An uncompressed layer tar from entries.
/// A plain base (a real lib/ dir, a file `gone`), a usrmerged base (lib -> /usr/lib) and
/// one top layer for both (lib/foo, a whiteout of `gone`): what the top layer's dir holds
/// depends on the base it is unpacked over.
pub fn layer_over_two_bases() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let plain_base = layer(&[
        E::Dir("usr/", 0o755),
        E::Dir("usr/lib/", 0o755),
        E::Dir("lib/", 0o700),
        E::File("gone", 0o644, b"plain base"),
    ]);
    let merged_base = layer(&[
        E::Dir("usr/", 0o755),
        E::Dir("usr/lib/", 0o755),
        E::Symlink("lib", "/usr/lib"),
    ]);
    let top = layer(&[
        E::File("lib/foo", 0o644, b"foo"),
        E::File(".wh.gone", 0o644, b""),
    ]);
    (plain_base, merged_base, top)
}

pub fn layer(entries: &[E]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::Dir(p, m) => {
                let mut h = hdr(tar::EntryType::Directory, *m);
                t.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::DirOwned(p, m, u, g) => {
                let mut h = hdr(tar::EntryType::Directory, *m);
                h.set_uid(*u as u64);
                h.set_gid(*g as u64);
                t.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::File(p, m, d) => {
                let mut h = hdr(tar::EntryType::Regular, *m);
                h.set_size(d.len() as u64);
                t.append_data(&mut h, p, *d).unwrap();
            }
            E::FileOwned(p, m, u, g, d) => {
                let mut h = hdr(tar::EntryType::Regular, *m);
                h.set_uid(*u as u64);
                h.set_gid(*g as u64);
                h.set_size(d.len() as u64);
                t.append_data(&mut h, p, *d).unwrap();
            }
            E::Symlink(p, target) => {
                let mut h = hdr(tar::EntryType::Symlink, 0o777);
                t.append_link(&mut h, p, target).unwrap();
            }
            E::Hardlink(p, target) => {
                let mut h = hdr(tar::EntryType::Link, 0o644);
                t.append_link(&mut h, p, target).unwrap();
            }
            E::Char(p, ma, mi) => {
                let mut h = hdr(tar::EntryType::Char, 0o666);
                h.set_device_major(*ma).unwrap();
                h.set_device_minor(*mi).unwrap();
                t.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::Fifo(p) => {
                let mut h = hdr(tar::EntryType::Fifo, 0o600);
                t.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::XattrFile(p, k, v) => {
                let key = format!("SCHILY.xattr.{k}");
                t.append_pax_extensions([(key.as_str(), *v)]).unwrap();
                let mut h = hdr(tar::EntryType::Regular, 0o644);
                t.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::Raw(p) => {
                // write the name bytes straight into the header, bypassing the crate's checks
                let mut h = hdr(tar::EntryType::Regular, 0o644);
                h.as_old_mut().name[..p.len()].copy_from_slice(p);
                h.set_cksum();
                t.append(&h, std::io::empty()).unwrap();
            }
        }
    }
    t.into_inner().unwrap()
}

pub fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// The chain IDs of layers given by their diff_ids ("sha256:…"), bottom first: the names
/// of their dirs in the store's layers/ (store.rs keys a layer by what is below it).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in diff_ids {
        let c = match out.last() {
            None => d.clone(),
            Some(below) => sha(format!("{below} {d}").as_bytes()),
        };
        out.push(c);
    }
    out
}

pub fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

pub fn zstd(b: &[u8]) -> Vec<u8> {
    ::zstd::encode_all(b, 3).unwrap()
}

pub fn config_json(diff_ids: &[String], cmd: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().map(|_| serde_json::json!({"created_by": "test"})).collect::<Vec<_>>()
    }))
    .unwrap()
}

/// Writes an OCI layout at `dir` with the given layer blobs (each: (blob bytes, uncompressed
/// tar)); returns the manifest digest.
pub fn oci_layout(
    dir: &Path,
    refname: &str,
    layers: &[(Vec<u8>, Vec<u8>)],
    cmd: &[&str],
) -> String {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha(b);
        fs::write(blobs.join(&d[7..]), b).unwrap();
        d
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (blob, plain) in layers {
        let mt = if blob.starts_with(&[0x1f, 0x8b]) {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            "application/vnd.oci.image.layer.v1.tar+zstd"
        } else {
            "application/vnd.oci.image.layer.v1.tar"
        };
        descs.push(serde_json::json!({"mediaType": mt, "digest": put(blob), "size": blob.len()}));
        diff_ids.push(sha(plain));
    }
    let cfg = config_json(&diff_ids, cmd);
    let cd = put(&cfg);
    let man = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cfg.len()},
        "layers": descs
    }))
    .unwrap();
    let md = put(&man);
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
                           "size": man.len(), "annotations": {"org.opencontainers.image.ref.name": refname}}]
        }))
        .unwrap(),
    )
    .unwrap();
    md
}

/// An OCI layout of `layers` (plain tars) whose layer `foreign` has the non-distributable
/// media type and a URL; its blob is left out unless `with_blob`.
pub fn layout_with_foreign_layer(dir: &Path, layers: &[Vec<u8>], foreign: usize, with_blob: bool) {
    let pairs: Vec<_> = layers.iter().map(|l| (gzip(l), l.clone())).collect();
    oci_layout(dir, "1", &pairs, &["/bin/sh"]);
    let blobs = dir.join("blobs/sha256");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let md = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut man: serde_json::Value =
        serde_json::from_slice(&fs::read(blobs.join(&md[7..])).unwrap()).unwrap();
    let l = &mut man["layers"][foreign];
    l["mediaType"] = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip".into();
    l["urls"] = serde_json::json!(["https://example.invalid/foreign.tar.gz"]);
    if !with_blob {
        fs::remove_file(blobs.join(&l["digest"].as_str().unwrap()[7..])).unwrap();
    }
    fs::remove_file(blobs.join(&md[7..])).unwrap();
    let bytes = serde_json::to_vec(&man).unwrap();
    let nd = sha(&bytes);
    fs::write(blobs.join(&nd[7..]), &bytes).unwrap();
    let mut index = index;
    index["manifests"][0]["digest"] = nd.into();
    index["manifests"][0]["size"] = bytes.len().into();
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Tars a directory (an OCI layout) into an archive file with `tar`.
pub fn tar_dir(dir: &Path, out: &Path) {
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
}

// ---------------------------------------------------------------- tree listings

#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub link: Option<String>,
    pub content: Option<String>,
    pub rdev: u64,
}

/// Every entry under `root` (not the root itself): type, mode, owner, link target, content hash.
pub fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
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
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        out.insert(
            rel,
            Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                link: ft
                    .is_symlink()
                    .then(|| fs::read_link(&p).unwrap().to_string_lossy().into_owned()),
                content: ft.is_file().then(|| sha(&fs::read(&p).unwrap())),
                rdev: if ft.is_char_device() || ft.is_block_device() {
                    md.rdev()
                } else {
                    0
                },
            },
        );
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

/// Asserts two trees are equal, printing the first differences.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let ta = tree(a);
    let tb = tree(b);
    let mut diffs = Vec::new();
    for (k, v) in &ta {
        match tb.get(k) {
            None => diffs.push(format!("only in {}: {k}", a.display())),
            Some(w) if w != v => diffs.push(format!("{k}: {v:?} != {w:?}")),
            _ => {}
        }
    }
    for k in tb.keys() {
        if !ta.contains_key(k) {
            diffs.push(format!("only in {}: {k}", b.display()));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences between {} and {} ({} entries), first: {:#?}",
        diffs.len(),
        a.display(),
        b.display(),
        ta.len(),
        &diffs[..diffs.len().min(20)]
    );
    assert!(!ta.is_empty(), "empty tree {}", a.display());
}

/// `du -s -B1` of paths (hardlinks counted once over all of them).
pub fn du(paths: &[PathBuf]) -> u64 {
    let o = Command::new("du")
        .arg("-s")
        .arg("-B1")
        .arg("-c")
        .args(paths)
        .output()
        .unwrap();
    assert!(o.status.success());
    let s = String::from_utf8(o.stdout).unwrap();
    s.lines()
        .last()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

pub fn store_files(store: &Path) -> (usize, usize, usize) {
    let count = |p: PathBuf| fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
    (
        count(store.join("blobs/sha256")),
        count(store.join("layers")),
        count(store.join("tmp")),
    )
}

/// Writes a docker-archive (`docker save` format: config, one `layer.tar` per layer,
/// manifest.json) with uncompressed `layers` under the tag `reftag`.
pub fn docker_archive(out: &Path, reftag: &str, layers: &[Vec<u8>], cmd: &[&str]) {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let cfg = config_json(&diff_ids, cmd);
    let mut t = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, data).unwrap();
    };
    add("config.json", &cfg);
    let mut names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let n = format!("l{i}/layer.tar");
        add(&n, l);
        names.push(n);
    }
    let m = serde_json::json!([{"Config": "config.json", "RepoTags": [reftag], "Layers": names}]);
    add("manifest.json", &serde_json::to_vec(&m).unwrap());
    fs::write(out, t.into_inner().unwrap()).unwrap();
}
