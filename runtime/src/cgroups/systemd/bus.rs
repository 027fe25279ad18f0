//! systemd's manager on the system bus (org.freedesktop.systemd1.Manager, through zbus):
//! transient units started and stopped with their jobs waited for, properties set.

use std::sync::mpsc;
use std::time::Duration;

use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::{OwnedObjectPath, Value as ZValue};

use super::properties::{Prop, Value};
use crate::{Error, Result};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a job may take (runc's limit).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

fn err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Cgroup(format!("systemd: {what}: {e}"))
}

pub struct Bus {
    conn: Connection,
    /// systemd sends JobRemoved to subscribers only; a second Subscribe is an error.
    subscribed: std::sync::Once,
}

fn zvalue(v: &Value) -> ZValue<'_> {
    match v {
        Value::U64(n) => ZValue::U64(*n),
        Value::Bool(b) => ZValue::Bool(*b),
        Value::Str(s) => ZValue::from(s.as_str()),
        Value::Strs(v) => ZValue::from(v.clone()),
        Value::U32s(v) => ZValue::from(v.clone()),
        Value::Bytes(v) => ZValue::from(v.clone()),
        Value::Pairs(v) => ZValue::from(v.clone()),
    }
}

/// Runs `f` (which may start threads: zbus' executor, async-io's reactor, our job
/// waiter) with every signal blocked in this thread, so the threads it starts inherit that
/// mask. A thread that takes signals would steal the SIGCHLD `run` and `restore` wait for
/// with a signalfd in the main thread (a process-directed signal goes to any thread that
/// does not block it, where the default action drops it): the foreground run hung.
fn signals_blocked<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::signal::{SigSet, SigmaskHow};
    let old = SigSet::all().thread_swap_mask(SigmaskHow::SIG_BLOCK);
    let out = f();
    if let Ok(old) = old {
        let _ = old.thread_set_mask();
    }
    out
}

/// The D-Bus error's name, for the cases we handle ("...UnitExists", "...NoSuchUnit").
fn error_name(e: &zbus::Error) -> Option<&str> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
        _ => None,
    }
}

impl Bus {
    pub fn connect() -> Result<Bus> {
        let conn =
            signals_blocked(Connection::system).map_err(|e| err("connect to the system bus", e))?;
        Ok(Bus {
            conn,
            subscribed: std::sync::Once::new(),
        })
    }

    fn manager(&self) -> Result<Proxy<'_>> {
        Proxy::new(&self.conn, DEST, PATH, MANAGER).map_err(|e| err("manager proxy", e))
    }

    /// systemd's version number (252 for "252.38-1~deb12u1").
    pub fn version(&self) -> Result<u32> {
        let v: String = self
            .manager()?
            .get_property("Version")
            .map_err(|e| err("read Version", e))?;
        let digits: String = v
            .trim_start_matches('v')
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .map_err(|_| err("read Version", format!("cannot parse {v:?}")))
    }

    /// Start transient unit `name`; returns false if it already existed (runc reuses an
    /// existing unit, crun#348), after its start job ended "done". A failed start is an
    /// error, and the failed unit is reset (never run on in the caller's cgroup,
    /// crun#331).
    pub fn start_transient(&self, name: &str, props: &[Prop]) -> Result<bool> {
        let m = self.manager()?;
        let props: Vec<(&str, ZValue<'_>)> =
            props.iter().map(|(n, v)| (n.as_str(), zvalue(v))).collect();
        let aux: Vec<(&str, Vec<(&str, ZValue<'_>)>)> = Vec::new();
        let waiter = self.job_waiter()?;
        let job: std::result::Result<OwnedObjectPath, zbus::Error> =
            m.call("StartTransientUnit", &(name, "replace", props, aux));
        let job = match job {
            Ok(j) => j,
            Err(e) if error_name(&e).is_some_and(|n| n.ends_with(".UnitExists")) => {
                tracing::debug!("systemd unit {name} exists: joining it");
                return Ok(false);
            }
            Err(e) => return Err(err(&format!("start transient unit {name}"), e)),
        };
        match waiter.wait(&job) {
            Ok(r) if r == "done" => Ok(true),
            other => {
                let _ = m.call::<_, _, ()>("ResetFailedUnit", &(name,));
                let why = match other {
                    Ok(r) => format!("its start job ended {r:?}"),
                    Err(e) => e.to_string(),
                };
                Err(err(&format!("start transient unit {name}"), why))
            }
        }
    }

    /// Stop unit `name` and wait for the job; a unit that is already gone is fine.
    pub fn stop(&self, name: &str) -> Result<()> {
        let m = self.manager()?;
        let waiter = self.job_waiter()?;
        let job: std::result::Result<OwnedObjectPath, zbus::Error> =
            m.call("StopUnit", &(name, "replace"));
        match job {
            Ok(j) => match waiter.wait(&j)? {
                r if r == "done" => Ok(()),
                r => {
                    tracing::warn!("systemd: stop {name}: job ended {r:?}");
                    Ok(())
                }
            },
            Err(e) if error_name(&e).is_some_and(|n| n.ends_with(".NoSuchUnit")) => Ok(()),
            Err(e) => Err(err(&format!("stop unit {name}"), e)),
        }
    }

    /// Set properties of a running unit (at runtime: not persisted).
    pub fn set_properties(&self, name: &str, props: &[Prop]) -> Result<()> {
        if props.is_empty() {
            return Ok(());
        }
        let props: Vec<(&str, ZValue<'_>)> =
            props.iter().map(|(n, v)| (n.as_str(), zvalue(v))).collect();
        self.manager()?
            .call::<_, _, ()>("SetUnitProperties", &(name, true, props))
            .map_err(|e| err(&format!("set properties of {name}"), e))
    }

    /// Listen for JobRemoved before a job is queued, so its end cannot be missed.
    fn job_waiter(&self) -> Result<JobWaiter> {
        let m = self.manager()?;
        let mut subscribed = Ok(());
        self.subscribed.call_once(|| {
            subscribed = match m.call::<_, _, ()>("Subscribe", &()) {
                Err(e) if !error_name(&e).is_some_and(|n| n.ends_with(".AlreadySubscribed")) => {
                    Err(err("subscribe", e))
                }
                _ => Ok(()),
            };
        });
        subscribed?;
        let signals = m
            .receive_signal("JobRemoved")
            .map_err(|e| err("listen for JobRemoved", e))?;
        let (tx, rx) = mpsc::channel();
        signals_blocked(|| {
            std::thread::spawn(move || {
                for msg in signals {
                    let body = msg.body();
                    let Ok((_id, job, _unit, result)) =
                        body.deserialize::<(u32, OwnedObjectPath, String, String)>()
                    else {
                        continue;
                    };
                    if tx.send((job, result)).is_err() {
                        break;
                    }
                }
            })
        });
        Ok(JobWaiter { rx })
    }
}

struct JobWaiter {
    rx: mpsc::Receiver<(OwnedObjectPath, String)>,
}

impl JobWaiter {
    /// The result ("done", "failed", "canceled"...) of `job`.
    fn wait(&self, job: &OwnedObjectPath) -> Result<String> {
        let deadline = std::time::Instant::now() + JOB_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((j, result)) if j == *job => return Ok(result),
                Ok(_) => continue,
                Err(_) => {
                    return Err(err(
                        &format!("job {}", job.as_str()),
                        format!("no answer within {}s", JOB_TIMEOUT.as_secs()),
                    ))
                }
            }
        }
    }
}
