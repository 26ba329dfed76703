//! The pure choices of the split stage: smooth weighted round-robin (exact), weighted rendezvous
//! hashing (sticky), and the exact mirror sequence. No host here: the stage feeds them state.

use super::hash::{unit_interval, StableHasher};

/// One step of nginx's smooth weighted round-robin: every backend's `current` grows by its weight,
/// the largest (first on ties) is picked and gives back the total. Over `total` steps from all
/// zeros each backend is picked exactly `weight` times and the state is all zeros again, so every
/// window of `total` consecutive picks holds each weight exactly.
///
/// `current` must have one entry per weight; `None` when no weight is positive.
pub fn smooth_weighted(current: &mut [i64], weights: &[u32]) -> Option<usize> {
    let mut total: i64 = 0;
    let mut best: Option<(usize, i64)> = None;
    for (index, (value, weight)) in current.iter_mut().zip(weights).enumerate() {
        let weight = i64::from(*weight);
        total += weight;
        *value += weight;
        // Weight 0 is never picked, even when every `current` is still 0.
        if weight > 0 && best.is_none_or(|(_, max)| *value > max) {
            best = Some((index, *value));
        }
    }
    let (index, _) = best?;
    if let Some(value) = current.get_mut(index) {
        *value -= total;
    }
    Some(index)
}

/// Weighted rendezvous hashing: each backend scores `-ln(u) / weight` with `u` the identifier's
/// hash with the backend's key in (0, 1); the lowest score wins. Every worker computes the same
/// pick, and a weight change only moves identifiers towards the backends whose weight grew.
pub fn rendezvous<'k>(identifier: &[u8], backends: impl Iterator<Item = (&'k str, u32)>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (index, (key, weight)) in backends.enumerate() {
        if weight == 0 {
            continue;
        }
        let u = unit_interval(
            StableHasher::new()
                .field(identifier)
                .field(key.as_bytes())
                .finish(),
        );
        let score = -u.ln() / f64::from(weight);
        if best.is_none_or(|(_, low)| score < low) {
            best = Some((index, score));
        }
    }
    best.map(|(index, _)| index)
}

/// Requests per mirror cycle: percents have at most two decimals, so basis points are exact.
pub const MIRROR_CYCLE: u64 = 10_000;

/// Whether request `n` (0-based, counted modulo [`MIRROR_CYCLE`]) of a mirror with `basis_points`
/// (1..=10000) is mirrored: when `floor(n·b/10000)` steps up. Exactly `b` of every 10,000
/// consecutive requests are, spread evenly (20% → every fifth).
pub fn mirrored(n: u64, basis_points: u32) -> bool {
    let b = u64::from(basis_points);
    (n + 1) * b / MIRROR_CYCLE > n * b / MIRROR_CYCLE
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;

    fn run(weights: &[u32], steps: usize) -> Vec<usize> {
        let mut current = vec![0; weights.len()];
        (0..steps)
            .map(|_| smooth_weighted(&mut current, weights).unwrap_or(usize::MAX))
            .collect()
    }

    #[test]
    fn smooth_weighted_is_exact_in_every_window() {
        for weights in [
            &[90, 10][..],
            &[33, 33, 34],
            &[1, 0, 99],
            &[50, 50],
            &[100],
            &[7, 3],
        ] {
            let total: u32 = weights.iter().sum();
            let picks = run(weights, 3 * total as usize);
            for window in picks.windows(total as usize) {
                for (index, weight) in weights.iter().enumerate() {
                    let count = window.iter().filter(|p| **p == index).count();
                    assert_eq!(count, *weight as usize, "{weights:?}");
                }
            }
        }
        // Smooth: 90/10 never sends two consecutive requests to the 10.
        let picks = run(&[90, 10], 100);
        assert!(picks.windows(2).all(|w| w != [1, 1]));
        assert_eq!(smooth_weighted(&mut [0, 0], &[0, 0]), None);
    }

    #[test]
    fn rendezvous_skips_zero_weights_and_is_stable() {
        let backends = [("v1", 0), ("v2", 5)];
        for id in ["a", "b", "c"] {
            assert_eq!(rendezvous(id.as_bytes(), backends.iter().copied()), Some(1));
        }
        assert_eq!(rendezvous(b"a", [("v1", 0)].iter().copied()), None);
        let twice = |id: &[u8]| rendezvous(id, [("v1", 50), ("v2", 50)].iter().copied());
        assert_eq!(twice(b"alice"), twice(b"alice"));
    }

    #[test]
    fn mirror_sequence_is_exact() {
        for (bp, per_cycle) in [(2000, 2000), (50, 50), (10_000, 10_000), (1, 1), (3333, 3333)] {
            let count = (0..MIRROR_CYCLE).filter(|n| mirrored(*n, bp)).count();
            assert_eq!(count, per_cycle);
        }
        let fifth: Vec<bool> = (0..10).map(|n| mirrored(n, 2000)).collect();
        assert_eq!(fifth.iter().filter(|m| **m).count(), 2);
    }
}
