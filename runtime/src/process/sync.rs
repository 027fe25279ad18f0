//! The parent's side of the protocol (see `channel`), one straight line for `create` and
//! `exec`: which sync points a child goes through is decided before the fork (`Shape`),
//! and each message is expected at its point, in order. What the parent does at each point
//! is `Steps`: the container's cgroup, id maps, hooks, state for `create`; the cgroup and
//! the pid file for `exec`.

use std::os::fd::OwnedFd;

use crate::channel::{Channel, Msg};
use crate::Result;

/// The sync points one child goes through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// exec: the first child says `Ready` (non-dumpable) before it is placed.
    pub ready_first: bool,
    /// Two stages with a new user namespace: the first stage asks for its id maps.
    pub child_maps_ids: bool,
    /// The process is forked by a first stage, which reports its pid.
    pub forks: bool,
    /// create: the init's mounts, then the limits and the runtime's hooks.
    pub mounts: bool,
    /// The seccomp filter has NOTIFY rules: its listener comes to the parent.
    pub seccomp_listener: bool,
}

/// What the parent does at each sync point.
pub trait Steps {
    /// sync 0/1: put the child (the first one, when there are two) in place: cgroup,
    /// oom_score_adj, the id maps a single-stage child cannot ask for.
    fn place(&mut self, child: i32) -> Result<()>;
    /// sync 1a: write the first stage's id maps.
    fn map_ids(&mut self, child: i32) -> Result<()>;
    /// sync 1b: the first stage forked `pid`, the process to report; reap the first stage.
    fn forked(&mut self, first: i32, pid: i32) -> Result<()>;
    /// sync 2: the mounts are made: limits, prestart and createRuntime hooks. Returns the
    /// state the container's own hooks get, if it has any.
    fn mounted(&mut self, pid: i32) -> Result<Option<String>>;
    /// sync 2a: hand the seccomp listener to its agent.
    fn seccomp_listener(&mut self, pid: i32, listener: OwnedFd) -> Result<()>;
    /// sync 3: the process is ready to exec: record it (state, pid file).
    fn created(&mut self, pid: i32) -> Result<()>;
}

/// Drive `child` through `shape`; returns the pid of the process (the child itself, or
/// the one its first stage forked), recorded by `Steps::created` before it was answered.
pub fn drive(ch: &Channel, shape: Shape, child: i32, steps: &mut dyn Steps) -> Result<i32> {
    use tracing::debug;
    // Where a step is one runc logs too, its debug line carries runc's words in
    // parentheses, so a `--debug` log reads against runc's (and scripts comparing them,
    // runc's own tests among them, find them).
    debug!("sync: child {child} cloned, {shape:?} (runc: nsexec container setup)");
    if shape.ready_first {
        ch.expect(Msg::Ready)?; // sync 0
        debug!("sync 0: child {child} ready");
    }
    steps.place(child)?;
    ch.send(&Msg::Proceed)?; // sync 1
    debug!("sync 1: child {child} placed in its cgroup");
    if shape.child_maps_ids {
        ch.expect(Msg::MapIds)?; // sync 1a
        steps.map_ids(child)?;
        ch.send(&Msg::Proceed)?;
        debug!("sync 1a: id maps of {child} written");
    }
    let pid = if shape.forks {
        let pid = ch.expect_init_pid()?; // sync 1b
        steps.forked(child, pid)?;
        ch.send(&Msg::Proceed)?;
        debug!("sync 1b: {child} forked the process {pid}");
        pid
    } else {
        child
    };
    if shape.mounts {
        ch.expect(Msg::Mounted)?; // sync 2
        let state = steps.mounted(pid)?;
        ch.send(&Msg::HooksDone(state))?;
        debug!("sync 2: {pid} mounted; limits applied, runtime hooks run");
    }
    if shape.seccomp_listener {
        let listener = ch.expect_fd(Msg::SeccompListener)?; // sync 2a
        steps.seccomp_listener(pid, listener)?;
        debug!("sync 2a: seccomp listener of {pid} handed to its agent");
    }
    ch.expect(Msg::Created)?; // sync 3
    steps.created(pid)?;
    ch.send(&Msg::Ack)?;
    debug!("sync 3: {pid} recorded, about to exec");
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::pair;
    use crate::Error;
    use std::os::fd::AsFd;

    #[derive(Default)]
    struct Record(Vec<String>);

    impl Steps for Record {
        fn place(&mut self, child: i32) -> Result<()> {
            self.0.push(format!("place {child}"));
            Ok(())
        }
        fn map_ids(&mut self, child: i32) -> Result<()> {
            self.0.push(format!("map_ids {child}"));
            Ok(())
        }
        fn forked(&mut self, first: i32, pid: i32) -> Result<()> {
            self.0.push(format!("forked {first} {pid}"));
            Ok(())
        }
        fn mounted(&mut self, pid: i32) -> Result<Option<String>> {
            self.0.push(format!("mounted {pid}"));
            Ok(Some("{}".into()))
        }
        fn seccomp_listener(&mut self, pid: i32, _: OwnedFd) -> Result<()> {
            self.0.push(format!("listener {pid}"));
            Ok(())
        }
        fn created(&mut self, pid: i32) -> Result<()> {
            self.0.push(format!("created {pid}"));
            Ok(())
        }
    }

    /// A child that answers each point as a real one would, reading what it should read.
    fn child(ch: Channel, shape: Shape, pid: i32) -> std::thread::JoinHandle<Vec<Msg>> {
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let read = |seen: &mut Vec<Msg>| seen.push(ch.recv().unwrap().unwrap().0);
            if shape.ready_first {
                ch.send(&Msg::Ready).unwrap();
            }
            read(&mut seen);
            if shape.child_maps_ids {
                ch.send(&Msg::MapIds).unwrap();
                read(&mut seen);
            }
            if shape.forks {
                ch.send(&Msg::InitPid(pid)).unwrap();
                read(&mut seen);
            }
            if shape.mounts {
                ch.send(&Msg::Mounted).unwrap();
                read(&mut seen);
            }
            if shape.seccomp_listener {
                let f = tempfile::tempfile().unwrap();
                ch.send_fd(&Msg::SeccompListener, f.as_fd()).unwrap();
            }
            ch.send(&Msg::Created).unwrap();
            read(&mut seen);
            seen
        })
    }

    #[test]
    fn every_point_in_order() {
        let shape = Shape {
            ready_first: false,
            child_maps_ids: true,
            forks: true,
            mounts: true,
            seccomp_listener: true,
        };
        let (ours, theirs) = pair().unwrap();
        let t = child(theirs, shape, 43);
        let mut steps = Record::default();
        assert_eq!(drive(&ours, shape, 42, &mut steps).unwrap(), 43);
        assert_eq!(
            steps.0,
            [
                "place 42",
                "map_ids 42",
                "forked 42 43",
                "mounted 43",
                "listener 43",
                "created 43"
            ]
        );
        assert_eq!(
            t.join().unwrap(),
            [
                Msg::Proceed,
                Msg::Proceed,
                Msg::Proceed,
                Msg::HooksDone(Some("{}".into())),
                Msg::Ack
            ]
        );
    }

    #[test]
    fn exec_shape() {
        let shape = Shape {
            ready_first: true,
            forks: true,
            ..Shape::default()
        };
        let (ours, theirs) = pair().unwrap();
        let t = child(theirs, shape, 8);
        let mut steps = Record::default();
        assert_eq!(drive(&ours, shape, 7, &mut steps).unwrap(), 8);
        assert_eq!(steps.0, ["place 7", "forked 7 8", "created 8"]);
        t.join().unwrap();
    }

    /// The race of issue 12: the forked process' `Created` overtaking its pid. The
    /// protocol keeps a real child from doing it; a child that did would be an error,
    /// never a pid 0 in the state or the pid file.
    #[test]
    fn created_before_the_pid_is_an_error() {
        let shape = Shape {
            forks: true,
            ..Shape::default()
        };
        let (ours, theirs) = pair().unwrap();
        let t = std::thread::spawn(move || {
            theirs.recv().unwrap();
            theirs.send(&Msg::Created).unwrap();
            theirs.send(&Msg::InitPid(9)).unwrap();
        });
        let mut steps = Record::default();
        let e = drive(&ours, shape, 7, &mut steps).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Protocol {
                    expected: "InitPid",
                    got: "Created"
                }
            ),
            "{e}"
        );
        assert_eq!(steps.0, ["place 7"]);
        t.join().unwrap();
    }

    #[test]
    fn a_child_error_stops_the_sequence() {
        let (ours, theirs) = pair().unwrap();
        let t = std::thread::spawn(move || {
            theirs.recv().unwrap();
            theirs
                .send(&Msg::Error("mounts[2] (/x): mount: EPERM".into()))
                .unwrap();
        });
        let shape = Shape {
            mounts: true,
            ..Shape::default()
        };
        let mut steps = Record::default();
        let e = drive(&ours, shape, 7, &mut steps).unwrap_err();
        assert_eq!(e.to_string(), "mounts[2] (/x): mount: EPERM");
        assert_eq!(steps.0, ["place 7"]);
        t.join().unwrap();
    }

    #[test]
    fn a_vanished_child_names_the_point() {
        let (ours, theirs) = pair().unwrap();
        drop(theirs);
        let mut steps = Record::default();
        let shape = Shape {
            ready_first: true,
            ..Shape::default()
        };
        assert!(matches!(
            drive(&ours, shape, 7, &mut steps),
            Err(Error::PeerGone {
                waiting_for: "Ready"
            })
        ));
        assert!(steps.0.is_empty());
    }
}
