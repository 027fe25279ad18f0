//! `pull` and `push` against a real registry (Debian's docker-registry on 127.0.0.1, started
//! by each test): the make-images.sh images pushed there by skopeo and pulled back equal to
//! `umoci unpack`'s rootfs; pull by digest; a multi-platform index; push of a committed image
//! read back by skopeo, podman and capsa-image; basic auth behind TLS, token auth; a wrong
//! digest, a truncated blob and a registry going down mid-pull each fail clearly, leave the
//! store as it was, and a retry succeeds (resuming with Range). Ignored by plain `cargo
//! test`: hack/image-test.sh installs the packages, builds the images and runs them.
mod common;
use common::registry::{proxy, run, Auth, Registry, PASS, USER};
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn images_dir() -> PathBuf {
    let d = PathBuf::from(
        std::env::var("CAPSA_TEST_IMAGES")
            .expect("CAPSA_TEST_IMAGES must name make-images.sh's OUTDIR (run hack/image-test.sh)"),
    );
    assert!(
        d.join("images.json").is_file(),
        "{} has no images.json",
        d.display()
    );
    d
}

/// The host's registries.conf and docker config stay out of the tests.
fn isolate() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let d = PathBuf::from("/var/tmp/capsa-image-test-isolation");
        fs::create_dir_all(d.join("docker")).unwrap();
        fs::write(d.join("registries.conf"), "").unwrap();
        fs::write(d.join("docker/config.json"), r#"{"auths":{}}"#).unwrap();
        std::env::set_var("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"));
        std::env::set_var("DOCKER_CONFIG", d.join("docker"));
        std::env::remove_var("REGISTRY_AUTH_FILE");
    });
}

fn skopeo(args: &[&str]) -> String {
    run(Command::new("skopeo").args(args))
}

/// skopeo copy of a make-images.sh layout into the registry.
fn skopeo_push(layout: &Path, tag: &str, dest: &str, extra: &[&str]) {
    let src = format!("oci:{}:{tag}", layout.display());
    let dst = format!("docker://{dest}");
    let mut a = vec!["copy", "--quiet"];
    a.extend_from_slice(extra);
    a.extend_from_slice(&[&src, &dst]);
    skopeo(&a);
}

fn inspect(reference: &str, extra: &[&str]) -> serde_json::Value {
    let mut a = vec!["inspect"];
    a.extend_from_slice(extra);
    let r = format!("docker://{reference}");
    a.push(&r);
    serde_json::from_str(&skopeo(&a)).unwrap()
}

/// What a failed pull must not change: blobs, layers, refs and staging dirs (the partial
/// downloads a retry resumes from are allowed in tmp/partial).
fn snapshot(store: &Path) -> (Vec<String>, Vec<String>, String, Vec<String>) {
    let ls = |p: PathBuf| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(p)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.retain(|n| n != "partial");
        v.sort();
        v
    };
    (
        ls(store.join("blobs/sha256")),
        ls(store.join("layers")),
        fs::read_to_string(store.join("refs.json")).unwrap_or_default(),
        ls(store.join("tmp")),
    )
}

fn check_against_umoci(env: &Env, reference: &str, umoci: &Path) {
    let b = env.path("cmp-bundle");
    env.ok(&["bundle", reference, b.to_str().unwrap()]);
    assert_same_tree(&b.join("rootfs"), &umoci.join("rootfs"));
    let ours: serde_json::Value =
        serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    let theirs: serde_json::Value =
        serde_json::from_slice(&fs::read(umoci.join("config.json")).unwrap()).unwrap();
    for f in ["args", "env", "cwd", "user"] {
        assert_eq!(
            ours["process"][f], theirs["process"][f],
            "{reference}: process.{f}"
        );
    }
    env.ok(&["rm", b.to_str().unwrap()]);
}

#[test]
#[ignore = "needs docker-registry, skopeo and the make-images.sh images: run hack/image-test.sh"]
fn pull_test_images_equal_umoci_and_by_digest() {
    isolate();
    let imgs = images_dir();
    let env = Env::new("pull");
    let reg = Registry::start(&env.path("registry"), Auth::None);
    let h = reg.host();
    let images = [
        ("test-debian", "bookworm"),
        ("test-nginx", "bookworm"),
        ("test-busybox", "latest"),
    ];
    for (name, tag) in images {
        skopeo_push(
            &imgs.join(name),
            tag,
            &format!("{h}/test/{name}:{tag}"),
            &["--dest-tls-verify=false"],
        );
    }
    for (name, tag) in images {
        let r = format!("{h}/test/{name}:{tag}");
        let out = env.ok(&["pull", "--plain-http", &r]);
        if name == "test-nginx" {
            // its base layer is debian's: not fetched again
            assert!(
                out.contains("1 layers fetched, 1 unpacked, 1 already in the store"),
                "{out}"
            );
        }
        check_against_umoci(&env, &r, &imgs.join(format!("bundles/{name}-{tag}")));
    }
    let layers = fs::read_dir(env.store().join("layers")).unwrap().count();
    assert_eq!(layers, 3, "busybox 1 + debian 1 + nginx top 1");
    assert!(snapshot(&env.store()).3.is_empty(), "staging left behind");
    // three pulls of one image at once into a new store: all succeed, one set of layers
    let env3 = Env::new("pull-race");
    let r = format!("{h}/test/test-nginx:bookworm");
    let kids: Vec<_> = (0..3)
        .map(|_| {
            Command::new(BIN)
                .arg("--store")
                .arg(env3.store())
                .args(["pull", "--plain-http", "-q", &r])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "racing pull: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(
        fs::read_dir(env3.store().join("layers")).unwrap().count(),
        2
    );
    check_against_umoci(&env3, &r, &imgs.join("bundles/test-nginx-bookworm"));
    // a Docker schema 2 manifest (skopeo converts the OCI one)
    let v2 = format!("{h}/test/busybox-v2s2:latest");
    skopeo_push(
        &imgs.join("test-busybox"),
        "latest",
        &v2,
        &["--format", "v2s2", "--dest-tls-verify=false"],
    );
    env.ok(&["pull", "--plain-http", &v2]);
    check_against_umoci(&env, &v2, &imgs.join("bundles/test-busybox-latest"));
    // the same pull again fetches nothing
    let out = env.ok(&[
        "pull",
        "--plain-http",
        &format!("{h}/test/test-nginx:bookworm"),
    ]);
    assert!(
        out.contains("0 layers fetched, 0 unpacked, 2 already in the store"),
        "{out}"
    );

    // by digest, into another store
    let digest = inspect(
        &format!("{h}/test/test-busybox:latest"),
        &["--tls-verify=false"],
    )["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    let env2 = Env::new("pull-digest");
    let by_digest = format!("{h}/test/test-busybox@{digest}");
    env2.ok(&["pull", "--plain-http", &by_digest]);
    let imgs_json: serde_json::Value =
        serde_json::from_str(&env2.ok(&["images", "--json"])).unwrap();
    assert_eq!(imgs_json[0]["name"], by_digest.as_str(), "{imgs_json}");
    check_against_umoci(&env2, &by_digest, &imgs.join("bundles/test-busybox-latest"));
    // a digest the registry does not have
    let missing = format!("{h}/test/test-busybox@sha256:{}", "0".repeat(64));
    let err = env2.fails(&["pull", "--plain-http", &missing]);
    assert!(
        err.contains("MANIFEST_UNKNOWN") || err.contains("404"),
        "{err}"
    );
}

/// One layer over two bases, and twice in one image, pulled into one store: each image's
/// rootfs is the layer unpacked over its own base (layer dirs go by chain ID); the layer's
/// blob, which the store has after the first pull, is not fetched again.
#[test]
#[ignore = "needs docker-registry and skopeo: run hack/image-test.sh"]
fn pull_a_layer_over_two_bases() {
    isolate();
    let env = Env::new("pull-two-bases");
    let reg = Registry::start(&env.path("registry"), Auth::None);
    let (plain_base, merged_base, top) = layer_over_two_bases();
    let top_blob = gzip(&top);
    let (la, lb) = (env.path("layout-a"), env.path("layout-b"));
    let a = [
        (gzip(&plain_base), plain_base),
        (top_blob.clone(), top.clone()),
    ];
    oci_layout(&la, "1", &a, &["/bin/sh"]);
    let b = [
        (gzip(&merged_base), merged_base),
        (top_blob.clone(), top.clone()),
        (top_blob.clone(), top),
    ];
    oci_layout(&lb, "1", &b, &["/bin/sh"]);
    let px = proxy(reg.port);
    let (ra, rb) = (
        format!("127.0.0.1:{}/test/plain:1", px.port),
        format!("127.0.0.1:{}/test/merged:1", px.port),
    );
    let to = |repo: &str| format!("{}/test/{repo}:1", reg.host());
    skopeo_push(&la, "1", &to("plain"), &["--dest-tls-verify=false"]);
    skopeo_push(&lb, "1", &to("merged"), &["--dest-tls-verify=false"]);
    env.ok(&["pull", "--plain-http", "-q", &ra]);
    px.requests.lock().unwrap().clear();
    let out = env.ok(&["pull", "--plain-http", "-q", &rb]);
    assert!(
        out.contains("1 layers fetched, 3 unpacked, 0 already"),
        "{out}"
    );
    let top_digest = sha(&top_blob);
    let reqs = px.requests.lock().unwrap().join("\n");
    assert!(
        reqs.contains(&format!("GET /v2/test/merged/blobs/{}", sha(&b[0].0))),
        "the new base was not fetched through the proxy: {reqs}"
    );
    assert!(
        !reqs.contains(&format!("GET /v2/test/merged/blobs/{top_digest}")),
        "the stored blob was fetched again: {reqs}"
    );
    let (ba, bb) = (env.path("ba"), env.path("bb"));
    env.ok(&["bundle", &ra, ba.to_str().unwrap()]);
    env.ok(&["bundle", &rb, bb.to_str().unwrap()]);
    let ta = tree(&ba.join("rootfs"));
    assert_eq!(
        ta.keys().cloned().collect::<Vec<_>>(),
        ["lib", "lib/foo", "usr", "usr/lib"]
    );
    let tb = tree(&bb.join("rootfs"));
    assert_eq!(
        tb.keys().cloned().collect::<Vec<_>>(),
        ["lib", "usr", "usr/lib", "usr/lib/foo"]
    );
    assert_eq!(tb["lib"].kind, "symlink");
    // plain, plain+top; merged, merged+top, merged+top+top
    assert_eq!(fs::read_dir(env.store().join("layers")).unwrap().count(), 5);
    env.ok(&["rm", ba.to_str().unwrap()]);
    env.ok(&["rm", bb.to_str().unwrap()]);
}

/// An image whose middle layer is foreign (non-distributable, with a URL), pushed by skopeo
/// as tools push such images (the manifest names the layer, the registry has no blob):
/// the pull skips the layer with a note and does not ask the registry for it; the layers
/// above it are there.
#[test]
#[ignore = "needs docker-registry and skopeo: run hack/image-test.sh"]
fn pull_skips_a_foreign_layer() {
    isolate();
    let env = Env::new("pull-foreign");
    let reg = Registry::start(&env.path("registry"), Auth::None);
    let layers = [
        layer(&[E::File("base", 0o644, b"base")]),
        layer(&[
            E::Dir("win/", 0o755),
            E::File("win/foreign", 0o644, b"foreign"),
        ]),
        layer(&[E::File("win/top", 0o644, b"top")]),
    ];
    let layout = env.path("layout");
    layout_with_foreign_layer(&layout, &layers, 1, false);
    let dest = format!("{}/test/foreign:1", reg.host());
    skopeo_push(&layout, "1", &dest, &["--dest-tls-verify=false"]);
    let px = proxy(reg.port);
    let r = format!("127.0.0.1:{}/test/foreign:1", px.port);
    let o = env.run(&["pull", "--plain-http", "-q", &r]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("foreign (non-distributable) layer (urls: https://example.invalid/")
            && err.contains("skipped"),
        "{err}"
    );
    let foreign = sha(&gzip(&layers[1]));
    let reqs = px.requests.lock().unwrap().join("\n");
    assert!(
        !reqs.contains(&foreign[7..]),
        "the foreign blob was asked for: {reqs}"
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("2 layers fetched, 2 unpacked, 0 already"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let b = env.path("b");
    env.ok(&["bundle", &r, b.to_str().unwrap()]);
    assert_eq!(
        tree(&b.join("rootfs")).keys().cloned().collect::<Vec<_>>(),
        ["base", "win", "win/top"]
    );
    env.ok(&["rm", b.to_str().unwrap()]);
}

/// An OCI layout holding an image index of two one-file images, linux/amd64 and linux/arm64.
fn multi_platform_layout(dir: &Path) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha(b);
        fs::write(blobs.join(&d[7..]), b).unwrap();
        (d, b.len())
    };
    let mut manifests = Vec::new();
    for (arch, content) in [("amd64", &b"amd64\n"[..]), ("arm64", &b"arm64\n"[..])] {
        let plain = layer(&[E::File("arch", 0o644, content)]);
        let blob = gzip(&plain);
        let (ld, ls) = put(&blob);
        let cfg = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/arch"]},
            "rootfs": {"type": "layers", "diff_ids": [sha(&plain)]}
        }))
        .unwrap();
        let (cd, cs) = put(&cfg);
        let man = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}]
        }))
        .unwrap();
        let (md, ms) = put(&man);
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "platform": {"architecture": arch, "os": "linux"}
        }));
    }
    let idx = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests
    }))
    .unwrap();
    let (xd, xs) = put(&idx);
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": xd, "size": xs,
            "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}))
        .unwrap(),
    )
    .unwrap();
}

#[test]
#[ignore = "needs docker-registry and skopeo: run hack/image-test.sh"]
fn multi_platform_index() {
    isolate();
    let env = Env::new("multi");
    let reg = Registry::start(&env.path("registry"), Auth::None);
    let layout = env.path("layout");
    multi_platform_layout(&layout);
    let r = format!("{}/test/multi:1", reg.host());
    skopeo_push(&layout, "multi", &r, &["--all", "--dest-tls-verify=false"]);
    let arch_of = |platform: Option<&str>| {
        let e = Env::new(&format!(
            "multi-{}",
            platform.unwrap_or("host").replace('/', "-")
        ));
        let mut a = vec!["pull", "--plain-http", &r];
        if let Some(p) = platform {
            a.extend_from_slice(&["--platform", p]);
        }
        e.ok(&a);
        let b = e.path("b");
        e.ok(&["bundle", &r, b.to_str().unwrap()]);
        let s = fs::read_to_string(b.join("rootfs/arch")).unwrap();
        e.ok(&["rm", b.to_str().unwrap()]);
        s
    };
    let host = match std::env::consts::ARCH {
        "aarch64" => "arm64\n",
        _ => "amd64\n",
    };
    assert_eq!(arch_of(None), host);
    assert_eq!(arch_of(Some("linux/arm64")), "arm64\n");
    assert_eq!(arch_of(Some("linux/amd64")), "amd64\n");
    // the same as a Docker manifest list of Docker schema 2 manifests
    let v2 = format!("{}/test/multi-v2s2:1", reg.host());
    skopeo_push(
        &layout,
        "multi",
        &v2,
        &["--all", "--format", "v2s2", "--dest-tls-verify=false"],
    );
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{v2}"),
    ]);
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.list.v2+json"),
        "{raw}"
    );
    let e = Env::new("multi-v2s2");
    e.ok(&["pull", "--plain-http", &v2, "--platform", "linux/arm64"]);
    let b = e.path("b");
    e.ok(&["bundle", &v2, b.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(b.join("rootfs/arch")).unwrap(),
        "arm64\n"
    );
    e.ok(&["rm", b.to_str().unwrap()]);

    let err = env.fails(&["pull", "--plain-http", &r, "--platform", "linux/s390x"]);
    assert!(
        err.contains("no linux/s390x image") && err.contains("linux/arm64"),
        "{err}"
    );
    assert_eq!(
        snapshot(&env.store()).0.len(),
        0,
        "a failed pull stored blobs"
    );
}

/// podman wants a run root under 50 characters: one in /run, removed by the guard.
fn podman_runroot() -> PathBuf {
    PathBuf::from(format!("/run/capsa-test-pm-{}", std::process::id()))
}

struct RunrootGuard;
impl Drop for RunrootGuard {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(podman_runroot());
    }
}

/// podman with a private store (vfs: no mounts) and a permissive signature policy.
fn podman(dir: &Path, args: &[&str]) -> String {
    fs::create_dir_all(dir).unwrap();
    let policy = dir.join("policy.json");
    fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    run(Command::new("podman")
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(podman_runroot())
        .args(["--storage-driver", "vfs"])
        .args(args)
        .env("CONTAINERS_POLICY_JSON", &policy))
}

#[test]
#[ignore = "needs docker-registry, skopeo, podman, a runtime and the make-images.sh images: run hack/image-test.sh"]
fn push_committed_image_read_by_skopeo_podman_and_pull() {
    isolate();
    let imgs = images_dir();
    let env = Env::new("push");
    let reg = Registry::start(&env.path("registry"), Auth::None);
    let h = reg.host();
    skopeo_push(
        &imgs.join("test-busybox"),
        "latest",
        &format!("{h}/test/busybox:1"),
        &["--dest-tls-verify=false"],
    );
    env.ok(&["pull", "--plain-http", &format!("{h}/test/busybox:1")]);

    // a container changes files; its layer is committed under the registry's name
    let runtime = std::env::var("RUNTIME").unwrap_or_else(|_| "runc".into());
    let b = env.path("b");
    env.ok(&[
        "bundle",
        &format!("{h}/test/busybox:1"),
        b.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "echo pushed > /added && rm /etc/group",
    ]);
    let rt = |args: &[&str]| {
        Command::new(&runtime)
            .arg("--root")
            .arg(env.path("rt"))
            .args(args)
            .status()
            .unwrap()
    };
    let st = rt(&[
        "run",
        "--bundle",
        b.to_str().unwrap(),
        "capsa-image-test-push",
    ]);
    rt(&["delete", "-f", "capsa-image-test-push"]);
    assert!(st.success(), "{runtime} run failed");
    let committed = format!("{h}/test/committed:1");
    env.ok(&["commit", b.to_str().unwrap(), &committed]);
    env.ok(&["rm", b.to_str().unwrap()]);

    let out = env.ok(&["push", "--plain-http", "--quiet", &committed]);
    // the busybox layer is in test/busybox: mounted, not uploaded
    assert!(
        out.contains("2 blobs uploaded, 1 mounted, 0 already there"),
        "{out}"
    );
    let digest = out.split('\t').nth(1).unwrap().to_string();
    let again = env.ok(&["push", "--plain-http", "--quiet", &committed]);
    assert!(
        again.contains("0 blobs uploaded, 0 mounted, 3 already there"),
        "{again}"
    );

    let info = inspect(&committed, &["--tls-verify=false"]);
    assert_eq!(info["Digest"], digest.as_str(), "{info}");
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2, "{info}");

    let pd = env.path("podman");
    let _runroot = RunrootGuard;
    let policy = pd.join("policy.json");
    podman(
        &pd,
        &[
            "pull",
            "--quiet",
            "--tls-verify=false",
            "--signature-policy",
            policy.to_str().unwrap(),
            &committed,
        ],
    );
    let listed = podman(
        &pd,
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}"],
    );
    assert!(
        listed.contains(&format!("{committed} {digest}")),
        "{listed}"
    );
    let _ = podman(&pd, &["rmi", "-a", "-f"]);

    // pulled back into another store: the committed changes are there
    let env2 = Env::new("push-back");
    env2.ok(&["pull", "--plain-http", &committed]);
    let b2 = env2.path("b");
    env2.ok(&["bundle", &committed, b2.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(b2.join("rootfs/added")).unwrap(),
        "pushed\n"
    );
    assert!(!b2.join("rootfs/etc/group").exists());
    env2.ok(&["rm", b2.to_str().unwrap()]);

    // chunked upload of an imported image (no mount source in that store)
    let env3 = Env::new("push-chunked");
    let chunked = format!("{h}/chunked/busybox:1");
    env3.ok(&[
        "import",
        imgs.join("test-busybox").to_str().unwrap(),
        "--name",
        &chunked,
    ]);
    let out = env3.ok(&["push", "--plain-http", "--chunk-size", "262144", &chunked]);
    assert!(out.contains("2 blobs uploaded, 0 mounted"), "{out}");
    let env4 = Env::new("push-chunked-back");
    env4.ok(&["pull", "--plain-http", &chunked]);
    check_against_umoci(&env4, &chunked, &imgs.join("bundles/test-busybox-latest"));
}

#[test]
#[ignore = "needs docker-registry, skopeo, openssl, htpasswd and the make-images.sh images: run hack/image-test.sh"]
fn basic_auth_behind_tls_login_logout() {
    isolate();
    let imgs = images_dir();
    let env = Env::new("tls");
    let reg = Registry::start(&env.path("registry"), Auth::BasicTls);
    let certs = reg.dir.join("certs");
    let certs = certs.to_str().unwrap();
    let creds = format!("{USER}:{PASS}");
    let r = format!("{}/test/busybox:1", reg.host());
    skopeo_push(
        &imgs.join("test-busybox"),
        "latest",
        &r,
        &["--dest-cert-dir", certs, "--dest-creds", &creds],
    );

    let before = snapshot(&env.store());
    let err = env.fails(&["pull", "-q", "--cert-dir", certs, &r]);
    assert!(err.contains("wants a user name and password"), "{err}");
    let err = env.fails(&[
        "pull",
        "-q",
        "--cert-dir",
        certs,
        "--creds",
        &format!("{USER}:wrong"),
        &r,
    ]);
    assert!(err.contains("credentials refused"), "{err}");
    let err = env.fails(&["pull", "-q", "--creds", &creds, &r]);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(
        snapshot(&env.store()),
        before,
        "a failed pull changed the store"
    );

    let authfile = env.path("auth/auth.json");
    let af = authfile.to_str().unwrap();
    let err = env.fails(&[
        "login",
        &reg.host(),
        "-u",
        USER,
        "-p",
        "wrong",
        "--cert-dir",
        certs,
        "--authfile",
        af,
    ]);
    assert!(err.contains("credentials refused"), "{err}");
    assert!(!authfile.exists());
    env.ok(&[
        "login",
        &reg.host(),
        "-u",
        USER,
        "-p",
        PASS,
        "--cert-dir",
        certs,
        "--authfile",
        af,
    ]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&authfile).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let o = env.run(&[
        "--debug",
        "pull",
        "-q",
        "--cert-dir",
        certs,
        "--authfile",
        af,
        &r,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // distribution serves HTTP/2 over TLS
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("HTTP/2.0"),
        "not HTTP/2"
    );
    check_against_umoci(&env, &r, &imgs.join("bundles/test-busybox-latest"));

    // push with the stored login; --tls-verify=false instead of the CA
    let r2 = format!("{}/test/copy:2", reg.host());
    let out = env.ok(&[
        "push",
        "-q",
        "--tls-verify=false",
        "--authfile",
        af,
        &r,
        &r2,
    ]);
    assert!(out.contains("0 blobs uploaded, 2 mounted"), "{out}");
    let info = inspect(&r2, &["--cert-dir", certs, "--creds", &creds]);
    assert_eq!(info["Layers"].as_array().unwrap().len(), 1);

    env.ok(&["logout", &reg.host(), "--authfile", af]);
    let err = env.fails(&["logout", &reg.host(), "--authfile", af]);
    assert!(err.contains("not logged in"), "{err}");
    let err = env.fails(&["pull", "-q", "--cert-dir", certs, "--authfile", af, &r2]);
    assert!(err.contains("wants a user name and password"), "{err}");
}

#[test]
#[ignore = "needs docker-registry, skopeo, openssl and the make-images.sh images: run hack/image-test.sh"]
fn token_auth() {
    isolate();
    let imgs = images_dir();
    let env = Env::new("token");
    let reg = Registry::start(&env.path("registry"), Auth::Token);
    let creds = format!("{USER}:{PASS}");
    let r = format!("{}/test/busybox:1", reg.host());
    skopeo_push(
        &imgs.join("test-busybox"),
        "latest",
        &r,
        &["--dest-tls-verify=false", "--dest-creds", &creds],
    );
    let err = env.fails(&["pull", "--plain-http", &r]);
    assert!(err.contains("credentials refused"), "{err}");
    let err = env.fails(&[
        "pull",
        "--plain-http",
        "--creds",
        &format!("{USER}:nope"),
        &r,
    ]);
    assert!(err.contains("credentials refused"), "{err}");
    assert_eq!(snapshot(&env.store()).0.len(), 0);
    env.ok(&["pull", "--plain-http", "--creds", &creds, &r]);
    check_against_umoci(&env, &r, &imgs.join("bundles/test-busybox-latest"));
    // push into another repository: the token covers a pull of the mount source too
    let r2 = format!("{}/other/busybox:2", reg.host());
    let out = env.ok(&["push", "--plain-http", "--creds", &creds, &r, &r2]);
    assert!(out.contains("0 blobs uploaded, 2 mounted"), "{out}");
    inspect(&r2, &["--tls-verify=false", "--creds", &creds]);
}

#[test]
#[ignore = "needs docker-registry, skopeo and the make-images.sh images: run hack/image-test.sh"]
fn bad_blobs_and_registry_down_leave_store_unchanged_then_retry() {
    isolate();
    let imgs = images_dir();
    let env = Env::new("faults");
    let reg = Registry::start(&env.path("registry"), Auth::None);
    let h = reg.host();
    let bb = format!("{h}/test/busybox:1");
    let deb = format!("{h}/test/debian:1");
    skopeo_push(
        &imgs.join("test-busybox"),
        "latest",
        &bb,
        &["--dest-tls-verify=false"],
    );
    skopeo_push(
        &imgs.join("test-debian"),
        "bookworm",
        &deb,
        &["--dest-tls-verify=false"],
    );
    env.ok(&["pull", "--plain-http", &bb]);
    let before = snapshot(&env.store());

    let layer = inspect(&deb, &["--tls-verify=false"])["Layers"][0]
        .as_str()
        .unwrap()
        .to_string();
    let file = reg.blob_file(&layer);
    let good = fs::read(&file).unwrap();
    let partial = env.store().join("tmp/partial").join(&layer[7..]);

    // 1. a wrong byte: digest mismatch, and the bad download is not kept
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    fs::write(&file, &bad).unwrap();
    let err = env.fails(&["pull", "--plain-http", &deb]);
    assert!(
        err.contains("digest mismatch") && err.contains(&layer),
        "{err}"
    );
    assert_eq!(
        snapshot(&env.store()),
        before,
        "store changed by a bad blob"
    );
    assert!(!partial.exists(), "the bad bytes were kept for a resume");

    // 2. a truncated blob: named as such; the half that came is kept
    fs::write(&file, &good[..good.len() / 2]).unwrap();
    let err = env.fails(&["pull", "--plain-http", &deb]);
    assert!(err.contains("truncated"), "{err}");
    assert_eq!(
        snapshot(&env.store()),
        before,
        "store changed by a truncated blob"
    );
    assert_eq!(
        fs::metadata(&partial).unwrap().len(),
        (good.len() / 2) as u64
    );

    // 3. the blob mended: the retry resumes and succeeds
    fs::write(&file, &good).unwrap();
    env.ok(&["pull", "--plain-http", &deb]);
    check_against_umoci(&env, &deb, &imgs.join("bundles/test-debian-bookworm"));

    // 4. the registry goes down in the middle of a pull (through a proxy that cuts every
    //    connection after 8 MB and then refuses new ones)
    let env2 = Env::new("faults-down");
    let px = proxy(reg.port);
    *px.cut_after.lock().unwrap() = Some(8 << 20);
    let via = format!("127.0.0.1:{}/test/debian:1", px.port);
    let err = env2.fails(&["pull", "--plain-http", "-q", &via]);
    assert!(
        err.contains(&layer) || err.contains("error sending request"),
        "{err}"
    );
    let s = snapshot(&env2.store());
    assert!(
        s.0.is_empty() && s.1.is_empty() && s.2.is_empty() && s.3.is_empty(),
        "{s:?}"
    );
    let part = env2.store().join("tmp/partial").join(&layer[7..]);
    let had = fs::metadata(&part).unwrap().len();
    assert!(had > 0, "nothing downloaded before the cut");
    // back up: the retry asks only for the rest
    *px.cut_after.lock().unwrap() = None;
    px.requests.lock().unwrap().clear();
    env2.ok(&["pull", "--plain-http", "-q", &via]);
    let reqs = px.requests.lock().unwrap().join("\n").to_lowercase();
    assert!(
        reqs.contains(&format!("range: bytes={had}-")),
        "no resume from {had}: {reqs}"
    );
    check_against_umoci(&env2, &via, &imgs.join("bundles/test-debian-bookworm"));
}

#[test]
#[ignore = "needs docker-registry, skopeo and the make-images.sh images: run hack/image-test.sh"]
fn short_names_and_mirrors_from_registries_conf() {
    isolate();
    let imgs = images_dir();
    let env = Env::new("conf");
    let reg = Registry::start(&env.path("registry"), Auth::None);
    let h = reg.host();
    skopeo_push(
        &imgs.join("test-busybox"),
        "latest",
        &format!("{h}/lib/busybox:1"),
        &["--dest-tls-verify=false"],
    );
    // a search list whose first registry is down; a mirror for a registry that does not exist
    let conf = env.path("registries.conf");
    fs::write(
        &conf,
        format!(
            "unqualified-search-registries = [\"127.0.0.1:1\", \"{h}\"]\n\
             [[registry]]\nlocation = \"{h}\"\ninsecure = true\n\
             [[registry]]\nprefix = \"registry.invalid/mirrored\"\nlocation = \"registry.invalid/mirrored\"\n\
             [[registry.mirror]]\nlocation = \"{h}/lib\"\ninsecure = true\n"
        ),
    )
    .unwrap();
    let pull = |name: &str| {
        Command::new(BIN)
            .arg("--store")
            .arg(env.store())
            .args(["pull", "-q", name])
            .env("CONTAINERS_REGISTRIES_CONF", &conf)
            .output()
            .unwrap()
    };
    let o = pull("lib/busybox:1");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&format!("{h}/lib/busybox:1\t")));
    let o = pull("registry.invalid/mirrored/busybox:1");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_against_umoci(
        &env,
        "registry.invalid/mirrored/busybox:1",
        &imgs.join("bundles/test-busybox-latest"),
    );
    // a short name no search registry has: every candidate named in the error
    let o = pull("lib/nothing:1");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("127.0.0.1:1/lib/nothing")
            && err.contains(&format!("{h}/lib/nothing")),
        "{err}"
    );
}

#[test]
#[ignore = "needs docker-registry, skopeo, the make-images.sh images and CAPSA_RUNTIME: run hack/image-test.sh"]
fn build_from_a_registry_image() {
    isolate();
    let imgs = images_dir();
    let env = Env::new("build-pull");
    let reg = Registry::start(&env.path("registry"), Auth::None);
    let h = reg.host();
    skopeo_push(
        &imgs.join("test-busybox"),
        "latest",
        &format!("{h}/lib/busybox:1"),
        &["--dest-tls-verify=false"],
    );
    let base = format!("{h}/lib/busybox:1");
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN echo built > /built.txt\nCMD [\"cat\", \"/built.txt\"]\n"),
    )
    .unwrap();
    let runtime = std::env::var("CAPSA_RUNTIME")
        .expect("CAPSA_RUNTIME must name the capsa binary RUN steps use (hack/image-test.sh)");
    let build = || {
        let o = Command::new(BIN)
            .arg("--store")
            .arg(env.store())
            .args(["build", "--plain-http", "-t", "localhost/pulled:1"])
            .arg(&ctx)
            .env("CAPSA_RUNTIME", &runtime)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    };
    // the base is not in the store: pulled, then built on
    let out = build();
    assert!(
        out.contains(&format!("STEP 1/3: FROM {base}\npulling {base}\n")),
        "{out}"
    );
    let images = env.ok(&["images"]);
    assert!(
        images.contains(&base) && images.contains("localhost/pulled:1"),
        "{images}"
    );
    check_against_umoci(&env, &base, &imgs.join("bundles/test-busybox-latest"));
    let b = env.path("bundle");
    env.ok(&["bundle", "localhost/pulled:1", b.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(b.join("rootfs/built.txt")).unwrap(),
        "built\n"
    );
    assert!(b.join("rootfs/bin/busybox").is_file());
    env.ok(&["rm", b.to_str().unwrap()]);
    // again: the stored base is used (no pull; the registry may be gone) and every step cached
    drop(reg);
    let again = build();
    assert!(!again.contains("pulling"), "{again}");
    assert_eq!(again.matches("--> using cache").count(), 2, "{again}");
    assert_eq!(again.lines().last(), out.lines().last(), "same image id");
}

#[test]
fn manifest_over_the_size_limit_is_refused() {
    isolate();
    // a fake registry: /v2/ open, every manifest 5 MiB
    let srv = common::registry::serve(|req| {
        if req.path == "/v2/" {
            return (200, vec![], b"{}".to_vec());
        }
        let mut body = br#"{"schemaVersion":2,"x":""#.to_vec();
        body.resize(5 << 20, b'a');
        body.extend_from_slice(b"\"}");
        (
            200,
            vec![(
                "Content-Type".into(),
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            body,
        )
    });
    let env = Env::new("limit");
    let err = env.fails(&[
        "pull",
        "--plain-http",
        &format!("127.0.0.1:{}/big/image:1", srv.port),
    ]);
    assert!(err.contains("larger than the 4194304-byte limit"), "{err}");
    assert_eq!(snapshot(&env.store()).0.len(), 0);
}
