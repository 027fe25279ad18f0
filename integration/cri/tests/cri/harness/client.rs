//! A blocking CRI v1 client over containerd's unix socket (tonic), as a
//! kubelet holds one. Every call has a time limit: a call that does not
//! return becomes an error naming it (`CriError::Hung`), never a hung test.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

/// The limit of a call that has no timeout of its own.
pub const CALL_LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub enum CriError {
    Status(tonic::Status),
    Hung { what: String, limit: Duration },
}

impl std::fmt::Display for CriError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CriError::Status(s) => write!(f, "{:?}: {}", s.code(), s.message()),
            CriError::Hung { what, limit } => {
                write!(f, "CRI {what} did not return within {limit:?} (hung)")
            }
        }
    }
}

impl CriError {
    pub fn message(&self) -> String {
        self.to_string()
    }
}

pub struct Cri {
    rt: tokio::runtime::Runtime,
    channel: Channel,
}

impl Cri {
    pub fn connect() -> Cri {
        Self::connect_to(super::env().socket.clone())
    }

    pub fn connect_to(socket: PathBuf) -> Cri {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let channel = rt
            .block_on(async {
                // The URI is a placeholder: the connector dials the socket.
                Endpoint::try_from("http://[::1]:1")
                    .expect("endpoint")
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let socket = socket.clone();
                        async move {
                            let s = tokio::net::UnixStream::connect(socket).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(s))
                        }
                    }))
                    .await
            })
            .expect("connect to containerd's CRI socket");
        Cri { rt, channel }
    }

    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    /// Runs one call to completion within `limit`.
    pub fn call_within<T>(
        &self,
        what: &str,
        limit: Duration,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CriError> {
        // The timer must be made inside the runtime.
        match self
            .rt
            .block_on(async { tokio::time::timeout(limit, fut).await })
        {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(CriError::Status(s)),
            Err(_) => Err(CriError::Hung {
                what: what.to_string(),
                limit,
            }),
        }
    }

    pub fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CriError> {
        self.call_within(what, CALL_LIMIT, fut)
    }

    /// A call that must succeed.
    pub fn ok<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> T {
        self.call(what, fut)
            .unwrap_or_else(|e| panic!("CRI {what} failed: {e}"))
    }

    pub fn container_status(&self, id: &str) -> Result<ContainerStatusResponse, CriError> {
        self.call(
            "ContainerStatus",
            self.runtime().container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose: true,
            }),
        )
    }

    pub fn sandbox_status(&self, id: &str) -> Result<PodSandboxStatusResponse, CriError> {
        self.call(
            "PodSandboxStatus",
            self.runtime().pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: true,
            }),
        )
    }

    /// ExecSync with its timeout (seconds, 0 = none) and a limit of the
    /// timeout plus a minute (or 2 minutes without one) on the call itself.
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout_s: i64,
    ) -> Result<ExecSyncResponse, CriError> {
        let limit = if timeout_s > 0 {
            Duration::from_secs(timeout_s as u64 + 60)
        } else {
            CALL_LIMIT
        };
        self.call_within(
            "ExecSync",
            limit,
            self.runtime().exec_sync(ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: timeout_s,
            }),
        )
    }

    pub fn stop_container(&self, id: &str, timeout_s: i64) -> Result<(), CriError> {
        self.call(
            "StopContainer",
            self.runtime().stop_container(StopContainerRequest {
                container_id: id.into(),
                timeout: timeout_s,
            }),
        )
        .map(drop)
    }

    pub fn remove_container(&self, id: &str) -> Result<(), CriError> {
        self.call(
            "RemoveContainer",
            self.runtime().remove_container(RemoveContainerRequest {
                container_id: id.into(),
            }),
        )
        .map(drop)
    }
}
