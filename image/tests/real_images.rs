//! The images hack/make-images.sh builds (busybox; debian; nginx with a whiteout and an opaque dir
//! in its top layer), in their three formats, against `umoci unpack` of the same images; and a
//! commit run by containerd and podman. Ignored by plain `cargo test`: hack/image-test.sh builds
//! the images and runs these with CAPSA_TEST_IMAGES set.
mod common;
use common::clients::*;
use common::*;
use std::fs;
use std::process::Command;

#[test]
#[ignore = "needs the make-images.sh images: run hack/image-test.sh"]
fn three_formats_match_umoci() {
    let imgs = images_dir();
    let env = Env::new("umoci");
    for (name, tag) in [
        ("test-busybox", "latest"),
        ("test-debian", "bookworm"),
        ("test-nginx", "bookworm"),
    ] {
        let umoci = imgs.join(format!("bundles/{name}-{tag}"));
        let sources = [
            ("layout", imgs.join(name)),
            ("oci-archive", imgs.join(format!("{name}-{tag}.oci.tar"))),
            (
                "docker-archive",
                imgs.join(format!("{name}-{tag}.docker.tar")),
            ),
        ];
        for (fmt, src) in sources {
            let r = format!("{fmt}/{name}:{tag}");
            env.ok(&["import", src.to_str().unwrap(), "--name", &r]);
            let b = env.path(&format!("{fmt}-{name}"));
            env.ok(&["bundle", &r, b.to_str().unwrap()]);
            assert_same_tree(&b.join("rootfs"), &umoci.join("rootfs"));
            let ours: serde_json::Value =
                serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
            let theirs: serde_json::Value =
                serde_json::from_slice(&fs::read(umoci.join("config.json")).unwrap()).unwrap();
            for f in ["args", "env", "cwd", "user"] {
                assert_eq!(
                    ours["process"][f], theirs["process"][f],
                    "{name} {fmt}: process.{f}"
                );
            }
            env.ok(&["rm", b.to_str().unwrap()]);
        }
    }
    // debian's layer is nginx's base: stored and unpacked once for all 9 imports
    let layers = fs::read_dir(env.store().join("layers")).unwrap().count();
    assert_eq!(layers, 3, "busybox 1 + debian 1 + nginx top 1");
    // the top layer of nginx really has the whiteout and the opaque dir
    let b = env.path("nginx");
    env.ok(&["bundle", "layout/test-nginx:bookworm", b.to_str().unwrap()]);
    assert!(!b.join("rootfs/etc/issue.net").exists());
    let skel: Vec<_> = fs::read_dir(b.join("rootfs/etc/skel"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(skel, vec!["README"]);
}

#[test]
#[ignore = "needs the make-images.sh images, containerd and podman: run hack/image-test.sh"]
fn commit_runs_in_containerd_and_podman() {
    let imgs = images_dir();
    let env = Env::new("clients");
    let runtime = std::env::var("RUNTIME").unwrap_or_else(|_| "runc".into());
    env.ok(&[
        "import",
        imgs.join("test-busybox").to_str().unwrap(),
        "--name",
        "localhost/bb:1",
    ]);
    // a container adds, changes and deletes files; then its layer is committed
    let b = env.path("b");
    env.ok(&[
        "bundle",
        "localhost/bb:1",
        b.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "echo added > /added && echo changed > /var/www/index.html && rm /etc/group && rm -r /root && mkdir /root && touch /root/new",
    ]);
    let st = Command::new(&runtime)
        .arg("--root")
        .arg(env.path("runtime-root"))
        .args([
            "run",
            "--bundle",
            b.to_str().unwrap(),
            "capsa-image-test-commit",
        ])
        .status()
        .unwrap();
    let _ = Command::new(&runtime)
        .arg("--root")
        .arg(env.path("runtime-root"))
        .args(["delete", "-f", "capsa-image-test-commit"])
        .status();
    assert!(st.success(), "{runtime} run failed: {st}");
    env.ok(&["commit", b.to_str().unwrap(), "localhost/bb-committed:2"]);
    let docker = env.path("c.docker.tar");
    let oci = env.path("c.oci.tar");
    env.ok(&[
        "export",
        "localhost/bb-committed:2",
        docker.to_str().unwrap(),
        "--format",
        "docker-archive",
    ]);
    env.ok(&[
        "export",
        "localhost/bb-committed:2",
        oci.to_str().unwrap(),
        "--format",
        "oci-archive",
    ]);
    let check = "cat /added /var/www/index.html && test ! -e /etc/group && ls /root";
    let expect = "added\nchanged\nnew\n";

    let clients = Clients::start(&env.dir);
    let podman_env = clients.podman_env.clone();
    let sock = clients.sock.as_str();
    for (i, tar) in [&docker, &oci].iter().enumerate() {
        let ctr = |args: &[&str]| {
            sh(Command::new("ctr")
                .args(["-a", sock, "-n", "capsa-image-test"])
                .args(args))
        };
        ctr(&["images", "import", tar.to_str().unwrap()]);
        let out = ctr(&[
            "run",
            "--rm",
            "localhost/bb-committed:2",
            &format!("t{i}"),
            "/bin/sh",
            "-c",
            check,
        ]);
        assert_eq!(out, expect, "containerd, {}", tar.display());
        ctr(&["images", "rm", "localhost/bb-committed:2"]);

        let podman = |args: &[&str]| sh(Command::new("podman").envs(podman_env.clone()).args(args));
        podman(&["load", "-i", tar.to_str().unwrap()]);
        let out = podman(&[
            "run",
            "--rm",
            "--runtime",
            "runc",
            "localhost/bb-committed:2",
            "/bin/sh",
            "-c",
            check,
        ]);
        assert_eq!(out, expect, "podman, {}", tar.display());
        podman(&["rmi", "-f", "localhost/bb-committed:2"]);
    }
}
