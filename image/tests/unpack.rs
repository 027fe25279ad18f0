//! Layer unpacking as umoci and containerd do it: entry paths and hardlink targets resolved
//! inside the image's root, absolute symlinks meaning the image's own root (issue 19).
//! Needs root (owners, overlay mounts).
mod common;
use common::*;
use std::fs;

/// The import of the issue: a one-layer docker-archive with `usr/lib/`, the symlink
/// `lib -> /usr/lib` and then the file `lib/foo`: the file lands at `usr/lib/foo`, as
/// `umoci unpack`, docker and containerd put it.
#[test]
fn absolute_symlink_parent_resolves_in_the_image_root() {
    let env = Env::new("abs-symlink");
    let l = layer(&[
        E::Dir("usr/", 0o755),
        E::Dir("usr/lib/", 0o755),
        E::Symlink("lib", "/usr/lib"),
        E::File("lib/foo", 0o644, b"foo"),
    ]);
    let archive = env.path("abs.docker.tar");
    docker_archive(&archive, "localhost/abs:1", &[l], &["/bin/sh"]);
    env.ok(&["import", archive.to_str().unwrap()]);
    let b = env.path("b");
    env.ok(&["bundle", "localhost/abs:1", b.to_str().unwrap()]);
    let r = b.join("rootfs");
    assert_eq!(fs::read(r.join("usr/lib/foo")).unwrap(), b"foo");
    assert_eq!(
        fs::read_link(r.join("lib")).unwrap().to_str(),
        Some("/usr/lib")
    );
    assert_eq!(
        tree(&r).keys().cloned().collect::<Vec<_>>(),
        ["lib", "usr", "usr/lib", "usr/lib/foo"]
    );
}

/// The same across layers: the symlink in a lower layer, the file in the one above. The
/// file goes through the lower layer's link (as in umoci's single tree, and containerd's
/// overlay view), not into a new `lib/` directory that would hide the link.
#[test]
fn absolute_symlink_of_a_lower_layer_resolves_in_the_image_root() {
    let env = Env::new("abs-symlink-lower");
    let base = layer(&[
        E::Dir("usr/", 0o755),
        E::Dir("usr/lib/", 0o750),
        E::File("usr/lib/old", 0o644, b"old"),
        E::Symlink("lib", "/usr/lib"),
        E::Symlink("rel", "usr/../usr/lib"),
    ]);
    let top = layer(&[
        E::File("lib/foo", 0o644, b"foo"),
        E::File("rel/bar", 0o600, b"bar"),
    ]);
    let archive = env.path("abs2.docker.tar");
    docker_archive(&archive, "localhost/abs:2", &[base, top], &["/bin/sh"]);
    env.ok(&["import", archive.to_str().unwrap()]);
    let b = env.path("b");
    env.ok(&["bundle", "localhost/abs:2", b.to_str().unwrap()]);
    let r = b.join("rootfs");
    let t = tree(&r);
    assert_eq!(
        t.keys().cloned().collect::<Vec<_>>(),
        [
            "lib",
            "rel",
            "usr",
            "usr/lib",
            "usr/lib/bar",
            "usr/lib/foo",
            "usr/lib/old"
        ]
    );
    assert_eq!(t["lib"].kind, "symlink");
    assert_eq!(t["usr/lib"].mode, 0o750, "the lower dir's mode kept");
}

/// One layer (the same diff_id) over two different bases, imported into one store: each
/// image's rootfs is that layer unpacked over its own base. Where the layer's files land
/// depends on the layers below it (a file through a lower symlink, a whiteout of what only
/// one base has, the attributes of implicit parents), so an unpacked layer is shared only
/// by images with the same layers below it (its chain ID), never by diff_id alone.
#[test]
fn a_layer_over_two_bases_is_unpacked_over_each() {
    let env = Env::new("layer-two-bases");
    let (plain_base, merged_base, top) = layer_over_two_bases();
    let (a, b) = (env.path("a.docker.tar"), env.path("b.docker.tar"));
    docker_archive(
        &a,
        "localhost/plain:1",
        &[plain_base, top.clone()],
        &["/bin/sh"],
    );
    docker_archive(&b, "localhost/merged:1", &[merged_base, top], &["/bin/sh"]);
    env.ok(&["import", a.to_str().unwrap()]);
    env.ok(&["import", b.to_str().unwrap()]);
    let (ba, bb) = (env.path("ba"), env.path("bb"));
    env.ok(&["bundle", "localhost/plain:1", ba.to_str().unwrap()]);
    env.ok(&["bundle", "localhost/merged:1", bb.to_str().unwrap()]);
    let ta = tree(&ba.join("rootfs"));
    assert_eq!(
        ta.keys().cloned().collect::<Vec<_>>(),
        ["lib", "lib/foo", "usr", "usr/lib"],
        "over the plain base"
    );
    assert_eq!(ta["lib"].kind, "dir");
    let tb = tree(&bb.join("rootfs"));
    assert_eq!(
        tb.keys().cloned().collect::<Vec<_>>(),
        ["lib", "usr", "usr/lib", "usr/lib/foo"],
        "over the usrmerged base"
    );
    assert_eq!(tb["lib"].kind, "symlink");
    // four layer dirs: the top layer twice, one over each base
    let n = fs::read_dir(env.store().join("layers")).unwrap().count();
    assert_eq!(n, 4, "layer dirs in the store");
    env.ok(&["rm", ba.to_str().unwrap()]);
    env.ok(&["rm", bb.to_str().unwrap()]);
}

/// Names and links that point outside stay inside the image's root, as umoci and
/// containerd contain them: an absolute entry name, a symlink to a host path, a relative
/// symlink that climbs past the root, `a/../b`. Hardlinks to host files find nothing there.
#[test]
fn escapes_are_contained_in_the_image_root() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new("contained");
    let outside = env.path("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"host").unwrap();
    let out_s: &'static str = Box::leak(outside.to_str().unwrap().to_string().into_boxed_str());
    let secret: &'static str = Box::leak(format!("{out_s}/secret").into_boxed_str());
    let l = layer(&[
        E::Raw(b"/abs".to_vec()),
        E::Symlink("l", out_s),
        E::File("l/x", 0o644, b"x"),
        E::Symlink("up", "../../../../../../../.."),
        E::File("up/y", 0o644, b"y"),
        E::Raw(b"a/../b".to_vec()),
    ]);
    let src = env.path("img");
    oci_layout(&src, "c", &[(gzip(&l), l.clone())], &["sh"]);
    env.ok(&["import", src.to_str().unwrap(), "--name", "c"]);
    let b = env.path("b");
    env.ok(&["bundle", "c", b.to_str().unwrap()]);
    let r = b.join("rootfs");
    let inside = r.join(out_s.trim_start_matches('/'));
    assert_eq!(fs::read(inside.join("x")).unwrap(), b"x");
    assert!(r.join("abs").is_file() && r.join("b").is_file());
    assert_eq!(fs::read(r.join("y")).unwrap(), b"y");
    assert!(!r.join("a").exists());

    for (n, entries) in [
        vec![E::Hardlink("h", secret)],
        vec![E::Symlink("l", out_s), E::Hardlink("h", "l/secret")],
    ]
    .into_iter()
    .enumerate()
    {
        let l = layer(&entries);
        let src = env.path(&format!("bad{n}"));
        oci_layout(&src, "bad", &[(gzip(&l), l.clone())], &["sh"]);
        let err = env.fails(&["import", src.to_str().unwrap(), "--name", "bad"]);
        assert!(
            err.contains("\"h\"") && err.contains("does not exist"),
            "{err}"
        );
    }
    let names: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["secret"], "wrote outside");
    assert_eq!(fs::metadata(outside.join("secret")).unwrap().nlink(), 1);
}

/// mtimes and atimes from the tar (PAX records with fractions, or the header's mtime),
/// on files, symlinks and directories (their mtimes). (The differential test cannot compare atimes:
/// umoci reads every file after unpacking.)
#[test]
fn times_from_the_tar() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new("times");
    let mut t = tar::Builder::new(Vec::new());
    let mut entry = |pax: &[(&str, &[u8])], kind: tar::EntryType, path: &str| {
        if !pax.is_empty() {
            t.append_pax_extensions(pax.iter().copied()).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        if kind == tar::EntryType::Symlink {
            t.append_link(&mut h, path, "f").unwrap();
        } else {
            t.append_data(&mut h, path, std::io::empty()).unwrap();
        }
    };
    entry(&[], tar::EntryType::Directory, "d/");
    entry(
        &[
            ("mtime", b"1600000000.123456789"),
            ("atime", b"1500000000.5"),
        ],
        tar::EntryType::Regular,
        "d/f",
    );
    entry(&[], tar::EntryType::Regular, "d/plain");
    entry(
        &[("atime", b"1400000000.25")],
        tar::EntryType::Symlink,
        "d/s",
    );
    entry(
        &[("mtime", b"1300000000"), ("atime", b"1200000000")],
        tar::EntryType::Directory,
        "e/",
    );
    let l = t.into_inner().unwrap();
    let src = env.path("img");
    oci_layout(&src, "t", &[(gzip(&l), l.clone())], &["sh"]);
    env.ok(&["import", src.to_str().unwrap(), "--name", "t"]);
    let b = env.path("b");
    env.ok(&["bundle", "t", b.to_str().unwrap()]);
    let r = b.join("rootfs");
    let times = |p: &str| {
        let m = fs::symlink_metadata(r.join(p)).unwrap();
        ((m.mtime(), m.mtime_nsec()), (m.atime(), m.atime_nsec()))
    };
    assert_eq!(
        times("d/f"),
        ((1_600_000_000, 123_456_789), (1_500_000_000, 500_000_000))
    );
    assert_eq!(times("d/plain"), ((1_600_000_000, 0), (1_600_000_000, 0)));
    assert_eq!(
        times("d/s"),
        ((1_600_000_000, 0), (1_400_000_000, 250_000_000))
    );
    // a directory's atime is set too, but the import reads every directory afterwards (its
    // size), which moves the atime (relatime): only the mtime is checked
    assert_eq!(times("e").0, (1_300_000_000, 0));
    assert_eq!(times("d").0, (1_600_000_000, 0));
}

/// A foreign (non-distributable) layer whose blob is not in the image is skipped with a note
/// (the layers above it unpacked without it); the same image imported again with the blob
/// gets the layer, and the layers above it, unpacked for real; gc then drops the stand-ins.
#[test]
fn foreign_layer_without_its_blob_is_skipped_with_a_note() {
    let env = Env::new("foreign-layer");
    let layers = [
        layer(&[E::File("base", 0o644, b"base")]),
        layer(&[
            E::Dir("win/", 0o755),
            E::File("win/foreign", 0o644, b"foreign"),
        ]),
        layer(&[
            E::File("win/top", 0o644, b"top"),
            E::File("top", 0o644, b"top"),
        ]),
    ];
    let (without, with) = (env.path("without"), env.path("with"));
    layout_with_foreign_layer(&without, &layers, 1, false);
    layout_with_foreign_layer(&with, &layers, 1, true);

    let o = env.run(&[
        "import",
        without.to_str().unwrap(),
        "--name",
        "localhost/f:1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("is a foreign (non-distributable) layer (urls: https://example.invalid/foreign.tar.gz) and its blob is not in")
            && err.contains("skipped"),
        "{err}"
    );
    let b = env.path("b");
    env.ok(&["bundle", "localhost/f:1", b.to_str().unwrap()]);
    assert_eq!(
        tree(&b.join("rootfs")).keys().cloned().collect::<Vec<_>>(),
        ["base", "top", "win", "win/top"]
    );
    env.ok(&["rm", b.to_str().unwrap()]);

    // the blob comes later: the layer and the one above it unpacked for real
    let out = env.ok(&["import", with.to_str().unwrap(), "--name", "localhost/f:1"]);
    assert!(
        out.contains("2 layers unpacked, 1 already in the store"),
        "{out}"
    );
    env.ok(&["bundle", "localhost/f:1", b.to_str().unwrap()]);
    assert_eq!(
        tree(&b.join("rootfs")).keys().cloned().collect::<Vec<_>>(),
        ["base", "top", "win", "win/foreign", "win/top"]
    );
    env.ok(&["rm", b.to_str().unwrap()]);
    // base, the skipped stand-in and the top over it, the real layer and the top over it
    assert_eq!(fs::read_dir(env.store().join("layers")).unwrap().count(), 5);
    env.ok(&["gc"]);
    assert_eq!(fs::read_dir(env.store().join("layers")).unwrap().count(), 3);
}
