//! config.json for a bundle: the defaults `capsa spec` writes (namespaces, mounts, capabilities,
//! masked paths), with a writable root and no terminal, then the image config applied per the
//! OCI image spec's conversion rules (conversion.md).
use crate::error::{Error, Result};
use crate::oci::ImageConfig;
use crate::user;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

pub use capsa_defaults::DEFAULT_PATH;

/// capsa's default runtime config (what `capsa spec` writes), with a writable root and no
/// terminal unless asked for, as the starting point.
pub fn base_spec() -> Value {
    let mut spec = capsa_defaults::runtime_config();
    spec["process"]["terminal"] = json!(false);
    spec["root"]["readonly"] = json!(false);
    spec
}

pub struct Options {
    /// arguments given after `--`: they replace the image's Cmd
    pub cmd: Option<Vec<String>>,
    pub tty: bool,
}

pub fn generate(cfg: &ImageConfig, rootfs: &Path, opts: &Options) -> Result<Value> {
    let mut spec = base_spec();
    let ec = cfg.config.clone().unwrap_or_default();

    // args: Entrypoint + Cmd, Cmd replaced by the caller's arguments
    let mut args = ec.entrypoint.clone().unwrap_or_default();
    match &opts.cmd {
        Some(c) => args.extend(c.iter().cloned()),
        None => args.extend(ec.cmd.clone().unwrap_or_default()),
    }
    if args.is_empty() {
        return Err(Error::Invalid(
            "the image has neither Entrypoint nor Cmd: give the command after --".into(),
        ));
    }
    spec["process"]["args"] = json!(args);
    spec["process"]["terminal"] = json!(opts.tty);

    if let Some(wd) = ec.working_dir.as_deref().filter(|w| !w.is_empty()) {
        if !wd.starts_with('/') {
            return Err(Error::Invalid(format!(
                "image WorkingDir {wd:?} is not absolute"
            )));
        }
        spec["process"]["cwd"] = json!(wd);
    }

    let u = user::resolve(rootfs, ec.user.as_deref().unwrap_or(""))?;
    let mut uj = json!({"uid": u.uid, "gid": u.gid});
    if !u.additional_gids.is_empty() {
        uj["additionalGids"] = json!(u.additional_gids);
    }
    spec["process"]["user"] = uj;

    // env: runc's defaults (PATH, TERM), overridden or extended by the image's Env; HOME from
    // /etc/passwd when the image does not set it
    let mut env: Vec<String> = vec![DEFAULT_PATH.to_string(), "TERM=xterm".to_string()];
    for e in ec.env.clone().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("").to_string();
        match env
            .iter_mut()
            .find(|x| x.split('=').next() == Some(key.as_str()))
        {
            Some(x) => *x = e,
            None => env.push(e),
        }
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!(
            "HOME={}",
            u.home.as_deref().filter(|h| !h.is_empty()).unwrap_or("/")
        ));
    }
    spec["process"]["env"] = json!(env);

    // annotations: converted fields first; Labels may not override them (conversion.md)
    let mut ann: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in ec.labels.clone().unwrap_or_default() {
        ann.insert(k, v);
    }
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            ann.insert(format!("org.opencontainers.image.{k}"), v);
        }
    };
    put("os", Some(cfg.os.clone()));
    put("architecture", Some(cfg.architecture.clone()));
    put("variant", cfg.variant.clone());
    put("author", cfg.author.clone());
    put("created", cfg.created.clone());
    put("stopSignal", ec.stop_signal.clone());
    put(
        "exposedPorts",
        ec.exposed_ports
            .as_ref()
            .map(|p| p.keys().cloned().collect::<Vec<_>>().join(",")),
    );
    if let Some(v) = cfg.extra.get("os.version").and_then(|v| v.as_str()) {
        put("os.version", Some(v.to_string()));
    }
    if let Some(v) = cfg.extra.get("os.features").and_then(|v| v.as_array()) {
        let f: Vec<String> = v
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect();
        put("os.features", Some(f.join(",")));
    }
    if !ann.is_empty() {
        spec["annotations"] = json!(ann);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::ExecConfig;
    #[test]
    fn conversion() {
        let mut cfg = ImageConfig {
            os: "linux".into(),
            architecture: "amd64".into(),
            ..Default::default()
        };
        cfg.config = Some(ExecConfig {
            entrypoint: Some(vec!["/bin/ep".into()]),
            cmd: Some(vec!["a".into(), "b".into()]),
            env: Some(vec!["FOO=1".into()]),
            working_dir: Some("/srv".into()),
            stop_signal: Some("SIGQUIT".into()),
            labels: Some(
                [
                    (
                        "org.opencontainers.image.os".to_string(),
                        "evil".to_string(),
                    ),
                    ("x".into(), "y".into()),
                ]
                .into(),
            ),
            ..Default::default()
        });
        let dir = std::env::temp_dir();
        let s = generate(
            &cfg,
            &dir.join("nonexistent-rootfs"),
            &Options {
                cmd: None,
                tty: false,
            },
        )
        .unwrap();
        assert_eq!(s["process"]["args"], json!(["/bin/ep", "a", "b"]));
        assert_eq!(
            s["process"]["env"],
            json!([DEFAULT_PATH, "TERM=xterm", "FOO=1", "HOME=/"])
        );
        assert_eq!(s["process"]["cwd"], json!("/srv"));
        assert_eq!(
            s["annotations"]["org.opencontainers.image.stopSignal"],
            json!("SIGQUIT")
        );
        assert_eq!(
            s["annotations"]["org.opencontainers.image.os"],
            json!("linux")
        );
        assert_eq!(s["annotations"]["x"], json!("y"));
        let s = generate(
            &cfg,
            &dir,
            &Options {
                cmd: Some(vec!["c".into()]),
                tty: false,
            },
        )
        .unwrap();
        assert_eq!(s["process"]["args"], json!(["/bin/ep", "c"]));
    }
}
