//! A client of the CRI streaming server (exec, attach) over websocket, as
//! `kubectl exec` reaches it through the API server: protocol
//! `v4.channel.k8s.io`, each binary message prefixed by its channel (0 stdin,
//! 1 stdout, 2 stderr, 3 status/error, 4 terminal resize).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

const PROTOCOL: &str = "v4.channel.k8s.io";
/// A stream that says nothing for this long has stalled: a failure.
const STALL: Duration = Duration::from_secs(60);

#[derive(Default, Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    /// The status the server sends on channel 3 (v4: a metav1.Status JSON).
    pub status: String,
}

impl Output {
    /// The exit code a v4 status carries: 0 on Success, else the
    /// `ExitCode` cause of a NonZeroExitCode failure.
    pub fn exit_code(&self) -> Option<i32> {
        let v: serde_json::Value = serde_json::from_str(&self.status).ok()?;
        if v["status"] == "Success" {
            return Some(0);
        }
        v["details"]["causes"]
            .as_array()?
            .iter()
            .find(|c| c["reason"] == "ExitCode")?["message"]
            .as_str()?
            .parse()
            .ok()
    }
}

pub struct Session {
    ws: WebSocket<TcpStream>,
    pub out: Output,
    closed: bool,
}

impl Session {
    /// Opens the URL an Exec or Attach call returned.
    pub fn open(url: &str) -> Session {
        let ws_url = url.replacen("http://", "ws://", 1);
        let hostport = ws_url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("host:port in the streaming URL")
            .to_string();
        let tcp = TcpStream::connect(&hostport)
            .unwrap_or_else(|e| panic!("connect to the streaming server {hostport}: {e}"));
        tcp.set_read_timeout(Some(STALL)).expect("read timeout");
        let mut req = ws_url.as_str().into_client_request().expect("request");
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", PROTOCOL.parse().unwrap());
        let (ws, resp) = tungstenite::client::client(req, tcp)
            .unwrap_or_else(|e| panic!("websocket handshake with {url}: {e}"));
        let proto = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(proto, PROTOCOL, "the server's protocol");
        Session {
            ws,
            out: Output::default(),
            closed: false,
        }
    }

    fn send(&mut self, channel: u8, data: &[u8]) {
        let mut msg = vec![channel];
        msg.extend_from_slice(data);
        self.ws
            .send(Message::binary(msg))
            .expect("send on the stream");
    }

    pub fn stdin(&mut self, data: &str) {
        self.send(0, data.as_bytes());
    }

    pub fn resize(&mut self, width: u16, height: u16) {
        let json = format!("{{\"Width\":{width},\"Height\":{height}}}");
        self.send(4, json.as_bytes());
    }

    /// Reads one message into `out`; false once the stream has ended.
    fn read_one(&mut self) -> bool {
        if self.closed {
            return false;
        }
        match self.ws.read() {
            Ok(Message::Binary(b)) if !b.is_empty() => {
                let text = String::from_utf8_lossy(&b[1..]).into_owned();
                match b[0] {
                    1 => self.out.stdout.push_str(&text),
                    2 => self.out.stderr.push_str(&text),
                    3 => self.out.status.push_str(&text),
                    _ => {}
                }
                true
            }
            Ok(Message::Close(_)) => {
                self.closed = true;
                false
            }
            Ok(_) => true,
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                self.closed = true;
                false
            }
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!(
                    "the stream said nothing for {STALL:?}; so far: {:?}",
                    self.out
                )
            }
            Err(tungstenite::Error::Protocol(_)) => {
                // The server may drop the TCP connection without a close frame.
                self.closed = true;
                false
            }
            Err(e) => panic!("read from the stream: {e}; so far: {:?}", self.out),
        }
    }

    /// Reads until `done(out)` holds (or the stream ends: a failure).
    pub fn read_until(&mut self, what: &str, done: impl Fn(&Output) -> bool) {
        let deadline = Instant::now() + STALL;
        while !done(&self.out) {
            assert!(
                self.read_one(),
                "the stream ended before {what}: {:?}",
                self.out
            );
            assert!(
                Instant::now() < deadline,
                "no {what} within {STALL:?}: {:?}",
                self.out
            );
        }
    }

    /// Reads everything until the server ends the stream.
    pub fn finish(mut self) -> Output {
        let deadline = Instant::now() + STALL;
        while self.read_one() {
            assert!(
                Instant::now() < deadline,
                "the stream did not end within {STALL:?}: {:?}",
                self.out
            );
        }
        self.out
    }
}
