//! The load generator: a few threads with kept-alive connections send a target's probe mix at a
//! fixed rate until a deadline, and count every answer by probe and status.

use super::workload::{Fixture, Probe};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one probe kind got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeCounts {
    pub sent: u64,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no HTTP answer (connection refused or reset, timeout).
    pub transport_errors: u64,
    pub last_error: Option<String>,
}

impl ProbeCounts {
    pub fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Answers with a status the probe does not expect.
    pub fn unexpected(&self, expect: &[u16]) -> u64 {
        self.statuses
            .iter()
            .filter(|(status, _)| !expect.contains(status))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Counts per probe, in the order of the probe list.
pub type Counts = Arc<Mutex<Vec<ProbeCounts>>>;

/// The probe sequence: each probe repeated by its weight, interleaved so that every window of
/// the schedule's length holds the exact mix.
fn schedule(probes: &[Probe]) -> Vec<usize> {
    let total: u32 = probes.iter().map(|p| p.weight).sum();
    let mut credit: Vec<i64> = vec![0; probes.len()];
    (0..total)
        .map(|_| {
            // Smooth weighted round-robin, as nginx balances upstreams.
            for (c, p) in credit.iter_mut().zip(probes) {
                *c += i64::from(p.weight);
            }
            let best = (0..probes.len()).max_by_key(|&i| credit[i]).unwrap_or(0);
            credit[best] -= i64::from(total);
            best
        })
        .collect()
}

/// Sends `probes` to `base_url` from `threads` threads at `rate` requests per second in total
/// until `deadline`; returns the counts (also readable while it runs).
pub fn run(
    base_url: &str,
    fixture: &Fixture,
    probes: &[Probe],
    rate: f64,
    threads: usize,
    deadline: Instant,
    counts: &Counts,
) {
    let order = schedule(probes);
    let interval = Duration::from_secs_f64(threads as f64 / rate.max(0.1));
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let order = &order;
            scope.spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(10))
                    .redirects(0)
                    .build();
                let start = Instant::now();
                let mut n = thread as u64;
                let mut sent: u32 = 0;
                while Instant::now() < deadline {
                    let index = order[n as usize % order.len()];
                    let probe = &probes[index];
                    let outcome = send(&agent, base_url, &(probe.build)(fixture, n));
                    if let Ok(mut counts) = counts.lock() {
                        let entry = &mut counts[index];
                        entry.sent += 1;
                        match outcome {
                            Ok(status) => *entry.statuses.entry(status).or_default() += 1,
                            Err(error) => {
                                entry.transport_errors += 1;
                                entry.last_error = Some(error);
                            }
                        }
                    }
                    n += threads as u64;
                    sent += 1;
                    let next = start + interval * sent;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            });
        }
    });
}

/// Sends one request and reads the whole answer (so the connection is reused); the status.
fn send(agent: &ureq::Agent, base_url: &str, request: &super::workload::Request) -> Result<u16, String> {
    let mut call = agent.request(request.method, &format!("{base_url}{}", request.path));
    for (name, value) in &request.headers {
        call = call.set(name, value);
    }
    let result = match &request.body {
        Some(body) => call.send_bytes(body),
        None => call.call(),
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => return Err(error.to_string()),
    };
    let status = response.status();
    let mut body = Vec::new();
    response
        .into_reader()
        .take(16 * 1024 * 1024)
        .read_to_end(&mut body)
        .map_err(|e| format!("status {status}, body unreadable: {e}"))?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_holds_the_weights_spread_out() {
        let probe = |weight| Probe {
            name: "p",
            weight,
            expect: &[200],
            build: |_, _| unreachable!(),
        };
        let order = schedule(&[probe(3), probe(1), probe(2)]);
        assert_eq!(order.len(), 6);
        for (i, weight) in [3, 1, 2].into_iter().enumerate() {
            assert_eq!(order.iter().filter(|&&o| o == i).count(), weight);
        }
        assert_ne!(order[0], order[1], "interleaved, not in runs");
    }
}
