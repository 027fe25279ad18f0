//! What probes do, under load: many pods, each ExecSync'ed every 100 ms as a
//! liveness probe is, for a while, with pods created and removed alongside.
//! Not one exec may go without its exit (every call returns, with the exit
//! code and output of its command), no pid 0 anywhere, nothing left after.
//!
//! Size (environment): CRI_STRESS_PODS (default 4), CRI_STRESS_SECONDS (20,
//! from each pod's start), CRI_STRESS_INTERVAL_MS (100). CI runs the default; docs/kubernetes.md has
//! the long run. Every ExecSync has a timeout (CRI_STRESS_EXEC_TIMEOUT, 10 s)
//! and the call itself a limit a minute past it: a hung exec is a failure
//! with its message, never a hung test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::harness::{Cri, Ctr, Pod};

fn param(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

#[derive(Default)]
struct Tally {
    execs: u64,
    failures: Vec<String>,
    churned: u64,
}

/// One probe: `sh -c 'echo probe-N; exit N%4'`; Err says what went wrong.
fn probe(cri: &Cri, id: &str, n: u64, timeout_s: i64) -> Result<(), String> {
    let code = (n % 4) as i32;
    let cmd = format!("echo probe-{n}; exit {code}");
    let r = cri
        .exec_sync(id, &["sh", "-c", &cmd], timeout_s)
        .map_err(|e| e.to_string())?;
    let out = String::from_utf8_lossy(&r.stdout);
    if r.exit_code != code || out != format!("probe-{n}\n") {
        return Err(format!(
            "exit {} (want {code}), stdout {out:?}, stderr {:?}",
            r.exit_code,
            String::from_utf8_lossy(&r.stderr)
        ));
    }
    Ok(())
}

/// The failures counted by kind, e.g. "3 pid 0 refused by the shim, 1 hung".
fn kinds(failures: &[String]) -> String {
    let kinds = [
        ("did not return within", "hung"),
        ("invalid pid", "pid 0 refused by the shim"),
        // The Go shim: an exec whose pid is 0 is never "created"; containerd
        // finds that out when it kills it at the ExecSync timeout.
        (
            "process not created",
            "pid 0: killed at the timeout as never created",
        ),
        ("timeout", "timed out"),
        ("want", "wrong exit code or output"),
    ];
    let mut counts = vec![0usize; kinds.len() + 1];
    for f in failures {
        let k = kinds.iter().position(|(needle, _)| f.contains(needle));
        counts[k.unwrap_or(kinds.len())] += 1;
    }
    let mut parts: Vec<String> = kinds
        .iter()
        .zip(&counts)
        .filter(|(_, n)| **n > 0)
        .map(|((_, name), n)| format!("{n} {name}"))
        .collect();
    if counts[kinds.len()] > 0 {
        parts.push(format!("{} other", counts[kinds.len()]));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// One probed pod fewer when dropped, panics included.
struct Done<'a>(&'a AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn probes_under_load() {
    let pods = param("CRI_STRESS_PODS", 4);
    let seconds = param("CRI_STRESS_SECONDS", 20);
    let interval = Duration::from_millis(param("CRI_STRESS_INTERVAL_MS", 100));
    let timeout_s = param("CRI_STRESS_EXEC_TIMEOUT", 10) as i64;
    let handler = crate::harness::env().handler.clone();
    let cri = Cri::connect();
    let tally = Mutex::new(Tally::default());
    let fail = |what: String| {
        let mut t = tally.lock().unwrap();
        if t.failures.len() < 1000 {
            t.failures.push(what);
        }
    };
    let started = Instant::now();
    // Probing lasts `seconds` from each pod's start (pods start slowly in the
    // emulated VM); the churn goes on while any pod is probed.
    let probing = AtomicUsize::new(pods as usize);

    std::thread::scope(|s| {
        for p in 0..pods {
            let (cri, tally, fail, probing) = (&cri, &tally, &fail, &probing);
            s.spawn(move || {
                // Counted out even if this thread panics: the churn below runs until
                // every probed pod is done, and would otherwise never end.
                let done = Done(probing);
                let pod = Pod::new(cri, &format!("probed{p}"));
                let id = pod.run(Ctr::args("app", &["sleep", "100000"]));
                let deadline = Instant::now() + Duration::from_secs(seconds);
                let mut n = 0u64;
                let mut next = Instant::now();
                while Instant::now() < deadline {
                    n += 1;
                    if let Err(e) = probe(cri, &id, n, timeout_s) {
                        fail(format!("pod {p} exec {n}: {e}"));
                    }
                    tally.lock().unwrap().execs += 1;
                    if n.is_multiple_of(50) {
                        let pid = crate::harness::pod::info_pid(
                            &cri.container_status(&id)
                                .map(|r| r.info)
                                .unwrap_or_default(),
                        );
                        if pid <= 0 {
                            fail(format!("pod {p}: container pid {pid} after {n} execs"));
                        }
                    }
                    next = (next + interval).max(Instant::now());
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                drop(done);
                let s = pod.status(&id);
                if s.state != k8s_cri::v1::ContainerState::ContainerRunning as i32 {
                    fail(format!("pod {p}: the probed container stopped: {s:?}"));
                }
                pod.finish();
            });
        }
        // Churn: pods created, probed once and removed, all along.
        let (cri, tally, fail, probing) = (&cri, &tally, &fail, &probing);
        s.spawn(move || {
            let mut k = 0u64;
            while probing.load(Ordering::SeqCst) > 0 {
                k += 1;
                let pod = Pod::new(cri, &format!("churn{k}"));
                let id = pod.run(Ctr::args("app", &["sleep", "100000"]));
                if pod.pid(&id) <= 0 || pod.sandbox_pid() <= 0 {
                    fail(format!("churn pod {k}: pid 0"));
                }
                if let Err(e) = probe(cri, &id, k, timeout_s) {
                    fail(format!("churn pod {k} exec: {e}"));
                }
                tally.lock().unwrap().execs += 1;
                pod.finish();
                tally.lock().unwrap().churned += 1;
            }
        });
    });
    let t = tally.into_inner().unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "stress {handler}: {pods} probed pods for {seconds} s every {interval:?} + churn: \
         {} execs ({:.1}/s), {} churned pods, {} failures ({}), {secs:.0} s",
        t.execs,
        t.execs as f64 / secs,
        t.churned,
        t.failures.len(),
        kinds(&t.failures)
    );
    assert!(
        t.failures.is_empty(),
        "{} of {} execs failed (handler {handler}); first ones:\n  {}",
        t.failures.len(),
        t.execs,
        t.failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}
