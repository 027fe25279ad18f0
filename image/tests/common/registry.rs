//! A real registry for the tests: Debian's `docker-registry` (distribution 2.8) on a free
//! 127.0.0.1 port, plain, with htpasswd basic auth behind TLS (a CA made here with openssl),
//! or with token auth (a token server in the test process, tokens signed with openssl).
//! Stopped and removed on drop, also when the test failed. Also a tiny HTTP server and a TCP
//! proxy that can cut connections (a registry going down mid-pull).
#![allow(dead_code)]
use base64::Engine;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const USER: &str = "capsa";
pub const PASS: &str = "s3cret-pw";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, child: &mut Child, log: &Path) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "docker-registry exited ({st}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "registry did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub enum Auth {
    None,
    /// htpasswd basic auth, TLS with a test CA
    BasicTls,
    /// bearer tokens from a server in this process (plain HTTP)
    Token,
}

pub struct Registry {
    pub dir: PathBuf,
    pub port: u16,
    child: Child,
    _token: Option<Server>,
}

impl Registry {
    pub fn start(dir: &Path, auth: Auth) -> Registry {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let mut extra = String::new();
        let mut token = None;
        match auth {
            Auth::None => {}
            Auth::BasicTls => {
                make_ca_and_cert(dir);
                let h = run(Command::new("htpasswd").args(["-Bbn", USER, PASS]));
                std::fs::write(dir.join("htpasswd"), h).unwrap();
                extra = format!(
                    "  tls:\n    certificate: {d}/server.crt\n    key: {d}/server.key\nauth:\n  htpasswd:\n    realm: capsa-test\n    path: {d}/htpasswd\n",
                    d = dir.display()
                );
            }
            Auth::Token => {
                make_ca_and_cert(dir);
                let srv = token_server(dir);
                extra = format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: capsa-test\n    issuer: capsa-test-issuer\n    rootcertbundle: {}/ca.crt\n",
                    srv.port,
                    dir.display()
                );
                token = Some(srv);
            }
        }
        // foreign layers' URLs allowed (as Docker Hub allows them): a manifest may name a
        // layer the registry has no blob of
        let conf = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n",
            d = dir.display()
        );
        std::fs::write(dir.join("config.yml"), conf).unwrap();
        let log = dir.join("registry.log");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start docker-registry (package docker-registry)");
        wait_port(port, &mut child, &log);
        Registry {
            dir: dir.to_path_buf(),
            port,
            child,
            _token: token,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file distribution keeps a blob in.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// ca.crt/ca.key, and server.crt/server.key for 127.0.0.1 signed by it; certs/ca.crt for
/// --cert-dir.
fn make_ca_and_cert(dir: &Path) {
    let d = |f: &str| dir.join(f).to_str().unwrap().to_string();
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=capsa test CA",
        "-keyout",
        &d("ca.key"),
        "-out",
        &d("ca.crt"),
    ]));
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(Command::new("openssl").args([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &d("server.key"),
        "-out",
        &d("server.csr"),
    ]));
    run(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        &d("server.csr"),
        "-CA",
        &d("ca.crt"),
        "-CAkey",
        &d("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &d("san.ext"),
        "-out",
        &d("server.crt"),
    ]));
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::copy(dir.join("ca.crt"), dir.join("certs/ca.crt")).unwrap();
}

// ---------------------------------------------------------------- a tiny HTTP server

pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Server {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn read_request(s: &mut TcpStream) -> Option<Request> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut it = line.split_whitespace();
    let (method, path) = (it.next()?.to_string(), it.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).ok()?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Some(Request {
        method,
        path,
        headers,
    })
}

/// Serves each request with `handler` → (status line, headers, body); one request per
/// connection.
pub fn serve(
    handler: impl Fn(&Request) -> (u16, Vec<(String, String)>, Vec<u8>) + Send + Sync + 'static,
) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for s in l.incoming() {
            if st.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut s) = s else { continue };
            let h = handler.clone();
            std::thread::spawn(move || {
                let Some(req) = read_request(&mut s) else {
                    return;
                };
                let (code, headers, body) = h(&req);
                let mut out = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                let _ = s.write_all(out.as_bytes());
                let _ = s.write_all(&body);
            });
        }
    });
    Server { port, stop }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The token server: checks basic credentials (USER/PASS), grants what `scope` asks, signs
/// an RS256 JWT with the CA key (its certificate in the x5c header; the registry trusts
/// ca.crt as rootcertbundle).
fn token_server(dir: &Path) -> Server {
    let dir = dir.to_path_buf();
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(dir.join("ca.crt"))
        .output()
        .unwrap()
        .stdout;
    let x5c = base64::engine::general_purpose::STANDARD.encode(der);
    let n = Arc::new(AtomicU64::new(0));
    serve(move |req| {
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
        );
        if req.header("authorization") != Some(want.as_str()) {
            return (
                401,
                vec![],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#.to_vec(),
            );
        }
        let q = req.path.split_once('?').map(|x| x.1).unwrap_or("");
        let mut access = Vec::new();
        for kv in q.split('&') {
            if let Some(s) = kv.strip_prefix("scope=") {
                let s = s
                    .replace("%3A", ":")
                    .replace("%2F", "/")
                    .replace("%2C", ",");
                let mut p = s.splitn(3, ':');
                let (t, name, acts) = (
                    p.next().unwrap_or(""),
                    p.next().unwrap_or(""),
                    p.next().unwrap_or(""),
                );
                let acts: Vec<&str> = acts.split(',').collect();
                access.push(serde_json::json!({"type": t, "name": name, "actions": acts}));
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
        let claims = serde_json::json!({
            "iss": "capsa-test-issuer", "sub": USER, "aud": "capsa-test",
            "exp": now + 600, "nbf": now - 10, "iat": now,
            "jti": format!("t{}", n.fetch_add(1, Ordering::SeqCst)), "access": access,
        });
        let signing = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut c = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(dir.join("ca.key"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin
            .take()
            .unwrap()
            .write_all(signing.as_bytes())
            .unwrap();
        let sig = c.wait_with_output().unwrap().stdout;
        let tok = format!("{signing}.{}", b64url(&sig));
        (
            200,
            vec![("Content-Type".into(), "application/json".into())],
            serde_json::json!({"token": tok}).to_string().into_bytes(),
        )
    })
}

// ---------------------------------------------------------------- a proxy that can fail

/// Forwards 127.0.0.1:port to `target`. While `cut_after` is set, the connections it
/// serves are cut once that many response bytes went through in all, and later ones are
/// refused: the registry "goes down" in the middle of a pull. Records request heads.
pub struct Proxy {
    pub port: u16,
    pub cut_after: Arc<Mutex<Option<u64>>>,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

pub fn proxy(target: u16) -> Proxy {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let cut_after: Arc<Mutex<Option<u64>>> = Arc::new(Mutex::new(None));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicU64::new(0));
    let (st, cut, reqs) = (stop.clone(), cut_after.clone(), requests.clone());
    std::thread::spawn(move || {
        for c in l.incoming() {
            if st.load(Ordering::SeqCst) {
                break;
            }
            let Ok(client) = c else { continue };
            let limit = *cut.lock().unwrap();
            if limit.is_some_and(|n| sent.load(Ordering::SeqCst) >= n) {
                let _ = client.shutdown(Shutdown::Both); // down: refuse
                continue;
            }
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (mut c1, mut u1) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let reqs = reqs.clone();
            // client -> registry, recording what looks like request heads
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = c1.read(&mut buf) {
                    if n == 0 || u1.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    let s = String::from_utf8_lossy(&buf[..n]);
                    if s.starts_with("GET ") || s.starts_with("HEAD ") {
                        reqs.lock()
                            .unwrap()
                            .push(s.split("\r\n\r\n").next().unwrap_or("").to_string());
                    }
                }
                let _ = u1.shutdown(Shutdown::Both);
            });
            let (mut u2, mut c2) = (upstream, client);
            let (sent, cut) = (sent.clone(), cut.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n) = u2.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                    if cut.lock().unwrap().is_some_and(|lim| total > lim) {
                        break;
                    }
                    if c2.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c2.shutdown(Shutdown::Both);
                let _ = u2.shutdown(Shutdown::Both);
            });
        }
    });
    Proxy {
        port,
        cut_after,
        requests,
        stop,
    }
}
