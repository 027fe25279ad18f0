//! Dockerfile words: splitting on unquoted whitespace, quote removal and variable expansion
//! (`$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME:+word}`, `${NAME-word}`, `${NAME+word}`,
//! `${NAME:?msg}`, `${NAME?msg}`), as docker's shell lexer does for the instructions that
//! expand variables (ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR,
//! ARG). RUN, CMD and ENTRYPOINT are left to the shell.

/// Splits `s` on whitespace outside quotes; quotes and escapes are kept for `expand`.
pub fn split(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                in_word = true;
                cur.push(c);
                if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Removes quotes and escapes from `word` and expands variables from `env`.
pub fn expand(
    word: &str,
    escape: char,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    lex(word, escape, env, false)
}

/// Marks where an unquoted expansion had whitespace (a word boundary for `expand_all`).
const BOUNDARY: char = '\u{0}';

fn lex(
    word: &str,
    escape: char,
    env: &dyn Fn(&str) -> Option<String>,
    split_expansions: bool,
) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut l = Lexer {
        chars: &chars,
        pos: 0,
        escape,
        env,
        split_expansions,
    };
    l.word(None)
}

/// Words of `s` after expansion: split on unquoted whitespace, also whitespace that an
/// unquoted variable expands to (`EXPOSE $PORTS` with PORTS="80 443" is two ports).
pub fn expand_all(
    s: &str,
    escape: char,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for w in split(s, escape) {
        let quoted = w.contains(['"', '\'']);
        let v = lex(&w, escape, env, true)?;
        if quoted && !v.contains(BOUNDARY) {
            out.push(v);
            continue;
        }
        out.extend(
            v.split(BOUNDARY)
                .filter(|p| !p.is_empty())
                .map(String::from),
        );
    }
    Ok(out)
}

struct Lexer<'a> {
    chars: &'a [char],
    pos: usize,
    escape: char,
    env: &'a dyn Fn(&str) -> Option<String>,
    split_expansions: bool,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    /// Reads up to the end, or to `stop` (not consumed) outside quotes.
    fn word(&mut self, stop: Option<char>) -> Result<String, String> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                break;
            }
            self.pos += 1;
            match c {
                '\'' => loop {
                    match self.next() {
                        Some('\'') => break,
                        Some(c) => out.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                },
                '"' => self.double_quoted(&mut out)?,
                '$' if self.split_expansions => {
                    let v = self.dollar()?;
                    out.extend(
                        v.chars()
                            .map(|c| if c.is_whitespace() { BOUNDARY } else { c }),
                    );
                }
                '$' => out.push_str(&self.dollar()?),
                c if c == self.escape => match self.next() {
                    Some(n) => out.push(n),
                    None => out.push(c),
                },
                c => out.push(c),
            }
        }
        Ok(out)
    }

    fn double_quoted(&mut self, out: &mut String) -> Result<(), String> {
        loop {
            match self.next() {
                Some('"') => return Ok(()),
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) if c == self.escape => match self.next() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => out.push(n),
                    Some(n) => {
                        out.push(c);
                        out.push(n);
                    }
                    None => return Err("unterminated double quote".into()),
                },
                Some(c) => out.push(c),
                None => return Err("unterminated double quote".into()),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        n
    }

    /// After a `$`: a variable, or a literal `$`.
    fn dollar(&mut self) -> Result<String, String> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let name = self.name();
                if name.is_empty() {
                    return Err("bad substitution: ${ without a variable name".into());
                }
                let val = (self.env)(&name);
                let c = self.next().ok_or("missing '}'")?;
                let (colon, op) = if c == ':' {
                    (true, self.next().ok_or("missing '}'")?)
                } else {
                    (false, c)
                };
                if op == '}' && !colon {
                    return Ok(val.unwrap_or_default());
                }
                let set = match &val {
                    Some(v) => !(colon && v.is_empty()),
                    None => false,
                };
                let word = self.word(Some('}'))?;
                if self.next() != Some('}') {
                    return Err(format!("missing '}}' after ${{{name}"));
                }
                match op {
                    '-' => Ok(if set { val.unwrap_or_default() } else { word }),
                    '+' => Ok(if set { word } else { String::new() }),
                    '?' if set => Ok(val.unwrap_or_default()),
                    '?' => Err(if word.is_empty() {
                        format!("{name}: is not allowed to be unset")
                    } else {
                        format!("{name}: {word}")
                    }),
                    o => Err(format!("unsupported modifier ({o}) in substitution")),
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok((self.env)(&name).unwrap_or_default())
            }
            _ => Ok("$".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("1".into()),
            "E" => Some(String::new()),
            "SP" => Some("x y".into()),
            _ => None,
        }
    }

    fn x(s: &str) -> String {
        expand(s, '\\', &env).unwrap()
    }

    #[test]
    fn expansion() {
        assert_eq!(x("$A"), "1");
        assert_eq!(x("${A}b"), "1b");
        assert_eq!(x("a$A.b"), "a1.b");
        assert_eq!(x("$NOPE-"), "-");
        assert_eq!(x("${NOPE:-d}"), "d");
        assert_eq!(x("${E:-d}"), "d");
        assert_eq!(x("${E-d}"), "");
        assert_eq!(x("${A:+y}"), "y");
        assert_eq!(x("${NOPE:+y}"), "");
        assert_eq!(x("${NOPE:-${A}2}"), "12");
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A b\""), "1 b");
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("\"a\\\"b\""), "a\"b");
        assert_eq!(x("\"a\\nb\""), "a\\nb");
        assert_eq!(x("$"), "$");
        assert_eq!(x("$1"), "$1");
        assert!(expand("${NOPE:?must be set}", '\\', &env)
            .unwrap_err()
            .contains("must be set"));
        assert!(expand("\"open", '\\', &env).is_err());
        assert!(expand("${A", '\\', &env).is_err());
        assert_eq!(expand("`$A", '`', &env).unwrap(), "$A");
    }

    #[test]
    fn splitting() {
        assert_eq!(
            split(r#"a=1 b="x y" c='p q' d=e\ f"#, '\\'),
            vec!["a=1", r#"b="x y""#, "c='p q'", r"d=e\ f"]
        );
        assert_eq!(
            expand_all(r#"a="x y" $SP "$SP" $NOPE ''"#, '\\', &env).unwrap(),
            vec!["a=x y", "x", "y", "x y", ""]
        );
        assert!(split("   ", '\\').is_empty());
    }
}
