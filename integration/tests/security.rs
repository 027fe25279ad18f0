//! Paths inside the rootfs are resolved inside it (the CVE family of
//! FIELD-NOTES.md "Security"), and pathological inputs neither hang nor leak.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use integration::poll::wait_until;
use integration::{leftovers, Ctx};
use serde_json::json;

#[test]
fn proc_as_a_symlink_is_refused() {
    // CVE-2023-28642 / CVE-2025-54867: /proc of the image pointing elsewhere.
    let ctx = Ctx::new();
    let b = ctx.bundle();
    let elsewhere = ctx.mkdir("elsewhere");
    std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
    symlink(&elsewhere, b.rootfs().join("proc")).unwrap();
    let id = ctx.id();
    let out = ctx.create(&id, &b).fails();
    assert!(out.all().contains("proc"), "the error names /proc: {out}");
    // runc's words, which its own suite looks for.
    assert!(
        out.all().contains("must be mounted on ordinary directory"),
        "{out}"
    );
    ctx.assert_nothing_left(&id, &b);
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "nothing mounted or made outside"
    );
}

#[test]
fn mount_destination_symlink_stays_inside_the_rootfs() {
    // CVE-2021-30465 family: a destination that is an absolute symlink
    // resolves inside the rootfs, never on the host.
    let ctx = Ctx::new();
    let host_target = ctx.mkdir("host-target");
    let b = ctx.bundle();
    symlink(&host_target, b.rootfs().join("evil")).unwrap();
    let src = ctx.mkdir("src");
    std::fs::write(src.join("marker"), "from src\n").unwrap();
    let b = b
        .mount(json!({ "destination": "/evil", "type": "bind", "source": src, "options": ["rbind", "ro"] }))
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    let out = ctx.create(&id, &b);
    // Refusing is fine too; what must never happen is a mount or a file on the host path.
    if out.success() {
        assert!(
            !leftovers::mounts_under(&host_target)
                .iter()
                .any(|m| m.contains("host-target")),
            "mounted on the host"
        );
    }
    assert!(
        std::fs::read_dir(&host_target).unwrap().next().is_none(),
        "host dir untouched"
    );
    assert!(
        leftovers::mounts_under(&ctx.dir).is_empty(),
        "no mount on the host"
    );
}

#[test]
fn huge_hook_error_output_does_not_deadlock_create() {
    // More than a pipe holds (64 KiB) of error output must not hang create.
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .hook("createRuntime", json!({ "path": "/bin/sh", "args": ["sh", "-c", "head -c 262144 /dev/zero | tr '\\\\0' e >&2; exit 1"] }))
        .args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create(&id, &b).fails();
    ctx.assert_nothing_left(&id, &b);
}

#[test]
fn tiny_memory_limit_neither_hangs_nor_leaks() {
    // The runtime's own init may not fit: create may fail, but cleanly.
    let ctx = Ctx::new();
    let b = ctx
        .bundle()
        .resources("memory", json!({ "limit": 2 * 1024 * 1024 }))
        .args(&["/bin/true"]);
    let id = ctx.id();
    let out = ctx.create(&id, &b);
    if out.success() {
        ctx.start(&id).ok();
        ctx.wait_status(&id, "stopped");
        ctx.delete(&id).ok();
    } else {
        out.fails();
    }
    ctx.assert_nothing_left(&id, &b);
}

/// sha256 of a file, by `sha256sum`.
fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {}", p.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Points the context at a private copy of the runtime, so an attack that succeeds
/// damages only the copy. Copied by `cp` in its own process: a write fd held by this
/// multi-threaded test process could leak into a sibling's fork (ETXTBSY).
fn private_runtime(ctx: &mut Ctx) -> PathBuf {
    let dir = ctx.mkdir("runtime-copy");
    let copy = dir.join(ctx.rt.path.file_name().expect("runtime file name"));
    let st = Command::new("cp")
        .arg(&ctx.rt.path)
        .arg(&copy)
        .status()
        .expect("run cp");
    assert!(st.success(), "copy the runtime");
    ctx.rt.path = copy.clone();
    copy
}

/// The attacker, pid 1 of a container with CAP_SYS_PTRACE (which lets it past the
/// runtime's non-dumpable flag). Its /etc/passwd is a FIFO, so a runtime process that
/// reads it (`exec` looks up HOME there) waits inside the container, in its pid
/// namespace, until the attacker has held that process' /proc/<pid>/exe. Once nobody
/// executes the file any more (no ETXTBSY) it reopens it through /proc/self/fd/3 for
/// writing (O_WRONLY|O_TRUNC): the classic CVE-2019-5736 shape.
const ATTACKER: &str = r#"
rm -f /etc/passwd && mkfifo /etc/passwd && touch /ready
exec 4> /etc/passwd
for d in /proc/[0-9]*; do
  case "$(readlink $d/exe 2>/dev/null)" in /bin/busybox|"") continue ;; esac
  if (exec 3< $d/exe) 2>/tmp/err; then
    exec 3< $d/exe
    echo "held $(readlink $d/exe)" > /held
  else
    echo "open failed: $(cat /tmp/err)" > /held
  fi
  break
done
echo "root:x:0:0:root:/root:/bin/sh" >&4
exec 4>&-
rm -f /etc/passwd && echo "root:x:0:0:root:/root:/bin/sh" > /etc/passwd
if [ -e /proc/self/fd/3 ]; then
  while :; do
    if (echo pwned > /proc/self/fd/3) 2>/tmp/err; then echo wrote > /result.tmp; break; fi
    grep -q busy /tmp/err || { echo "denied: $(cat /tmp/err)" > /result.tmp; break; }
    usleep 10000
  done
else
  echo "nothing held: $(cat /held 2>/dev/null)" > /result.tmp
fi
mv /result.tmp /result
exec sleep 1000
"#;

// An entrypoint or exec of `/proc/self/exe` (or a `#!/proc/self/exe` script) does not
// run the runtime binary on this kernel (6.18): execve of an exe outside the process'
// root fails with ENOENT. Holding the exe of a runtime process the container can see
// still works, and is what this test does.
#[test]
fn cve_2019_5736_runtime_binary_cannot_be_overwritten_from_the_container() {
    let mut ctx = Ctx::new();
    let copy = private_runtime(&mut ctx);
    let before = sha256(&copy);
    let b = ctx.bundle().with(|s| {
        // Without HOME in the env, `exec` looks it up in the container's /etc/passwd.
        s["process"]["env"]
            .as_array_mut()
            .unwrap()
            .retain(|e| !e.as_str().unwrap().starts_with("HOME="));
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_PTRACE"));
        }
    });
    let rootfs = b.rootfs();
    std::fs::write(rootfs.join("attack.sh"), ATTACKER).unwrap();
    let b = b.args(&["/bin/sh", "/attack.sh"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);

    // A runtime process paused inside the container, its exe held, written later.
    let ready = rootfs.join("ready");
    wait_until("the attacker's FIFO", || ready.exists());
    ctx.rt(&["exec", "-d", &id, "/bin/true"]).ok();
    let held = rootfs.join("held");
    wait_until(
        "a runtime process to read the container's /etc/passwd",
        || held.exists(),
    );
    let result = rootfs.join("result");
    wait_until("the attacker's write attempt", || result.exists());
    let held = std::fs::read_to_string(held).unwrap_or_default();
    let result = std::fs::read_to_string(&result).unwrap();
    assert!(
        held.starts_with("held"),
        "the attack could not hold the runtime's exe, so it proves nothing: {held}"
    );
    assert_eq!(
        sha256(&copy),
        before,
        "the runtime binary was changed ({held}; {result})"
    );
    assert!(
        result.starts_with("denied"),
        "the write was not refused: {held}; {result}"
    );
}

#[test]
fn runtime_is_not_readable_by_the_container_until_exec() {
    // CVE-2019-5736 (the ptrace part): the init is the runtime until execve. A process of
    // the container (the startContainer hook runs inside it, with the container's
    // credentials, while the init waits for it) cannot read the init's memory, environ
    // or exe. After execve the container process is an ordinary, dumpable process.
    let ctx = Ctx::new();
    if !ctx.requires("startContainer") {
        return;
    }
    let probe = r#"for f in environ mem exe; do
        if cat /proc/1/$f > /dev/null 2> /dev/null; then echo "$f readable"; else echo "$f denied"; fi
      done > /probe"#;
    let b = ctx
        .bundle()
        .env("MARK=capsa-5736")
        .hook("startContainer", json!({ "path": "/bin/sh", "args": ["sh", "-c", probe] }))
        .sh("cat /probe; tr '\\0' '\\n' < /proc/1/environ | grep MARK; grep -c . /proc/1/maps > /dev/null && echo maps readable");
    let out = ctx.run(&b).ok();
    if ctx.rt.runc_deviation("runc 1.1's init is dumpable again when startContainer hooks run (its exe is a sealed memfd)") {
        return;
    }
    for f in ["environ", "mem", "exe"] {
        assert!(
            out.stdout.contains(&format!("{f} denied")),
            "the container read the runtime's /proc/1/{f} before exec: {out}"
        );
    }
    assert!(
        out.stdout.contains("MARK=capsa-5736") && out.stdout.contains("maps readable"),
        "after exec the container process is dumpable as usual: {out}"
    );
}

#[test]
fn cve_2025_31133_masking_never_uses_a_fake_dev_null() {
    // The rootfs' own /dev (no /dev mount): its /dev/null is a symlink to a procfs file
    // or a regular file. Masking must refuse it, never bind what it points to.
    for (what, make) in [
        ("symlink to core_pattern", 0),
        ("symlink to a host path", 1),
        ("regular file", 2),
    ] {
        let ctx = Ctx::new();
        let host_file = ctx.path("host-file");
        std::fs::write(&host_file, "host\n").unwrap();
        let b = ctx
            .bundle()
            .with(|s| {
                s["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"))
            })
            .args(&[
                "/bin/sh",
                "-c",
                "cat /proc/kcore | head -c 16; echo; cat /proc/keys | head -c 16",
            ]);
        let dev = b.rootfs().join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        let null = dev.join("null");
        let _ = std::fs::remove_file(&null);
        match make {
            0 => symlink("/proc/sys/kernel/core_pattern", &null).unwrap(),
            1 => symlink(&host_file, &null).unwrap(),
            _ => std::fs::write(&null, "not a device\n").unwrap(),
        }
        let id = ctx.id();
        let out = ctx.create(&id, &b);
        if ctx
            .rt
            .runc_deviation("runc 1.1.5 predates the CVE-2025-31133 fix")
        {
            continue;
        }
        let out = out.fails();
        assert!(
            out.all().contains("/dev/null"),
            "{what}: the error names /dev/null: {out}"
        );
        ctx.assert_nothing_left(&id, &b);
        assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host\n");
    }
}

/// The current directory the container process sees, or the runtime's refusal.
fn cwd_outcome(out: &integration::Out) -> String {
    if out.success() {
        out.stdout.trim().to_string()
    } else {
        format!("refused: {}", out.all().trim())
    }
}

#[test]
fn cve_2024_21626_cwd_through_a_leaked_fd_is_never_a_host_dir() {
    // process.cwd /proc/self/fd/N names whatever the runtime has open as fd N when it
    // chdirs. Refusing is fine; a cwd outside the container root (getcwd says
    // "(unreachable)") is the escape.
    let ctx = Ctx::new();
    for n in 3..=10 {
        let b = ctx
            .bundle()
            .cwd(&format!("/proc/self/fd/{n}"))
            .args(&["/bin/pwd", "-P"]);
        let out = ctx.run(&b);
        let seen = cwd_outcome(&out);
        assert!(
            !seen.contains("unreachable") && (!out.success() || seen.starts_with('/')),
            "run with cwd /proc/self/fd/{n}: {out}"
        );
    }
    // exec --cwd into a running container.
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    for n in 3..=10 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = ctx.rt(&["exec", "--cwd", &cwd, &id, "/bin/pwd", "-P"]);
        let seen = cwd_outcome(&out);
        assert!(
            !seen.contains("unreachable") && (!out.success() || seen.starts_with('/')),
            "exec --cwd {cwd}: {out}"
        );
    }
}

#[test]
fn cve_2024_21626_no_runtime_fd_reaches_an_exec_process() {
    // create.rs checks the init; the exec'd process must get only stdio too.
    let ctx = Ctx::new();
    let b = ctx.bundle().args(&["/bin/sleep", "1000"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let out = ctx.rt(&["exec", &id, "/bin/ls", "/proc/self/fd"]).ok();
    let fds: Vec<u32> = out
        .stdout
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // 0-2, and the one `ls` opens for the listing itself.
    assert!(
        fds.iter().filter(|&&f| f > 2).count() <= 1,
        "unexpected fds in the exec'd process: {out}"
    );
}

/// Pid 1 of a container with the default capabilities (no CAP_SYS_PTRACE): it pauses
/// the runtime's `exec` process inside the container (its /etc/passwd is a FIFO, read
/// for HOME) and probes it.
const PROBER: &str = r#"
rm -f /etc/passwd && mkfifo /etc/passwd && touch /ready
exec 4> /etc/passwd
for d in /proc/[0-9]*; do
  [ "$d" = /proc/1 ] && continue
  [ -e $d/environ ] || continue
  case "$(readlink $d/exe 2>/dev/null)" in /bin/busybox) continue ;; esac
  for f in environ mem exe; do
    if cat $d/$f > /dev/null 2> /dev/null; then echo "$f readable"; else echo "$f denied"; fi
  done > /probe.tmp
  echo "pid ${d#/proc/}: $(tr '\0' ' ' < $d/cmdline)" >> /probe.tmp
  break
done
echo "root:x:0:0:root:/root:/bin/sh" >&4
exec 4>&-
rm -f /etc/passwd && echo "root:x:0:0:root:/root:/bin/sh" > /etc/passwd
mv /probe.tmp /probe
exec sleep 1000
"#;

#[test]
fn runtime_exec_process_is_not_readable_by_the_container() {
    // CVE-2019-5736 (the ptrace part) during `exec`: the runtime process that joined the
    // container's pid namespace is visible there until it execs; the container cannot
    // read its memory, environ or exe.
    let ctx = Ctx::new();
    let b = ctx.bundle().with(|s| {
        s["process"]["env"]
            .as_array_mut()
            .unwrap()
            .retain(|e| !e.as_str().unwrap().starts_with("HOME="));
    });
    let rootfs = b.rootfs();
    std::fs::write(rootfs.join("probe.sh"), PROBER).unwrap();
    let b = b.args(&["/bin/sh", "/probe.sh"]);
    let id = ctx.id();
    ctx.create_start(&id, &b);
    let ready = rootfs.join("ready");
    wait_until("the prober's FIFO", || ready.exists());
    ctx.rt(&["exec", "-d", &id, "/bin/true"]).ok();
    let probe = rootfs.join("probe");
    wait_until("the prober's result", || probe.exists());
    let probe = std::fs::read_to_string(probe).unwrap();
    assert!(
        probe.contains("pid "),
        "no runtime process found in the container: {probe}"
    );
    if probe.contains("readable")
        && ctx
            .rt
            .runc_deviation("runc 1.1's exec init is dumpable while it reads /etc/passwd")
    {
        return;
    }
    for f in ["environ", "mem", "exe"] {
        assert!(
            probe.contains(&format!("{f} denied")),
            "the container read the runtime's /proc/<pid>/{f} during exec: {probe}"
        );
    }
}
