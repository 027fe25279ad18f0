//! Import, unpack, bundle, commit, sizes and bad input, on synthetic images made by the test
//! (gzip, zstd and plain layers). Needs root: devices, owners, overlay mounts.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// base (gzip) + top (zstd, whiteout + opaque dir) + third (plain, implicit parent)
fn three_layer_image(dir: &Path, refname: &str) -> Vec<Vec<u8>> {
    let base = layer(&[
        E::Dir("bin/", 0o755),
        E::File("bin/tool", 0o755, b"#!/bin/sh\necho tool\n"),
        E::Dir("etc/", 0o755),
        E::File(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        ),
        E::File("etc/group", 0o644, b"root:x:0:\napp:x:1000:\nadm:x:4:app\n"),
        E::File("etc/gone", 0o644, b"deleted by the top layer"),
        E::FileOwned("etc/owned", 0o4750, 1000, 4, b"setuid, owned"),
        E::Symlink("etc/link", "passwd"),
        E::Symlink("abs", "/etc/passwd"),
        E::Hardlink("bin/tool2", "bin/tool"),
        E::Dir("d/", 0o750),
        E::File("d/old1", 0o644, b"1"),
        E::Dir("d/sub/", 0o755),
        E::File("d/sub/old2", 0o644, b"2"),
        E::Dir("dev/", 0o755),
        E::Char("dev/null", 1, 3),
        E::Fifo("dev/fifo"),
        E::Dir("tmp/", 0o1777),
        E::Dir("private/", 0o700),
        E::XattrFile("x", "user.capsa", b"v1"),
    ]);
    let top = layer(&[
        E::Dir("etc/", 0o755),
        E::File("etc/.wh.gone", 0o644, b""),
        E::Dir("d/", 0o755),
        E::File("d/.wh..wh..opq", 0o644, b""),
        E::File("d/new", 0o600, b"new"),
        E::File("bin/tool", 0o755, b"#!/bin/sh\necho tool v2\n"),
    ]);
    // no entry for private/ or tmp/: the implicit parents must keep the lower attributes
    let third = layer(&[
        E::File("private/key", 0o600, b"k"),
        E::File("tmp/t", 0o644, b"t"),
    ]);
    oci_layout(
        dir,
        refname,
        &[
            (gzip(&base), base.clone()),
            (zstd(&top), top.clone()),
            (third.clone(), third.clone()),
        ],
        &["/bin/tool"],
    );
    vec![base, top, third]
}

#[test]
fn unpack_whiteouts_links_devices_owners_xattrs() {
    let env = Env::new("unpack");
    let src = env.path("img");
    three_layer_image(&src, "v1");
    let out = env.ok(&["import", src.to_str().unwrap(), "--name", "test/three:v1"]);
    assert!(out.contains("3 layers unpacked"), "{out}");
    let b = env.path("b1");
    env.ok(&["bundle", "test/three:v1", b.to_str().unwrap()]);
    let r = b.join("rootfs");
    assert!(!r.join("etc/gone").exists(), "whiteout not applied");
    let mut d: Vec<_> = fs::read_dir(r.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    d.sort();
    assert_eq!(d, vec!["new"], "opaque dir kept lower entries");
    assert_eq!(
        fs::read(r.join("bin/tool")).unwrap(),
        b"#!/bin/sh\necho tool v2\n"
    );
    assert_eq!(
        fs::read(r.join("bin/tool2")).unwrap(),
        b"#!/bin/sh\necho tool\n",
        "hardlink content"
    );
    let m = fs::symlink_metadata(r.join("etc/owned")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o4750, 1000, 4));
    assert_eq!(
        fs::read_link(r.join("etc/link")).unwrap().to_str(),
        Some("passwd")
    );
    assert_eq!(
        fs::read_link(r.join("abs")).unwrap().to_str(),
        Some("/etc/passwd")
    );
    let m = fs::symlink_metadata(r.join("dev/null")).unwrap();
    assert_eq!(
        (m.mode() & libc::S_IFMT, m.rdev()),
        (libc::S_IFCHR, libc::makedev(1, 3))
    );
    assert_eq!(
        fs::symlink_metadata(r.join("dev/fifo")).unwrap().mode() & libc::S_IFMT,
        libc::S_IFIFO
    );
    assert_eq!(
        fs::metadata(r.join("tmp")).unwrap().mode() & 0o7777,
        0o1777,
        "implicit parent masked /tmp"
    );
    assert_eq!(
        fs::metadata(r.join("private")).unwrap().mode() & 0o7777,
        0o700
    );
    assert_eq!(fs::metadata(r.join("d")).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::metadata(r.join("bin/tool2")).unwrap().mtime(),
        1_600_000_000
    );
    // xattr kept
    let x = {
        let dir = std::fs::File::open(&r).unwrap();
        use std::os::fd::AsRawFd;
        capsa_image::sys::lxattrs(dir.as_raw_fd(), std::ffi::OsStr::new("x")).unwrap()
    };
    assert!(
        x.iter()
            .any(|(k, v)| k.to_bytes() == b"user.capsa" && v == b"v1"),
        "{x:?}"
    );
    // the hardlink is one inode inside its layer
    let store = env.store();
    let layers: Vec<_> = fs::read_dir(store.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let base = layers
        .iter()
        .find(|l| l.join("fs/bin/tool2").exists())
        .expect("base layer");
    assert_eq!(
        fs::metadata(base.join("fs/bin/tool")).unwrap().ino(),
        fs::metadata(base.join("fs/bin/tool2")).unwrap().ino()
    );
    // config.json: a runtime config with the image's command and runc's defaults
    let spec: serde_json::Value =
        serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], serde_json::json!(["/bin/tool"]));
    assert_eq!(spec["root"]["path"], "rootfs");
    assert!(spec["linux"]["namespaces"].as_array().unwrap().len() >= 5);

    // --copy gives the same tree as the overlay
    let c = env.path("b2");
    env.ok(&[
        "bundle",
        "--copy",
        "test/three:v1",
        c.to_str().unwrap(),
        "--",
        "/bin/sh",
    ]);
    assert!(!capsa_image::bundle::is_mounted(&c.join("rootfs")));
    assert_same_tree(&r, &c.join("rootfs"));
    let spec: serde_json::Value =
        serde_json::from_slice(&fs::read(c.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        spec["process"]["args"],
        serde_json::json!(["/bin/sh"]),
        "args after -- replace Cmd"
    );
    env.ok(&["rm", b.to_str().unwrap(), c.to_str().unwrap()]);
    assert!(!b.exists() && !c.exists());
    assert_eq!(fs::read_dir(store.join("containers")).unwrap().count(), 0);
}

/// The unpacker skips the chown/chmod/stat calls that would only repeat what creating an
/// entry gives it: these entries are the cases where creation alone gives the wrong result.
#[test]
fn unpack_owner_mode_edge_cases() {
    let env = Env::new("owners");
    let src = env.path("img");
    let l = layer(&[
        // setgid dir of group 50: entries created in it take group 50 and new dirs the bit
        E::DirOwned("g/", 0o2775, 0, 50),
        E::File("g/f", 0o644, b"f"),
        E::Dir("g/sub/", 0o755),
        E::Symlink("g/l", "f"),
        E::FileOwned("g/own", 0o640, 0, 50, b"o"),
        // bits the umask takes away, special bits
        E::File("wide", 0o777, b"w"),
        E::Dir("widedir/", 0o777),
        E::File("sgid", 0o2755, b"s"),
        // a path named twice: the later entry wins
        E::File("dup", 0o644, b"one"),
        E::File("dup", 0o600, b"two"),
        E::File("dup2", 0o644, b"file first"),
        E::Dir("dup2/", 0o711),
        E::Dir("dup3/", 0o755),
        E::Symlink("dup3", "wide"),
        E::Symlink("dup4", "a"),
        E::Symlink("dup4", "b"),
        E::Dir("again/", 0o700),
        E::Dir("again/", 0o755),
    ]);
    oci_layout(&src, "v1", &[(gzip(&l), l.clone())], &["/wide"]);
    env.ok(&["import", src.to_str().unwrap(), "--name", "owners"]);
    let b = env.path("b");
    env.ok(&["bundle", "owners", b.to_str().unwrap()]);
    let r = b.join("rootfs");
    let st = |p: &str| {
        let m = fs::symlink_metadata(r.join(p)).unwrap();
        (m.mode() & 0o7777, m.uid(), m.gid())
    };
    assert_eq!(st("g"), (0o2775, 0, 50));
    assert_eq!(
        st("g/f"),
        (0o644, 0, 0),
        "file in a setgid dir kept the dir's group"
    );
    assert_eq!(
        st("g/sub"),
        (0o755, 0, 0),
        "dir in a setgid dir kept group or bit"
    );
    assert_eq!(
        (st("g/l").1, st("g/l").2),
        (0, 0),
        "symlink in a setgid dir"
    );
    assert_eq!(st("g/own"), (0o640, 0, 50));
    assert_eq!(st("wide"), (0o777, 0, 0), "umask applied to a file");
    assert_eq!(st("widedir"), (0o777, 0, 0), "umask applied to a dir");
    assert_eq!(st("sgid"), (0o2755, 0, 0));
    assert_eq!(fs::read(r.join("dup")).unwrap(), b"two");
    assert_eq!(st("dup"), (0o600, 0, 0));
    assert!(fs::symlink_metadata(r.join("dup2")).unwrap().is_dir());
    assert_eq!(st("dup2"), (0o711, 0, 0));
    assert_eq!(
        fs::read_link(r.join("dup3")).unwrap().to_str(),
        Some("wide")
    );
    assert_eq!(fs::read_link(r.join("dup4")).unwrap().to_str(), Some("b"));
    assert_eq!(st("again"), (0o755, 0, 0));
    env.ok(&["rm", b.to_str().unwrap()]);
}

#[test]
fn archives_import_and_dedup() {
    let env = Env::new("archives");
    let src = env.path("img");
    let plain = three_layer_image(&src, "localhost/three:v1");
    let oci_tar = env.path("three.oci.tar");
    tar_dir(&src, &oci_tar);
    // a docker-archive of the same image: uncompressed layers, manifest.json
    let cfg = fs::read(
        fs::read_dir(src.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| fs::read(p).unwrap().starts_with(b"{\"architecture\""))
            .unwrap(),
    )
    .unwrap();
    let mut t = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, data).unwrap();
    };
    add("cfg.json", &cfg);
    let mut names = Vec::new();
    for (i, l) in plain.iter().enumerate() {
        let n = format!("l{i}/layer.tar");
        add(&n, l);
        names.push(n);
    }
    let m = serde_json::json!([{"Config": "cfg.json", "RepoTags": ["localhost/three:docker"], "Layers": names}]);
    add("manifest.json", &serde_json::to_vec(&m).unwrap());
    let docker_tar = env.path("three.docker.tar");
    fs::write(&docker_tar, t.into_inner().unwrap()).unwrap();

    let o1 = env.ok(&["import", oci_tar.to_str().unwrap()]);
    assert!(
        o1.starts_with("localhost/three:v1\t") && o1.contains("3 layers unpacked"),
        "{o1}"
    );
    let o2 = env.ok(&["import", docker_tar.to_str().unwrap()]);
    assert!(
        o2.starts_with("localhost/three:docker\t") && o2.contains("0 layers unpacked"),
        "{o2}"
    );
    let o3 = env.ok(&["import", src.to_str().unwrap(), "--name", "again"]);
    assert!(o3.contains("0 layers unpacked, 3 already"), "{o3}");
    // one unpacked dir per layer, whatever the compression
    assert_eq!(fs::read_dir(env.store().join("layers")).unwrap().count(), 3);
    // same config => same image id
    assert_eq!(o1.split('\t').nth(1), o2.split('\t').nth(1));
    let b1 = env.path("b1");
    let b2 = env.path("b2");
    env.ok(&["bundle", "localhost/three:v1", b1.to_str().unwrap()]);
    env.ok(&["bundle", "localhost/three:docker", b2.to_str().unwrap()]);
    assert_same_tree(&b1.join("rootfs"), &b2.join("rootfs"));
}

fn lowerdirs(mp: &Path) -> String {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let l = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mp.to_str().unwrap()))
        .expect("mounted");
    let opts = l.rsplit(' ').next().unwrap();
    opts.split(',')
        .find(|o| o.starts_with("lowerdir="))
        .unwrap()
        .to_string()
}

#[test]
fn shared_layers_and_isolated_writable_layers() {
    let env = Env::new("shared");
    let base = layer(&[E::Dir("etc/", 0o755), E::File("etc/base", 0o644, b"base")]);
    let top_a = layer(&[E::File("a", 0o644, b"a")]);
    let top_b = layer(&[E::File("b", 0o644, b"b")]);
    oci_layout(
        &env.path("a"),
        "a",
        &[(gzip(&base), base.clone()), (gzip(&top_a), top_a.clone())],
        &["sh"],
    );
    oci_layout(
        &env.path("b"),
        "b",
        &[(gzip(&base), base.clone()), (gzip(&top_b), top_b.clone())],
        &["sh"],
    );
    env.ok(&["import", env.path("a").to_str().unwrap(), "--name", "img-a"]);
    let o = env.ok(&["import", env.path("b").to_str().unwrap(), "--name", "img-b"]);
    assert!(
        o.contains("1 layers unpacked, 1 already in the store"),
        "{o}"
    );
    let store = env.store();
    // the base layer once on disk: 3 layer dirs, and one blob per distinct layer
    assert_eq!(fs::read_dir(store.join("layers")).unwrap().count(), 3);
    assert!(store
        .join("blobs/sha256")
        .join(&sha(&gzip(&base))[7..])
        .is_file());
    let blobs = fs::read_dir(store.join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 3 + 2 * 2, "3 layers + 2 configs + 2 manifests");
    let images: serde_json::Value = serde_json::from_str(&env.ok(&["images", "--json"])).unwrap();
    for i in images.as_array().unwrap() {
        assert!(
            i["shared_size"].as_u64().unwrap() > 0
                && i["shared_size"].as_u64() < i["size"].as_u64()
        );
    }

    // two bundles of one image: same lower dirs, own upper dirs
    let b1 = env.path("c1");
    let b2 = env.path("c2");
    env.ok(&["bundle", "img-a", b1.to_str().unwrap()]);
    env.ok(&["bundle", "img-a", b2.to_str().unwrap()]);
    let (r1, r2) = (b1.join("rootfs"), b2.join("rootfs"));
    assert_eq!(lowerdirs(&r1), lowerdirs(&r2));
    assert!(lowerdirs(&r1).contains(&sha(&base)[7..]));
    fs::write(r1.join("etc/only-in-c1"), b"mine").unwrap();
    fs::write(r1.join("etc/base"), b"changed in c1").unwrap();
    assert!(!r2.join("etc/only-in-c1").exists());
    assert_eq!(fs::read(r2.join("etc/base")).unwrap(), b"base");
    let base_fs = store.join("layers").join(&sha(&base)[7..]).join("fs");
    assert_eq!(
        fs::read(base_fs.join("etc/base")).unwrap(),
        b"base",
        "image layer changed"
    );
    assert!(!base_fs.join("etc/only-in-c1").exists());
    // a third bundle of the image sees the image, not c1's changes
    let b3 = env.path("c3");
    env.ok(&["bundle", "img-a", b3.to_str().unwrap()]);
    assert!(!b3.join("rootfs/etc/only-in-c1").exists());

    // rmi refuses an image in use; gc keeps what bundles use
    let err = env.fails(&["rmi", "img-a"]);
    assert!(err.contains("used by bundle"), "{err}");
    env.ok(&["rmi", "img-b"]);
    assert_eq!(
        fs::read_dir(store.join("layers")).unwrap().count(),
        2,
        "img-b's own layer collected"
    );
    env.ok(&[
        "rm",
        b1.to_str().unwrap(),
        b2.to_str().unwrap(),
        b3.to_str().unwrap(),
    ]);
    env.ok(&["rmi", "img-a"]);
    let (blobs, layers, tmp) = store_files(&store);
    assert_eq!((blobs, layers, tmp), (0, 0, 0));
}

#[test]
fn sizes_agree_with_du() {
    let env = Env::new("sizes");
    let base = layer(&[
        E::Dir("etc/", 0o755),
        E::File("etc/f", 0o644, &[7u8; 100_000]),
    ]);
    let top = layer(&[E::File("g", 0o644, &[1u8; 5000]), E::Hardlink("g2", "g")]);
    oci_layout(
        &env.path("a"),
        "a",
        &[(gzip(&base), base.clone()), (top.clone(), top.clone())],
        &["sh"],
    );
    env.ok(&["import", env.path("a").to_str().unwrap(), "--name", "sized"]);
    let b = env.path("b");
    env.ok(&["bundle", "sized", b.to_str().unwrap()]);
    fs::write(b.join("rootfs/big"), vec![3u8; 1 << 20]).unwrap();
    fs::remove_file(b.join("rootfs/etc/f")).unwrap();
    let ls: serde_json::Value = serde_json::from_str(&env.ok(&["ls", "--json"])).unwrap();
    let row = &ls[0];
    let id = row["id"].as_str().unwrap();
    let upper = env.store().join("containers").join(id).join("upper");
    let layers: Vec<_> = fs::read_dir(env.store().join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path().join("fs"))
        .collect();
    assert_eq!(
        row["size"].as_u64().unwrap(),
        du(std::slice::from_ref(&upper))
    );
    let lsum: u64 = layers.iter().map(|l| du(std::slice::from_ref(l))).sum();
    assert_eq!(row["virtual_size"].as_u64().unwrap(), du(&[upper]) + lsum);
    let images: serde_json::Value = serde_json::from_str(&env.ok(&["images", "--json"])).unwrap();
    assert_eq!(images[0]["size"].as_u64().unwrap(), lsum);
}

#[test]
fn commit_add_change_delete() {
    let env = Env::new("commit");
    three_layer_image(&env.path("img"), "v1");
    env.ok(&[
        "import",
        env.path("img").to_str().unwrap(),
        "--name",
        "base:1",
    ]);
    let b = env.path("b");
    env.ok(&["bundle", "base:1", b.to_str().unwrap()]);
    let r = b.join("rootfs");
    fs::write(r.join("added"), b"added").unwrap();
    fs::write(r.join("etc/passwd"), b"root:x:0:0::/:/bin/sh\n").unwrap();
    fs::remove_file(r.join("etc/link")).unwrap();
    fs::remove_dir_all(r.join("d")).unwrap();
    fs::create_dir(r.join("d")).unwrap();
    fs::write(r.join("d/again"), b"again").unwrap();
    fs::hard_link(r.join("added"), r.join("added-link")).unwrap();
    let out = env.ok(&["commit", b.to_str().unwrap(), "base:2", "-m", "my change"]);
    assert!(
        out.starts_with("base:2:latest") || out.starts_with("base:2\t"),
        "{out}"
    );
    let hist: serde_json::Value =
        serde_json::from_str(&env.ok(&["history", "base:2", "--json"])).unwrap();
    assert_eq!(hist[0]["comment"], "my change");
    assert!(hist[0]["layer"].is_string());
    // old layers shared: 3 old + 1 new layer dirs
    assert_eq!(fs::read_dir(env.store().join("layers")).unwrap().count(), 4);
    let b2 = env.path("b2");
    env.ok(&["bundle", "base:2", b2.to_str().unwrap()]);
    assert_same_tree(&r, &b2.join("rootfs"));
    let r2 = b2.join("rootfs");
    assert!(!r2.join("etc/link").exists() && !r2.join("d/new").exists());
    assert_eq!(fs::read(r2.join("d/again")).unwrap(), b"again");
    assert_eq!(
        fs::metadata(r2.join("added")).unwrap().ino(),
        fs::metadata(r2.join("added-link")).unwrap().ino()
    );
    // the original image is untouched
    let b3 = env.path("b3");
    env.ok(&["bundle", "base:1", b3.to_str().unwrap()]);
    assert!(b3.join("rootfs/etc/link").exists() && !b3.join("rootfs/added").exists());

    // export (3 formats) and import into a fresh store: the same tree
    for (fmt, name) in [
        ("oci", "exp-dir"),
        ("oci-archive", "exp.oci.tar"),
        ("docker-archive", "exp.docker.tar"),
    ] {
        let out = env.path(name);
        env.ok(&["export", "base:2", out.to_str().unwrap(), "--format", fmt]);
        let env2 = Env::new(&format!("commit-reimport-{fmt}"));
        let o = env2.ok(&["import", out.to_str().unwrap()]);
        assert!(o.starts_with("base:2"), "{o}");
        let bb = env2.path("b");
        env2.ok(&["bundle", "base:2", bb.to_str().unwrap()]);
        assert_same_tree(&r2, &bb.join("rootfs"));
    }
}

/// Every kind of bad input fails with a message naming the problem, and leaves the store as
/// it was (no blob, no layer, no temp dir, refs unchanged), and the existing image usable.
#[test]
fn bad_inputs_leave_nothing_behind() {
    let env = Env::new("bad");
    let good = layer(&[E::Dir("etc/", 0o755), E::File("etc/ok", 0o644, b"ok")]);
    oci_layout(
        &env.path("good"),
        "good",
        &[(gzip(&good), good.clone())],
        &["sh"],
    );
    env.ok(&[
        "import",
        env.path("good").to_str().unwrap(),
        "--name",
        "good",
    ]);
    let before = store_files(&env.store());
    let refs_before = fs::read(env.store().join("refs.json")).unwrap();
    let outside = env.path("outside");
    fs::create_dir(&outside).unwrap();
    let outside_s: &'static str = Box::leak(outside.to_str().unwrap().to_string().into_boxed_str());
    let outside_file: &'static str = Box::leak(format!("{outside_s}/x").into_boxed_str());

    let mut n = 0;
    let mut check = |what: &str, layers: Vec<Vec<u8>>, expect: &str, mangle: &dyn Fn(&Path)| {
        n += 1;
        let dir = env.path(&format!("bad{n}"));
        let l: Vec<_> = layers.iter().map(|t| (gzip(t), t.clone())).collect();
        oci_layout(&dir, "bad", &l, &["sh"]);
        mangle(&dir);
        let err = env.fails(&["import", dir.to_str().unwrap(), "--name", "bad"]);
        assert!(
            err.contains(expect),
            "{what}: error {err:?} does not mention {expect:?}"
        );
        assert_eq!(store_files(&env.store()), before, "{what}: store changed");
        assert_eq!(
            fs::read(env.store().join("refs.json")).unwrap(),
            refs_before,
            "{what}: refs changed"
        );
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "{what}: wrote outside"
        );
    };
    let none = |_: &Path| {};
    check(
        "dotdot",
        vec![layer(&[E::Raw(b"a/../../evil".to_vec())])],
        "a/../../evil",
        &none,
    );
    check(
        "hardlink escape",
        vec![layer(&[E::Hardlink("h", outside_file)])],
        "\"h\"",
        &none,
    );
    check(
        "hardlink dotdot",
        vec![layer(&[E::Hardlink("h", "../../etc/passwd")])],
        "climbs above the layer root",
        &none,
    );
    check(
        "hardlink through symlink",
        vec![layer(&[
            E::Symlink("l", outside_s),
            E::Hardlink("h", "l/x"),
        ])],
        "\"h\"",
        &none,
    );
    let blob_of = |dir: &Path, pred: &dyn Fn(&[u8]) -> bool| {
        fs::read_dir(dir.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| pred(&fs::read(p).unwrap()))
            .unwrap()
    };
    let ok_layer = || vec![layer(&[E::File("f", 0o644, &[5u8; 10000])])];
    check(
        "digest mismatch",
        ok_layer(),
        "digest mismatch",
        &|d: &Path| {
            let p = blob_of(d, &|b| b.starts_with(&[0x1f, 0x8b]));
            let mut b = fs::read(&p).unwrap();
            let l = b.len();
            b[l / 2] ^= 0xff;
            fs::write(&p, b).unwrap();
        },
    );
    check("truncated", ok_layer(), "sha256:", &|d: &Path| {
        let p = blob_of(d, &|b| b.starts_with(&[0x1f, 0x8b]));
        let b = fs::read(&p).unwrap();
        fs::write(&p, &b[..b.len() / 2]).unwrap();
    });
    check(
        "missing layer",
        ok_layer(),
        "is missing from",
        &|d: &Path| {
            fs::remove_file(blob_of(d, &|b| b.starts_with(&[0x1f, 0x8b]))).unwrap();
        },
    );
    check("malformed index", ok_layer(), "malformed", &|d: &Path| {
        fs::write(d.join("index.json"), b"{not json").unwrap();
    });
    check("wrong diff_id", ok_layer(), "diff_id", &|d: &Path| {
        // a layout whose config claims another diff_id: rewrite config, manifest, index
        let cfgp = blob_of(d, &|b| b.starts_with(b"{\"architecture\""));
        let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(&cfgp).unwrap()).unwrap();
        cfg["rootfs"]["diff_ids"][0] = serde_json::json!(sha(b"other"));
        let cb = serde_json::to_vec(&cfg).unwrap();
        fs::write(d.join("blobs/sha256").join(&sha(&cb)[7..]), &cb).unwrap();
        let manp = blob_of(d, &|b| b.starts_with(b"{\"config\""));
        let mut man: serde_json::Value = serde_json::from_slice(&fs::read(&manp).unwrap()).unwrap();
        man["config"]["digest"] = serde_json::json!(sha(&cb));
        man["config"]["size"] = serde_json::json!(cb.len());
        let mb = serde_json::to_vec(&man).unwrap();
        fs::write(d.join("blobs/sha256").join(&sha(&mb)[7..]), &mb).unwrap();
        let mut idx: serde_json::Value =
            serde_json::from_slice(&fs::read(d.join("index.json")).unwrap()).unwrap();
        idx["manifests"][0]["digest"] = serde_json::json!(sha(&mb));
        idx["manifests"][0]["size"] = serde_json::json!(mb.len());
        fs::write(d.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    });
    // a truncated archive
    let tarp = env.path("trunc.tar");
    tar_dir(&env.path("good"), &tarp);
    let b = fs::read(&tarp).unwrap();
    fs::write(&tarp, &b[..b.len() / 3]).unwrap();
    let err = env.fails(&["import", tarp.to_str().unwrap()]);
    assert!(err.contains("trunc.tar"), "{err}");
    assert_eq!(store_files(&env.store()), before);
    // the existing image still works
    let bd = env.path("b");
    env.ok(&["bundle", "good", bd.to_str().unwrap()]);
    assert_eq!(fs::read(bd.join("rootfs/etc/ok")).unwrap(), b"ok");
}

#[test]
fn racing_imports_of_one_image() {
    let env = Env::new("race");
    let l1 = layer(&[E::Dir("a/", 0o755), E::File("a/f", 0o644, &[1u8; 300_000])]);
    let l2 = layer(&[E::File("b", 0o644, &[2u8; 300_000])]);
    oci_layout(
        &env.path("img"),
        "x",
        &[(gzip(&l1), l1.clone()), (gzip(&l2), l2.clone())],
        &["sh"],
    );
    let src = env.path("img");
    let kids: Vec<_> = (0..4)
        .map(|i| {
            std::process::Command::new(BIN)
                .arg("--store")
                .arg(env.store())
                .args(["import", src.to_str().unwrap(), "--name", &format!("r{i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(store_files(&env.store()), (4, 2, 0));
    let images: serde_json::Value = serde_json::from_str(&env.ok(&["images", "--json"])).unwrap();
    assert_eq!(images.as_array().unwrap().len(), 4);
}
