//! Stages of a multi-stage Dockerfile: the ARGs before the first FROM, one stage per FROM
//! (`FROM image [AS name]`, the image expanded with those ARGs), the stages a target needs
//! (its FROM and `COPY --from` dependencies, transitively); the others are not built.
use super::parse::{Dockerfile, Instruction};
use super::words;
use crate::error::Result;
use std::collections::BTreeSet;

#[derive(Clone, Debug)]
pub struct Stage {
    pub index: usize,
    /// lower case
    pub name: Option<String>,
    /// the FROM image, expanded
    pub base: String,
    pub from: Instruction,
    pub body: Vec<Instruction>,
}

type Raw = (Instruction, Vec<Instruction>);

/// The ARGs before the first FROM, and each FROM with the instructions after it.
pub fn split(df: &Dockerfile) -> Result<(Vec<Instruction>, Vec<Raw>)> {
    let mut global = Vec::new();
    let mut stages: Vec<Raw> = Vec::new();
    for ins in &df.instructions {
        if ins.keyword == "FROM" {
            stages.push((ins.clone(), Vec::new()));
        } else if let Some((_, body)) = stages.last_mut() {
            body.push(ins.clone());
        } else if ins.keyword == "ARG" {
            global.push(ins.clone());
        } else {
            return Err(df.error(
                ins.line,
                format!(
                    "{} before the first FROM (only ARG may come first)",
                    ins.keyword
                ),
            ));
        }
    }
    if stages.is_empty() {
        let line = df.instructions.last().map_or(1, |i| i.line);
        return Err(df.error(line, "no FROM instruction"));
    }
    Ok((global, stages))
}

/// Each FROM's image (expanded with the global ARGs) and stage name.
pub fn plan(
    df: &Dockerfile,
    raw: Vec<Raw>,
    global: &[(String, Option<String>)],
) -> Result<Vec<Stage>> {
    let lookup = |k: &str| {
        global
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.clone())
    };
    let mut out: Vec<Stage> = Vec::new();
    for (index, (from, body)) in raw.into_iter().enumerate() {
        let ws = words::split(&from.rest(), df.escape);
        let (image, name) = match ws.as_slice() {
            [i] => (i.clone(), None),
            [i, as_, n] if as_.eq_ignore_ascii_case("as") => {
                (i.clone(), Some(n.to_ascii_lowercase()))
            }
            _ => {
                return Err(df.error(
                    from.line,
                    "FROM takes an image and optionally AS name".to_string(),
                ))
            }
        };
        let base = words::expand(&image, df.escape, &lookup).map_err(|e| df.error(from.line, e))?;
        if base.is_empty() {
            return Err(df.error(from.line, format!("FROM {image}: the image name is empty")));
        }
        if let Some(n) = &name {
            let ok = n.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !ok {
                return Err(df.error(from.line, format!("invalid stage name {n:?}")));
            }
            if out.iter().any(|s| s.name.as_deref() == Some(n)) {
                return Err(df.error(from.line, format!("stage name {n:?} is used twice")));
            }
        }
        out.push(Stage {
            index,
            name,
            base,
            from,
            body,
        });
    }
    Ok(out)
}

/// The stage called `name` (case-insensitively) or numbered `name`, before `before`.
pub fn find(stages: &[Stage], name: &str, before: usize) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    if let Some(s) = stages[..before.min(stages.len())]
        .iter()
        .find(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return Some(s.index);
    }
    name.parse::<usize>().ok().filter(|n| *n < before)
}

/// The stage `--target` names (default: the last).
pub fn target(df: &Dockerfile, stages: &[Stage], target: Option<&str>) -> Result<usize> {
    match target {
        None => Ok(stages.len() - 1),
        Some(t) => find(stages, t, stages.len())
            .filter(|i| stages[*i].name.is_some() || t.parse::<usize>().is_ok())
            .ok_or_else(|| {
                df.error(
                    stages[0].from.line,
                    format!("--target {t}: no stage of that name in the Dockerfile"),
                )
            }),
    }
}

/// The stages `target` needs, in order.
pub fn needed(stages: &[Stage], target: usize) -> Vec<usize> {
    let mut need = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !need.insert(i) {
            continue;
        }
        let s = &stages[i];
        if let Some(j) = find(stages, &s.base, i) {
            todo.push(j);
        }
        for ins in &s.body {
            if ins.keyword == "COPY" {
                if let Some(j) = ins.flag("from").and_then(|f| find(stages, f, i)) {
                    todo.push(j);
                }
            }
        }
    }
    need.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;

    #[test]
    fn multi_stage() {
        let df = parse(
            "ARG V=1\nFROM busybox:$V AS Base\nRUN x\nFROM base AS mid\nFROM scratch AS other\nFROM busybox\nCOPY --from=mid /a /b\nCOPY --from=0 /c /d\n",
            "D",
        )
        .unwrap();
        let (global, raw) = split(&df).unwrap();
        assert_eq!(global.len(), 1);
        let st = plan(&df, raw, &[("V".into(), Some("2".into()))]).unwrap();
        assert_eq!(st[0].base, "busybox:2");
        assert_eq!(st[0].name.as_deref(), Some("base"));
        assert_eq!(find(&st, "BASE", 1), Some(0));
        assert_eq!(find(&st, "base", 0), None);
        assert_eq!(needed(&st, 3), vec![0, 1, 3]);
        assert_eq!(needed(&st, 2), vec![2]);
        assert_eq!(target(&df, &st, None).unwrap(), 3);
        assert_eq!(target(&df, &st, Some("mid")).unwrap(), 1);
        assert!(target(&df, &st, Some("nope")).is_err());
    }

    #[test]
    fn errors() {
        let df = parse("RUN x\nFROM y\n", "D").unwrap();
        assert_eq!(
            split(&df).unwrap_err().to_string(),
            "D:1: RUN before the first FROM (only ARG may come first)"
        );
        let df = parse("ARG X\n", "D").unwrap();
        assert!(split(&df).unwrap_err().to_string().contains("no FROM"));
        let df = parse("FROM a AS x\nFROM b AS X\n", "D").unwrap();
        let (_, raw) = split(&df).unwrap();
        assert!(plan(&df, raw, &[])
            .unwrap_err()
            .to_string()
            .contains("used twice"));
    }
}
