//! The subset of containers-registries.conf(5) capsa-image reads: `unqualified-search-registries`
//! for short names, and `[[registry]]` tables with `prefix`, `location`, `insecure`,
//! `blocked` and `[[registry.mirror]]` (`location`, `insecure`). Read from
//! `$CONTAINERS_REGISTRIES_CONF`, else /etc/containers/registries.conf (and its
//! registries.conf.d/*.conf drop-ins, in name order); a missing file means no mirrors and
//! docker.io for short names.
use super::reference::{split_host, Reference};
use crate::error::{malformed, Error, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default)]
pub struct Registry {
    pub prefix: String,
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirrors: Vec<(String, bool)>,
}

#[derive(Clone, Debug, Default)]
pub struct Conf {
    pub search: Vec<String>,
    pub registries: Vec<Registry>,
}

/// Where an image can be fetched from: the location to ask and whether it is insecure
/// (plain HTTP).
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub reference: Reference,
    pub insecure: bool,
    pub mirror: bool,
}

fn conf_files() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("CONTAINERS_REGISTRIES_CONF") {
        return vec![PathBuf::from(p)];
    }
    let mut v = vec![PathBuf::from("/etc/containers/registries.conf")];
    if let Ok(rd) = std::fs::read_dir("/etc/containers/registries.conf.d") {
        let mut d: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        d.sort();
        v.extend(d);
    }
    v
}

impl Conf {
    pub fn load() -> Result<Conf> {
        let mut c = Conf::default();
        for f in conf_files() {
            match std::fs::read_to_string(&f) {
                Ok(s) => c.merge(&f, &s)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Io {
                        context: format!("read {}", f.display()),
                        source: e,
                    })
                }
            }
        }
        Ok(c)
    }

    /// Adds one file's settings (a later file's search list replaces an earlier one's).
    pub fn merge(&mut self, file: &Path, text: &str) -> Result<()> {
        let bad = |e: &dyn std::fmt::Display| malformed(file.display().to_string(), e);
        let t: toml::Table = text.parse().map_err(|e| bad(&e))?;
        if let Some(s) = t.get("unqualified-search-registries") {
            let a = s
                .as_array()
                .ok_or_else(|| bad(&"unqualified-search-registries is not a list"))?;
            self.search = a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
        }
        let regs = match t.get("registry") {
            Some(r) => r
                .as_array()
                .ok_or_else(|| bad(&"[[registry]] is not a table array"))?
                .clone(),
            None => Vec::new(),
        };
        for r in regs {
            let get = |k: &str| r.get(k).and_then(|v| v.as_str()).map(String::from);
            let location = get("location").unwrap_or_default();
            let prefix = get("prefix").unwrap_or_else(|| location.clone());
            if prefix.is_empty() {
                return Err(bad(&"a [[registry]] has neither prefix nor location"));
            }
            let mirrors = r
                .get("mirror")
                .and_then(|m| m.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|m| {
                            let l = m.get("location")?.as_str()?.to_string();
                            Some((
                                l,
                                m.get("insecure").and_then(|v| v.as_bool()).unwrap_or(false),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            self.registries.retain(|x| x.prefix != prefix);
            self.registries.push(Registry {
                location: if location.is_empty() {
                    prefix.clone()
                } else {
                    location
                },
                prefix,
                insecure: r.get("insecure").and_then(|v| v.as_bool()).unwrap_or(false),
                blocked: r.get("blocked").and_then(|v| v.as_bool()).unwrap_or(false),
                mirrors,
            });
        }
        Ok(())
    }

    /// The fully qualified names a user's name may mean: itself when it names a host, else
    /// one per search registry (docker.io when none is configured).
    pub fn qualify(&self, name: &str) -> Result<Vec<Reference>> {
        if let Some((host, rest)) = split_host(name) {
            return Ok(vec![Reference::with_host(host, rest, name)?]);
        }
        let search = if self.search.is_empty() {
            vec![super::reference::DOCKER_HUB.to_string()]
        } else {
            self.search.clone()
        };
        search
            .iter()
            .map(|h| Reference::with_host(h, name, name))
            .collect()
    }

    /// The [[registry]] with the longest prefix matching `r` (`host/repo`).
    fn matching(&self, r: &Reference) -> Option<&Registry> {
        let full = r.name();
        self.registries
            .iter()
            .filter(|x| {
                full == x.prefix
                    || full.starts_with(&format!("{}/", x.prefix.trim_end_matches('/')))
                    || (x.prefix.starts_with("*.") && r.host.ends_with(&x.prefix[1..]))
            })
            .max_by_key(|x| x.prefix.len())
    }

    /// Where to pull `r` from: its mirrors in order, then its own location.
    pub fn pull_endpoints(&self, r: &Reference) -> Result<Vec<Endpoint>> {
        let Some(reg) = self.matching(r) else {
            return Ok(vec![Endpoint {
                reference: r.clone(),
                insecure: false,
                mirror: false,
            }]);
        };
        if reg.blocked {
            return Err(Error::Invalid(format!(
                "registry {} is blocked in registries.conf",
                reg.prefix
            )));
        }
        let rewrite = |loc: &str| -> Result<Reference> {
            let full = r.name();
            let rest = if reg.prefix.starts_with("*.") {
                full.clone()
            } else {
                let tail = full
                    .strip_prefix(reg.prefix.trim_end_matches('/'))
                    .unwrap_or("");
                format!("{}{tail}", loc.trim_end_matches('/'))
            };
            let mut s = rest;
            if let Some(t) = &r.tag {
                s.push_str(&format!(":{t}"));
            }
            if let Some(d) = &r.digest {
                s.push_str(&format!("@{d}"));
            }
            let (h, rest) = split_host(&s).ok_or_else(|| {
                Error::Invalid(format!("registries.conf location {loc:?} names no host"))
            })?;
            Reference::with_host(h, rest, &s)
        };
        let mut v = Vec::new();
        for (m, insecure) in &reg.mirrors {
            v.push(Endpoint {
                reference: rewrite(m)?,
                insecure: *insecure,
                mirror: true,
            });
        }
        v.push(Endpoint {
            reference: rewrite(&reg.location)?,
            insecure: reg.insecure,
            mirror: false,
        });
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn mirrors_and_short_names() {
        let mut c = Conf::default();
        c.merge(
            Path::new("t.conf"),
            r#"
unqualified-search-registries = ["reg.example:5000", "docker.io"]
[[registry]]
prefix = "reg.example:5000/lib"
location = "127.0.0.1:5001/mirrored/lib"
insecure = true
[[registry.mirror]]
location = "127.0.0.1:5002/m"
"#,
        )
        .unwrap();
        let q = c.qualify("lib/busybox:1").unwrap();
        assert_eq!(q[0].to_string(), "reg.example:5000/lib/busybox:1");
        assert_eq!(q[1].to_string(), "docker.io/lib/busybox:1");
        let e = c.pull_endpoints(&q[0]).unwrap();
        assert_eq!(e[0].reference.to_string(), "127.0.0.1:5002/m/busybox:1");
        assert!(e[0].mirror && !e[0].insecure);
        assert_eq!(
            e[1].reference.to_string(),
            "127.0.0.1:5001/mirrored/lib/busybox:1"
        );
        assert!(e[1].insecure);
        assert_eq!(c.pull_endpoints(&q[1]).unwrap().len(), 1);
    }
}
