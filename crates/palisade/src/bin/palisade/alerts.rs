//! `palisade nad alerts`: the anomaly alerts the controller's live detectors raised (issue #6),
//! once or following, and the detectors themselves.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use palisade_api::AlertRecord;
use palisade_client::Client;

use super::Cli;

/// Arguments of `palisade nad alerts`.
#[derive(Debug, Clone, Args)]
pub(crate) struct AlertsArgs {
    /// Only this VM's alerts: `name` (a tenant token's VM) or `tenant/name`.
    #[arg(long, value_name = "VM")]
    pub(crate) vm: Option<String>,
    /// Only this tenant's alerts (the admin token; a tenant token sees only its own anyway).
    #[arg(long, value_name = "TENANT")]
    pub(crate) tenant: Option<String>,
    /// Keep printing new alerts as they are raised (until Ctrl-C).
    #[arg(long)]
    pub(crate) follow: bool,
    /// Only alerts with an id above this.
    #[arg(long, default_value_t = 0)]
    pub(crate) after: u64,
    /// List the live detectors (phase, model, port, windows scored, alerts) instead.
    #[arg(long, conflicts_with_all = ["follow", "after"])]
    pub(crate) detectors: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Human)]
    pub(crate) output: Output,
    /// The controller's URL.
    #[arg(long, env = "PALISADE_URL", default_value = "http://127.0.0.1:7683")]
    pub(crate) url: String,
    /// Bearer token.
    #[arg(long, env = "PALISADE_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
}

/// Output format of `palisade nad alerts` and `palisade nad eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// A table.
    Human,
    /// One JSON document.
    Json,
}

/// How often `--follow` asks for new alerts.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// Alerts per request.
const PAGE: usize = 1000;

/// `1764190000` as `2025-11-26 20:46:40Z` (UTC); other text as it is.
fn utc(unix: &str) -> String {
    let Some(secs) = unix.split('.').next().and_then(|s| s.parse::<i64>().ok()) else { return unix.to_owned() };
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else { return unix.to_owned() };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn human(a: &AlertRecord) -> String {
    let top: Vec<String> = a.top_features.iter().map(|t| format!("{}={} ({:+.1}σ)", t.feature, t.value, t.z)).collect();
    format!(
        "{:>6}  {}  {:<14} score {:.3} >= {:.3}  {}",
        a.id,
        utc(&a.window_start),
        a.vm,
        a.score,
        a.threshold,
        top.join(", ")
    )
}

/// Runs `palisade nad alerts`.
pub(crate) fn run(cli: &Cli, a: &AlertsArgs) -> anyhow::Result<()> {
    let url =
        if std::env::var_os("PALISADE_URL").is_none() && a.url == "http://127.0.0.1:7683" { &cli.url } else { &a.url };
    let token = match a.token.as_ref().or(cli.token.as_ref()) {
        Some(t) => t.clone(),
        None => palisade_client::lab::LabHome::new(cli.lab_dir.clone())
            .token("admin")
            .ok_or_else(|| anyhow::anyhow!("no token: pass --token or PALISADE_TOKEN (or bring the lab up)"))?,
    };
    let c = Client::new(url, &token);
    if a.detectors {
        return detectors(&c, a.output);
    }
    let (tenant, vm) = match a.vm.as_deref() {
        Some(v) => {
            let (t, n) = resolve_vm(&c, v, a.tenant.as_deref())?;
            (Some(t), Some(n))
        }
        None => (a.tenant.clone(), None),
    };
    let mut after = a.after;
    let mut header = a.output == Output::Human;
    loop {
        let page = c.alerts(tenant.as_deref(), vm.as_deref(), after, PAGE).map_err(|e| {
            let hint = if vm.is_some() && tenant.is_none() {
                " (with the admin token, name the VM as tenant/name)"
            } else {
                ""
            };
            anyhow::anyhow!("{e}{hint}")
        })?;
        let alerts = page.alerts;
        let mut out = std::io::stdout().lock();
        if header && !alerts.is_empty() {
            writeln!(out, "{:>6}  {:<20}  {:<14} {:<23} TOP FEATURES", "ID", "WINDOW (UTC)", "VM", "SCORE")?;
            header = false;
        }
        for alert in &alerts {
            let line = match a.output {
                Output::Json => serde_json::to_string(alert)?,
                Output::Human => human(alert),
            };
            if writeln!(out, "{line}").is_err() {
                return Ok(()); // a closed pipe ends the listing
            }
        }
        out.flush().ok();
        after = page.last_id.max(after);
        let more = alerts.len() == PAGE;
        if !a.follow && !more {
            if alerts.is_empty() && after == a.after && a.output == Output::Human {
                eprintln!("no alerts");
            }
            return Ok(());
        }
        if !more {
            std::thread::sleep(FOLLOW_EVERY);
        }
    }
}

/// `tenant/name`, or a name the caller can see in exactly one tenant (`tenant` narrows it).
fn resolve_vm(c: &Client, vm: &str, tenant: Option<&str>) -> anyhow::Result<(String, String)> {
    if let Some((t, n)) = vm.split_once('/') {
        return Ok((t.to_owned(), n.to_owned()));
    }
    let all = c.list(Some("vm"))?;
    let ids: Vec<(&str, &str)> = all
        .iter()
        .filter_map(|o| Some((o.tenant.as_deref()?, o.name.as_str())))
        .filter(|(t, _)| tenant.is_none_or(|want| want == *t))
        .collect();
    let matching: Vec<&(&str, &str)> = ids.iter().filter(|(_, n)| *n == vm).collect();
    match matching[..] {
        [(t, n)] => Ok(((*t).to_owned(), (*n).to_owned())),
        [] => anyhow::bail!(
            "no VM named `{vm}`; VMs: {}",
            ids.iter().map(|(t, n)| format!("{t}/{n}")).collect::<Vec<_>>().join(", ")
        ),
        _ => anyhow::bail!(
            "`{vm}` names VMs of several tenants ({}); say tenant/{vm} or --tenant",
            matching.iter().map(|(t, n)| format!("{t}/{n}")).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn detectors(c: &Client, output: Output) -> anyhow::Result<()> {
    let v = c.detectors()?;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{:<16} {:<9} {:<10} {:<10} {:>8} {:>7} {:>6}  DETAIL",
        "VM", "PHASE", "MODEL", "PORT", "WINDOWS", "ALERTS", "DROPS"
    );
    for d in &v {
        println!(
            "{:<16} {:<9} {:<10} {:<10} {:>8} {:>7} {:>6}  {}",
            d.vm,
            d.state.phase.as_str(),
            d.model,
            d.port,
            d.state.windows,
            d.state.alerts,
            d.state.drops,
            d.state.phase.reason().unwrap_or(&d.policy)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn window_starts_print_as_utc() {
        assert_eq!(super::utc("0"), "1970-01-01 00:00:00Z");
        assert_eq!(super::utc("1764190000"), "2025-11-26 20:46:40Z");
        assert_eq!(super::utc("951782400.5"), "2000-02-29 00:00:00Z");
        assert_eq!(super::utc("soon"), "soon");
    }
}
