//! The OCI distribution API over HTTP: a blocking reqwest client (rustls, HTTP/2 when TLS
//! negotiates it, HTTP/1.1 else), the token and basic auth flows, manifests, blob reads from
//! an offset (Range), blob existence checks, cross-repository mounts and uploads.
use super::auth::{parse_challenge, Creds};
use super::reference::Reference;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use reqwest::blocking::{Body, Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Manifests larger than this are refused (containerd's limit too).
pub const MANIFEST_LIMIT: u64 = 4 << 20;

/// How to reach a registry (command-line flags or registries.conf).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// false: accept any certificate (`--tls-verify=false`)
    pub tls_verify: bool,
    /// extra CA certificates (`*.crt`), as in /etc/containers/certs.d/HOST/
    pub cert_dir: Option<PathBuf>,
    /// plain HTTP (only when asked: `--plain-http`, or `insecure` in registries.conf)
    pub plain_http: bool,
    pub creds: Option<Creds>,
    pub authfile: Option<PathBuf>,
}

/// A connection to one registry host, authorized for a set of scopes.
pub struct Registry {
    http: Client,
    base: Url,
    pub host: String,
    creds: Option<Creds>,
    /// `repository:NAME:ACTIONS` scopes a bearer token is asked for
    scopes: Vec<String>,
    authorization: Mutex<Option<HeaderValue>>,
}

/// A stored blob to upload.
pub struct BlobFile<'a> {
    pub digest: &'a Digest,
    pub path: &'a Path,
    pub size: u64,
}

/// A fetched manifest or index: its bytes, media type and digest.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

fn http_error(what: &str, e: reqwest::Error) -> Error {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    Error::Registry(format!("{what}: {msg}"))
}

fn status_error(what: &str, r: Response) -> Error {
    let status = r.status().as_u16();
    Error::Status {
        what: what.to_string(),
        status,
        detail: error_text(r),
    }
}

/// A registry error body (`{"errors":[{"code":…,"message":…}]}`) as one line.
fn error_text(r: Response) -> String {
    let status = r.status();
    let body = r.text().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let errs: Vec<String> = v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e["code"].as_str().unwrap_or("?"),
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if errs.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", errs.join("; "))
    }
}

fn client(host: &str, o: &Options) -> Result<Client> {
    let mut b = Client::builder()
        .use_rustls_tls()
        .user_agent(concat!("capsa-image/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .timeout(None)
        .tcp_keepalive(std::time::Duration::from_secs(30));
    if !o.tls_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    let mut dirs: Vec<PathBuf> = [
        format!("/etc/containers/certs.d/{host}"),
        format!("/etc/docker/certs.d/{host}"),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect();
    dirs.extend(o.cert_dir.clone());
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "crt") {
                let pem = std::fs::read(&p).ctx(|| format!("read {}", p.display()))?;
                let c = reqwest::Certificate::from_pem(&pem)
                    .map_err(|e| http_error(&format!("certificate {}", p.display()), e))?;
                b = b.add_root_certificate(c);
            }
        }
    }
    b.build().map_err(|e| http_error("HTTP client", e))
}

impl Registry {
    /// Connects to `r`'s registry and authorizes for `scopes` (e.g. `repository:a/b:pull`):
    /// a GET of /v2/ answers 401 with the challenge to meet, basic or bearer.
    pub fn connect(r: &Reference, o: &Options, scopes: Vec<String>) -> Result<Registry> {
        let scheme = if o.plain_http { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{}/", r.api_host()))
            .map_err(|e| Error::Invalid(format!("registry host {:?}: {e}", r.host)))?;
        let creds = match &o.creds {
            Some(c) => Some(c.clone()),
            None => super::auth::lookup(&r.host, o.authfile.as_deref())?,
        };
        let reg = Registry {
            http: client(r.api_host(), o)?,
            base,
            host: r.host.clone(),
            creds,
            scopes,
            authorization: Mutex::new(None),
        };
        reg.authorize()?;
        Ok(reg)
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("registry path")
    }

    /// GET /v2/ and meet its challenge.
    fn authorize(&self) -> Result<()> {
        let what = format!("registry {}", self.host);
        let r = self
            .http
            .get(self.url("v2/"))
            .send()
            .map_err(|e| http_error(&what, e))?;
        tracing::debug!(host = %self.host, version = ?r.version(), status = %r.status(), "GET /v2/");
        match r.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                let ch = r
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge)
                    .ok_or_else(|| {
                        Error::Registry(format!("{what}: 401 without a usable WWW-Authenticate"))
                    })?;
                let h = match ch.scheme.as_str() {
                    "basic" => {
                        let c = self.creds.as_ref().ok_or_else(|| {
                            Error::Auth(format!("{what} wants a user name and password (--creds, or capsa-image login)"))
                        })?;
                        basic(c)
                    }
                    "bearer" => self.token(&ch)?,
                    s => {
                        return Err(Error::Auth(format!(
                            "{what}: unsupported auth scheme {s:?}"
                        )))
                    }
                };
                *self.authorization.lock().expect("lock") = Some(h);
                // a wrong password only shows now, for basic auth
                let r = self.request(Method::GET, self.url("v2/"))?.send();
                let r = r.map_err(|e| http_error(&what, e))?;
                if r.status() == StatusCode::UNAUTHORIZED {
                    return Err(Error::Auth(format!(
                        "{what}: credentials refused ({})",
                        error_text(r)
                    )));
                }
                Ok(())
            }
            _ => Err(status_error(&format!("{what}: /v2/"), r)),
        }
    }

    /// The bearer token flow: GET realm?service=…&scope=… (with basic credentials if any).
    fn token(&self, ch: &super::auth::Challenge) -> Result<HeaderValue> {
        let realm = ch.param("realm").ok_or_else(|| {
            Error::Auth(format!(
                "registry {}: bearer challenge without realm",
                self.host
            ))
        })?;
        let mut url = Url::parse(realm).map_err(|e| {
            Error::Auth(format!(
                "registry {}: token realm {realm:?}: {e}",
                self.host
            ))
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = ch.param("service") {
                q.append_pair("service", s);
            }
            for s in &self.scopes {
                q.append_pair("scope", s);
            }
        }
        let mut req = self.http.get(url);
        if let Some(c) = &self.creds {
            req = req.basic_auth(&c.user, Some(&c.pass));
        }
        let what = format!("token from {realm}");
        let r = req.send().map_err(|e| http_error(&what, e))?;
        if !r.status().is_success() {
            let st = r.status();
            let t = error_text(r);
            return Err(
                if st == StatusCode::UNAUTHORIZED || st == StatusCode::FORBIDDEN {
                    Error::Auth(format!("{what}: credentials refused ({t})"))
                } else {
                    Error::Auth(format!("{what}: {t}"))
                },
            );
        }
        let body = r.bytes().map_err(|e| http_error(&what, e))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::Auth(format!("{what}: not JSON: {e}")))?;
        let tok = v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .ok_or_else(|| Error::Auth(format!("{what}: answer has no token")))?;
        HeaderValue::from_str(&format!("Bearer {tok}"))
            .map_err(|_| Error::Auth(format!("{what}: token is not a header value")))
    }

    fn request(&self, m: Method, url: Url) -> Result<RequestBuilder> {
        let mut rb = self.http.request(m, url);
        if let Some(h) = self.authorization.lock().expect("lock").clone() {
            rb = rb.header(AUTHORIZATION, h);
        }
        Ok(rb)
    }

    /// Sends a request; a 401 (an expired token) re-authorizes and sends it again once.
    fn send(
        &self,
        what: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
        m: Method,
        url: Url,
    ) -> Result<Response> {
        let r = build(self.request(m.clone(), url.clone())?)
            .send()
            .map_err(|e| http_error(what, e))?;
        tracing::debug!(%url, version = ?r.version(), status = %r.status(), "{m}");
        if r.status() != StatusCode::UNAUTHORIZED {
            return Ok(r);
        }
        self.authorize()?;
        build(self.request(m, url)?)
            .send()
            .map_err(|e| http_error(what, e))
    }

    /// A manifest or index by tag or digest; checked against the digest when there is one
    /// and against MANIFEST_LIMIT.
    pub fn manifest(&self, repo: &str, object: &str) -> Result<Fetched> {
        let what = format!("manifest {}/{repo}:{object}", self.host);
        let url = self.url(&format!("v2/{repo}/manifests/{object}"));
        let r = self.send(
            &what,
            |b| b.header(ACCEPT, MANIFEST_ACCEPT),
            Method::GET,
            url,
        )?;
        if !r.status().is_success() {
            return Err(status_error(&what, r));
        }
        if r.content_length().is_some_and(|n| n > MANIFEST_LIMIT) {
            return Err(Error::Registry(format!(
                "{what}: larger than the {MANIFEST_LIMIT}-byte limit"
            )));
        }
        let media_type = r
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let mut bytes = Vec::new();
        r.take(MANIFEST_LIMIT + 1)
            .read_to_end(&mut bytes)
            .ctx(|| format!("read {what}"))?;
        if bytes.len() as u64 > MANIFEST_LIMIT {
            return Err(Error::Registry(format!(
                "{what}: larger than the {MANIFEST_LIMIT}-byte limit"
            )));
        }
        let digest = Digest::of_bytes(&bytes);
        if object.starts_with("sha256:") && digest.as_str() != object {
            return Err(Error::DigestMismatch {
                what,
                expected: object.to_string(),
                actual: digest.to_string(),
            });
        }
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }

    /// A small blob (config), read whole and checked against its digest.
    pub fn small_blob(&self, repo: &str, d: &Digest, limit: u64) -> Result<Vec<u8>> {
        let what = format!("blob {d}");
        let (r, _) = self.blob(repo, d, 0)?;
        let mut bytes = Vec::new();
        r.take(limit + 1)
            .read_to_end(&mut bytes)
            .ctx(|| format!("read {what}"))?;
        if bytes.len() as u64 > limit {
            return Err(Error::Registry(format!(
                "{what}: larger than the {limit}-byte limit"
            )));
        }
        let got = Digest::of_bytes(&bytes);
        if &got != d {
            return Err(Error::DigestMismatch {
                what,
                expected: d.to_string(),
                actual: got.to_string(),
            });
        }
        Ok(bytes)
    }

    /// GET of a blob from byte `offset` on. Returns the body and the offset it starts at:
    /// `offset` when the registry honoured the Range, 0 when it sent the whole blob.
    pub fn blob(&self, repo: &str, d: &Digest, offset: u64) -> Result<(Response, u64)> {
        let what = format!("blob {d} from {}/{repo}", self.host);
        let url = self.url(&format!("v2/{repo}/blobs/{d}"));
        let r = self.send(
            &what,
            |b| {
                if offset > 0 {
                    b.header(reqwest::header::RANGE, format!("bytes={offset}-"))
                } else {
                    b
                }
            },
            Method::GET,
            url,
        )?;
        match r.status() {
            StatusCode::PARTIAL_CONTENT if offset > 0 => Ok((r, offset)),
            StatusCode::OK => Ok((r, 0)),
            StatusCode::RANGE_NOT_SATISFIABLE => Err(Error::Status {
                what,
                status: 416,
                detail: format!(
                    "the registry has no byte {offset} (blob shorter than expected: truncated?)"
                ),
            }),
            _ => Err(status_error(&what, r)),
        }
    }

    /// HEAD of a blob: whether the repository has it.
    pub fn has_blob(&self, repo: &str, d: &Digest) -> Result<bool> {
        let what = format!("HEAD blob {d} in {}/{repo}", self.host);
        let url = self.url(&format!("v2/{repo}/blobs/{d}"));
        let r = self.send(&what, |b| b, Method::HEAD, url)?;
        match r.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(Error::Registry(format!("{what}: HTTP {s}"))),
        }
    }

    /// Starts an upload, or mounts `d` from repository `from` of the same registry: Ok(None)
    /// when mounted, else the upload's location.
    pub fn start_upload(&self, repo: &str, mount: Option<(&Digest, &str)>) -> Result<Option<Url>> {
        let what = format!("upload to {}/{repo}", self.host);
        let mut url = self.url(&format!("v2/{repo}/blobs/uploads/"));
        if let Some((d, from)) = mount {
            url.query_pairs_mut()
                .append_pair("mount", d.as_str())
                .append_pair("from", from);
        }
        let r = self.send(
            &what,
            |b| b.header(reqwest::header::CONTENT_LENGTH, "0"),
            Method::POST,
            url,
        )?;
        match r.status() {
            StatusCode::CREATED if mount.is_some() => Ok(None),
            StatusCode::ACCEPTED => Ok(Some(self.location(&r, &what)?)),
            _ => Err(status_error(&what, r)),
        }
    }

    fn location(&self, r: &Response, what: &str) -> Result<Url> {
        let l = r
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Registry(format!("{what}: answer without Location")))?;
        self.base
            .join(l)
            .map_err(|e| Error::Registry(format!("{what}: Location {l:?}: {e}")))
    }

    /// Uploads `size` bytes of the file at `path` as blob `d`: in one PUT, or in PATCHes of
    /// `chunk` bytes then a closing PUT.
    pub fn upload(
        &self,
        repo: &str,
        mut loc: Url,
        blob: &BlobFile,
        chunk: Option<u64>,
        bar: &indicatif::ProgressBar,
    ) -> Result<()> {
        let (d, path, size) = (blob.digest, blob.path, blob.size);
        let what = format!("upload of {d} to {}/{repo}", self.host);
        let mut f = std::fs::File::open(path).ctx(|| format!("open {}", path.display()))?;
        let put_body = match chunk.filter(|c| *c > 0) {
            None => Body::sized(bar.wrap_read(f), size),
            Some(chunk) => {
                loc = self.upload_chunks(&what, loc, &mut f, blob, chunk, bar)?;
                Body::from(Vec::new())
            }
        };
        loc.query_pairs_mut().append_pair("digest", d.as_str());
        let r = self
            .request(Method::PUT, loc)?
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(put_body)
            .send()
            .map_err(|e| http_error(&what, e))?;
        if r.status() != StatusCode::CREATED {
            return Err(status_error(&format!("{what}: PUT"), r));
        }
        Ok(())
    }

    /// The PATCH requests of a chunked upload; returns the location for the closing PUT.
    fn upload_chunks(
        &self,
        what: &str,
        mut loc: Url,
        f: &mut std::fs::File,
        blob: &BlobFile,
        chunk: u64,
        bar: &indicatif::ProgressBar,
    ) -> Result<Url> {
        let (path, size) = (blob.path, blob.size);
        let mut start = 0u64;
        while start < size {
            let n = chunk.min(size - start);
            let mut buf = Vec::with_capacity(n as usize);
            f.take(n)
                .read_to_end(&mut buf)
                .ctx(|| format!("read {}", path.display()))?;
            let r = self
                .request(Method::PATCH, loc.clone())?
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("Content-Range", format!("{start}-{}", start + n - 1))
                .body(buf)
                .send()
                .map_err(|e| http_error(what, e))?;
            if r.status() != StatusCode::ACCEPTED {
                return Err(status_error(&format!("{what}: PATCH"), r));
            }
            loc = self.location(&r, what)?;
            start += n;
            bar.inc(n);
        }
        Ok(loc)
    }

    /// PUT of a manifest under a tag (or its digest).
    pub fn put_manifest(
        &self,
        repo: &str,
        object: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let what = format!("manifest {}/{repo}:{object}", self.host);
        let url = self.url(&format!("v2/{repo}/manifests/{object}"));
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type)
                .map_err(|_| Error::Invalid(format!("media type {media_type:?}")))?,
        );
        let r = self.send(
            &what,
            |b| b.headers(h.clone()).body(bytes.to_vec()),
            Method::PUT,
            url,
        )?;
        if r.status() != StatusCode::CREATED {
            return Err(status_error(&what, r));
        }
        Ok(())
    }
}

fn basic(c: &Creds) -> HeaderValue {
    use base64::Engine;
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.user, c.pass));
    let mut h = HeaderValue::from_str(&format!("Basic {enc}")).expect("base64 is a header value");
    h.set_sensitive(true);
    h
}
