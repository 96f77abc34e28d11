//! `palisade-bench`: datapath benchmarks that need more than a shell loop (see `bench/type1.sh`).
//!
//! `policy-latency` measures the time from a policy change sent to the API until the datapath
//! enforces it, observed with real packets: a probe in the source VM sends numbered UDP
//! datagrams every `interval` and a sniffer in the appliance's namespace reports when they start
//! (policy added) or stop (policy deleted) crossing it. `restart` runs a ping flood across the
//! redirected path while the controller is killed and restarted, with a flood without a restart
//! as the baseline.

mod latency;
mod monitor;
mod probe;
mod restart;
mod table2;
mod vmi;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Sends numbered UDP probes to DST forever (run inside the source VM's namespace).
    Probe {
        /// Destination, e.g. 198.18.1.20:40000.
        #[arg(long)]
        dst: std::net::SocketAddrV4,
        /// Gap between probes in microseconds.
        #[arg(long, default_value_t = 200)]
        interval_us: u64,
    },
    /// Prints `seq unix_ns` for every probe seen on any interface of this namespace.
    Sniff {
        /// UDP destination port of the probes.
        #[arg(long)]
        port: u16,
    },
    /// Policy change -> enforced latency with N policies installed (lab and controller up).
    PolicyLatency(latency::Args),
    /// Controller restart under a ping flood with many flows installed (lab and controller up).
    Restart(restart::Args),
    /// Introspection on a real guest: boot to ready, symbol recovery, memory reads, hijacked calls.
    Vmi(vmi::Args),
    /// Agentless monitoring on a real guest: fio and a system-call loop with and without a
    /// record policy, host cost of the monitor, boot to monitoring active.
    Monitor(monitor::Args),
    /// The paper's Table 2: host CPU and memory with N tenants scanned at once, multitask
    /// (task spaces) vs one scanner VM per tenant.
    Table2(table2::Args),
}

/// Where the controller is and the admin token to use.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// Controller API.
    #[arg(long, default_value = "http://127.0.0.1:7683")]
    url: String,
    /// Admin token.
    #[arg(long, env = "PALISADE_TOKEN")]
    token: String,
}

impl ApiArgs {
    /// A client for the controller, checked to answer.
    fn client(&self) -> anyhow::Result<palisade_client::Client> {
        let api = palisade_client::Client::new(&self.url, &self.token);
        if !api.healthy() {
            anyhow::bail!("no controller answers at {} (run `palisade lab up` first)", self.url);
        }
        Ok(api)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Probe { dst, interval_us } => probe::send(dst, interval_us),
        Cmd::Sniff { port } => probe::sniff(port),
        Cmd::PolicyLatency(args) => latency::run(&args),
        Cmd::Restart(args) => restart::run(&args),
        Cmd::Vmi(args) => vmi::run(&args),
        Cmd::Monitor(args) => monitor::run(&args),
        Cmd::Table2(args) => table2::run(&args),
    }
}
