//! The instructions that change only the image config (ENV, LABEL, EXPOSE, VOLUME, USER,
//! WORKDIR, STOPSIGNAL, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD, MAINTAINER), as docker
//! writes them: docker's own config keys for what the OCI config has no field for
//! (`Healthcheck`, `OnBuild`, `Shell`).
use super::ignore::clean;
use super::parse::{Args, Instruction};
use super::words;
use crate::oci::ExecConfig;
use serde_json::{json, Value};

pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `KEY=value ...` pairs (or the legacy `KEY value with spaces`) of ENV and LABEL; keys and
/// values unquoted and expanded with `env` (the environment before this instruction).
pub fn pairs(text: &str, escape: char, env: Env) -> Result<Vec<(String, String)>, String> {
    let ws = words::split(text, escape);
    let Some(first) = ws.first() else {
        return Err("needs at least one KEY=value".into());
    };
    if !first.contains('=') {
        // legacy form: the first word is the key, the rest of the line the value
        let rest = text.trim_start()[first.len()..].trim_start();
        if rest.is_empty() {
            return Err(format!(
                "{first}: a value is needed (KEY=value or KEY value)"
            ));
        }
        return Ok(vec![(
            words::expand(first, escape, env)?,
            words::expand(rest, escape, env)?,
        )]);
    }
    let mut out = Vec::new();
    for w in ws {
        let Some((k, v)) = split_key(&w) else {
            return Err(format!("{w:?}: KEY=value expected"));
        };
        let k = words::expand(k, escape, env)?;
        if k.is_empty() {
            return Err(format!("{w:?}: empty key"));
        }
        out.push((k, words::expand(v, escape, env)?));
    }
    Ok(out)
}

/// Splits `k=v` at the first `=` outside quotes.
fn split_key(w: &str) -> Option<(&str, &str)> {
    let mut quote: Option<char> = None;
    for (i, c) in w.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '=' => return Some((&w[..i], &w[i + 1..])),
            None => {}
        }
    }
    None
}

pub fn set_env(ec: &mut ExecConfig, key: &str, value: &str) {
    let env = ec.env.get_or_insert_with(Vec::new);
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

pub fn get_env(ec: &ExecConfig, key: &str) -> Option<String> {
    ec.env
        .as_ref()?
        .iter()
        .find_map(|e| match e.split_once('=') {
            Some((k, v)) if k == key => Some(v.to_string()),
            _ => None,
        })
}

/// EXPOSE words: `80`, `80/tcp`, `53/udp`, `8000-8002` (each port of a range).
pub fn ports(ws: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for w in ws {
        let (range, proto) = match w.split_once('/') {
            Some((r, p)) => (r, p.to_ascii_lowercase()),
            None => (w.as_str(), "tcp".to_string()),
        };
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(format!("{w}: unknown protocol {proto:?}"));
        }
        let port = |s: &str| {
            s.parse::<u16>()
                .map_err(|_| format!("{w}: invalid port {s:?}"))
        };
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(range)?, port(range)?),
        };
        if hi < lo {
            return Err(format!("{w}: invalid port range"));
        }
        for p in lo..=hi {
            out.push(format!("{p}/{proto}"));
        }
    }
    Ok(out)
}

/// The command of CMD/ENTRYPOINT (and RUN): exec form as is, shell form through `shell`.
pub fn command(args: &Args, shell: &[String]) -> Vec<String> {
    match args {
        Args::Json(v) => v.clone(),
        Args::Text(t) => {
            let mut v = shell.to_vec();
            v.push(t.clone());
            v
        }
    }
}

/// WORKDIR: relative paths are relative to the current one; the result is clean and absolute.
pub fn workdir(current: Option<&str>, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", current.unwrap_or("/"))
    };
    format!("/{}", clean(&joined).join("/"))
}

/// A Go duration (`30s`, `1m30s`, `500ms`, `1.5h`) in nanoseconds.
pub fn duration(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {s:?}");
    if s == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Ok(total as i64)
}

/// HEALTHCHECK as docker records it: `{"Test": [...], "Interval": ns, ...}` (zero fields left
/// out), or `{"Test": ["NONE"]}`.
pub fn healthcheck(ins: &Instruction) -> Result<Value, String> {
    let rest = ins.rest();
    if rest.trim().eq_ignore_ascii_case("NONE") {
        if !ins.flags.is_empty() {
            return Err("HEALTHCHECK NONE takes no options".into());
        }
        return Ok(json!({"Test": ["NONE"]}));
    }
    let (kw, cmd) = match rest.trim_start().split_once(char::is_whitespace) {
        Some((k, c)) => (k, c.trim_start()),
        None => (rest.trim(), ""),
    };
    if !kw.eq_ignore_ascii_case("CMD") || cmd.is_empty() {
        return Err("HEALTHCHECK takes CMD command or NONE".into());
    }
    let test = match serde_json::from_str::<Vec<String>>(cmd) {
        Ok(v) if cmd.starts_with('[') => {
            let mut t = vec!["CMD".to_string()];
            t.extend(v);
            t
        }
        _ => vec!["CMD-SHELL".to_string(), cmd.to_string()],
    };
    let mut hc = serde_json::Map::new();
    hc.insert("Test".into(), json!(test));
    for (flag, key) in [
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ] {
        if let Some(v) = ins.flag(flag) {
            let d = duration(v)?;
            if d != 0 && d < 1_000_000 {
                return Err(format!("--{flag} must be at least 1ms"));
            }
            if d != 0 {
                hc.insert(key.into(), json!(d));
            }
        }
    }
    if let Some(v) = ins.flag("retries") {
        let n: i64 = v
            .parse()
            .map_err(|_| format!("--retries: {v:?} is not a number"))?;
        if n < 0 {
            return Err("--retries cannot be negative".into());
        }
        if n != 0 {
            hc.insert("Retries".into(), json!(n));
        }
    }
    Ok(Value::Object(hc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "A").then(|| "1".to_string())
    }

    #[test]
    fn env_and_label_pairs() {
        assert_eq!(
            pairs(r#"E1=one E2="two words" E3=$A"#, '\\', &env).unwrap(),
            vec![
                ("E1".into(), "one".into()),
                ("E2".into(), "two words".into()),
                ("E3".into(), "1".into())
            ]
        );
        assert_eq!(
            pairs(r#"a=b "c d"=e"#, '\\', &env).unwrap(),
            vec![("a".into(), "b".into()), ("c d".into(), "e".into())]
        );
        assert_eq!(
            pairs("KEY value with  spaces", '\\', &env).unwrap(),
            vec![("KEY".into(), "value with  spaces".into())]
        );
        assert!(pairs("A=1 B", '\\', &env).is_err());
        assert!(pairs("ONLYKEY", '\\', &env).is_err());
    }

    #[test]
    fn exposed_ports() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ports(&w(&["80", "53/UDP", "8000-8002/tcp"])).unwrap(),
            w(&["80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"])
        );
        assert!(ports(&w(&["http"])).is_err());
        assert!(ports(&w(&["80/xyz"])).is_err());
    }

    #[test]
    fn workdirs_and_durations() {
        assert_eq!(workdir(None, "app"), "/app");
        assert_eq!(workdir(Some("/app"), "sub/../x/"), "/app/x");
        assert_eq!(workdir(Some("/app"), "/abs"), "/abs");
        assert_eq!(duration("5s").unwrap(), 5_000_000_000);
        assert_eq!(duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration("500ms").unwrap(), 500_000_000);
        assert_eq!(duration("1.5h").unwrap(), 5_400_000_000_000);
        assert!(duration("5").is_err());
        assert!(duration("x").is_err());
    }

    #[test]
    fn healthchecks() {
        let p = |s: &str| super::super::parse::parse_instruction("D", 1, s).unwrap();
        assert_eq!(
            healthcheck(&p("HEALTHCHECK --interval=5s --retries=3 CMD true")).unwrap(),
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000i64, "Retries": 3})
        );
        assert_eq!(
            healthcheck(&p(r#"HEALTHCHECK CMD ["/bin/check", "-q"]"#)).unwrap(),
            json!({"Test": ["CMD", "/bin/check", "-q"]})
        );
        assert_eq!(
            healthcheck(&p("HEALTHCHECK NONE")).unwrap(),
            json!({"Test": ["NONE"]})
        );
        assert!(healthcheck(&p("HEALTHCHECK true")).is_err());
        assert!(healthcheck(&p("HEALTHCHECK --interval=1ns CMD x")).is_err());
    }
}
