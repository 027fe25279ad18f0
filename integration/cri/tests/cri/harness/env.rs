//! What hack/cri-env.sh exported, and this test process's own names.

use std::path::PathBuf;
use std::sync::OnceLock;

pub struct Env {
    /// containerd's socket: the CRI endpoint.
    pub socket: PathBuf,
    /// containerd's dir (root/, state/): where leftovers would be.
    pub dir: PathBuf,
    pub image: String,
    /// The runtime handler under test (a RuntimeClass's `handler`).
    pub handler: String,
    /// The handlers' runtime state roots (`<root>/k8s.io/<id>` per container).
    pub runtime_roots: Vec<PathBuf>,
    /// Logs of this test process's pods (under `dir`).
    pub work: PathBuf,
    /// This process's cgroup parent (each pod gets one below it).
    pub cgroup_parent: String,
}

pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let var = |k: &str| {
            std::env::var(k).unwrap_or_else(|_| {
                panic!("{k} is not set: run the CRI tests with hack/cri-test.sh")
            })
        };
        let dir = PathBuf::from(var("CRI_ENV_DIR"));
        // Inside containerd's dir: `cri-env.sh stop` removes it with the rest.
        let work = dir.join(format!("tests-{}", std::process::id()));
        std::fs::create_dir_all(&work).expect("create the tests' work dir");
        Env {
            socket: var("CRI_SOCKET").into(),
            dir,
            image: var("CRI_TEST_IMAGE"),
            handler: std::env::var("CRI_TEST_HANDLER").unwrap_or_else(|_| "capsa".into()),
            runtime_roots: var("CRI_RUNTIME_ROOTS")
                .split_whitespace()
                .map(PathBuf::from)
                .collect(),
            work,
            cgroup_parent: format!("/capsa-cri-test-{}", std::process::id()),
        }
    })
}
