//! The config field a serde error is about, found from where in the text serde stopped:
//! `process.user.uid`, `mounts[7].destination`. serde_json reports a line and column;
//! walking the (syntactically valid) JSON up to that point gives the path of the value
//! being read there. Only failed parses pay for the walk.

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The dotted path of the value at (`line`, `column`) (1-based, as serde_json reports
/// them) in `text`; empty for the document itself or a position outside any value.
pub fn at(text: &[u8], line: usize, column: usize) -> String {
    let offset = offset_of(text, line, column);
    let mut w = Walker {
        text,
        pos: 0,
        target: offset,
        path: Vec::new(),
        found: None,
    };
    w.skip_ws();
    w.value();
    render(&w.found.unwrap_or_default())
}

fn offset_of(text: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line.max(1) {
        match text[start..].iter().position(|&b| b == b'\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    (start + column.saturating_sub(1)).min(text.len())
}

fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

struct Walker<'a> {
    text: &'a [u8],
    pos: usize,
    target: usize,
    path: Vec<Seg>,
    /// The path of the innermost value whose span holds the target.
    found: Option<Vec<Seg>>,
}

impl Walker<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    /// One value at `pos`, recording the current path when its bytes hold the target.
    /// Stops early on anything malformed.
    fn value(&mut self) {
        let start = self.pos;
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => {
                self.string();
            }
            Some(_) => {
                while matches!(self.peek(), Some(c) if !b",}] \n\r\t".contains(&c)) {
                    self.pos += 1;
                }
            }
            None => return,
        }
        // Containers record their own path only if no inner value took the target.
        if self.found.is_none() && (start..self.pos).contains(&self.target) {
            self.found = Some(self.path.clone());
        }
    }

    fn string(&mut self) -> Option<String> {
        self.pos += 1;
        let start = self.pos;
        while let Some(c) = self.peek() {
            match c {
                b'\\' => self.pos += 2,
                b'"' => {
                    let s = String::from_utf8_lossy(&self.text[start..self.pos]).into_owned();
                    self.pos += 1;
                    return Some(s);
                }
                _ => self.pos += 1,
            }
        }
        None
    }

    fn object(&mut self) {
        self.pos += 1;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return;
                }
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                Some(b'"') => {}
                _ => return,
            }
            let Some(key) = self.string() else { return };
            self.skip_ws();
            if self.peek() != Some(b':') {
                return;
            }
            self.pos += 1;
            self.skip_ws();
            self.path.push(Seg::Key(key));
            self.value();
            self.path.pop();
            if self.found.is_some() {
                return;
            }
        }
    }

    fn array(&mut self) {
        self.pos += 1;
        let mut i = 0;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    return;
                }
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                None => return,
                _ => {}
            }
            self.path.push(Seg::Index(i));
            let before = self.pos;
            self.value();
            // A stray `}` reads as an empty value: stop there (the loop would never end),
            // naming this element if that is where serde wanted a value.
            if self.pos == before {
                if self.found.is_none() && self.pos == self.target {
                    self.found = Some(self.path.clone());
                }
                self.path.pop();
                return;
            }
            self.path.pop();
            if self.found.is_some() {
                return;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde_json's position for deserializing `text` into T.
    fn path_of<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
        let e = serde_json::from_str::<T>(text).unwrap_err();
        at(text.as_bytes(), e.line(), e.column())
    }

    /// Found by the config fuzz target: a `}` where an array element belongs made the
    /// walk spin forever on a failed parse.
    #[test]
    fn a_stray_brace_in_an_array_ends_the_walk() {
        assert_eq!(at(b"[}", 1, 2), "[0]");
        assert_eq!(at(b"{\"a\": [1, }, 2]}", 1, 8), "a[0]");
        let text = "{\"mounts\": [{\"options\": [\"a\"\n }\n ]}";
        let e = serde_json::from_str::<oci_spec::runtime::Spec>(text).unwrap_err();
        assert_eq!(
            at(text.as_bytes(), e.line(), e.column()),
            "mounts[0].options[1]"
        );
    }

    #[test]
    fn finds_the_field_of_a_type_error() {
        use oci_spec::runtime::Spec;
        let spec = |inner: &str| {
            format!(r#"{{"ociVersion": "1.2.0", "root": {{"path": "rootfs"}}, {inner}}}"#)
        };
        assert_eq!(
            path_of::<Spec>(&spec(
                r#""process": {"cwd": "/", "user": {"uid": "x", "gid": 0}}"#
            )),
            "process.user.uid"
        );
        assert_eq!(
            path_of::<Spec>(&spec(
                "\"mounts\": [{\"destination\": \"/a\"},\n {\"destination\": 7}]"
            )),
            "mounts[1].destination"
        );
        assert_eq!(
            path_of::<Spec>(&spec(
                r#""linux": {"namespaces": [{"type": "pid"}, {"path": "/x"}]}"#
            )),
            "linux.namespaces[1]"
        );
        assert_eq!(
            path_of::<Spec>(&spec(r#""process": {"cwd": "/", "args": ["a", 3]}"#)),
            "process.args[1]"
        );
    }

    #[test]
    fn the_document_itself_has_no_path() {
        assert_eq!(at(b"[1,2]", 1, 1), "");
        assert_eq!(
            render(&[Seg::Key("a".into()), Seg::Index(2), Seg::Key("b".into())]),
            "a[2].b"
        );
    }
}
