//! A model of data-parallel scaling: how long a step's exchange takes on `N`
//! processes, and what fraction of the ideal speed-up is left.
//!
//! The gradient (`p` floats) is summed across processes as the trainer does
//! it: an all-to-all of `N` blocks of `⌈p/N⌉` floats (each process sends
//! `N − 1` of them, one message each), a local sum, and an all-gather of the
//! summed blocks (`log₂ N` rounds of recursive doubling, `N − 1` blocks sent
//! in all). So each process sends `2·(N − 1)·4⌈p/N⌉ ≈ 8p` bytes whatever
//! `N`, and, with a link of `β` bytes/s and latency `α`,
//!
//! ```text
//! exchange(N) = (N − 1 + log₂N)·α + 2·(N − 1)·4⌈p/N⌉ / β
//! compute(N)  = rows(B / N) · t_row            (one process's share of a batch of B)
//! efficiency  = compute(N) / (compute(N) + exchange(N))
//! ```
//!
//! with no credit taken for the overlap with the backward pass (it hides at
//! most the exchange of all but the lowest layer's bucket), so a lower bound.

/// What the model needs: the network's size, one process's compute speed, the
/// link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalingModel {
    /// Parameters (and so gradient floats) of the network.
    pub parameters: usize,
    /// Seconds one process spends per row of a training step (forward,
    /// backward and update, measured on one thread at the batch size used).
    pub seconds_per_row: f64,
    /// Link bandwidth, bytes per second, each way.
    pub link_bytes_per_second: f64,
    /// Link latency per message, seconds.
    pub latency_seconds: f64,
}

impl ScalingModel {
    /// Bytes each of `processes` sends per step: `2·(N − 1)·4⌈p/N⌉`.
    ///
    /// ```
    /// use feedforward::distributed::ScalingModel;
    /// let model = ScalingModel { parameters: 1000, seconds_per_row: 1e-4,
    ///     link_bytes_per_second: 1.25e9, latency_seconds: 30e-6 };
    /// assert_eq!(model.bytes_sent_per_step(8), 2 * 7 * 4 * 125);
    /// assert_eq!(model.bytes_sent_per_step(1), 0);
    /// ```
    pub fn bytes_sent_per_step(&self, processes: usize) -> usize {
        let n = processes.max(1);
        2 * (n - 1) * 4 * self.parameters.div_ceil(n)
    }

    /// Seconds of one step's exchange on `processes`.
    pub fn exchange_seconds(&self, processes: usize) -> f64 {
        if processes <= 1 {
            return 0.0;
        }
        let messages = (processes - 1) as f64 + (processes as f64).log2().ceil();
        messages * self.latency_seconds
            + self.bytes_sent_per_step(processes) as f64 / self.link_bytes_per_second
    }

    /// Fraction of the ideal `N`-fold speed-up that a global batch of `batch`
    /// rows keeps on `processes`.
    ///
    /// ```
    /// use feedforward::distributed::ScalingModel;
    /// let model = ScalingModel { parameters: 1_000_000, seconds_per_row: 1e-4,
    ///     link_bytes_per_second: 1.25e9, latency_seconds: 30e-6 };
    /// assert_eq!(model.efficiency(1, 256), 1.0);
    /// assert!(model.efficiency(8, 4096) > model.efficiency(8, 256));
    /// assert!(model.efficiency(64, 4096) < model.efficiency(8, 4096));
    /// ```
    pub fn efficiency(&self, processes: usize, batch: usize) -> f64 {
        let compute = batch as f64 / processes.max(1) as f64 * self.seconds_per_row;
        compute / (compute + self.exchange_seconds(processes))
    }

    /// The smallest global batch with which `processes` keep `efficiency`
    /// (in (0, 1)): its share of compute must be `e / (1 − e)` times the
    /// exchange.
    ///
    /// ```
    /// use feedforward::distributed::ScalingModel;
    /// let model = ScalingModel { parameters: 1_000_000, seconds_per_row: 1e-4,
    ///     link_bytes_per_second: 1.25e9, latency_seconds: 30e-6 };
    /// let b = model.batch_for_efficiency(8, 0.9);
    /// assert!(model.efficiency(8, b) >= 0.9 && model.efficiency(8, b - 1) < 0.9);
    /// ```
    pub fn batch_for_efficiency(&self, processes: usize, efficiency: f64) -> usize {
        let ratio = efficiency / (1.0 - efficiency);
        let rows =
            ratio * self.exchange_seconds(processes) / self.seconds_per_row * processes as f64;
        let mut batch = rows.ceil().max(1.0) as usize;
        // Round-off at the boundary: step to the exact smallest.
        while batch > 1 && self.efficiency(processes, batch - 1) >= efficiency {
            batch -= 1;
        }
        while self.efficiency(processes, batch) < efficiency {
            batch += 1;
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// W2 on a 10 Gbit/s link, by hand: 25,175,040 parameters; each of 2
    /// processes sends one half in the all-to-all and one in the all-gather.
    #[test]
    fn the_exchange_is_latency_plus_bytes_over_bandwidth() {
        let model = ScalingModel {
            parameters: 25_175_040,
            seconds_per_row: 6.7e-4,
            link_bytes_per_second: 1.25e9,
            latency_seconds: 50e-6,
        };
        assert_eq!(model.bytes_sent_per_step(2), 100_700_160);
        let two = model.exchange_seconds(2);
        assert!((two - (2.0 * 50e-6 + 100_700_160.0 / 1.25e9)).abs() < 1e-12);
        // 8 processes: 7 + 3 messages, 14 blocks of 3,146,880 floats.
        assert_eq!(model.bytes_sent_per_step(8), 14 * 4 * 3_146_880);
        let eight = model.exchange_seconds(8);
        let bytes = 14.0 * 4.0 * 3_146_880.0;
        assert!((eight - (10.0 * 50e-6 + bytes / 1.25e9)).abs() < 1e-12);
        assert_eq!(model.exchange_seconds(1), 0.0);
        let e = model.efficiency(2, 4096);
        let compute = 2048.0 * 6.7e-4;
        assert!((e - compute / (compute + two)).abs() < 1e-12);
    }
}
