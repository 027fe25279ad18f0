//! Container logs in the CRI format (`<RFC3339Nano> <stream> <P|F> <text>`)
//! and ReopenContainerLog (what the kubelet calls after rotating a log).

use k8s_cri::v1::*;

use crate::harness::{eventually, Cri, Ctr, Pod};

/// (stream, tag, text) of each CRI log line; the timestamp must parse.
fn records(log: &str) -> Vec<(String, String, String)> {
    log.lines()
        .map(|l| {
            let mut f = l.splitn(4, ' ');
            let (ts, stream, tag, text) = (
                f.next().unwrap_or(""),
                f.next().unwrap_or(""),
                f.next().unwrap_or(""),
                f.next().unwrap_or(""),
            );
            // 2026-12-05T06:22:38.203044932Z
            assert!(
                ts.len() >= 20 && ts.as_bytes()[10] == b'T' && ts.ends_with('Z'),
                "timestamp of {l:?}"
            );
            (stream.into(), tag.into(), text.into())
        })
        .collect()
}

#[test]
#[ignore = "needs root and a CRI containerd: run hack/cri-test.sh"]
fn cri_format_logs_and_reopen() {
    let cri = Cri::connect();
    let pod = Pod::new(&cri, "logs");
    // A line over containerd's max_container_log_line_size (16 KiB) is split
    // into a partial (P) and a final (F) record.
    let id = pod.run(Ctr::sh(
        "app",
        "echo first; echo second >&2; head -c 20000 /dev/zero | tr '\\0' x; echo; \
         echo ready; while :; do [ -e /tmp/go ] && { echo after-reopen; rm /tmp/go; }; sleep 0.1; done",
    ));
    eventually("the log has the first lines", || {
        pod.log("app", 0).contains("stdout F ready")
    });
    let recs = records(&pod.log("app", 0));
    let plain: Vec<_> = recs.iter().filter(|r| r.2.len() < 100).collect();
    assert!(
        plain.contains(&&("stdout".into(), "F".into(), "first".into())),
        "{recs:?}"
    );
    assert!(
        plain.contains(&&("stderr".into(), "F".into(), "second".into())),
        "{recs:?}"
    );
    let long: Vec<_> = recs.iter().filter(|r| r.2.starts_with("xxx")).collect();
    assert_eq!(long.len(), 2, "the long line in two records");
    assert_eq!(long[0].1, "P");
    assert_eq!(long[1].1, "F");
    assert_eq!(long[0].2.len() + long[1].2.len(), 20000);
    let st = pod.status(&id);
    assert_eq!(
        std::path::Path::new(&st.log_path),
        pod.log_dir.join("app/0.log")
    );

    // Rotate as the kubelet does: rename, then ReopenContainerLog.
    let log = pod.log_dir.join("app/0.log");
    let rotated = pod.log_dir.join("app/0.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    cri.ok(
        "ReopenContainerLog",
        cri.runtime()
            .reopen_container_log(ReopenContainerLogRequest {
                container_id: id.clone(),
            }),
    );
    assert!(log.exists(), "a new log file");
    pod.sh(&id, "touch /tmp/go");
    eventually("the new log has the new line", || {
        pod.log("app", 0).contains("after-reopen")
    });
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(!old.contains("after-reopen"), "{old}");
    // Reopen of a stopped container is refused (nothing writes to it).
    cri.stop_container(&id, 0).unwrap();
    let r = cri.call(
        "ReopenContainerLog",
        cri.runtime()
            .reopen_container_log(ReopenContainerLogRequest {
                container_id: id.clone(),
            }),
    );
    assert!(r.is_err(), "reopen of a stopped container");
    pod.finish();
}
