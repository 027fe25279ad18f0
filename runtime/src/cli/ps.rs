//! `ps ID [--format table|json] [-- ps options]`: the container's processes.

use clap::Args;

use super::state::Format;
use super::Cli;
use crate::container::Container;

#[derive(Args, Debug)]
pub struct PsArgs {
    id: String,
    #[arg(short = 'f', long, value_enum, default_value = "table")]
    format: Format,
    /// Options for ps(1) (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

pub fn run(cli: &Cli, a: &PsArgs) -> anyhow::Result<()> {
    let c = Container::load(&cli.root()?, &a.id, false)?;
    let pids = c.cgroup()?.pids()?;
    if let Format::Json = a.format {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| anyhow::anyhow!("run ps: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow::anyhow!("ps output has no PID column"))?;
    println!("{header}");
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{l}");
        }
    }
    Ok(())
}
