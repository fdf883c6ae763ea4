//! Closed-loop throughput with wrk: runs it pinned to the load core and reads its summary.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::BenchError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrkLoad {
    pub connections: u32,
    /// 0 for GET, else a POST with a body of this many bytes.
    pub body: usize,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct WrkResult {
    pub requests: u64,
    pub rps: f64,
    /// Non-2xx/3xx responses plus socket errors (connect, read, write, timeout).
    pub errors: u64,
}

/// Runs wrk against `http://target/` on `core`; `scripts` is where the POST body script goes.
pub fn run(
    target: SocketAddr,
    load: WrkLoad,
    duration: Duration,
    core: u32,
    scripts: &Path,
) -> Result<WrkResult, BenchError> {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &core.to_string(), "wrk", "-t1"])
        .arg(format!("-c{}", load.connections))
        // wrk takes whole seconds (no `ms` unit).
        .arg(format!("-d{}s", duration.as_secs_f64().ceil().max(1.0)))
        .args(["--timeout", "5s", "-H", "Host: bench.test"]);
    if load.body > 0 {
        let script = scripts.join(format!("post-{}.lua", load.body));
        std::fs::write(
            &script,
            format!(
                "wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", {})\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n",
                load.body
            ),
        )
        .map_err(BenchError::io(format!("writing {}", script.display())))?;
        cmd.arg("-s").arg(&script);
    }
    cmd.arg(format!("http://{target}/"));
    let out = cmd.output().map_err(BenchError::io("running wrk"))?;
    if !out.status.success() {
        return Err(BenchError::Tool {
            tool: "wrk".into(),
            status: out.status,
            stderr: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ),
        });
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Reads wrk's summary (`N requests in`, `Requests/sec:`, error lines).
pub fn parse(output: &str) -> Result<WrkResult, BenchError> {
    let missing = |field| BenchError::WrkOutput {
        field,
        output: output.to_string(),
    };
    let requests = output
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.split_once(" requests in ")
                .and_then(|(n, _)| n.trim().parse::<u64>().ok())
        })
        .ok_or_else(|| missing("requests in"))?;
    let rps = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| missing("Requests/sec:"))?;
    let non_2xx = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    // "Socket errors: connect 0, read 12, write 0, timeout 3"
    let socket = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|v| {
            v.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Ok(WrkResult {
        requests,
        rps,
        errors: non_2xx + socket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_requests_rate_and_every_kind_of_error() {
        let out = "Running 1s test @ http://127.0.0.1:1/\n  2 threads and 50 connections\n  \
                   Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     2.00ms  \
                   1.00ms  10.00ms   90.00%\n  12345 requests in 1.00s, 1.00MB read\n  \
                   Socket errors: connect 1, read 2, write 3, timeout 4\n  \
                   Non-2xx or 3xx responses: 5\nRequests/sec:  12345.67\nTransfer/sec:      1.00MB\n";
        let r = parse(out).expect("parses");
        assert_eq!(r.requests, 12345);
        assert!((r.rps - 12345.67).abs() < 1e-6);
        assert_eq!(r.errors, 15);
    }

    #[test]
    fn output_without_a_summary_is_an_error() {
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }
}
