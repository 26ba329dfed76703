//! Soak runs: KEA's plugins in real Envoy for a long time under a steady mix of valid, invalid
//! and hostile requests (one Envoy per target, all targets at once), sampling memory, the
//! plugins' gauges and VM health at a fixed interval. A run passes when every request got the
//! answer a correct gateway gives, no VM failed, and no memory series grows after warm-up by
//! more than the allowed percentage per hour.

pub mod load;
pub mod plot;
pub mod sample;
pub mod workload;

use crate::envoy::EnvoyBuilder;
use crate::upstream::Upstream;
use anyhow::{Context, Result};
use load::{Counts, ProbeCounts};
use sample::{Sample, Trend};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workload::{Fixture, Probe, Target};

/// How long and how hard.
#[derive(Debug, Clone)]
pub struct Plan {
    pub targets: Vec<Target>,
    pub duration: Duration,
    /// Samples taken before this are warm-up (V8 tiering, pools, caches filling).
    pub warm_up: Duration,
    pub sample_every: Duration,
    /// Requests per second sent to each target's Envoy.
    pub rate: f64,
    pub threads: usize,
}

/// What one target's run saw.
#[derive(Debug)]
pub struct TargetRun {
    pub target: Target,
    pub probes: Vec<Probe>,
    pub counts: Vec<ProbeCounts>,
    pub samples: Vec<Sample>,
    /// Log lines that show a trapped, panicked or failed VM.
    pub logged_failures: Vec<String>,
    pub warm_up_secs: f64,
}

impl TargetRun {
    pub fn sent(&self) -> u64 {
        self.counts.iter().map(|c| c.sent).sum()
    }

    pub fn answered(&self) -> u64 {
        self.counts.iter().map(ProbeCounts::answered).sum()
    }

    pub fn transport_errors(&self) -> u64 {
        self.counts.iter().map(|c| c.transport_errors).sum()
    }

    /// VM failures: the log's signs of a trap or panic, VM reloads (Envoy reloads a failed VM),
    /// and VMs created after the first sample (a replaced VM).
    pub fn vm_failures(&self) -> Vec<String> {
        let mut failures = self.logged_failures.clone();
        if let (Some(first), Some(last)) = (self.samples.first(), self.samples.last()) {
            for (name, value) in &last.values {
                let reloads = name.starts_with("wasm.") && name.ends_with(".vm_reload");
                let created = name.ends_with(".runtime.v8.created")
                    && first.values.get(name).is_some_and(|before| value > before);
                if (reloads && *value > 0.0) || created {
                    failures.push(format!("{name} = {value}"));
                }
            }
        }
        failures
    }

    pub fn unexpected(&self) -> u64 {
        self.probes
            .iter()
            .zip(&self.counts)
            .map(|(p, c)| c.unexpected(p.expect))
            .sum()
    }

    /// The memory series and their trends after warm-up.
    pub fn memory_trends(&self) -> Vec<(String, Trend)> {
        self.trends(sample::is_memory)
    }

    /// Other gauges worth showing (shared-data bytes, queued records), with their trends.
    pub fn gauge_trends(&self) -> Vec<(String, Trend)> {
        self.trends(|n| n.starts_with("kea_") && !sample::is_memory(n))
    }

    /// The trends after warm-up of the series whose names `wanted` accepts, by name.
    fn trends(&self, wanted: fn(&str) -> bool) -> Vec<(String, Trend)> {
        let mut names: Vec<&String> = self
            .samples
            .iter()
            .flat_map(|s| s.values.keys())
            .filter(|n| wanted(n))
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|n| Some((n.clone(), sample::trend(&self.samples, n, self.warm_up_secs)?)))
            .collect()
    }

    /// What is wrong with this run, judged with `max_growth` percent per hour; empty when it
    /// passed.
    pub fn problems(&self, max_growth: f64) -> Vec<String> {
        let mut problems = Vec::new();
        let name = self.target.name();
        if self.sent() == 0 {
            problems.push(format!("{name}: no request was sent"));
        }
        for (probe, counts) in self.probes.iter().zip(&self.counts) {
            if counts.transport_errors > 0 {
                problems.push(format!(
                    "{name}/{}: {} requests unanswered (last: {})",
                    probe.name,
                    counts.transport_errors,
                    counts.last_error.as_deref().unwrap_or("?")
                ));
            }
            if counts.unexpected(probe.expect) > 0 {
                problems.push(format!(
                    "{name}/{}: statuses {:?}, expected only {:?}",
                    probe.name, counts.statuses, probe.expect
                ));
            }
        }
        for line in self.vm_failures().iter().take(5) {
            problems.push(format!("{name}: VM failure: {line}"));
        }
        for (series, trend) in self.memory_trends() {
            if trend.percent_per_hour > max_growth {
                problems.push(format!(
                    "{name}: {series} grows {:.2} %/h after warm-up ({:.0} → {:.0}), over {max_growth} %/h",
                    trend.percent_per_hour, trend.start, trend.end
                ));
            }
        }
        problems
    }
}

/// Runs every target of `plan` at once, each on its own Envoy (one worker), against one upstream.
pub fn run(plan: &Plan) -> Result<Vec<TargetRun>> {
    let upstream = Upstream::start_with_threads(2)?;
    let hours = plan.duration.as_secs().div_ceil(3600);
    eprintln!("soak: minting tokens, compiling the API");
    let fixture = Fixture::new(hours)?;
    let mut gateways = Vec::new();
    for &target in &plan.targets {
        let mut builder = EnvoyBuilder::new(upstream.port)
            .cluster("collector", upstream.port)
            .wasm_log_level("warning");
        for (plugin, config) in target.plugins(&fixture) {
            builder = builder.plugin(plugin, config)?;
        }
        let envoy = builder
            .start()
            .with_context(|| format!("starting Envoy for {}", target.name()))?;
        gateways.push((target, envoy));
    }
    let start = Instant::now();
    let deadline = start + plan.duration;
    eprintln!(
        "soak: {} targets for {:?} at {} req/s each, sampling every {:?}",
        gateways.len(),
        plan.duration,
        plan.rate,
        plan.sample_every
    );
    let runs = std::thread::scope(|scope| {
        let handles: Vec<_> = gateways
            .iter()
            .map(|(target, envoy)| {
                let fixture = &fixture;
                scope.spawn(move || {
                    let probes = target.probes();
                    let counts: Counts = Arc::new(Mutex::new(vec![ProbeCounts::default(); probes.len()]));
                    let samples = Mutex::new(Vec::new());
                    std::thread::scope(|inner| {
                        inner.spawn(|| {
                            let mut next = start;
                            while next <= deadline {
                                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                                    std::thread::sleep(wait);
                                }
                                let at = start.elapsed().as_secs_f64();
                                if let (Some(sample), Ok(mut all)) = (sample::read(envoy, at), samples.lock())
                                {
                                    all.push(sample);
                                }
                                next += plan.sample_every;
                            }
                        });
                        load::run(
                            &envoy.url(""),
                            fixture,
                            &probes,
                            plan.rate,
                            plan.threads,
                            deadline,
                            &counts,
                        );
                    });
                    let counts = counts.lock().map(|c| c.clone()).unwrap_or_default();
                    TargetRun {
                        target: *target,
                        probes,
                        counts,
                        samples: samples.into_inner().unwrap_or_default(),
                        logged_failures: sample::logged_vm_failures(&envoy.logs()),
                        warm_up_secs: plan.warm_up.as_secs_f64(),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("a soak thread panicked")))
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(runs)
}

/// The results as a Markdown section: a table per run, the memory trends, the plots' files.
pub fn report(plan: &Plan, runs: &[TargetRun], max_growth: f64, plots: &str) -> String {
    let mut out = format!(
        "{} at {} req/s per target ({} client threads each), one Envoy per target with 1 worker, \
         all targets at once on this machine; sampled every {:?}; warm-up {:?} excluded from trends. \
         Growth is the least-squares slope after warm-up in % of the first value per hour (goal ≤ {max_growth} %/h).\n\n",
        humanize(plan.duration),
        plan.rate,
        plan.threads,
        plan.sample_every,
        plan.warm_up
    );
    out.push_str("| target | requests | answered as expected | unexpected | unanswered | VM failures | verdict |\n|---|---:|---:|---:|---:|---:|---|\n");
    for run in runs {
        let problems = run.problems(max_growth);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            run.target.name(),
            run.sent(),
            run.answered() - run.unexpected(),
            run.unexpected(),
            run.transport_errors(),
            run.vm_failures().len(),
            if problems.is_empty() { "pass" } else { "**fail**" }
        ));
    }
    out.push_str(
        "\n| target | series | after warm-up | end | max | growth %/h |\n|---|---|---:|---:|---:|---:|\n",
    );
    for run in runs {
        for (series, t) in run.memory_trends().into_iter().chain(run.gauge_trends()) {
            out.push_str(&format!(
                "| {} | {series} | {} | {} | {} | {:+.2} |\n",
                run.target.name(),
                bytes(&series, t.start),
                bytes(&series, t.end),
                bytes(&series, t.max),
                t.percent_per_hour
            ));
        }
    }
    out.push_str("\nAnswers per request kind (status: count):\n\n| target | request | expected | answers |\n|---|---|---|---|\n");
    for run in runs {
        for (probe, counts) in run.probes.iter().zip(&run.counts) {
            let answers: Vec<String> = counts.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
            out.push_str(&format!(
                "| {} | {} | {:?} | {} |\n",
                run.target.name(),
                probe.name,
                probe.expect,
                answers.join(", ")
            ));
        }
    }
    let problems: Vec<String> = runs.iter().flat_map(|r| r.problems(max_growth)).collect();
    if !problems.is_empty() {
        out.push_str("\nProblems:\n\n");
        for p in problems {
            out.push_str(&format!("- {p}\n"));
        }
    }
    out.push_str(&format!("\nPlots: {plots}\n"));
    out
}

fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 && secs.is_multiple_of(60) {
        format!("{} h {} min", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{} min {} s", secs / 60, secs % 60)
    }
}

fn bytes(series: &str, value: f64) -> String {
    if series.ends_with("_records") {
        format!("{value:.0}")
    } else {
        format!("{:.2} MiB", value / 1024.0 / 1024.0)
    }
}

/// Writes each run's samples as CSV (`<dir>/<target>.csv`) and its plot (`<dir>/<target>.svg`).
pub fn write_series(dir: &std::path::Path, runs: &[TargetRun]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for run in runs {
        let mut names: Vec<&String> = run.samples.iter().flat_map(|s| s.values.keys()).collect();
        names.sort();
        names.dedup();
        let mut csv = format!(
            "seconds,{}\n",
            names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(",")
        );
        for s in &run.samples {
            let row: Vec<String> = names
                .iter()
                .map(|n| s.values.get(*n).map(|v| format!("{v}")).unwrap_or_default())
                .collect();
            csv.push_str(&format!("{:.1},{}\n", s.at_secs, row.join(",")));
        }
        std::fs::write(dir.join(format!("{}.csv", run.target.name())), csv)?;
        plot::write(
            &dir.join(format!("{}.svg", run.target.name())),
            &format!("KEA soak: {}", run.target.name()),
            &run.samples,
        )?;
    }
    Ok(())
}
