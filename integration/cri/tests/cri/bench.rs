//! The benchmark behind hack/cri-bench.sh (not a test: it asserts nothing
//! about speed; cri-test.sh skips it). Per runtime handler, interleaved so
//! that load changes hit every handler alike:
//! - pod start: RunPodSandbox + CreateContainer + StartContainer until
//!   ContainerStatus says running (what a kubelet waits for);
//! - ExecSync of `true` in a running container (what an exec probe costs).
//!
//! CRI_BENCH_HANDLERS (default "capsa capsa-runc runc runc-runc"; the last
//! one is the reference of the ratios), CRI_BENCH_PODS (20),
//! CRI_BENCH_EXECS (100), one warm-up round first.

use std::time::{Duration, Instant};

use k8s_cri::v1::{ContainerState, ContainerStatusRequest};

use crate::harness::pod::PodOpts;
use crate::harness::{Cri, Ctr, Pod};

fn ms(d: &[Duration]) -> (f64, f64) {
    let mut v: Vec<f64> = d.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    (v.iter().sum::<f64>() / v.len() as f64, v[v.len() / 2])
}

fn pod_start(cri: &Cri, handler: &str, k: usize) -> Duration {
    let t0 = Instant::now();
    let pod = Pod::with(
        cri,
        &format!("bench-{handler}-{k}"),
        PodOpts {
            handler: Some(handler.into()),
            ..Default::default()
        },
    );
    let id = pod.run(Ctr::args("app", &["sleep", "100000"]));
    loop {
        let s = cri.ok(
            "ContainerStatus",
            cri.runtime().container_status(ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            }),
        );
        if s.status.unwrap().state == ContainerState::ContainerRunning as i32 {
            break;
        }
    }
    let took = t0.elapsed();
    pod.finish();
    took
}

#[test]
#[ignore = "a benchmark: run hack/cri-bench.sh"]
fn pod_start_and_exec_latency() {
    let handlers: Vec<String> = std::env::var("CRI_BENCH_HANDLERS")
        .unwrap_or_else(|_| "capsa capsa-runc runc runc-runc".into())
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let num = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (pods, execs) = (num("CRI_BENCH_PODS", 20), num("CRI_BENCH_EXECS", 100));
    let cri = Cri::connect();
    let mut start: Vec<Vec<Duration>> = vec![Vec::new(); handlers.len()];
    for k in 0..=pods {
        for (i, h) in handlers.iter().enumerate() {
            let d = pod_start(&cri, h, k);
            if k > 0 {
                start[i].push(d); // round 0 warms up
            }
        }
    }
    let running: Vec<(Pod, String)> = handlers
        .iter()
        .map(|h| {
            let pod = Pod::with(
                &cri,
                &format!("bench-exec-{h}"),
                PodOpts {
                    handler: Some(h.clone()),
                    ..Default::default()
                },
            );
            let id = pod.run(Ctr::args("app", &["sleep", "100000"]));
            (pod, id)
        })
        .collect();
    let mut exec: Vec<Vec<Duration>> = vec![Vec::new(); handlers.len()];
    for k in 0..=execs {
        for (i, (_, id)) in running.iter().enumerate() {
            let t0 = Instant::now();
            let r = cri.exec_sync(id, &["true"], 10).expect("ExecSync");
            let d = t0.elapsed();
            assert_eq!(r.exit_code, 0);
            if k > 0 {
                exec[i].push(d);
            }
        }
    }
    for (pod, _) in running {
        pod.finish();
    }
    let reference = handlers.len() - 1;
    let (ref_start, ref_exec) = (ms(&start[reference]).0, ms(&exec[reference]).0);
    println!(
        "\n{:<12} {:>14} {:>14} {:>9} {:>14} {:>14} {:>9}",
        "handler",
        "start mean ms",
        "start med ms",
        "vs ref",
        "exec mean ms",
        "exec med ms",
        "vs ref"
    );
    for (i, h) in handlers.iter().enumerate() {
        let (sm, smed) = ms(&start[i]);
        let (em, emed) = ms(&exec[i]);
        println!(
            "{h:<12} {sm:>14.1} {smed:>14.1} {:>9.2} {em:>14.1} {emed:>14.1} {:>9.2}",
            sm / ref_start,
            em / ref_exec
        );
    }
    println!(
        "({pods} pod starts and {execs} execs per handler, interleaved; ratios against {})",
        handlers[reference]
    );
}
