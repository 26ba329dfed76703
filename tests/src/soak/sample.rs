//! Sampling a running Envoy: its memory (the process's resident set, the allocator's own stats),
//! the plugins' gauges (VM linear memory, shared-data bytes, queue depth) and the VM health
//! stats; and reading growth off the series.

use crate::envoy::Envoy;
use crate::http;
use std::collections::BTreeMap;

/// One reading: seconds since the run started, and every series' value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at_secs: f64,
    pub values: BTreeMap<String, f64>,
}

/// Resident memory of the process, from `/proc/<pid>/status` (`VmRSS`, in kB).
pub fn resident_bytes(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// Whether a stat is one a soak run records.
fn recorded(name: &str) -> bool {
    matches!(
        name,
        "server.memory_allocated" | "server.memory_heap_size" | "server.memory_physical_size"
    ) || name.starts_with("wasmcustom.kea_") && (name.ends_with("_bytes") || name.ends_with("_records"))
        || name.starts_with("wasm.")
}

/// Reads Envoy's stats (JSON admin output) and the process's resident memory.
pub fn read(envoy: &Envoy, at_secs: f64) -> Option<Sample> {
    let body = http::get(&envoy.admin_url("/stats?format=json")).ok()?.body;
    let stats: serde_json::Value = serde_json::from_str(&body).ok()?;
    let mut values: BTreeMap<String, f64> = stats["stats"]
        .as_array()?
        .iter()
        .filter_map(|stat| Some((stat["name"].as_str()?, stat["value"].as_f64()?)))
        .filter(|(name, _)| recorded(name))
        .map(|(name, value)| (name.trim_start_matches("wasmcustom.").to_string(), value))
        .collect();
    if let Some(rss) = envoy.pid().and_then(resident_bytes) {
        values.insert("process.resident_bytes".into(), rss);
    }
    // The cache store's entries live in Envoy's heap; their total is bounded by the store's size
    // and moves with the sizes of whatever entries were evicted last. Net of it, the heap shows
    // what else grows.
    if let (Some(heap), Some(store)) = (
        values.get("server.memory_allocated"),
        values.get("kea_cache_shared_bytes"),
    ) {
        values.insert(NET_OF_CACHE.into(), heap - store);
    }
    Some(Sample { at_secs, values })
}

/// `server.memory_allocated` less what the cache store holds in shared data.
pub const NET_OF_CACHE: &str = "server.memory_allocated_net_of_cache_store";

/// The memory series a soak judges: the process's and each VM's.
pub fn is_memory(series: &str) -> bool {
    series == "process.resident_bytes"
        || series == "server.memory_allocated"
        || series == NET_OF_CACHE
        || series.ends_with("_vm_memory_bytes")
}

/// How a series moved after warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// The first value after warm-up.
    pub start: f64,
    pub end: f64,
    pub max: f64,
    /// Least-squares slope over the samples after warm-up, in percent of `start` per hour.
    pub percent_per_hour: f64,
}

/// The series' trend over the samples taken at or after `warm_up_secs`; `None` with fewer than
/// two such samples.
pub fn trend(samples: &[Sample], series: &str, warm_up_secs: f64) -> Option<Trend> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.at_secs >= warm_up_secs)
        .filter_map(|s| Some((s.at_secs, *s.values.get(series)?)))
        .collect();
    let (first, last) = (points.first()?, points.last()?);
    if points.len() < 2 || last.0 <= first.0 {
        return None;
    }
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_v = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_v)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    let slope = if variance > 0.0 {
        covariance / variance
    } else {
        0.0
    };
    let percent_per_hour = if first.1 > 0.0 {
        slope * 3600.0 / first.1 * 100.0
    } else {
        0.0
    };
    Some(Trend {
        start: first.1,
        end: last.1,
        max: points.iter().map(|p| p.1).fold(f64::MIN, f64::max),
        percent_per_hour,
    })
}

/// Signs of a failed VM in Envoy's log: a trap, a panic, a VM that could not be (re)created.
pub fn logged_vm_failures(log: &str) -> Vec<String> {
    const SIGNS: [&str; 6] = [
        "panicked at",
        "Uncaught",
        "RuntimeError",
        "wasm_fail",
        "Wasm VM failed",
        "Plugin configured to fail closed failed to load",
    ];
    log.lines()
        .filter(|line| SIGNS.iter().any(|sign| line.contains(sign)))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: f64, value: f64) -> Sample {
        Sample {
            at_secs: at,
            values: BTreeMap::from([("m".to_string(), value)]),
        }
    }

    #[test]
    fn the_trend_is_the_slope_after_warm_up() {
        // Warm-up jumps from 0 to 100, then 1 % of 100 per hour.
        let mut samples = vec![sample(0.0, 0.0), sample(5.0, 50.0)];
        samples.extend((1..=360).map(|i| sample(i as f64 * 10.0, 100.0 + i as f64 * 10.0 / 3600.0)));
        let trend = trend(&samples, "m", 10.0).unwrap();
        assert_eq!(trend.start, 100.0 + 10.0 / 3600.0);
        assert!((trend.percent_per_hour - 1.0).abs() < 0.01, "{trend:?}");
        assert!(super::trend(&samples, "other", 0.0).is_none());
        let flat: Vec<Sample> = (0..10).map(|i| sample(i as f64, 7.0)).collect();
        assert_eq!(super::trend(&flat, "m", 0.0).unwrap().percent_per_hour, 0.0);
    }

    #[test]
    fn traps_and_panics_are_found_in_the_log() {
        let log = "[info] fine\n[critical][wasm] panicked at src/lib.rs:1:1\n[error] Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable\n";
        assert_eq!(logged_vm_failures(log).len(), 2);
        assert!(logged_vm_failures("[info] fine").is_empty());
    }
}
