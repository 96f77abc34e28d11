//! `palisade vmi events`: a guest's monitor events (issue #5), once or following.

use std::io::Write;
use std::time::Duration;

use palisade_client::Client;
use serde_json::Value;

use super::{Cli, Output};

/// How often `--follow` asks for new events.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// Events per request.
const PAGE: usize = 1000;

/// The paper's Figure 12 text form of one event.
fn figure12(e: &Value) -> String {
    format!(
        "FILE MONITOR: INDEX:[{}], timestamp: [{}], filename:[{}], pathname: [{}], operation: [{}], \
         process name: [{}], user id:[{}].",
        e["index"],
        e["time"].as_str().unwrap_or(""),
        e["file_name"].as_str().unwrap_or(""),
        e["path"].as_str().unwrap_or(""),
        e["operation"].as_str().unwrap_or("").to_uppercase(),
        e["process"].as_str().unwrap_or(""),
        e["uid"]
    )
}

/// Prints events (Figure 12 lines with the action, or JSON), following with `after=` when asked;
/// with `history`, from the store (every page of it) rather than the controller's memory.
pub(crate) fn run(cli: &Cli, c: &Client, tenant: &str, name: &str, follow: bool, history: bool) -> anyhow::Result<()> {
    let mut after = 0;
    let mut lost_seen = 0;
    loop {
        let page =
            if history { c.event_history(tenant, name, after, PAGE)? } else { c.events(tenant, name, after, PAGE)? };
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let mut out = std::io::stdout().lock();
        if cli.output == Output::Json && !follow && !history {
            writeln!(out, "{}", serde_json::to_string_pretty(&page)?)?;
            return Ok(());
        }
        for e in &events {
            let line = match cli.output {
                Output::Json => serde_json::to_string(e)?,
                Output::Human => format!("{} action:[{}]", figure12(e), e["action"].as_str().unwrap_or("")),
            };
            if writeln!(out, "{line}").is_err() {
                return Ok(()); // a closed pipe ends the listing
            }
        }
        out.flush().ok();
        let lost = page["lost"].as_u64().unwrap_or(0);
        if lost > lost_seen {
            eprintln!("warning: the guest dropped {} events (its ring was full)", lost - lost_seen);
            lost_seen = lost;
        }
        after = events.last().and_then(|e| e["seq"].as_u64()).unwrap_or(after);
        let more = history && events.len() == PAGE;
        if !follow && !more {
            return Ok(());
        }
        if events.len() < PAGE {
            std::thread::sleep(FOLLOW_EVERY);
        }
    }
}
