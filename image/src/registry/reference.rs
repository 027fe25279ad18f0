//! Image references as docker and podman write them: `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`.
//! The first component is a host when it has a `.` or a `:` or is `localhost`; `docker.io`
//! names get `library/` for a one-component path.
use crate::digest::Digest;
use crate::error::{Error, Result};

pub const DOCKER_HUB: &str = "docker.io";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// registry host (and port) as written, e.g. `127.0.0.1:5000`, `docker.io`
    pub host: String,
    /// repository path, e.g. `library/busybox`
    pub repo: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses a fully qualified reference (with a host). A name without one is a short
    /// name: see `split_short`.
    pub fn parse(s: &str) -> Result<Reference> {
        let (host, rest) =
            split_host(s).ok_or_else(|| Error::Invalid(format!("{s:?} names no registry host")))?;
        Self::with_host(host, rest, s)
    }

    /// `name` resolved against `host` (a short name, or the rest of a full one).
    pub fn with_host(host: &str, name: &str, whole: &str) -> Result<Reference> {
        let bad = |why: &str| Error::Invalid(format!("invalid image reference {whole:?}: {why}"));
        let (name, digest) = match name.split_once('@') {
            Some((n, d)) => (n, Some(Digest::parse(d)?)),
            None => (name, None),
        };
        let (repo, tag) = match name.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
            _ => (name, None),
        };
        if repo.is_empty() {
            return Err(bad("empty repository"));
        }
        let repo_ok = repo.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
        if !repo_ok {
            return Err(bad(
                "repository components are lower-case letters, digits, . _ -",
            ));
        }
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return Err(bad("bad tag"));
            }
        }
        let host = if host == "index.docker.io" {
            DOCKER_HUB
        } else {
            host
        };
        let repo = if host == DOCKER_HUB && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo.to_string()
        };
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            host: host.to_string(),
            repo,
            tag,
            digest,
        })
    }

    /// What the manifest endpoint takes: the digest when there is one, else the tag.
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// `host/repo`
    pub fn name(&self) -> String {
        format!("{}/{}", self.host, self.repo)
    }

    /// The HTTP endpoint host: Docker Hub's API lives on registry-1.docker.io.
    pub fn api_host(&self) -> &str {
        if self.host == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &self.host
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Splits `host/rest` when the first component is a host; None for a short name.
pub fn split_host(s: &str) -> Option<(&str, &str)> {
    let (first, rest) = s.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some((first, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_references() {
        let r = Reference::parse("127.0.0.1:5000/test/nginx:bookworm").unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repo, "test/nginx");
        assert_eq!(r.tag.as_deref(), Some("bookworm"));
        assert_eq!(r.to_string(), "127.0.0.1:5000/test/nginx:bookworm");
        let r = Reference::parse("docker.io/busybox").unwrap();
        assert_eq!(r.repo, "library/busybox");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost/x@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.object(), d);
        assert!(Reference::parse("busybox").is_err());
        assert!(Reference::parse("h.io/Upper").is_err());
        assert!(split_host("library/busybox").is_none());
    }
}
