//! A busybox image built locally as a docker-archive (no registry): one layer
//! holding the busybox rootfs, importable with `ctr images import`.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::bundle::make_rootfs;
use crate::runtime::run_cmd;

fn sha256(path: &Path) -> String {
    let out = run_cmd(Command::new("sha256sum").arg(path)).ok();
    out.stdout
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}

/// Builds `<work>/image.tar`, a docker-archive tagged `reference`.
pub fn busybox_docker_archive(work: &Path, reference: &str) -> std::path::PathBuf {
    let rootfs = work.join("rootfs");
    make_rootfs(&rootfs);
    let archive = work.join("archive");
    fs::create_dir_all(&archive).expect("mkdir archive");
    let layer_tmp = work.join("layer.tar");
    run_cmd(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("--numeric-owner")
            .arg("-cf")
            .arg(&layer_tmp)
            .arg("."),
    )
    .ok();
    let diff_id = sha256(&layer_tmp);
    fs::create_dir_all(archive.join(&diff_id)).expect("mkdir layer dir");
    fs::rename(&layer_tmp, archive.join(&diff_id).join("layer.tar")).expect("move layer");
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/" },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
        "history": [ { "created_by": "capsa integration harness" } ]
    });
    let cfg_tmp = archive.join("config.tmp");
    fs::write(&cfg_tmp, serde_json::to_vec(&config).expect("config json")).expect("write config");
    let cfg_name = format!("{}.json", sha256(&cfg_tmp));
    fs::rename(&cfg_tmp, archive.join(&cfg_name)).expect("name config");
    let manifest = json!([{
        "Config": cfg_name,
        "RepoTags": [reference],
        "Layers": [format!("{diff_id}/layer.tar")]
    }]);
    fs::write(
        archive.join("manifest.json"),
        serde_json::to_vec(&manifest).expect("manifest json"),
    )
    .expect("write manifest");
    let tar = work.join("image.tar");
    run_cmd(
        Command::new("tar")
            .arg("-C")
            .arg(&archive)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    )
    .ok();
    tar
}
