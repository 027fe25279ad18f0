//! `.dockerignore` and source wildcards. Patterns match slash-separated paths relative to the
//! context, component by component (`*`, `?`, `[a-z]`, `[!x]`, `\` escapes; `*` never matches
//! `/`); in `.dockerignore`, `**` matches any number of directories, a pattern that matches a
//! directory excludes everything below it, `!` re-includes, and the last matching line wins.

/// One component pattern against one path component (fnmatch without FNM_PATHNAME subtleties).
pub fn match_component(pat: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    // backtracking point for the last `*`
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() {
            match pat[p] {
                '*' => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                '?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, len)) = class(&pat[p..], name[n]) {
                        if ok {
                            p += len;
                            n += 1;
                            continue;
                        }
                    } else if name[n] == '[' {
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
                '\\' if p + 1 < pat.len() => {
                    if pat[p + 1] == name[n] {
                        p += 2;
                        n += 1;
                        continue;
                    }
                }
                c => {
                    if c == name[n] {
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    while p < pat.len() && pat[p] == '*' {
        p += 1;
    }
    p == pat.len()
}

/// A `[...]` class at the start of `pat`: (matches c, length of the class), or None if the
/// class is not closed (then `[` is literal).
fn class(pat: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(1), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pat.len() {
        let mut lo = pat[i];
        if lo == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if lo == '\\' && i + 1 < pat.len() {
            i += 1;
            lo = pat[i];
        }
        let mut hi = lo;
        if i + 2 < pat.len() && pat[i + 1] == '-' && pat[i + 2] != ']' {
            hi = pat[i + 2];
            i += 2;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
        i += 1;
    }
    None
}

pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Path components of a cleaned relative path ("a/./b/../c" -> ["a", "c"]); `..` above the
/// top is dropped (paths stay inside the context, as docker's filepath.Clean of "/"+path).
pub fn clean(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

#[derive(Clone)]
struct Pattern {
    comps: Vec<Vec<char>>,
    exclusion: bool,
}

/// The lines of a `.dockerignore`.
#[derive(Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for l in text.lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (exclusion, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let comps = clean(p);
            if comps.is_empty() {
                continue;
            }
            patterns.push(Pattern {
                comps: comps.iter().map(|c| c.chars().collect()).collect(),
                exclusion,
            });
        }
        Ignore { patterns }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether a `!` pattern may re-include something below the directory `dir`, so that an
    /// excluded `dir` is still walked (docker's rule, kept by buildah: the pattern, as
    /// written but cleaned, starts with `dir/`; `!**/x` does not reach into an excluded dir).
    pub fn may_reinclude_below(&self, dir: &[String]) -> bool {
        let prefix = format!("{}/", dir.join("/"));
        self.patterns.iter().any(|p| {
            p.exclusion && {
                let text: Vec<String> = p.comps.iter().map(|c| c.iter().collect()).collect();
                format!("{}/", text.join("/")).starts_with(&prefix)
            }
        })
    }

    /// Whether `path` (components relative to the context) is excluded.
    pub fn excluded(&self, path: &[String]) -> bool {
        let name: Vec<Vec<char>> = path.iter().map(|c| c.chars().collect()).collect();
        let mut out = false;
        for p in &self.patterns {
            // the path or one of its parents matches
            let hit = (1..=name.len()).any(|k| match_path(&p.comps, &name[..k]));
            if hit {
                out = !p.exclusion;
            }
        }
        out
    }
}

/// Component patterns (with `**`) against path components.
fn match_path(pat: &[Vec<char>], name: &[Vec<char>]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some((p, rest)) if p.as_slice() == ['*', '*'] => {
            (0..=name.len()).any(|k| match_path(rest, &name[k..]))
        }
        Some((p, rest)) => match name.split_first() {
            Some((n, nrest)) => match_component(p, n) && match_path(rest, nrest),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        match_component(
            &p.chars().collect::<Vec<_>>(),
            &n.chars().collect::<Vec<_>>(),
        )
    }

    fn comps(s: &str) -> Vec<String> {
        clean(s)
    }

    #[test]
    fn components() {
        assert!(m("*.txt", "a.txt"));
        assert!(!m("*.txt", "a.txt.bak"));
        assert!(m("a?c", "abc"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[!a-c]x", "dx"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("*a*b*", "xxaybzz"));
        assert!(m("*", ""));
        assert!(m("[", "["));
    }

    #[test]
    fn dockerignore() {
        let ig = Ignore::parse("# comment\n*.log\n/build\n**/tmp\n!keep.log\nsub/ignored*\n");
        assert!(ig.excluded(&comps("a.log")));
        assert!(!ig.excluded(&comps("keep.log")));
        assert!(!ig.excluded(&comps("d/a.log")));
        assert!(ig.excluded(&comps("build")));
        assert!(ig.excluded(&comps("build/x/y")));
        assert!(ig.excluded(&comps("tmp")));
        assert!(ig.excluded(&comps("a/b/tmp/c")));
        assert!(ig.excluded(&comps("sub/ignored1")));
        assert!(!ig.excluded(&comps("sub/b.txt")));
        assert!(!ig.excluded(&comps("src/main.rs")));
        assert_eq!(clean("/a/./b/../c/"), vec!["a", "c"]);
        // an excluded directory with a re-included file below it
        let ig = Ignore::parse("build\n!build/keep.txt\n!**/sub/keep.txt\nother\n");
        assert!(ig.excluded(&comps("build")));
        assert!(ig.may_reinclude_below(&comps("build")));
        assert!(!ig.excluded(&comps("build/keep.txt")));
        assert!(ig.excluded(&comps("build/drop.txt")));
        assert!(!ig.may_reinclude_below(&comps("build/sub")));
        assert!(!ig.may_reinclude_below(&comps("other")));
        assert!(!ig.may_reinclude_below(&comps("bui")));
        assert_eq!(clean("../../x"), vec!["x"]);
    }
}
