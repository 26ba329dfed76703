//! Soak runner: `kea-soak [--targets audit,auth,validate,cache,suite] [--minutes 60] [--rate 100]
//! [--sample-secs 10] [--warm-up-secs 300] [--max-growth 1] [--out bench/soak]
//! [--write bench/README.md --section soak-results]`. Runs every target at once on its own
//! Envoy, writes `<out>/<target>.csv` and `.svg`, prints the Markdown report (and writes it
//! between the section's markers), and exits non-zero when a target failed.

use anyhow::{bail, Context, Result};
use kea_e2e::soak::{self, workload::Target, Plan};
use std::time::Duration;

/// A duration given in seconds; a negative or non-finite value is an error naming the flag.
fn seconds(flag: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{flag}: {value} is not a duration"))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| kea_e2e::flag(&args, name);
    let number = |name: &str, default: f64| -> Result<f64> {
        flag(name)
            .map(|v| v.parse::<f64>().with_context(|| format!("{name} {v}")))
            .transpose()
            .map(|v| v.unwrap_or(default))
    };
    let targets = match flag("--targets") {
        None => Target::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|name| Target::parse(name).with_context(|| format!("no soak target {name:?}")))
            .collect::<Result<Vec<_>>>()?,
    };
    let minutes = number("--minutes", 60.0)?;
    let plan = Plan {
        targets,
        duration: seconds("--minutes", minutes * 60.0)?,
        warm_up: seconds(
            "--warm-up-secs",
            number("--warm-up-secs", (minutes * 6.0).min(300.0))?,
        )?,
        sample_every: seconds("--sample-secs", number("--sample-secs", 10.0)?)?,
        rate: number("--rate", 100.0)?,
        threads: number("--threads", 2.0)? as usize,
    };
    if plan.duration.is_zero() || plan.sample_every.is_zero() || plan.rate <= 0.0 || plan.threads == 0 {
        bail!("--minutes, --sample-secs, --rate and --threads must be greater than 0");
    }
    let max_growth = number("--max-growth", 1.0)?;
    let out = std::path::PathBuf::from(flag("--out").unwrap_or_else(|| "bench/soak".into()));
    let runs = soak::run(&plan)?;
    soak::write_series(&out, &runs)?;
    let plots: Vec<String> = runs
        .iter()
        .map(|r| format!("[{0}]({1}/{0}.svg)", r.target.name(), out.display()))
        .collect();
    let report = soak::report(&plan, &runs, max_growth, &plots.join(", "));
    println!("{report}");
    if let Some(path) = flag("--write") {
        let section = flag("--section").unwrap_or_else(|| "soak-results".into());
        kea_e2e::write_section(&path, &section, &report)?;
    }
    let failed: Vec<&str> = runs
        .iter()
        .filter(|r| !r.problems(max_growth).is_empty())
        .map(|r| r.target.name())
        .collect();
    if !failed.is_empty() {
        bail!("soak failed for {}", failed.join(", "));
    }
    Ok(())
}
