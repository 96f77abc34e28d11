//! `palisade vmi events`: a guest's monitor events (issue #5), once or following.

use std::io::Write;
use std::time::Duration;

use palisade_client::Client;

use super::{Cli, Output};

/// How often `--follow` asks for new events.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// Events per request.
const PAGE: usize = 1000;

/// Prints events (Figure 12 lines with the action, or JSON), following with `after=` when asked;
/// with `history`, from the store (every page of it) rather than the controller's memory.
pub(crate) fn run(cli: &Cli, c: &Client, tenant: &str, name: &str, follow: bool, history: bool) -> anyhow::Result<()> {
    let mut after = 0;
    let mut lost_seen = 0;
    loop {
        let page =
            if history { c.event_history(tenant, name, after, PAGE)? } else { c.events(tenant, name, after, PAGE)? };
        let events = &page.events;
        let mut out = std::io::stdout().lock();
        if cli.output == Output::Json && !follow && !history {
            writeln!(out, "{}", serde_json::to_string_pretty(&page)?)?;
            return Ok(());
        }
        for e in events {
            let line = match cli.output {
                Output::Json => serde_json::to_string(e)?,
                Output::Human => format!("{} action:[{}]", e.figure12(), e.action),
            };
            if writeln!(out, "{line}").is_err() {
                return Ok(()); // a closed pipe ends the listing
            }
        }
        out.flush().ok();
        let lost = page.lost;
        if lost > lost_seen {
            eprintln!("warning: the guest dropped {} events (its ring was full)", lost - lost_seen);
            lost_seen = lost;
        }
        after = events.last().map_or(after, |e| e.seq);
        let more = history && events.len() == PAGE;
        if !follow && !more {
            return Ok(());
        }
        if events.len() < PAGE {
            std::thread::sleep(FOLLOW_EVERY);
        }
    }
}
