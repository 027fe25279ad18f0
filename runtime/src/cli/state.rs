//! `state ID` and `list`.

use std::io::Write;

use clap::{Args, ValueEnum};

use super::Cli;
use crate::container::Container;
use crate::state::list_ids;

#[derive(Args, Debug)]
pub struct StateArgs {
    id: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format
    #[arg(short = 'f', long, value_enum, default_value = "table")]
    format: Format,
    /// Print only the ids
    #[arg(short = 'q', long)]
    quiet: bool,
}

pub fn state(cli: &Cli, a: &StateArgs) -> anyhow::Result<()> {
    let c = Container::load(&cli.root()?, &a.id, false)?;
    let st = c.oci_state(c.status());
    println!("{}", serde_json::to_string_pretty(&st)?);
    Ok(())
}

pub fn list(cli: &Cli, a: &ListArgs) -> anyhow::Result<()> {
    let mut containers = Vec::new();
    for id in list_ids(&cli.root()?)? {
        // A container deleted meanwhile is simply not listed.
        if let Ok(c) = Container::load(&cli.root()?, &id, false) {
            containers.push(c);
        }
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for c in &containers {
            writeln!(out, "{}", c.id())?;
        }
        return Ok(());
    }
    match a.format {
        Format::Json => {
            let states: Vec<_> = containers.iter().map(|c| c.oci_state(c.status())).collect();
            writeln!(out, "{}", serde_json::to_string(&states)?)?;
        }
        Format::Table => {
            let mut rows =
                vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
            for c in &containers {
                let st = c.oci_state(c.status());
                rows.push([
                    st.id.to_string(),
                    st.pid.to_string(),
                    st.status.to_string(),
                    st.bundle.display().to_string(),
                    st.created.to_string(),
                    st.owner.to_string(),
                ]);
            }
            let widths: Vec<usize> = (0..6)
                .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0).max(11))
                .collect();
            for r in rows {
                let line: Vec<String> = r
                    .iter()
                    .zip(&widths)
                    .map(|(v, w)| format!("{v:<w$}"))
                    .collect();
                writeln!(out, "{}", line.join(" ").trim_end())?;
            }
        }
    }
    Ok(())
}
