//! Credentials: `--creds USER[:PASS]`, then the containers-auth.json file podman and skopeo
//! use (`$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`), then docker's
//! `~/.docker/config.json` (`$DOCKER_CONFIG/config.json`). Both files have the same shape:
//! `{"auths": {"HOST": {"auth": base64("user:pass")}}}`. `login` writes the first of them.
//! Also the parsing of a `WWW-Authenticate` challenge.
use crate::error::{malformed, Error, IoContext, Result};
use crate::store::atomic_write;
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creds {
    pub user: String,
    pub pass: String,
}

impl Creds {
    /// `USER:PASS` (a `--creds` value).
    pub fn parse(s: &str) -> Result<Creds> {
        let (user, pass) = s
            .split_once(':')
            .ok_or_else(|| Error::Invalid("--creds wants USER:PASSWORD".into()))?;
        Ok(Creds {
            user: user.into(),
            pass: pass.into(),
        })
    }
}

/// The auth file `login` writes and every lookup reads first.
pub fn default_auth_file() -> PathBuf {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        return PathBuf::from(p);
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        return Path::new(&d).join("containers/auth.json");
    }
    // podman's choice for root without a runtime dir
    PathBuf::from(format!(
        "/run/containers/{}/auth.json",
        nix::unistd::getuid()
    ))
}

fn docker_config() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(Path::new(&d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker/config.json"))
}

/// Where credentials are looked for, in order: `authfile` (or the default auth file), then
/// docker's config.json.
pub fn auth_files(authfile: Option<&Path>) -> Vec<PathBuf> {
    let mut v = vec![authfile
        .map(Path::to_path_buf)
        .unwrap_or_else(default_auth_file)];
    v.extend(docker_config());
    v
}

fn read_json(p: &Path) -> Result<Option<Value>> {
    match std::fs::read(p) {
        Ok(d) => serde_json::from_slice(&d)
            .map(Some)
            .map_err(|e| malformed(p.display().to_string(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            context: format!("read {}", p.display()),
            source: e,
        }),
    }
}

/// The keys an `auths` entry may use for `host`: `host`, `https://host`, and for Docker Hub
/// docker's historic `https://index.docker.io/v1/`.
fn keys_for(host: &str) -> Vec<String> {
    let mut k = vec![host.to_string(), format!("https://{host}")];
    if host == super::reference::DOCKER_HUB {
        k.push("https://index.docker.io/v1/".into());
        k.push("index.docker.io".into());
    }
    k
}

/// The stored credentials for `host`, from the first file that has some.
pub fn lookup(host: &str, authfile: Option<&Path>) -> Result<Option<Creds>> {
    for f in auth_files(authfile) {
        let Some(v) = read_json(&f)? else { continue };
        for k in keys_for(host) {
            let Some(a) = v["auths"][&k]["auth"].as_str() else {
                continue;
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|e| malformed(format!("{}: auths.{k}.auth", f.display()), e))?;
            let s = String::from_utf8_lossy(&raw);
            let (user, pass) = s.split_once(':').ok_or_else(|| {
                malformed(
                    format!("{}: auths.{k}.auth", f.display()),
                    "not user:password",
                )
            })?;
            return Ok(Some(Creds {
                user: user.into(),
                pass: pass.into(),
            }));
        }
    }
    Ok(None)
}

/// Stores `creds` for `host` in `file` (created 0600 with its dir).
pub fn store(file: &Path, host: &str, creds: &Creds) -> Result<()> {
    let mut v = read_json(file)?.unwrap_or_else(|| json!({}));
    if !v["auths"].is_object() {
        v["auths"] = json!({});
    }
    let enc =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", creds.user, creds.pass));
    v["auths"][host] = json!({ "auth": enc });
    write_private(file, &v)
}

/// Removes `host` from `file`; false when it was not there.
pub fn remove(file: &Path, host: &str) -> Result<bool> {
    let Some(mut v) = read_json(file)? else {
        return Ok(false);
    };
    let Some(auths) = v["auths"].as_object_mut() else {
        return Ok(false);
    };
    let mut found = false;
    for k in keys_for(host) {
        found |= auths.remove(&k).is_some();
    }
    if found {
        write_private(file, &v)?;
    }
    Ok(found)
}

fn write_private(file: &Path, v: &Value) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(d) = file.parent() {
        std::fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
    }
    atomic_write(file, &serde_json::to_vec_pretty(v).expect("json"))?;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
        .ctx(|| format!("chmod {}", file.display()))
}

/// A parsed `WWW-Authenticate` header: scheme (lower-case) and its parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `Bearer realm="https://x/token",service="reg",scope="repository:a:pull"`
/// (quoted values may hold commas; one challenge is enough for registries).
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, mut rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            break;
        }
        let (k, r) = rest.split_once('=')?;
        let (v, r) = if let Some(r) = r.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = r.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, c)) = chars.next() {
                            v.push(c)
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &r[end?..])
        } else {
            let end = r.find(',').unwrap_or(r.len());
            (r[..end].trim().to_string(), &r[end..])
        };
        params.push((k.trim().to_string(), v));
        rest = r;
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.io/token",service="registry",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.io/token"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.param("realm"), Some("Registry Realm"));
    }
    #[test]
    fn auth_file_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("sub/auth.json");
        let c = Creds::parse("u:p:w").unwrap();
        store(&f, "reg.io:5000", &c).unwrap();
        std::env::set_var("DOCKER_CONFIG", d.path().join("none"));
        assert_eq!(lookup("reg.io:5000", Some(&f)).unwrap(), Some(c));
        assert_eq!(lookup("other", Some(&f)).unwrap(), None);
        assert!(remove(&f, "reg.io:5000").unwrap());
        assert_eq!(lookup("reg.io:5000", Some(&f)).unwrap(), None);
    }
}
