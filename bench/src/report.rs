//! Markdown tables, the machine header, and the statistics and number formats every
//! scenario shares.

use std::fmt::Write as _;
use std::time::Duration;

/// One markdown table: a title line, a header row, rows, and notes under it.
pub struct Table {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

impl Table {
    /// A table with a `### title` line and these column headers.
    pub fn new(title: &str, headers: &[&str]) -> Self {
        Self {
            title: title.to_string(),
            headers: headers.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a row; missing cells print empty.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Adds a line printed under the table.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The table as markdown.
    pub fn render(&self) -> String {
        let mut out = format!("### {}\n\n", self.title);
        let line = |cells: &[String]| {
            let padded: Vec<&str> = (0..self.headers.len())
                .map(|i| cells.get(i).map_or("", String::as_str))
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        out.push_str(&line(&self.headers));
        let _ = writeln!(out, "|{}", "---|".repeat(self.headers.len()));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                let _ = writeln!(out, "{n}");
            }
        }
        out
    }

    /// Prints the table to stdout (progress goes to stderr, so stdout is the report).
    pub fn print(&self) {
        println!("{}", self.render());
    }
}

/// Progress on stderr, so that stdout holds only the tables.
pub fn progress(msg: &str) {
    eprintln!("[pedigree-bench] {msg}");
}

/// The machine this run is on: cores, CPU model, memory, OS, kernel and load.
pub fn machine_header() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0);
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|l| l.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "machine: {cores} vCPU ({model}), {:.1} GiB RAM, {os}, Linux {}; load average at start: {}",
        mem_kib as f64 / (1024.0 * 1024.0),
        kernel.trim(),
        load_average()
    )
}

/// The 1-minute load average, as a reminder of what else was running.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

/// The value at quantile `q` (0..=1) of sorted samples (nearest rank).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The median of samples (sorted in place).
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    quantile(samples, 0.5)
}

/// Runs `f` `runs` times and returns every duration, sorted.
pub fn time_runs(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut out: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    out.sort();
    out
}

/// A duration with a unit that keeps three significant digits.
pub fn dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// A rate per second, with thousands separators.
pub fn rate(per_s: f64) -> String {
    format!("{}/s", thousands(per_s.round() as u64))
}

/// An integer with thousands separators.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `a / b` as a ratio, `1.23x`.
pub fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        return "n/a".into();
    }
    format!("{:.2}x", a / b)
}

/// Throughput in GB/s (10^9 bytes) of `bytes` in `d`.
pub fn gbps(bytes: u64, d: Duration) -> String {
    format!("{:.2} GB/s", bytes as f64 / d.as_secs_f64() / 1e9)
}

/// "met" or "MISSED" for a target line.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&v, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn numbers_print_with_separators_and_units() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(dur(Duration::from_micros(1500)), "1.50 ms");
        assert_eq!(ratio(3.0, 2.0), "1.50x");
    }

    #[test]
    fn tables_render_as_markdown() {
        let mut t = Table::new("t", &["a", "b"]);
        t.row(vec!["1".into()]);
        t.note("n");
        assert_eq!(t.render(), "### t\n\n| a | b |\n|---|---|\n| 1 |  |\n\nn\n");
    }
}
