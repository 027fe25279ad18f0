//! The Dockerfile parser: parser directives (`# escape=`, `# syntax=` ignored), comments, line
//! continuations, one `Instruction` per logical line with its line number, its `--flags` and
//! its arguments in JSON (exec) or plain form. Errors name the file and the line. Heredocs
//! (`<<EOF`) are refused by name.
use crate::error::{Error, Result};

pub const KEYWORDS: [&str; 18] = [
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// The flags each instruction accepts (`--name=value`).
fn allowed_flags(keyword: &str) -> &'static [&'static str] {
    match keyword {
        "FROM" => &["platform"],
        "RUN" => &["network"],
        "COPY" => &["from", "chown", "chmod"],
        "ADD" => &["chown", "chmod"],
        "HEALTHCHECK" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        _ => &[],
    }
}

/// Instructions whose arguments may be a JSON array.
fn takes_json(keyword: &str) -> bool {
    matches!(
        keyword,
        "RUN" | "CMD" | "ENTRYPOINT" | "SHELL" | "COPY" | "ADD" | "VOLUME"
    )
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Args {
    /// exec form: `["a", "b"]`
    Json(Vec<String>),
    /// everything after the keyword and flags, continuations joined
    Text(String),
}

#[derive(Clone, Debug)]
pub struct Instruction {
    /// line of the keyword (1-based)
    pub line: usize,
    /// upper case
    pub keyword: String,
    pub flags: Vec<(String, Option<String>)>,
    pub args: Args,
    /// the instruction as written (keyword upper-cased, continuations joined), for the
    /// output, the history and the cache key
    pub text: String,
}

impl Instruction {
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref().unwrap_or("true"))
    }
    /// The arguments after the flags, as written (JSON form re-joined).
    pub fn rest(&self) -> String {
        match &self.args {
            Args::Text(t) => t.clone(),
            Args::Json(v) => serde_json::to_string(v).expect("strings"),
        }
    }
}

#[derive(Debug)]
pub struct Dockerfile {
    pub file: String,
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

impl Dockerfile {
    pub fn error(&self, line: usize, msg: impl Into<String>) -> Error {
        Error::Dockerfile {
            file: self.file.clone(),
            line,
            msg: msg.into(),
        }
    }
}

fn err(file: &str, line: usize, msg: impl Into<String>) -> Error {
    Error::Dockerfile {
        file: file.to_string(),
        line,
        msg: msg.into(),
    }
}

/// `# key=value` at the top of the file.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (k, v) = rest.split_once('=')?;
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((k.to_ascii_lowercase(), v.trim().to_string()))
}

pub fn parse(src: &str, file: &str) -> Result<Dockerfile> {
    let lines: Vec<&str> = src.lines().collect();
    let mut escape = '\\';
    let mut i = 0;
    // parser directives: only before anything else, each at most once
    let mut seen = Vec::new();
    while i < lines.len() {
        let Some((k, v)) = directive(lines[i]) else {
            break;
        };
        if seen.contains(&k) {
            return Err(err(file, i + 1, format!("directive {k:?} given twice")));
        }
        if k == "escape" {
            escape = match v.as_str() {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(err(
                        file,
                        i + 1,
                        format!("invalid escape token {v:?}: it must be \\ or `"),
                    ))
                }
            };
        }
        seen.push(k);
        i += 1;
    }
    let mut out = Vec::new();
    while i < lines.len() {
        let first = i;
        let raw = lines[i];
        i += 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        // join continuation lines; comment and empty lines inside are dropped
        let mut logical = String::new();
        let mut cur = raw.trim_start().to_string();
        loop {
            let trimmed = cur.trim_end();
            match trimmed.strip_suffix(escape) {
                Some(body) => {
                    logical.push_str(body);
                    let mut next = None;
                    while i < lines.len() {
                        let l = lines[i];
                        i += 1;
                        let lt = l.trim();
                        if lt.is_empty() || lt.starts_with('#') {
                            continue;
                        }
                        next = Some(l.to_string());
                        break;
                    }
                    match next {
                        Some(n) => cur = n,
                        None => break,
                    }
                }
                None => {
                    logical.push_str(&cur);
                    break;
                }
            }
        }
        out.push(parse_instruction(file, first + 1, logical.trim())?);
    }
    Ok(Dockerfile {
        file: file.to_string(),
        escape,
        instructions: out,
    })
}

/// One logical line (continuations joined) into an instruction.
pub fn parse_instruction(file: &str, line: usize, s: &str) -> Result<Instruction> {
    let (kw, rest) = match s.find(char::is_whitespace) {
        Some(p) => (&s[..p], s[p..].trim_start()),
        None => (s, ""),
    };
    let keyword = kw.to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        return Err(err(file, line, format!("unknown instruction: {kw}")));
    }
    // --flags before the arguments
    let mut flags = Vec::new();
    let mut rest = rest;
    while let Some(f) = rest.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let word = &f[..end];
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (word.to_string(), None),
        };
        if !allowed_flags(&keyword).contains(&name.as_str()) {
            return Err(err(
                file,
                line,
                format!("{keyword} does not take the flag --{name}"),
            ));
        }
        flags.push((name, value));
        rest = f[end..].trim_start();
    }
    let args = if takes_json(&keyword) && rest.starts_with('[') {
        match serde_json::from_str::<Vec<String>>(rest) {
            Ok(v) => Args::Json(v),
            Err(_) if keyword == "SHELL" => {
                return Err(err(file, line, "SHELL requires a JSON array of strings"))
            }
            Err(_) => Args::Text(rest.to_string()),
        }
    } else {
        Args::Text(rest.to_string())
    };
    if rest.is_empty() {
        return Err(err(file, line, format!("{keyword} requires arguments")));
    }
    if keyword == "SHELL" && !matches!(args, Args::Json(_)) {
        return Err(err(file, line, "SHELL requires a JSON array of strings"));
    }
    if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
        if let Args::Text(t) = &args {
            if has_heredoc(t) {
                return Err(err(
                    file,
                    line,
                    format!("heredocs (<<WORD) in {keyword} are not supported"),
                ));
            }
        }
    }
    if keyword == "ONBUILD" {
        let inner = parse_instruction(file, line, rest)?;
        if matches!(inner.keyword.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
            return Err(err(
                file,
                line,
                format!("{} is not allowed as an ONBUILD trigger", inner.keyword),
            ));
        }
    }
    let text = if s.len() > kw.len() {
        format!("{keyword}{}", &s[kw.len()..])
    } else {
        keyword.clone()
    };
    Ok(Instruction {
        line,
        keyword,
        flags,
        args,
        text,
    })
}

/// A word starting with `<<` followed by a delimiter (optionally `-` and quoted).
fn has_heredoc(s: &str) -> bool {
    s.split_whitespace().any(|w| {
        w.strip_prefix("<<")
            .map(|r| r.trim_start_matches('-').trim_start_matches(['"', '\'']))
            .and_then(|r| r.chars().next())
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_and_forms() {
        let df = parse(
            "# escape=\\\n\n# a comment\nFROM busybox AS b\nRUN echo a \\\n  # inside\n\n  b\nrun [\"echo\", \"x\"]\nCOPY --chown=1:2 --from=b a /b\nCMD [not json\nENV A=1\n",
            "Dockerfile",
        )
        .unwrap();
        let ins = &df.instructions;
        assert_eq!(ins.len(), 6);
        assert_eq!(ins[0].line, 4);
        assert_eq!(ins[0].args, Args::Text("busybox AS b".into()));
        assert_eq!(ins[1].line, 5);
        assert_eq!(ins[1].args, Args::Text("echo a   b".into()));
        assert_eq!(ins[1].text, "RUN echo a   b");
        assert_eq!(ins[2].keyword, "RUN");
        assert_eq!(ins[2].line, 9);
        assert_eq!(ins[2].args, Args::Json(vec!["echo".into(), "x".into()]));
        assert_eq!(ins[3].flag("chown"), Some("1:2"));
        assert_eq!(ins[3].flag("from"), Some("b"));
        assert_eq!(ins[3].args, Args::Text("a /b".into()));
        assert_eq!(ins[4].args, Args::Text("[not json".into()));
        assert_eq!(ins[5].line, 12);
    }

    #[test]
    fn escape_directive() {
        let df = parse("# escape=`\nFROM x\nRUN a `\n b\n", "D").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.instructions[1].args, Args::Text("a  b".into()));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("FROM x\n\nFOO bar\n", "Dfile").unwrap_err();
        assert_eq!(e.to_string(), "Dfile:3: unknown instruction: FOO");
        let e = parse("FROM x\nRUN\n", "D").unwrap_err();
        assert_eq!(e.to_string(), "D:2: RUN requires arguments");
        let e = parse("FROM x\nCOPY --bogus=1 a b\n", "D").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("D:2: COPY does not take the flag --bogus"));
        let e = parse("FROM x\nSHELL sh -c\n", "D").unwrap_err();
        assert!(e.to_string().contains("D:2: SHELL requires a JSON array"));
        let e = parse("FROM x\nRUN cat <<EOF\nhi\nEOF\n", "D").unwrap_err();
        assert!(e.to_string().contains("D:2: heredocs"));
        let e = parse("FROM x\nONBUILD FROM y\n", "D").unwrap_err();
        assert!(e.to_string().contains("D:2: FROM is not allowed"));
        assert!(parse("# escape=x\nFROM x\n", "D").is_err());
        // a shift in arithmetic is no heredoc
        parse("FROM x\nRUN echo $((1<<2))\n", "D").unwrap();
    }
}
