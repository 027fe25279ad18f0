//! Handing the notify listener fd to the seccomp agent (runtime spec, "Seccomp" → listenerPath):
//! connect to the agent's unix socket and send the container process state as JSON with the
//! listener fd in one SCM_RIGHTS message; `fds` names it "seccompFd".

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use oci_spec::runtime::{ContainerProcessStateBuilder, State, SECCOMP_FD_NAME};

use super::SeccompError;

/// The JSON sent to the agent: `{"ociVersion","fds":["seccompFd"],"pid","metadata","state"}`.
pub fn process_state_json(
    state: &State,
    pid: i32,
    metadata: Option<&str>,
) -> Result<Vec<u8>, SeccompError> {
    let mut builder = ContainerProcessStateBuilder::default()
        .version(state.version().clone())
        .fds(vec![SECCOMP_FD_NAME.to_string()])
        .pid(pid)
        .state(state.clone());
    if let Some(metadata) = metadata {
        builder = builder.metadata(metadata);
    }
    let process_state = builder.build().map_err(|e| SeccompError::Invalid {
        field: "container process state".into(),
        reason: e.to_string(),
    })?;
    serde_json::to_vec(&process_state).map_err(|e| SeccompError::Invalid {
        field: "container process state".into(),
        reason: e.to_string(),
    })
}

/// Sends `state` (the container's state; `pid` is the container process as the runtime sees it,
/// `metadata` is `linux.seccomp.listenerMetadata`) and the listener `fd` to `listener_path`.
pub fn send_listener(
    listener_path: &Path,
    state: &State,
    pid: i32,
    metadata: Option<&str>,
    fd: BorrowedFd<'_>,
) -> Result<(), SeccompError> {
    let err = |what: &'static str| {
        move |source: std::io::Error| SeccompError::Listener {
            path: listener_path.to_path_buf(),
            what,
            source,
        }
    };
    let json = process_state_json(state, pid, metadata)?;
    // runc's words, which clients match.
    let mut stream =
        UnixStream::connect(listener_path).map_err(err("failed to connect with seccomp agent"))?;
    let sent = capsa_linux::fdpass::send(stream.as_fd(), &json, &[fd])
        .map_err(|e| err("sendmsg")(e.into()))?;
    // A stream may take a long state in parts; the fd went with the first.
    stream.write_all(&json[sent..]).map_err(err("write"))?;
    Ok(())
}
