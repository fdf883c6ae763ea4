//! What the figures were measured on: CPU, cores, memory, kernel, tool versions, load average.

use std::process::Command;

/// One markdown bullet list describing the machine and the peers' versions.
pub fn describe(nginx: Option<&std::path::Path>, envoy: Option<&std::path::Path>) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    // Not available_parallelism(): this process is pinned to one core.
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let kernel = first_line("uname", &["-sr"]);
    let mut out =
        format!(
        "- CPU: {model}, {cores} cores; memory {mem}; {kernel}\n- load average at the end: {}\n",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    if let Some(n) = nginx {
        out.push_str(&format!(
            "- {}\n",
            first_line(&n.to_string_lossy(), &["-v"])
        ));
    }
    if let Some(e) = envoy {
        out.push_str(&format!(
            "- Envoy {}\n",
            // "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
            first_line(&e.to_string_lossy(), &["--version"])
                .split_once("version:")
                .and_then(|(_, v)| v.split('/').nth(1).map(str::to_string))
                .unwrap_or_else(|| "(version unknown)".into())
        ));
    }
    out.push_str(&format!("- wrk: {}\n", first_line("wrk", &["-v"])));
    out.push_str(&format!(
        "- Sluice at commit {}\n",
        first_line("git", &["rev-parse", "--short", "HEAD"])
    ));
    out
}

/// The first non-empty line a command prints on stdout or stderr (nginx -v writes to stderr).
fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("{cmd}: not available"))
}
