//! `capsa-image build`, checked from outside: the exported image's layers (each layer tar's
//! entries with type, mode, owner, content), its history and config, the files in a bundle
//! of it, what it prints when run by capsa; the cache hit on a rebuild and the miss after a
//! change; a failing RUN and bad input leaving nothing behind; and the same Dockerfile built
//! by `podman build` (buildah, runc) for comparison, the result run by capsa, podman and
//! containerd. RUN steps run with the capsa binary named by CAPSA_RUNTIME. Ignored by plain
//! `cargo test`: hack/image-test.sh builds the busybox image and runs them.
mod common;
use common::clients::*;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BB: &str = "localhost/bb:1";

fn runtime() -> String {
    std::env::var("CAPSA_RUNTIME").expect(
        "CAPSA_RUNTIME must name the capsa binary RUN steps use (hack/image-test.sh sets it)",
    )
}

/// A store with the busybox image as localhost/bb:1.
fn env_with_busybox(name: &str) -> Env {
    let env = Env::new(name);
    let bb = images_dir().join("test-busybox");
    env.ok(&["import", bb.to_str().unwrap(), "--name", BB]);
    env
}

/// Writes `files` (path, content) under DIR/ctx and returns the context dir.
fn context(env: &Env, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = env.path(name);
    for (p, c) in files {
        let f = dir.join(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, c).unwrap();
    }
    dir
}

/// `capsa-image build ARGS CTX`, RUN steps' cgroups under the test's own parent unless ARGS
/// name one.
fn build(env: &Env, ctx: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--store").arg(env.store()).arg("build");
    if !args.contains(&"--cgroup-parent") {
        cmd.arg("--cgroup-parent").arg(env.cgroup_parent());
    }
    cmd.args(args)
        .arg(ctx)
        .env("CAPSA_RUNTIME", runtime())
        .output()
        .expect("run capsa-image build")
}

/// Builds and asserts success; returns (stdout, stderr).
fn build_ok(env: &Env, ctx: &Path, args: &[&str]) -> (String, String) {
    let o = build(env, ctx, args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "build {args:?} failed:\n{out}\n{err}");
    (out, err)
}

fn cache_hits(out: &str) -> usize {
    out.lines()
        .filter(|l| l.starts_with("--> using cache"))
        .count()
}

/// The last line of a build's output: the image id.
fn image_id(out: &str) -> String {
    let id = out.lines().last().unwrap_or_default().to_string();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "no image id at the end of:\n{out}"
    );
    id
}

/// One entry of a layer tar: kind, mode, uid, gid, and the link target or content digest.
type Entry = (char, u32, u64, u64, String);
type Entries = BTreeMap<String, Entry>;

fn entries(tar_bytes: &[u8]) -> Entries {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(tar_bytes);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let h = e.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Char => 'c',
            _ => 'f',
        };
        let extra = match kind {
            'l' | 'h' => String::from_utf8_lossy(&e.link_name_bytes().unwrap()).into_owned(),
            'f' => {
                let mut b = Vec::new();
                e.read_to_end(&mut b).unwrap();
                sha(&b)
            }
            _ => String::new(),
        };
        out.insert(
            path,
            (
                kind,
                h.mode().unwrap() & 0o7777,
                h.uid().unwrap(),
                h.gid().unwrap(),
                extra,
            ),
        );
    }
    out
}

/// A docker-archive's image: its config and each layer's entries.
struct Saved {
    /// sha256 of the config file
    id: String,
    config: Value,
    layers: Vec<Entries>,
}

fn read_docker_archive(tar_path: &Path, dir: &Path) -> Saved {
    fs::create_dir_all(dir).unwrap();
    tar::Archive::new(fs::File::open(tar_path).unwrap())
        .unpack(dir)
        .unwrap();
    let m: Value = serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let raw = fs::read(dir.join(m[0]["Config"].as_str().unwrap())).unwrap();
    let config: Value = serde_json::from_slice(&raw).unwrap();
    let layers = m[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| entries(&fs::read(dir.join(l.as_str().unwrap())).unwrap()))
        .collect();
    Saved {
        id: sha(&raw),
        config,
        layers,
    }
}

fn export(env: &Env, image: &str, name: &str) -> Saved {
    let tar = env.path(&format!("{name}.docker.tar"));
    env.ok(&[
        "export",
        image,
        tar.to_str().unwrap(),
        "--format",
        "docker-archive",
    ]);
    read_docker_archive(&tar, &env.path(name))
}

fn file(kind: char, mode: u32, owner: u64, content: &[u8]) -> Entry {
    (kind, mode, owner, owner, sha(content))
}

fn dir(mode: u32, owner: u64) -> Entry {
    ('d', mode, owner, owner, String::new())
}

/// Asserts two layers' entries are equal, naming only the entries that differ.
fn assert_entries(got: &Entries, want: &Entries, what: &str) {
    let keys: std::collections::BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| format!("{k}: {:?} != {:?}", got.get(k), want.get(k)))
        .collect();
    assert!(diffs.is_empty(), "{what}:\n{}", diffs.join("\n"));
}

fn assert_layer(got: &Entries, want: &[(&str, Entry)], what: &str) {
    let want: Entries = want
        .iter()
        .map(|(p, e)| (p.to_string(), e.clone()))
        .collect();
    assert_entries(got, &want, what);
}

fn header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// A gzip tar with t/, t/x and t/link -> x (owned 0:0).
fn tarball() -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    let mut h = header();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_mtime(1_600_000_000);
    t.append_data(&mut h, "t/", std::io::empty()).unwrap();
    let mut h = header();
    h.set_mode(0o644);
    h.set_size(6);
    h.set_mtime(1_600_000_000);
    t.append_data(&mut h, "t/x", &b"intar\n"[..]).unwrap();
    let mut h = header();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    h.set_mtime(1_600_000_000);
    t.append_link(&mut h, "t/link", "x").unwrap();
    gzip(&t.into_inner().unwrap())
}

const EVERY: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=localhost/bb:1
FROM $BASE AS base
ARG V=1
ARG UNSET
ENV E1=one E2="two words" \
    E3=$V
LABEL a=b "c d"=e
MAINTAINER capsa tests
WORKDIR /app
RUN echo "v=$V e1=$E1 e3=$E3 pwd=$(pwd) unset=[$UNSET]" > run.txt && \
    mkdir -p d && chown 65534:65534 d
COPY a.txt .
COPY --chown=65534:65534 --chmod=640 sub/ /app/sub/
COPY *.txt /glob/
ADD t.tar.gz /opt/
ADD a.txt /added/
USER nobody
RUN id -u > /tmp/uid && touch /tmp/by-nobody
EXPOSE 8080 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --retries=2 CMD true
SHELL ["/bin/sh", "-ec"]
RUN echo shelled > /tmp/shell
ONBUILD RUN echo triggered > /tmp/onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/run.txt"]

FROM localhost/bb:1
COPY --from=base /app/run.txt /from-name.txt
COPY --from=0 /opt/t/x /from-index.txt
RUN rm /etc/group && rm -r /var/www && mkdir /var/www && echo new > /var/www/index.html
CMD ["cat", "/from-name.txt"]
"#;

fn every_context(env: &Env) -> PathBuf {
    let tgz = tarball();
    let ctx = context(
        env,
        "ctx",
        &[
            ("Dockerfile", EVERY.as_bytes()),
            (".dockerignore", b"sub/ignored*\n*.log\n"),
            ("a.txt", b"hello\n"),
            ("debug.log", b"not copied\n"),
            ("sub/b.txt", b"sub\n"),
            ("sub/ignored1", b"not copied\n"),
            ("sub/inner/c.txt", b"inner\n"),
            ("t.tar.gz", &tgz),
        ],
    );
    fs::set_permissions(ctx.join("sub/b.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    ctx
}

#[test]
#[ignore = "needs the make-images.sh busybox image and CAPSA_RUNTIME: run hack/image-test.sh"]
fn every_instruction_checked_from_outside() {
    let env = env_with_busybox("build-every");
    let ctx = every_context(&env);
    let (out, err) = build_ok(
        &env,
        &ctx,
        &[
            "-t",
            "localhost/built:1",
            "--network",
            "none",
            "--build-arg",
            "V=7",
            "--build-arg",
            "NOTUSED=x",
        ],
    );
    // output a person can follow
    assert!(out.starts_with("STEP 1/29: FROM $BASE AS base\n"), "{out}");
    assert!(
        out.contains("STEP 24/29: CMD [\"cat /app/run.txt\"]\n"),
        "{out}"
    );
    assert!(
        out.contains("STEP 29/29: CMD [\"cat\", \"/from-name.txt\"]\n"),
        "{out}"
    );
    assert!(
        out.contains("Successfully tagged localhost/built:1\n"),
        "{out}"
    );
    assert_eq!(cache_hits(&out), 0, "{out}");
    assert!(err.contains("not consumed by any ARG: NOTUSED"), "{err}");
    let id = image_id(&out);

    // the base stage alone: every step comes from the cache of the build above
    let (out2, _) = build_ok(
        &env,
        &ctx,
        &[
            "--target",
            "base",
            "-t",
            "localhost/built-base:1",
            "--build-arg",
            "V=7",
        ],
    );
    assert_eq!(cache_hits(&out2), 23, "{out2}");
    assert!(out2.contains("STEP 24/24: CMD"), "{out2}");

    // ---- the base stage's image, exported
    let base = export(&env, "localhost/built-base:1", "base");
    let cfg = &base.config["config"];
    assert_eq!(
        cfg["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "E1=one",
            "E2=two words",
            "E3=7"
        ])
    );
    assert_eq!(cfg["WorkingDir"], "/app");
    assert_eq!(cfg["User"], "nobody");
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(cfg["Cmd"], serde_json::json!(["cat /app/run.txt"]));
    assert_eq!(cfg["Labels"]["a"], "b");
    assert_eq!(cfg["Labels"]["c d"], "e");
    let bb = export(&env, BB, "bb");
    let base_labels = bb.config["config"]["Labels"].as_object().unwrap();
    assert!(!base_labels.is_empty());
    for (k, v) in base_labels {
        assert_eq!(&cfg["Labels"][k], v, "the base image's label {k} is kept");
    }
    assert_eq!(
        cfg["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}})
    );
    assert_eq!(cfg["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(cfg["StopSignal"], "SIGTERM");
    assert_eq!(
        cfg["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000i64, "Retries": 2})
    );
    assert_eq!(cfg["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(
        cfg["OnBuild"],
        serde_json::json!(["RUN echo triggered > /tmp/onbuild"])
    );
    assert_eq!(base.config["author"], "capsa tests");

    // history: the base image's entry, then one per instruction; layers only for RUN/COPY/ADD
    let hist = base.config["history"].as_array().unwrap();
    let by: Vec<&str> = hist
        .iter()
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    let empty: Vec<bool> = hist
        .iter()
        .map(|h| h["empty_layer"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(hist.len(), 24, "{by:#?}");
    assert_eq!(
        empty,
        [
            false, true, true, true, true, true, true, false, false, false, false, false, false,
            true, false, true, true, true, true, true, false, true, true, true
        ],
        "{by:#?}"
    );
    assert_eq!(by[1], "/bin/sh -c #(nop) ARG V=1");
    assert_eq!(by[2], "/bin/sh -c #(nop) ARG UNSET");
    assert!(
        by[3].starts_with("/bin/sh -c #(nop) ENV E1=one E2=\"two words\" "),
        "{}",
        by[3]
    );
    assert_eq!(by[6], "/bin/sh -c #(nop) WORKDIR /app");
    assert!(
        by[7].starts_with("|1 V=7 /bin/sh -c echo \"v=$V e1=$E1"),
        "RUN with the build args in scope: {}",
        by[7]
    );
    let hashed = |s: &str, kw: &str, kind: &str, dest: &str| {
        let rest = s
            .strip_prefix(&format!("/bin/sh -c #(nop) {kw} {kind}:"))
            .unwrap_or_else(|| panic!("{s}"));
        assert_eq!(rest.len(), 64 + format!(" in {dest} ").len(), "{s}");
        assert!(rest.ends_with(&format!(" in {dest} ")), "{s}");
    };
    hashed(by[8], "COPY", "file", ".");
    hashed(by[9], "COPY", "dir", "/app/sub/");
    hashed(by[10], "COPY", "file", "/glob/");
    hashed(by[11], "ADD", "file", "/opt/");
    assert_eq!(by[13], "/bin/sh -c #(nop) USER nobody");
    assert_eq!(
        by[14],
        "|1 V=7 /bin/sh -c id -u > /tmp/uid && touch /tmp/by-nobody"
    );
    assert_eq!(by[19], "/bin/sh -c #(nop) SHELL [\"/bin/sh\", \"-ec\"]");
    assert_eq!(by[20], "|1 V=7 /bin/sh -ec echo shelled > /tmp/shell");
    assert_eq!(
        by[21],
        "/bin/sh -c #(nop) ONBUILD RUN echo triggered > /tmp/onbuild"
    );
    // `history` lists them newest first: a layer's entry with its size (du of the layer
    // dir), the others 0
    let rows: Value =
        serde_json::from_str(&env.ok(&["history", "localhost/built-base:1", "--json"])).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 24, "{rows:#?}");
    // the layer dirs are named by chain ID: the layers bottom first
    let diff_ids: Vec<String> = rows
        .iter()
        .rev()
        .filter_map(|r| r["layer"].as_str().map(String::from))
        .collect();
    let chains = chain_ids(&diff_ids);
    let mut nth = 0;
    for (r, (h, e)) in rows.iter().rev().zip(by.iter().zip(&empty)) {
        assert_eq!(r["created_by"], *h);
        assert_eq!(r["empty_layer"], *e);
        let size = r["size"].as_u64().unwrap();
        if *e {
            assert_eq!(size, 0, "{h}");
        } else {
            let hex = &chains[nth][7..];
            nth += 1;
            assert!(size > 0, "{h}");
            assert_eq!(
                size,
                du(&[env.store().join("layers").join(hex).join("fs")]),
                "{h}"
            );
        }
    }
    let text = env.ok(&["history", "localhost/built-base:1"]);
    assert_eq!(text.lines().count(), 25, "a header and 24 entries:\n{text}");
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .contains(" 0 B  /bin/sh -c #(nop) CMD"),
        "{text}"
    );

    // each layer holds what its instruction changed, with the modes and owners docker gives
    let l = &base.layers;
    assert_eq!(l.len(), 9);
    assert_layer(
        &l[1],
        &[
            ("app/", dir(0o755, 0)),
            ("app/d/", dir(0o755, 65534)),
            (
                "app/run.txt",
                file('f', 0o644, 0, b"v=7 e1=one e3=7 pwd=/app unset=[]\n"),
            ),
        ],
        "RUN: the workdir it ran in, its files; no mount point left behind",
    );
    assert_layer(
        &l[2],
        &[
            ("app/", dir(0o755, 0)),
            ("app/a.txt", file('f', 0o644, 0, b"hello\n")),
        ],
        "COPY a.txt .",
    );
    assert_layer(
        &l[3],
        &[
            ("app/", dir(0o755, 0)),
            ("app/sub/", dir(0o755, 65534)),
            ("app/sub/b.txt", file('f', 0o640, 65534, b"sub\n")),
            ("app/sub/inner/", dir(0o640, 65534)),
            ("app/sub/inner/c.txt", file('f', 0o640, 65534, b"inner\n")),
        ],
        "COPY --chown --chmod of a directory, .dockerignore applied",
    );
    assert_layer(
        &l[4],
        &[
            ("glob/", dir(0o755, 0)),
            ("glob/a.txt", file('f', 0o644, 0, b"hello\n")),
        ],
        "COPY *.txt",
    );
    assert_layer(
        &l[5],
        &[
            ("opt/", dir(0o755, 0)),
            ("opt/t/", dir(0o755, 0)),
            ("opt/t/link", ('l', 0o777, 0, 0, "x".into())),
            ("opt/t/x", file('f', 0o644, 0, b"intar\n")),
        ],
        "ADD of a local tar.gz unpacks it",
    );
    assert_layer(
        &l[6],
        &[
            ("added/", dir(0o755, 0)),
            ("added/a.txt", file('f', 0o644, 0, b"hello\n")),
        ],
        "ADD of a plain file copies it",
    );
    assert_layer(
        &l[7],
        &[
            ("tmp/", dir(0o1777, 0)),
            ("tmp/by-nobody", file('f', 0o644, 65534, b"")),
            ("tmp/uid", file('f', 0o644, 65534, b"65534\n")),
        ],
        "RUN as USER nobody",
    );
    assert_layer(
        &l[8],
        &[
            ("tmp/", dir(0o1777, 0)),
            ("tmp/shell", file('f', 0o644, 65534, b"shelled\n")),
        ],
        "RUN through SHELL",
    );

    // ---- the final stage: multi-stage copies by name and by index
    let fin = export(&env, "localhost/built:1", "final");
    assert_eq!(fin.layers.len(), 4);
    assert_layer(
        &fin.layers[1],
        &[(
            "from-name.txt",
            file('f', 0o644, 0, b"v=7 e1=one e3=7 pwd=/app unset=[]\n"),
        )],
        "COPY --from=base",
    );
    assert_layer(
        &fin.layers[2],
        &[("from-index.txt", file('f', 0o644, 0, b"intar\n"))],
        "COPY --from=0",
    );
    assert_layer(
        &fin.layers[3],
        &[
            ("etc/", dir(0o755, 0)),
            ("etc/.wh.group", file('f', 0o644, 0, b"")),
            ("var/", dir(0o755, 0)),
            ("var/www/", dir(0o755, 0)),
            ("var/www/.wh..wh..opq", file('f', 0o644, 0, b"")),
            ("var/www/index.html", file('f', 0o644, 0, b"new\n")),
        ],
        "RUN rm: a whiteout; rm -r + mkdir: an opaque directory",
    );
    // the layers the build moved into the store (the steps' upper dirs) are those an import
    // of the exported image unpacks from the blobs: entries and xattrs (opaque marker kept,
    // overlay's own dropped)
    let oci = env.path("final.oci");
    env.ok(&[
        "export",
        "localhost/built:1",
        oci.to_str().unwrap(),
        "--format",
        "oci",
    ]);
    let store2 = env.path("store2");
    let o = Command::new(BIN)
        .arg("--store")
        .arg(&store2)
        .args(["import", oci.to_str().unwrap(), "--name", "again:1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let diff_ids: Vec<String> = fin.config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    // layer dirs are named by chain ID
    let chains: Vec<String> = chain_ids(&diff_ids)
        .iter()
        .map(|c| c[7..].to_string())
        .collect();
    for hex in &chains {
        let ours = env.store().join("layers").join(hex).join("fs");
        let imported = store2.join("layers").join(hex).join("fs");
        assert_same_tree(&ours, &imported);
        for p in tree(&ours).keys() {
            assert_eq!(
                xattrs(&ours.join(p)),
                xattrs(&imported.join(p)),
                "xattrs of {p}"
            );
        }
    }
    let www = env
        .store()
        .join("layers")
        .join(&chains[3])
        .join("fs/var/www");
    assert_eq!(
        xattrs(&www),
        vec![("trusted.overlay.opaque".to_string(), b"y".to_vec())]
    );
    assert_eq!(fin.id, id, "the id printed is the exported config's digest");

    // ---- the rootfs of a bundle of the base stage, and the image run by capsa
    let b = env.path("bundle");
    env.ok(&["bundle", "localhost/built-base:1", b.to_str().unwrap()]);
    let r = b.join("rootfs");
    assert_eq!(
        fs::read_to_string(r.join("app/run.txt")).unwrap(),
        "v=7 e1=one e3=7 pwd=/app unset=[]\n"
    );
    assert!(
        !r.join("app/sub/ignored1").exists(),
        ".dockerignore'd file copied"
    );
    assert!(!r.join("glob/debug.log").exists());
    let md = fs::metadata(r.join("tmp/by-nobody")).unwrap();
    assert_eq!((md.uid(), md.gid()), (65534, 65534));
    assert_eq!(
        fs::read_link(r.join("opt/t/link")).unwrap(),
        PathBuf::from("x")
    );
    let spec: Value = serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["cwd"], "/app");
    assert_eq!(spec["process"]["user"]["uid"], 65534);
    let out = run_bundle(&env, &b, "capsa-image-build-every");
    assert_eq!(out, "v=7 e1=one e3=7 pwd=/app unset=[]\n");
    env.ok(&["rm", b.to_str().unwrap()]);

    // ---- ONBUILD: a build FROM the base stage runs the trigger, and clears it
    let ctx2 = context(
        &env,
        "ctx2",
        &[(
            "Dockerfile",
            b"FROM localhost/built-base:1\nRUN cat /tmp/onbuild\n",
        )],
    );
    let (out, _) = build_ok(&env, &ctx2, &["-t", "localhost/child:1"]);
    assert!(
        out.contains("STEP 2/3: RUN echo triggered > /tmp/onbuild\n"),
        "{out}"
    );
    assert!(
        out.contains("\ntriggered\n"),
        "the next RUN sees the trigger's file: {out}"
    );
    let child = export(&env, "localhost/child:1", "child");
    assert!(child.config["config"]
        .get("OnBuild")
        .is_none_or(|v| v.is_null()));
    assert_eq!(child.layers.len(), base.layers.len() + 2);
}

/// The xattrs of `p` (not following a symlink), sorted.
fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 65536];
    // SAFETY: c is a valid C string, names a writable buffer of its length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(n >= 0, "llistxattr {}", p.display());
    let mut out = Vec::new();
    for k in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|k| !k.is_empty())
    {
        let kc = std::ffi::CString::new(k).unwrap();
        let mut v = vec![0u8; 65536];
        // SAFETY: valid C strings, v a writable buffer of its length.
        let m = unsafe { libc::lgetxattr(c.as_ptr(), kc.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        assert!(m >= 0, "lgetxattr {}", p.display());
        v.truncate(m as usize);
        out.push((String::from_utf8_lossy(k).into_owned(), v));
    }
    out.sort();
    out
}

/// Runs a bundle with capsa; returns its stdout.
fn run_bundle(env: &Env, b: &Path, id: &str) -> String {
    let root = env.path("capsa-root");
    let o = Command::new(runtime())
        .arg("--root")
        .arg(&root)
        .args(["run", "--bundle", b.to_str().unwrap(), id])
        .output()
        .unwrap();
    let _ = Command::new(runtime())
        .arg("--root")
        .arg(&root)
        .args(["delete", "-f", id])
        .output();
    assert!(
        o.status.success(),
        "capsa run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
#[ignore = "needs the make-images.sh busybox image and CAPSA_RUNTIME: run hack/image-test.sh"]
fn scratch_exec_form_run_leaves_no_mount_points() {
    let env = env_with_busybox("build-scratch");
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Dockerfile",
            b"FROM scratch\n\
              COPY --from=localhost/bb:1 /bin/busybox /bin/busybox\n\
              RUN [\"/bin/busybox\", \"mkdir\", \"-p\", \"/made/here\"]\n\
              CMD [\"/bin/busybox\", \"ls\", \"/made\"]\n",
        )],
    );
    let (out, _) = build_ok(&env, &ctx, &["-t", "localhost/scratch:1"]);
    assert!(out.contains("STEP 3/4: RUN [\"/bin/busybox\""), "{out}");
    let img = export(&env, "localhost/scratch:1", "img");
    assert_eq!(img.layers.len(), 2);
    let bb = fs::read("/bin/busybox").ok();
    assert_eq!(
        img.layers[0].keys().collect::<Vec<_>>(),
        ["bin/", "bin/busybox"]
    );
    assert_eq!(img.layers[0]["bin/busybox"].1, 0o755);
    if let Some(bb) = bb {
        // make-images.sh copies the host's busybox-static
        assert_eq!(img.layers[0]["bin/busybox"].4, sha(&bb));
    }
    // the runtime made /proc, /dev, /sys, /etc/hosts... in the mount-target layer, not here
    assert_layer(
        &img.layers[1],
        &[("made/", dir(0o755, 0)), ("made/here/", dir(0o755, 0))],
        "RUN in a scratch image",
    );
    let hist = img.config["history"].as_array().unwrap();
    assert_eq!(hist[1]["created_by"], "/bin/busybox mkdir -p /made/here");
    assert_eq!(hist.len(), 3);
    let b = env.path("bundle");
    env.ok(&["bundle", "localhost/scratch:1", b.to_str().unwrap()]);
    assert_eq!(run_bundle(&env, &b, "capsa-image-build-scratch"), "here\n");
    env.ok(&["rm", b.to_str().unwrap()]);
}

#[test]
#[ignore = "needs the make-images.sh busybox image and CAPSA_RUNTIME: run hack/image-test.sh"]
fn cache_hits_and_misses() {
    let env = env_with_busybox("build-cache");
    let ctx = context(
        &env,
        "ctx",
        &[
            (
                "Dockerfile",
                b"FROM localhost/bb:1\nARG A=1\nRUN echo $A > /a\nCOPY f.txt /f.txt\nRUN cat /f.txt /a > /g\n",
            ),
            ("f.txt", b"one\n"),
        ],
    );
    let (out, _) = build_ok(&env, &ctx, &["-t", "localhost/c:1"]);
    assert_eq!(cache_hits(&out), 0);
    let id1 = image_id(&out);

    // unchanged: every step from the cache, the same image
    let (out, _) = build_ok(&env, &ctx, &["-t", "localhost/c:2"]);
    assert_eq!(cache_hits(&out), 4, "{out}");
    assert_eq!(image_id(&out), id1);
    // a touched file with the same content is the same input
    let f = fs::File::options()
        .append(true)
        .open(ctx.join("f.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    drop(f);
    let (out, _) = build_ok(&env, &ctx, &[]);
    assert_eq!(image_id(&out), id1);

    // a changed file: the steps before it are cached, it and those after run again
    fs::write(ctx.join("f.txt"), b"two\n").unwrap();
    let (out, _) = build_ok(&env, &ctx, &["-t", "localhost/c:3"]);
    assert_eq!(cache_hits(&out), 2, "{out}");
    let id3 = image_id(&out);
    assert_ne!(id3, id1);
    let img = export(&env, "localhost/c:3", "c3");
    assert_eq!(img.layers.last().unwrap()["g"].4, sha(b"two\n1\n"));

    // a changed build arg misses from the ARG on
    let (out, _) = build_ok(&env, &ctx, &["--build-arg", "A=2", "-t", "localhost/c:4"]);
    assert_eq!(cache_hits(&out), 0, "{out}");
    let img = export(&env, "localhost/c:4", "c4");
    assert_eq!(img.layers.last().unwrap()["g"].4, sha(b"two\n2\n"));

    // --no-cache runs every step
    let (out, _) = build_ok(&env, &ctx, &["--no-cache"]);
    assert_eq!(cache_hits(&out), 0, "{out}");
    assert_eq!(out.matches("STEP ").count(), 5);

    // gc keeps the cache (and the untagged images it names); gc --build-cache drops it
    env.ok(&[
        "rmi",
        "localhost/c:1",
        "localhost/c:2",
        "localhost/c:3",
        "localhost/c:4",
    ]);
    env.ok(&["gc"]);
    let (out, _) = build_ok(&env, &ctx, &[]);
    assert_eq!(cache_hits(&out), 4, "{out}");
    let gc = env.ok(&["gc", "--build-cache"]);
    assert!(gc.starts_with("dropped "), "{gc}");
    let (blobs, layers, tmp) = store_files(&env.store());
    assert_eq!((layers, tmp), (1, 0), "only busybox is left");
    assert_eq!(blobs, 3, "busybox's layer, config, manifest");
    let (out, _) = build_ok(&env, &ctx, &[]);
    assert_eq!(cache_hits(&out), 0, "{out}");
}

/// Nothing of a build is left: no bundle, no mount, no temp dir, no cgroup.
fn assert_nothing_left(env: &Env) {
    assert_eq!(env.ok(&["ls", "--json"]).trim(), "[]");
    assert_eq!(
        fs::read_dir(env.store().join("containers"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(fs::read_dir(env.store().join("tmp")).unwrap().count(), 0);
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = env.dir.to_string_lossy().to_string();
    assert!(
        !mounts.lines().any(|l| l.contains(&prefix)),
        "mounts left under {prefix}"
    );
    // the steps' cgroups (under the test's --cgroup-parent: tests run in parallel)
    let left: Vec<PathBuf> = cgroup_dirs(&env.cgroup_parent())
        .iter()
        .flat_map(|d| cgroup_children(d))
        .collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
}

/// The interface names in a /proc/net/dev (its rows after two header lines), sorted.
fn interfaces(net_dev: &str) -> Vec<String> {
    let mut v: Vec<String> = net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs the make-images.sh busybox image and CAPSA_RUNTIME: run hack/image-test.sh"]
fn network_none_and_host() {
    let env = env_with_busybox("build-net");
    // what a RUN step sees: interfaces, resolv.conf; the second RUN's own --network=none
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Dockerfile",
            b"FROM localhost/bb:1\n\
              RUN cat /proc/net/dev > /net && cat /etc/resolv.conf > /resolv\n\
              RUN --network=none cat /proc/net/dev > /net-step\n",
        )],
    );
    let seen = |args: &[&str], name: &str| -> (String, String, String) {
        let mut a = vec!["--no-cache", "-t", name];
        a.extend_from_slice(args);
        build_ok(&env, &ctx, &a);
        let b = env.path(&name.replace([':', '/'], "-"));
        env.ok(&["bundle", name, b.to_str().unwrap()]);
        let r = b.join("rootfs");
        let got = (
            fs::read_to_string(r.join("net")).unwrap(),
            fs::read_to_string(r.join("resolv")).unwrap(),
            fs::read_to_string(r.join("net-step")).unwrap(),
        );
        env.ok(&["rm", b.to_str().unwrap()]);
        got
    };
    let host_ifaces = interfaces(&fs::read_to_string("/proc/net/dev").unwrap());
    assert!(host_ifaces.len() > 1, "{host_ifaces:?}");

    // host (the default): the host's interfaces and resolv.conf
    let (net, resolv, step) = seen(&[], "localhost/net:default");
    assert_eq!(interfaces(&net), host_ifaces);
    assert_eq!(resolv, fs::read_to_string("/etc/resolv.conf").unwrap());
    assert_eq!(interfaces(&step), ["lo"], "RUN --network=none");
    let (net, _, _) = seen(&["--network", "host"], "localhost/net:host");
    assert_eq!(interfaces(&net), host_ifaces);

    // none: a namespace of its own, loopback only, an empty resolv.conf
    let (net, resolv, step) = seen(&["--network", "none"], "localhost/net:none");
    assert_eq!(interfaces(&net), ["lo"]);
    assert_eq!(resolv, "");
    assert_eq!(interfaces(&step), ["lo"]);

    let err =
        String::from_utf8_lossy(&build(&env, &ctx, &["--network", "bridge"]).stderr).into_owned();
    assert!(err.contains("bridge"), "{err}");
    assert_nothing_left(&env);
}

#[test]
#[ignore = "needs the make-images.sh busybox image and CAPSA_RUNTIME: run hack/image-test.sh"]
fn failing_run_and_bad_input_leave_nothing() {
    let env = env_with_busybox("build-fail");
    env.ok(&[
        "import",
        images_dir().join("test-busybox").to_str().unwrap(),
        "--name",
        "localhost/fail:1",
    ]);
    let before = fs::read(env.store().join("refs.json")).unwrap();
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Dockerfile",
            b"FROM localhost/bb:1\nRUN echo ok > /x\nRUN echo streamed; exit 3\nRUN echo never\n",
        )],
    );
    let o = build(&env, &ctx, &["-t", "localhost/fail:1"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        out.contains("STEP 3/4: RUN echo streamed; exit 3\nstreamed\n"),
        "{out}"
    );
    assert!(!out.contains("STEP 4/4"), "{out}");
    assert!(
        err.contains("step 3/4 `RUN echo streamed; exit 3`")
            && err.contains("exited with status 3"),
        "{err}"
    );
    assert_eq!(
        fs::read(env.store().join("refs.json")).unwrap(),
        before,
        "the tag was not moved"
    );
    assert_nothing_left(&env);

    // with -q the output of the failed step is still shown
    let o = build(&env, &ctx, &["-q"]);
    assert!(!o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
    assert!(String::from_utf8_lossy(&o.stderr).contains("streamed\n"));
    assert_nothing_left(&env);

    // bad input: a clear error naming what is wrong
    let cases: &[(&[u8], &[&str], &str)] = &[
        (
            b"FROM localhost/bb:1\n\nFOO bar\n",
            &[],
            "Dockerfile:3: unknown instruction: FOO",
        ),
        (
            b"RUN x\nFROM localhost/bb:1\n",
            &[],
            "Dockerfile:1: RUN before the first FROM",
        ),
        (
            b"FROM localhost/bb:1\nCOPY nope /x\n",
            &[],
            "Dockerfile:2: nope: no such file or directory in the build context",
        ),
        (
            b"FROM localhost/bb:1\nCOPY secret /x\n",
            &[],
            "Dockerfile:2: secret: excluded from the build context by .dockerignore",
        ),
        (
            b"FROM localhost/bb:1\nADD http://example.com/x /x\n",
            &[],
            "Dockerfile:2: ADD of a URL",
        ),
        (
            b"FROM localhost/bb:1\nRUN cat <<EOF\n",
            &[],
            "Dockerfile:2: heredocs",
        ),
        (
            b"FROM localhost/bb:1\nCOPY Dockerfile .dockerignore /x\n",
            &[],
            "more than one source needs a directory destination",
        ),
        (
            b"FROM localhost/bb:1 AS a\n",
            &["--target", "b"],
            "--target b: no stage of that name",
        ),
        (
            b"FROM localhost/bb:1\nUSER ghost\nRUN true\n",
            &[],
            "user \"ghost\" not found in the image's /etc/passwd",
        ),
        (b"FROM scratch\n", &[], "no image was made"),
        (
            b"FROM localhost/bb:1\n",
            &["--cgroup-parent", "a/../b"],
            "--cgroup-parent \"a/../b\": a cgroup path",
        ),
        (b"FROM 127.0.0.1:9/none:1\n", &[], "127.0.0.1:9"),
    ];
    for (i, (df, args, want)) in cases.iter().enumerate() {
        let ctx = context(
            &env,
            &format!("bad{i}"),
            &[
                ("Dockerfile", df),
                (".dockerignore", b"secret\n"),
                ("secret", b"x"),
            ],
        );
        let mut a = args.to_vec();
        a.extend(["-t", "localhost/fail:1"]);
        let o = build(&env, &ctx, &a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "case {i} succeeded");
        assert!(err.contains(want), "case {i}: want {want:?} in:\n{err}");
        assert_eq!(fs::read(env.store().join("refs.json")).unwrap(), before);
        assert_nothing_left(&env);
    }
}

// ------------------------------------------------------------------- podman build

/// The same Dockerfile for `podman build` and `capsa-image build`: every kind of step whose
/// result both define the same way.
const SAME: &str = r#"FROM localhost/test-busybox:latest AS src
RUN echo fromstage > /made.txt

FROM localhost/test-busybox:latest
ARG V=1
ENV E1=one E2="two words"
LABEL a=b "c d"=e
WORKDIR /app
RUN echo "v=$V e=$E1" > /app/run.txt && mkdir -p /app/d && chown 65534:65534 /app/d && rm /etc/group
COPY a.txt /app/
COPY --chown=65534:65534 --chmod=640 sub/ /app/sub/
COPY d /c1
COPY d/ /new/deep/c2/
COPY --chown=12:34 a.txt toplink /multi/
COPY a.txt /etc
ADD t.tar.gz /opt/
USER nobody
RUN touch /tmp/by-nobody
EXPOSE 8080/tcp 53/udp
VOLUME /data
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s CMD true
SHELL ["/bin/sh", "-c"]
COPY --from=src /made.txt /from-stage.txt
ONBUILD RUN echo onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/run.txt /from-stage.txt"]
"#;

/// buildah leaves the mount points of RUN in the layer (empty etc/hostname, etc/hosts,
/// etc/resolv.conf, run/); docker (its init layer) and capsa-image (its mount-target layer)
/// do not. Removed from podman's RUN layers before the comparison, with etc/ when nothing
/// else of the layer is in it.
fn without_buildah_mount_points(mut l: Entries) -> Entries {
    for p in ["etc/hostname", "etc/hosts", "etc/resolv.conf"] {
        l.remove(p);
    }
    for d in ["etc/", "run/"] {
        if !l.keys().any(|k| k.starts_with(d) && k.len() > d.len()) {
            l.remove(d);
        }
    }
    l
}

/// A whiteout (`.wh.NAME`) is a marker, not a file: its mode means nothing and each tool
/// writes its own (buildah 0, docker 0600, capsa-image commit 0644).
fn whiteout_modes_zeroed(l: &Entries) -> Entries {
    l.iter()
        .map(|(k, v)| {
            let mut v = v.clone();
            if k.rsplit('/').next().is_some_and(|n| n.starts_with(".wh.")) {
                v.1 = 0;
            }
            (k.clone(), v)
        })
        .collect()
}

fn normalize_history(h: &Value) -> Vec<(String, bool)> {
    h.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut by = e["created_by"].as_str().unwrap().to_string();
            // the digest of copied files: each tool has its own
            for kind in ["file:", "dir:", "multi:"] {
                if let Some(p) = by.find(kind) {
                    let end = (p + kind.len() + 64).min(by.len());
                    by.replace_range(p + kind.len()..end, "<digest>");
                }
            }
            // docker records `ARG V=1`, buildah `ARG V`
            if let Some(p) = by.find("#(nop) ARG ") {
                if let Some(eq) = by[p..].find('=') {
                    by.truncate(p + eq);
                }
            }
            (by, e["empty_layer"].as_bool().unwrap_or(false))
        })
        .collect()
}

#[test]
#[ignore = "needs podman, buildah, runc, containerd, the make-images.sh images and CAPSA_RUNTIME: run hack/image-test.sh"]
fn same_as_podman_build_and_runs_in_capsa_podman_containerd() {
    let imgs = images_dir();
    let env = Env::new("build-podman");
    env.ok(&[
        "import",
        imgs.join("test-busybox").to_str().unwrap(),
        "--name",
        "localhost/test-busybox:latest",
    ]);
    let tgz = tarball();
    let ctx = context(
        &env,
        "ctx",
        &[
            ("Dockerfile", SAME.as_bytes()),
            (".dockerignore", b"sub/ignored*\n"),
            ("a.txt", b"hello\n"),
            ("sub/b.txt", b"sub\n"),
            ("sub/ignored1", b"not copied\n"),
            ("sub/inner/c.txt", b"inner\n"),
            ("d/f", b"f\n"),
            ("d/inner/g", b"g\n"),
            ("t.tar.gz", &tgz),
        ],
    );
    fs::set_permissions(ctx.join("d/inner"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(ctx.join("d"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("f", ctx.join("d/lnk")).unwrap();
    fs::hard_link(ctx.join("d/f"), ctx.join("d/hard")).unwrap();
    std::os::unix::fs::symlink("d/f", ctx.join("toplink")).unwrap();

    let clients = Clients::start(&env.dir);
    clients.podman(&[
        "load",
        "-i",
        imgs.join("test-busybox-latest.docker.tar")
            .to_str()
            .unwrap(),
    ]);
    clients.podman(&[
        "build",
        "--runtime",
        "runc",
        "--format",
        "docker",
        "--network",
        "none",
        "-t",
        "localhost/same:podman",
        ctx.to_str().unwrap(),
    ]);
    let ptar = env.path("podman.docker.tar");
    clients.podman(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        ptar.to_str().unwrap(),
        "localhost/same:podman",
    ]);
    let theirs = read_docker_archive(&ptar, &env.path("podman-image"));
    build_ok(
        &env,
        &ctx,
        &["-t", "localhost/same:capsa", "--network", "none"],
    );
    let ours = export(&env, "localhost/same:capsa", "capsa-image");

    // the same layers, each with the same files, modes and owners
    assert_eq!(ours.layers.len(), theirs.layers.len());
    assert_eq!(ours.layers.len(), 11);
    for (i, (o, t)) in ours.layers.iter().zip(&theirs.layers).enumerate() {
        // (layer 0 is busybox's own, with its /run)
        for p in ["etc/hostname", "etc/hosts", "etc/resolv.conf", "run/"] {
            assert!(
                i == 0 || !o.contains_key(p),
                "layer {i}: a mount point left: {p}"
            );
        }
        let t = if i == 0 {
            t.clone()
        } else {
            without_buildah_mount_points(t.clone())
        };
        assert_entries(
            &whiteout_modes_zeroed(o),
            &whiteout_modes_zeroed(&t),
            &format!("layer {i}: capsa-image (left) vs podman (right)"),
        );
    }
    // the same history (but each tool's digest of copied files) and config
    assert_eq!(
        normalize_history(&ours.config["history"]),
        normalize_history(&theirs.config["history"])
    );
    for f in [
        "Env",
        "WorkingDir",
        "User",
        "Entrypoint",
        "Cmd",
        "ExposedPorts",
        "Volumes",
        "StopSignal",
        "Healthcheck",
        "OnBuild",
        "Shell",
    ] {
        assert_eq!(
            ours.config["config"][f], theirs.config["config"][f],
            "config.{f}"
        );
    }
    // (the base image, made by buildah, has io.buildah.version: both keep it)
    assert_eq!(
        ours.config["config"]["Labels"],
        theirs.config["config"]["Labels"]
    );

    // the image runs (its own ENTRYPOINT and CMD) under capsa, podman and containerd
    let expect = "v=1 e=one\nfromstage\n";
    let b = env.path("bundle");
    env.ok(&["bundle", "localhost/same:capsa", b.to_str().unwrap()]);
    assert_eq!(run_bundle(&env, &b, "capsa-image-build-same"), expect);
    env.ok(&["rm", b.to_str().unwrap()]);
    let docker = env.path("same.docker.tar");
    let oci = env.path("same.oci.tar");
    env.ok(&[
        "export",
        "localhost/same:capsa",
        docker.to_str().unwrap(),
        "--format",
        "docker-archive",
    ]);
    env.ok(&[
        "export",
        "localhost/same:capsa",
        oci.to_str().unwrap(),
        "--format",
        "oci-archive",
    ]);
    clients.podman(&["load", "-i", docker.to_str().unwrap()]);
    let out = clients.podman(&["run", "--rm", "--runtime", "runc", "localhost/same:capsa"]);
    assert_eq!(out, expect, "podman run");
    clients.ctr(&["images", "import", oci.to_str().unwrap()]);
    let out = clients.ctr(&[
        "run",
        "--rm",
        "localhost/same:capsa",
        "capsa-image-build-same",
    ]);
    assert_eq!(out, expect, "containerd");
    clients.ctr(&["images", "rm", "localhost/same:capsa"]);

    // the automatic platform ARGs and an ARG declared twice: the same values in the RUN
    // step, the same RUN history entry
    let ctx = context(&env, "ctx-platform", &[("Dockerfile", PLATFORM.as_bytes())]);
    clients.podman(&[
        "build",
        "--runtime",
        "runc",
        "--format",
        "docker",
        "--network",
        "none",
        "--build-arg",
        "BUILDVARIANT=x9",
        "-t",
        "localhost/platform:podman",
        ctx.to_str().unwrap(),
    ]);
    let ptar = env.path("platform.docker.tar");
    clients.podman(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        ptar.to_str().unwrap(),
        "localhost/platform:podman",
    ]);
    let theirs = read_docker_archive(&ptar, &env.path("platform-podman"));
    build_ok(
        &env,
        &ctx,
        &[
            "-t",
            "localhost/platform:capsa",
            "--build-arg",
            "BUILDVARIANT=x9",
        ],
    );
    let ours = export(&env, "localhost/platform:capsa", "platform-capsa");
    let arch = host_arch();
    let want = format!("{arch} linux linux/{arch} [] linux/{arch} linux {arch} [x9] a=2\n");
    assert_eq!(
        theirs.layers.last().unwrap()["p"].4,
        sha(want.as_bytes()),
        "podman: {want}"
    );
    assert_eq!(
        ours.layers.last().unwrap()["p"].4,
        sha(want.as_bytes()),
        "capsa-image: {want}"
    );
    let last_by = |img: &Saved| {
        img.config["history"].as_array().unwrap().last().unwrap()["created_by"].clone()
    };
    assert_eq!(last_by(&ours), last_by(&theirs));

    // .dockerignore: an excluded directory with a file re-included below it (copied; the
    // directory made for it 0755 root, its own 0700 not copied), also named as a source; a
    // re-include through `**` does not reach into an excluded directory; an excluded
    // directory with nothing re-included is left out
    let ctx = context(
        &env,
        "ctx-ignore",
        &[
            (
                "Dockerfile",
                b"FROM localhost/test-busybox:latest\nCOPY . /dst/\nCOPY build /b2/\n",
            ),
            (
                ".dockerignore",
                b"build\n!build/keep.txt\n!**/sub/keep.txt\nother\n",
            ),
            ("build/keep.txt", b"k\n"),
            ("build/drop.txt", b"d\n"),
            ("build/sub/keep.txt", b"s\n"),
            ("other/o.txt", b"o\n"),
            ("top.txt", b"t\n"),
        ],
    );
    fs::set_permissions(ctx.join("build"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(ctx.join("build/sub"), fs::Permissions::from_mode(0o750)).unwrap();
    clients.podman(&[
        "build",
        "--runtime",
        "runc",
        "--format",
        "docker",
        "--network",
        "none",
        "-t",
        "localhost/ignore:podman",
        ctx.to_str().unwrap(),
    ]);
    let ptar = env.path("ignore.docker.tar");
    clients.podman(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        ptar.to_str().unwrap(),
        "localhost/ignore:podman",
    ]);
    let theirs = read_docker_archive(&ptar, &env.path("ignore-podman"));
    build_ok(&env, &ctx, &["-t", "localhost/ignore:capsa"]);
    let ours = export(&env, "localhost/ignore:capsa", "ignore-capsa");
    assert_eq!(ours.layers.len(), 3);
    assert_eq!(theirs.layers.len(), 3);
    let dst = &ours.layers[1];
    assert_eq!(dst["dst/build/"].1, 0o755, "{dst:#?}");
    assert!(dst.contains_key("dst/build/keep.txt") && !dst.contains_key("dst/build/drop.txt"));
    assert!(!dst.contains_key("dst/build/sub/") && !dst.contains_key("dst/other/"));
    for i in 1..3 {
        assert_entries(
            &ours.layers[i],
            &theirs.layers[i],
            &format!(".dockerignore layer {i}: capsa-image (left) vs podman (right)"),
        );
    }
}

/// The automatic platform ARGs declared in a stage, and an ARG declared twice.
const PLATFORM: &str = r#"FROM localhost/test-busybox:latest
ARG TARGETARCH
ARG TARGETOS
ARG TARGETPLATFORM
ARG TARGETVARIANT
ARG BUILDPLATFORM
ARG BUILDOS
ARG BUILDARCH
ARG BUILDVARIANT
ARG A=1
ARG A=2
RUN echo "$TARGETARCH $TARGETOS $TARGETPLATFORM [$TARGETVARIANT] $BUILDPLATFORM $BUILDOS $BUILDARCH [$BUILDVARIANT] a=$A" > /p
"#;

/// This host's architecture as OCI names it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        a => a,
    }
}

#[test]
#[ignore = "needs the make-images.sh busybox image and CAPSA_RUNTIME: run hack/image-test.sh"]
fn platform_args_in_from_and_stages() {
    let env = env_with_busybox("build-platform");
    let arch = host_arch();
    // in the global scope without a declaration (FROM), kept by a global `ARG TARGETARCH`,
    // in a stage only once declared there; never in the image's env; an automatic one given
    // as --build-arg is not reported as unused
    let df = format!(
        "ARG TARGETARCH\n\
         FROM localhost/bb:1 AS base-{arch}\n\
         RUN echo \"[$TARGETARCH]\" > /before\n\
         FROM base-$TARGETARCH\n\
         ARG TARGETARCH\n\
         ARG BUILDPLATFORM\n\
         RUN echo \"$TARGETARCH $BUILDPLATFORM\" > /p && cat /before >> /p\n"
    );
    let ctx = context(&env, "ctx", &[("Dockerfile", df.as_bytes())]);
    let (out, err) = build_ok(
        &env,
        &ctx,
        &[
            "-t",
            "localhost/platform:1",
            "--build-arg",
            "TARGETVARIANT=v1",
        ],
    );
    assert!(
        out.contains("STEP 3/6: FROM base-$TARGETARCH\n") && out.contains("STEP 6/6: RUN"),
        "{out}"
    );
    assert!(!err.contains("not consumed"), "{err}");
    let b = env.path("bundle");
    env.ok(&["bundle", "localhost/platform:1", b.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(b.join("rootfs/p")).unwrap(),
        format!("{arch} linux/{arch}\n[]\n")
    );
    let spec: Value = serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    assert!(
        !spec["process"]["env"].to_string().contains("TARGET"),
        "{}",
        spec["process"]["env"]
    );
    env.ok(&["rm", b.to_str().unwrap()]);
    assert_nothing_left(&env);
}

/// Interrupts (SIGINT) the build process of this pid when the test fails before its own
/// Ctrl-C, and waits for it to end (it cleans up) before the test's dir goes.
struct Interrupt(u32);
impl Drop for Interrupt {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.0.to_string()])
            .status();
        for _ in 0..600 {
            if exited(self.0) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Whether the process `pid` (a child of the test) is gone or a zombie.
fn exited(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.rsplit(')').next().unwrap_or("").starts_with(" Z")
}

#[test]
#[ignore = "needs the make-images.sh busybox image and CAPSA_RUNTIME: run hack/image-test.sh"]
fn interrupt_kills_the_step_and_cleans_up() {
    use std::io::BufRead;
    let env = env_with_busybox("build-interrupt");
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Dockerfile",
            b"FROM localhost/bb:1\nRUN echo started; sleep 600\nRUN echo never\n",
        )],
    );
    let mut child = Command::new(BIN)
        .arg("--store")
        .arg(env.store())
        .args(["build", "-t", "localhost/int:1", "--cgroup-parent"])
        .arg(env.cgroup_parent())
        .arg(&ctx)
        .env("CAPSA_RUNTIME", runtime())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // if an assertion fails before the Ctrl-C below, the build is interrupted all the same
    let _interrupt = Interrupt(child.id());
    // the step runs once its output shows; then Ctrl-C (SIGINT to capsa-image)
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for l in lines.by_ref() {
        if l.unwrap() == "started" {
            break;
        }
    }
    // the step's overlay is mounted volatile: its copy-ups are not synced (the writable
    // layer is committed or thrown away right after)
    let store = env.store().to_string_lossy().into_owned();
    let overlays: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" - overlay ") && l.contains(&format!("upperdir={store}/")))
        .map(String::from)
        .collect();
    assert!(
        !overlays.is_empty(),
        "no overlay of the step's bundle mounted"
    );
    for l in &overlays {
        // shown as fsync=volatile by newer kernels
        assert!(
            l.split(',')
                .any(|o| o == "volatile" || o == "fsync=volatile"),
            "not volatile: {l}"
        );
    }
    // its cgroup went under --cgroup-parent (in every hierarchy)
    let parents = cgroup_dirs(&env.cgroup_parent());
    assert!(!parents.is_empty());
    for p in &parents {
        let steps: Vec<PathBuf> = cgroup_children(p);
        assert!(
            steps.len() == 1
                && steps[0]
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("capsa-build-"),
            "{}: {steps:?}",
            p.display()
        );
    }
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("step 2/3 `RUN echo started; sleep 600`: interrupted"),
        "{err}"
    );
    assert!(!env.ok(&["images"]).contains("localhost/int"));
    assert_nothing_left(&env);
}

#[test]
#[ignore = "needs the make-images.sh busybox image and CAPSA_RUNTIME: run hack/image-test.sh"]
fn interrupt_before_the_container_exists() {
    use std::io::BufRead;
    let env = env_with_busybox("build-interrupt-early");
    let ctx = context(
        &env,
        "ctx",
        &[("Dockerfile", b"FROM localhost/bb:1\nRUN sleep 600\n")],
    );
    // the runtime is slow to make the container: the Ctrl-C comes before it exists, so the
    // build's first kill finds nothing and must be tried again
    let slow = env.path("slow-runtime");
    fs::write(
        &slow,
        format!(
            "#!/bin/sh\n[ \"$3\" = run ] && sleep 3\nexec {} \"$@\"\n",
            runtime()
        ),
    )
    .unwrap();
    fs::set_permissions(&slow, fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = Command::new(BIN)
        .arg("--store")
        .arg(env.store())
        .args(["build", "-t", "localhost/int:1", "--cgroup-parent"])
        .arg(env.cgroup_parent())
        .arg("--runtime")
        .arg(&slow)
        .arg(&ctx)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _interrupt = Interrupt(child.id());
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for l in lines.by_ref() {
        if l.unwrap() == "STEP 2/2: RUN sleep 600" {
            break;
        }
    }
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    // the build ends once the container exists (3 s); the deadline is a hang guard only
    let mut ended = false;
    for _ in 0..1200 {
        if exited(child.id()) {
            ended = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the build still runs 120 s after its Ctrl-C: its RUN step was not killed");
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("step 2/2 `RUN sleep 600`: interrupted"),
        "{err}"
    );
    assert!(!env.ok(&["images"]).contains("localhost/int"));
    assert_nothing_left(&env);
}

#[test]
#[ignore = "needs the make-images.sh busybox image and CAPSA_RUNTIME: run hack/image-test.sh"]
fn dockerfile_from_stdin() {
    use std::io::Write;
    let env = env_with_busybox("build-stdin");
    // a context without a Dockerfile: `-f -` reads it from stdin
    let ctx = context(&env, "ctx", &[("a.txt", b"from the context\n")]);
    let run = |df: &[u8]| {
        let mut child = Command::new(BIN)
            .arg("--store")
            .arg(env.store())
            .args([
                "build",
                "-f",
                "-",
                "-t",
                "localhost/stdin:1",
                "--cgroup-parent",
            ])
            .arg(env.cgroup_parent())
            .arg(&ctx)
            .env("CAPSA_RUNTIME", runtime())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(df).unwrap();
        child.wait_with_output().unwrap()
    };
    let o = run(b"FROM localhost/bb:1\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b = env.path("bundle");
    env.ok(&["bundle", "localhost/stdin:1", b.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(b.join("rootfs/b.txt")).unwrap(),
        "from the context\n"
    );
    env.ok(&["rm", b.to_str().unwrap()]);
    // a parse error names stdin and the line
    let o = run(b"FROM localhost/bb:1\nNOPE x\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("<stdin>:2: unknown instruction: NOPE"),
        "{err}"
    );
    assert_nothing_left(&env);
}
