//! The runtime's log: `--log FILE` (default stderr) in `--log-format text|json`.
//!
//! The JSON contract is runc's, which shims parse back on failure: one object per line,
//! `{"level":"error","msg":"...","time":"2026-11-26T12:00:00.000000000Z"}`, lower-case levels.
//! A tiny `tracing::Subscriber` writes each event with one `write(2)` on an O_APPEND file,
//! so the container's init (a forked copy of this process) can log to the same file.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

enum Sink {
    Stderr,
    File(Mutex<File>),
}

struct Logger {
    sink: Sink,
    format: LogFormat,
    max: Level,
}

/// Install the global logger. Errors opening the log file are returned to the caller.
pub fn init(path: Option<&std::path::Path>, format: LogFormat, debug: bool) -> std::io::Result<()> {
    let sink = match path {
        Some(p) if !p.as_os_str().is_empty() => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?;
            Sink::File(Mutex::new(f))
        }
        _ => Sink::Stderr,
    };
    let max = if debug { Level::DEBUG } else { Level::INFO };
    let _ = tracing::subscriber::set_global_default(Logger { sink, format, max });
    Ok(())
}

/// True when the log goes to a file (errors must then also be printed on stderr).
pub fn logs_to_file(path: Option<&std::path::Path>) -> bool {
    path.is_some_and(|p| !p.as_os_str().is_empty())
}

#[derive(Default)]
struct Fields {
    msg: String,
    extra: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            let _ = write!(self.extra, " {}={}", field.name(), value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.msg, "{value:?}");
        } else {
            let _ = write!(self.extra, " {}={:?}", field.name(), value);
        }
    }
}

impl Logger {
    fn line(&self, level: &Level, msg: &str) -> String {
        let lvl = level.as_str().to_ascii_lowercase();
        let time = rfc3339_now();
        match self.format {
            LogFormat::Json => {
                let obj = serde_json::json!({ "level": lvl, "msg": msg, "time": time });
                format!("{obj}\n")
            }
            LogFormat::Text => format!("time=\"{time}\" level={lvl} msg={msg:?}\n"),
        }
    }
}

impl tracing::Subscriber for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Libraries (libcgroups) are chatty at info/warn: only their errors, unless --debug.
        let own = metadata.target().starts_with("capsa") || self.max == Level::DEBUG;
        let max = if own { self.max } else { Level::ERROR };
        metadata.level() <= &max
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields::default();
        event.record(&mut f);
        f.msg.push_str(&f.extra);
        let line = self.line(event.metadata().level(), &f.msg);
        match &self.sink {
            Sink::Stderr => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            Sink::File(file) => {
                if let Ok(mut file) = file.lock() {
                    let _ = file.write_all(line.as_bytes());
                }
            }
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The current UTC time as RFC 3339 with nanoseconds, as Go's time.RFC3339Nano prints it.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_795_694_400, 5), "2026-11-26T12:00:00.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn json_line_shape() {
        let l = Logger {
            sink: Sink::Stderr,
            format: LogFormat::Json,
            max: Level::INFO,
        };
        let line = l.line(&Level::ERROR, "boom \"x\"");
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(v.as_object().unwrap().len(), 3);
    }
}
