//! The v1 devices controller, set as the minimal change from what the cgroup has (its
//! devices.list) to what the config asks for, as runc does: nothing is written when the
//! two agree, so an `update` never opens or closes access for a moment, and never makes
//! the redundant `a` write that the kernel refuses (EINVAL) once the container has
//! sub-cgroups of its own.
//!
//! The kernel's model: a default (allow or deny everything) plus exceptions, each a type,
//! a major and a minor (either may be `*`) and some of `rwm`. An `a` rule resets the
//! default and drops every exception; any other rule adds or subtracts access on the
//! exception that matches it exactly. devices.list shows the exceptions of a deny-default
//! cgroup, but only `a *:* rwm` for an allow-default one.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::{Error, Result};

const R: u8 = 1;
const W: u8 = 2;
const M: u8 = 4;

/// An exception's device: type (`b` or `c`), major, minor (`None` is `*`).
type Node = (char, Option<i64>, Option<i64>);

/// What a devices cgroup allows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Devices {
    default_allow: bool,
    exceptions: BTreeMap<Node, u8>,
}

/// One write to devices.allow (`allow`) or devices.deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub allow: bool,
    pub rule: String,
}

fn bits(access: &str) -> u8 {
    // Letters other than r, w, m are ignored, as runc does ("rwa" is seen in the wild).
    access.chars().fold(0, |b, c| match c {
        'r' => b | R,
        'w' => b | W,
        'm' => b | M,
        _ => b,
    })
}

fn access(b: u8) -> String {
    [(R, 'r'), (W, 'w'), (M, 'm')]
        .iter()
        .filter(|(bit, _)| b & bit != 0)
        .map(|(_, c)| *c)
        .collect()
}

fn num(n: Option<i64>) -> String {
    n.map_or("*".into(), |n| n.to_string())
}

/// A devices.list line or a default rule: `TYPE MAJOR:MINOR ACCESS`.
fn parse_line(l: &str) -> Option<(char, Option<i64>, Option<i64>, u8)> {
    let mut it = l.split_whitespace();
    let (t, mm, acc) = (it.next()?, it.next()?, it.next()?);
    let (major, minor) = mm.split_once(':')?;
    let n = |s: &str| s.parse::<i64>().ok();
    Some((t.chars().next()?, n(major), n(minor), bits(acc)))
}

/// What every container may use besides its config's rules, allowed after them (runc's
/// AllowedDevices, as v2_devices::DEFAULT_RULES): the runtime's own device nodes (null,
/// zero, full, tty, urandom, random), mknod of any device, /dev/pts/*, /dev/ptmx, tun/tap.
/// Not the host's console (c 5:1): a container's /dev/console is a pty slave bound there.
pub const DEFAULT_RULES: &[&str] = &[
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 5:0 rwm",
    "c 1:9 rwm",
    "c 1:8 rwm",
    "c *:* m",
    "b *:* m",
    "c 136:* rwm",
    "c 5:2 rwm",
    "c 10:200 rwm",
];

/// A container's devices cgroup: its config's `rules` (`field` names them in errors),
/// then `DEFAULT_RULES`.
pub fn container_rules(rules: &[LinuxDeviceCgroup], field: &str) -> Result<Devices> {
    let mut d = Devices::from_rules(rules, field)?;
    for (t, major, minor, b) in DEFAULT_RULES.iter().filter_map(|l| parse_line(l)) {
        // An allow never fails: it adds to an exception or to nothing.
        d.apply(t, major, minor, b, true)
            .map_err(|why| Error::Config(format!("{field}: default rule: {why}")))?;
    }
    Ok(d)
}

fn line((t, major, minor): Node, b: u8) -> String {
    format!("{t} {}:{} {}", num(major), num(minor), access(b))
}

impl Devices {
    /// The rules of a config, applied in order to a deny-everything start (runc's: a
    /// config without an `a` rule still gets a list of what is allowed, not everything).
    /// `field` names the rules in errors.
    pub fn from_rules<'a>(
        rules: impl IntoIterator<Item = &'a LinuxDeviceCgroup>,
        field: &str,
    ) -> Result<Devices> {
        let mut d = Devices::default();
        for (i, r) in rules.into_iter().enumerate() {
            let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
                LinuxDeviceType::A => 'a',
                LinuxDeviceType::B => 'b',
                LinuxDeviceType::C | LinuxDeviceType::U => 'c',
                LinuxDeviceType::P => {
                    return Err(Error::Config(format!(
                        "{field}[{i}]: type p has no devices cgroup rule"
                    )))
                }
            };
            let b = bits(r.access().as_deref().unwrap_or("rwm"));
            d.apply(typ, r.major(), r.minor(), b, r.allow())
                .map_err(|why| Error::Config(format!("{field}[{i}] ({r}): {why}")))?;
        }
        Ok(d)
    }

    /// What devices.list says.
    pub fn from_list(text: &str) -> Devices {
        let mut d = Devices::default();
        for (t, major, minor, b) in text.lines().filter_map(parse_line) {
            if t == 'a' {
                d.default_allow = true;
                d.exceptions.clear();
                continue;
            }
            *d.exceptions.entry((t, major, minor)).or_default() |= b;
        }
        d
    }

    fn apply(
        &mut self,
        typ: char,
        major: Option<i64>,
        minor: Option<i64>,
        b: u8,
        allow: bool,
    ) -> std::result::Result<(), String> {
        if typ == 'a' {
            *self = Devices {
                default_allow: allow,
                exceptions: BTreeMap::new(),
            };
            return Ok(());
        }
        let node = (typ, major, minor);
        // An allow on a deny-default cgroup (or a deny on an allow-default one) adds an
        // exception; the opposite subtracts from the exception matching exactly.
        if allow != self.default_allow {
            *self.exceptions.entry(node).or_default() |= b;
            return Ok(());
        }
        // The kernel would silently keep access that a wider exception grants.
        for wider in [(typ, None, minor), (typ, major, None), (typ, None, None)] {
            if wider != node && self.exceptions.get(&wider).is_some_and(|w| w & b != 0) {
                return Err(format!(
                    "cannot take access away from part of the wider rule {}",
                    line(wider, self.exceptions[&wider])
                ));
            }
        }
        if let Some(e) = self.exceptions.get_mut(&node) {
            *e &= !b;
            if *e == 0 {
                self.exceptions.remove(&node);
            }
        }
        Ok(())
    }

    /// The writes that take a cgroup from `self` to `target`: new access first, then
    /// access taken away; the `a` reset only when the default itself changes.
    pub fn transition(&self, target: &Devices) -> Vec<Write> {
        let mut out = Vec::new();
        let mut cur = self;
        let reset;
        // An allow-default cgroup hides its exceptions: reset it unless the target allows
        // everything and lists none (then there is nothing to write at all).
        let hidden = self.default_allow && !(target.default_allow && target.exceptions.is_empty());
        if self.default_allow != target.default_allow || hidden {
            out.push(Write {
                allow: target.default_allow,
                rule: "a *:* rwm".into(),
            });
            reset = Devices {
                default_allow: target.default_allow,
                exceptions: BTreeMap::new(),
            };
            cur = &reset;
        }
        // An exception grants access on a deny-default cgroup, takes it on an allow one.
        let grant = !target.default_allow;
        let mut gains = Vec::new();
        let mut losses = Vec::new();
        for (&node, &want) in &target.exceptions {
            let have = cur.exceptions.get(&node).copied().unwrap_or(0);
            if want & !have != 0 {
                gains.push((node, want & !have));
            }
        }
        for (&node, &have) in &cur.exceptions {
            let want = target.exceptions.get(&node).copied().unwrap_or(0);
            if have & !want != 0 {
                losses.push((node, have & !want));
            }
        }
        // Granting first: a process never loses, for a moment, access it keeps.
        let (first, second) = if grant {
            (gains, losses)
        } else {
            (losses, gains)
        };
        for (node, b) in first {
            out.push(Write {
                allow: true,
                rule: line(node, b),
            });
        }
        for (node, b) in second {
            out.push(Write {
                allow: false,
                rule: line(node, b),
            });
        }
        out
    }
}

/// Bring the devices cgroup at `dir` to `target`, writing only what differs (one write
/// per rule, devices.allow and devices.deny each opened once, when first needed).
pub fn set(dir: &Path, target: &Devices) -> Result<()> {
    let list = dir.join("devices.list");
    let text = std::fs::read_to_string(&list).map_err(|e| Error::io("read", &list, e))?;
    let mut files: [Option<std::fs::File>; 2] = [None, None];
    for w in Devices::from_list(&text).transition(target) {
        let name = if w.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        let file = dir.join(name);
        let fail = |e: std::io::Error| {
            Error::Cgroup(format!(
                "linux.resources.devices: write {:?} to {}: {e}",
                w.rule,
                file.display()
            ))
        };
        let slot = &mut files[usize::from(w.allow)];
        if slot.is_none() {
            *slot = Some(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&file)
                    .map_err(fail)?,
            );
        }
        if let Some(f) = slot {
            f.write_all(w.rule.as_bytes()).map_err(fail)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_value(json).unwrap()
    }

    fn writes(ws: &[Write]) -> Vec<String> {
        ws.iter()
            .map(|w| format!("{} {}", if w.allow { "allow" } else { "deny" }, w.rule))
            .collect()
    }

    fn config() -> Devices {
        let r = rules(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "m"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"}
        ]));
        Devices::from_rules(&r, "linux.resources.devices").unwrap()
    }

    #[test]
    fn a_new_cgroup_is_reset_then_granted() {
        let fresh = Devices::from_list("a *:* rwm\n");
        assert_eq!(
            writes(&fresh.transition(&config())),
            [
                "deny a *:* rwm",
                "allow c *:* m",
                "allow c 1:3 rwm",
                "allow c 136:* rwm"
            ]
        );
    }

    #[test]
    fn the_same_rules_again_write_nothing() {
        let now = Devices::from_list("c *:* m\nc 1:3 rwm\nc 136:* rwm\n");
        assert_eq!(now, config());
        assert!(now.transition(&config()).is_empty());
    }

    #[test]
    fn only_the_difference_is_written() {
        let now = Devices::from_list("c *:* m\nc 1:3 r\nc 1:11 rwm\nc 136:* rwm\n");
        assert_eq!(
            writes(&now.transition(&config())),
            ["allow c 1:3 wm", "deny c 1:11 rwm"]
        );
    }

    #[test]
    fn allow_everything_stays_unwritten() {
        let all = Devices::from_list("a *:* rwm\n");
        let target = Devices::from_rules(
            &rules(serde_json::json!([{"allow": true, "access": "rwm"}])),
            "f",
        )
        .unwrap();
        assert!(all.transition(&target).is_empty());
    }

    #[test]
    fn a_hole_in_a_wider_rule_is_refused() {
        let r = rules(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
            {"allow": false, "type": "c", "major": 136, "minor": 1, "access": "w"}
        ]));
        let e = Devices::from_rules(&r, "linux.resources.devices").unwrap_err();
        assert!(e.to_string().contains("linux.resources.devices[2]"), "{e}");
    }
}
