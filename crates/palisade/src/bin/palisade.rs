//! `palisade`: the Palisade command line. Talks to `palisaded` over its API; `lab` builds
//! the single-host lab on this machine.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use palisade_api::{ObjectView, Outcome};
use palisade_client::lab::{lab_inventory, lab_spec, LabHome};
use palisade_client::Client;
use palisade_lab::Lab;

#[path = "palisade/alerts.rs"]
mod alerts;
#[path = "palisade/attach.rs"]
mod attach;
#[path = "palisade/events.rs"]
mod events;
#[path = "palisade/nad.rs"]
mod nad;
#[path = "palisade/nad_detect.rs"]
mod nad_detect;
#[path = "palisade/nad_features.rs"]
mod nad_features;
#[path = "palisade/nad_gen.rs"]
mod nad_gen;
#[path = "palisade/scan.rs"]
mod scan;
#[path = "palisade/traffic.rs"]
mod traffic;

/// Palisade: security as a service for the VMs of an IaaS cloud.
///
/// Policies live in YAML files (see examples/). `palisade lab up` builds a small cloud on
/// this machine and starts a controller; `palisade apply -f examples/redirect.yaml` then
/// steers web1->web2 traffic through the firewall appliance fw1.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    /// Controller URL.
    #[arg(long, global = true, env = "PALISADE_URL", default_value = "http://127.0.0.1:7683")]
    url: String,
    /// Bearer token (default: the lab's admin token, if a lab is up).
    #[arg(long, global = true, env = "PALISADE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Human)]
    output: Output,
    /// Where the lab keeps its controller state.
    #[arg(long, global = true, env = "PALISADE_LAB_DIR", default_value = palisade_lab::DEFAULT_STATE_DIR)]
    lab_dir: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Apply a policy file: create or update every object it names (idempotent).
    Apply {
        /// The file (YAML or JSON).
        #[arg(short, long)]
        file: PathBuf,
        /// Show what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show what applying a file would change (objects and flows), changing nothing.
    Diff {
        /// The file (YAML or JSON).
        #[arg(short, long)]
        file: PathBuf,
    },
    /// List objects, or show one. KIND: tenant, domain, subdomain, vm, appliance, policy.
    Get {
        /// Kind of object.
        kind: Option<String>,
        /// `name` for tenants and appliances, `tenant/name` for the rest.
        id: Option<String>,
    },
    /// Delete one object (refused while others refer to it).
    Delete {
        /// Kind of object.
        kind: String,
        /// `name` for tenants and appliances, `tenant/name` for the rest.
        id: String,
        /// Show what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show the compiled OpenFlow rules per policy.
    Flows,
    /// Show the audit log (who changed what, when).
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Build, inspect or tear down the single-host lab.
    #[command(subcommand)]
    Lab(LabCmd),
    /// Look into guest VMs from outside (no agent in the guest).
    #[command(subcommand)]
    Vmi(VmiCmd),
    /// Type 2 scanning: one engine reaches a tenant's VM through a task space.
    #[command(subcommand)]
    Scan(scan::ScanCmd),
    /// Network anomaly detection: the 11 traffic features per VM and time window, from a
    /// capture file or a live interface (`palisade nad features --help`), and the LSTM-NAD
    /// detector (`palisade nad train|eval --help`).
    Nad(nad::NadArgs),
}

#[derive(Debug, Subcommand)]
enum VmiCmd {
    /// List guest VMs: state, accelerator (KVM or TCG, and why), QEMU pid, memory.
    Guests,
    /// Look into a running libvirt domain Palisade did not start, once, with no change to its
    /// definition: find its QEMU process and guest RAM (proven against QEMU's own view),
    /// recover the kernel's symbols, report, and let go. Runs on the domain's host, as root;
    /// needs no controller.
    ///
    /// Example: `palisade vmi attach --libvirt web-7` (or `--symbols | grep sys_openat`)
    Attach {
        /// The domain's name or UUID.
        #[arg(long, value_name = "DOMAIN")]
        libvirt: String,
        /// The libvirt connection.
        #[arg(long, default_value = palisade_libvirt::SYSTEM_URI)]
        connect: String,
        /// Print every recovered symbol as /proc/kallsyms does instead of the report.
        #[arg(long)]
        symbols: bool,
    },
    /// Print a guest kernel's symbols like /proc/kallsyms, recovered from guest memory alone.
    ///
    /// Example: `palisade vmi symbols --vm guest1 --grep '^__x64_sys_(read|write)$'`
    Symbols {
        /// The guest VM: `name` if unique across the tenants you can see, else `tenant/name`.
        #[arg(long)]
        vm: String,
        /// Only names matching this regular expression.
        #[arg(long)]
        grep: Option<String>,
    },
    /// Print a guest's monitor events (its monitor policies' record and block decisions),
    /// in the paper's Figure 12 form, or with `-o json` as JSON.
    ///
    /// Example: `palisade vmi events --vm guest1 --follow`
    Events {
        /// The guest VM: `name` if unique across the tenants you can see, else `tenant/name`.
        #[arg(long)]
        vm: String,
        /// Keep printing new events as they arrive (JSON lines with `-o json`).
        #[arg(long)]
        follow: bool,
        /// Print the stored history (every event kept, across guest boots and controller
        /// restarts; JSON lines with `-o json`) instead of the recent events in memory.
        #[arg(long)]
        history: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PortTypeArg {
    System,
    Afxdp,
}

#[derive(Debug, Subcommand)]
enum LabCmd {
    /// Build the lab (idempotent): OVS bridge, namespaces, appliance, controller, inventory.
    Up {
        /// Bridge name (default: the lab directory's, else `palisade0`).
        #[arg(long)]
        bridge: Option<String>,
        /// Prefix of the lab's interface, namespace and task-space names (0-3 characters of
        /// [a-z0-9]), so a second lab on another bridge never shares a name with the first:
        /// `--bridge pal-t4 --prefix t4` makes port `pa-web1` the interface `t4pa-web1` and
        /// host `alpha-web1` the namespace `pal-t4-alpha-web1`. Default: the lab directory's,
        /// else none.
        #[arg(long)]
        prefix: Option<String>,
        /// How OVS attaches the hosts: `system` (AF_PACKET, main thread) or `afxdp` (AF_XDP
        /// sockets polled by a PMD thread: lower latency, keeps one core busy).
        #[arg(long, value_enum, default_value_t = PortTypeArg::System)]
        port_type: PortTypeArg,
    },
    /// Show what exists of the lab (the one in --lab-dir).
    Status,
    /// Remove everything `lab up` and the lab's controller made: namespaces, veths, the bridge,
    /// guests, scan task spaces, the controller and its state (the lab in --lab-dir only).
    Down,
    /// Run a command inside a lab host's namespace, e.g. `lab exec pal-alpha-web1 -- busybox ping -c1 198.18.1.20`.
    Exec {
        /// Namespace name (see `lab status`).
        netns: String,
        /// The command.
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
    /// Show an appliance's firewall counters.
    Counters {
        /// Appliance name.
        appliance: String,
    },
    /// Make a labelled NAD dataset with real tools in the lab (services, daily-cycle clients,
    /// hping3/nmap/masscan/URL-probe attacks, a capture, labels.csv).
    Traffic(traffic::TrafficArgs),
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        eprintln!("error: {}", palisade_host::ErrorChain(e.as_ref()));
        std::process::exit(1);
    }
}

fn client(cli: &Cli) -> anyhow::Result<Client> {
    let token = match &cli.token {
        Some(t) => t.clone(),
        None => LabHome::new(cli.lab_dir.clone())
            .token("admin")
            .context("no token: pass --token or PALISADE_TOKEN (or bring the lab up)")?,
    };
    Ok(Client::new(&cli.url, &token))
}

/// Prints `v` as JSON with `-o json`, else as `human` renders it.
fn print<T: serde::Serialize>(cli: &Cli, v: &T, human: impl FnOnce(&T)) {
    match cli.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        Output::Human => human(v),
    }
}

fn print_outcome(v: &Outcome) {
    for o in &v.objects {
        println!("{:<9} {}", o.op.as_str(), o.object);
    }
    for r in &v.rules {
        println!("  {} [{}] {}", r.op, r.owner, r.rule);
    }
    for p in &v.pending {
        println!("  pending: {p}");
    }
    if v.dry_run {
        println!("(dry run: nothing changed)");
    } else {
        let enforced = if v.enforced { "enforced" } else { "stored; switch unreachable, enforcement deferred" };
        println!("revision {} ({enforced})", v.revision);
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Cmd::Apply { file, dry_run } => apply(cli, file, *dry_run)?,
        Cmd::Diff { file } => apply(cli, file, true)?,
        Cmd::Get { kind, id } => {
            let c = client(cli)?;
            let table = |rows: &[ObjectView]| {
                println!("{:<10} {:<10} {:<22} SPEC", "KIND", "TENANT", "NAME");
                for o in rows {
                    println!("{:<10} {:<10} {:<22} {}", o.kind, o.tenant.as_deref().unwrap_or("-"), o.name, o.spec);
                }
            };
            match (kind, id) {
                (Some(k), Some(id)) => print(cli, &c.get(k, id)?, |o| table(std::slice::from_ref(o))),
                (k, None) => print(cli, &c.list(k.as_deref())?, |rows| table(rows)),
                (None, Some(_)) => bail!("give a kind before the name"),
            }
        }
        Cmd::Delete { kind, id, dry_run } => {
            let v = client(cli)?.delete(kind, id, *dry_run)?;
            print(cli, &v, print_outcome);
        }
        Cmd::Flows => {
            let v = client(cli)?.flows()?;
            print(cli, &v, |v| {
                for o in v.owners.values() {
                    println!("{} (cookie {:#018x})", o.name, o.cookie);
                    for g in &o.groups {
                        println!("  group_id={},{}", g.id, g.spec);
                    }
                    for f in &o.flows {
                        println!("  priority={},{} actions={}", f.priority, f.matches, f.actions);
                    }
                }
                for p in &v.pending {
                    println!("pending: {p}");
                }
            });
        }
        Cmd::Audit { limit } => {
            let v = client(cli)?.audit(*limit)?;
            print(cli, &v, |v| {
                for e in v {
                    println!("rev {:<5} {:<14} {}", e.revision, e.actor, e.summary);
                }
            });
        }
        Cmd::Lab(cmd) => lab(cli, cmd)?,
        Cmd::Vmi(cmd) => vmi(cli, cmd)?,
        Cmd::Scan(cmd) => scan::run(cli, cmd)?,
        Cmd::Nad(words) => nad::run(cli, words)?,
    }
    Ok(())
}

fn vmi(cli: &Cli, cmd: &VmiCmd) -> anyhow::Result<()> {
    match cmd {
        // On the domain's host, without a controller.
        VmiCmd::Attach { libvirt, connect, symbols } => attach::run(cli, connect, libvirt, *symbols)?,
        VmiCmd::Guests => {
            let v = client(cli)?.guests()?;
            print(cli, &v, |v| {
                println!("{:<18} {:<9} {:<5} {:>8} {:>6} {:<10} DETAIL", "VM", "STATE", "ACCEL", "PID", "MiB", "PORT");
                for g in v {
                    println!(
                        "{:<18} {:<9} {:<5} {:>8} {:>6} {:<10} {}",
                        g.vm,
                        g.state.as_str(),
                        g.accel.as_deref().unwrap_or("-"),
                        g.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                        g.memory_mb,
                        g.port,
                        g.detail
                    );
                    if let Some(m) = &g.monitor {
                        println!(
                            "{:<18} monitor {} ({}): {} rules on [{}]; {} events, {} lost; {}",
                            "",
                            m.state.as_str(),
                            m.method.as_deref().unwrap_or("-"),
                            m.rules,
                            m.syscalls.join(", "),
                            m.events,
                            m.lost,
                            m.detail
                        );
                    }
                }
            });
        }
        VmiCmd::Events { vm, follow, history } => {
            let c = client(cli)?;
            let (tenant, name) = resolve_guest(&c, vm)?;
            events::run(cli, &c, &tenant, &name, *follow, *history)?;
        }
        VmiCmd::Symbols { vm, grep } => {
            let c = client(cli)?;
            let (tenant, name) = resolve_guest(&c, vm)?;
            let v = c.symbols(&tenant, &name, grep.as_deref())?;
            print(cli, &v, |v| {
                let mut out = std::io::stdout().lock();
                for s in &v.symbols {
                    let line = format!("{:016x} {} {}", s.address, s.kind, s.name);
                    if writeln!(out, "{line}").is_err() {
                        return; // a closed pipe (`| head`) ends the listing
                    }
                }
            });
            if cli.output == Output::Human {
                eprintln!(
                    "{}: {} of {} symbols; _text at {} (physical {}), KASLR slide {:#x}; recovered in {} ms",
                    v.vm,
                    v.symbols.len(),
                    v.total,
                    v.virt_base,
                    v.phys_base,
                    v.kaslr_slide,
                    v.recovery_ms
                );
            }
        }
    }
    Ok(())
}

/// `tenant/name`, or a bare name that exactly one visible guest has.
fn resolve_guest(c: &Client, vm: &str) -> anyhow::Result<(String, String)> {
    if let Some((t, n)) = vm.split_once('/') {
        return Ok((t.to_owned(), n.to_owned()));
    }
    let guests = c.guests()?;
    let ids: Vec<&str> = guests.iter().map(|g| g.vm.as_str()).collect();
    let matching: Vec<&str> = ids.iter().copied().filter(|id| id.rsplit('/').next() == Some(vm)).collect();
    match matching[..] {
        [one] => {
            let (t, n) = one.split_once('/').unwrap_or(("", one));
            Ok((t.to_owned(), n.to_owned()))
        }
        [] if ids.is_empty() => bail!("no guest VM named `{vm}`: no guests are defined (see examples/guest.yaml)"),
        [] => bail!("no guest VM named `{vm}`; guests: {}", ids.join(", ")),
        _ => bail!("`{vm}` names several guests ({}); say `tenant/{vm}`", matching.join(", ")),
    }
}

fn apply(cli: &Cli, file: &std::path::Path, dry_run: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let v = client(cli)?.apply(&file.display().to_string(), &text, dry_run)?;
    print(cli, &v, print_outcome);
    Ok(())
}

fn listen_addr(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").context("the lab controller URL must be http://HOST:PORT")?;
    Ok(rest.trim_end_matches('/').to_owned())
}

fn lab(cli: &Cli, cmd: &LabCmd) -> anyhow::Result<()> {
    let home = LabHome::new(cli.lab_dir.clone());
    let labx = Lab::new(cli.lab_dir.join("hosts"));
    let inv = lab_inventory()?;
    let names = || home.names();
    let mut progress = |msg: &str| eprintln!("  {msg}");
    match cmd {
        LabCmd::Up { bridge, prefix, port_type } => {
            let names = home.names_for_up(bridge.as_deref(), prefix.as_deref())?;
            home.claim(&names)?;
            let bridge = &names.bridge;
            let mut spec = lab_spec(&inv, &names)?;
            spec.port_type = match port_type {
                PortTypeArg::System => palisade_lab::PortType::System,
                PortTypeArg::Afxdp => palisade_lab::PortType::Afxdp,
            };
            eprintln!("building lab on bridge {bridge} ({} hosts)", spec.hosts.len());
            labx.up(&spec, &mut progress)?;
            home.ensure_tokens(&inv)?;
            let palisaded = std::env::current_exe()?.with_file_name("palisaded");
            if home.start_controller(&palisaded, &cli.url, &listen_addr(&cli.url)?, &names)? {
                eprintln!("  started palisaded (log: {})", home.log().display());
            }
            let token = home.token("admin").context("lab token file has no admin token")?;
            let v = Client::new(&cli.url, &token).apply("lab.yaml", palisade_client::lab::LAB_YAML, false)?;
            print(cli, &v, |v| {
                println!("lab is up: {} hosts on {bridge}, controller at {}", spec.hosts.len(), cli.url);
                println!("inventory at revision {}; tokens in {}", v.revision, home.tokens().display());
            });
        }
        LabCmd::Status => {
            let spec = lab_spec(&inv, &names()?)?;
            let status = labx.status(&spec)?;
            let v = serde_json::to_value(&status)?;
            let healthy = Client::new(&cli.url, "").healthy();
            print(cli, &serde_json::json!({ "lab": v, "controller_healthy": healthy }), |_| {
                println!("{status:#?}");
                println!("controller: {}", if healthy { "healthy" } else { "not running" });
            });
        }
        LabCmd::Down => {
            let names = match home.names() {
                Ok(names) => names,
                Err(palisade_client::lab::LabGlueError::NoLab(dir)) => {
                    eprintln!("no lab in {dir} (it has no lab.json); nothing removed");
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            };
            let spec = lab_spec(&inv, &names)?;
            if home.stop_controller() {
                eprintln!("  stopped palisaded (and its guests)");
            }
            // Guests of this lab's controller that died without stopping them (only those it
            // recorded and marked as its own).
            if cli.lab_dir.join("instance-id").exists() {
                let owner = palisade_runtime::Owner::open(&cli.lab_dir)
                    .with_context(|| format!("reading the lab controller's state in {}", cli.lab_dir.display()))?;
                let reaped = owner.reap(std::path::Path::new(palisade_runtime::DEFAULT_RAM_DIR));
                if !reaped.processes.is_empty() {
                    eprintln!("  killed {} guest QEMU process(es) left behind", reaped.processes.len());
                }
            }
            // Scan task spaces of a controller that died mid-scan.
            let naming = palisade_scan::task::Naming::new(&names.scan_prefix()).context("task space naming")?;
            match palisade_scan::space::purge_orphans(&naming, &names.bridge) {
                Ok(left) if !left.is_empty() => eprintln!("  removed {} scan task space(s) left behind", left.len()),
                Ok(_) => {}
                Err(e) => eprintln!("  could not remove scan task spaces: {e}"),
            }
            labx.down(&spec, &mut progress)?;
            home.remove()?;
            eprintln!("lab is down");
        }
        LabCmd::Exec { netns, argv } => {
            let args: Vec<&str> = argv.iter().map(String::as_str).collect();
            let out = labx.exec(netns, &args)?;
            print!("{}", String::from_utf8_lossy(&out.stdout));
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            if !out.status.success() {
                std::process::exit(out.status.code().unwrap_or(1));
            }
        }
        LabCmd::Traffic(args) => {
            let names = names()?;
            let mut args = args.clone();
            args.server = names.netns(&args.server);
            args.clients = names.netns(&args.clients);
            let hosts: Vec<palisade_traffic::Host> = lab_spec(&inv, &names)?
                .hosts
                .iter()
                .map(|h| palisade_traffic::Host {
                    netns: h.netns.clone(),
                    port: h.port.clone(),
                    ip: h.addr.addr(),
                    mac: h.mac.clone(),
                })
                .collect();
            traffic::run(&args, &hosts)?;
        }
        LabCmd::Counters { appliance } => {
            let names = names()?;
            let spec = lab_spec(&inv, &names)?;
            let host = spec
                .hosts
                .iter()
                .find(|h| h.netns == names.netns(appliance))
                .with_context(|| format!("no appliance `{appliance}` in the lab"))?;
            let counters = labx.appliance_counters(host)?;
            print(cli, &serde_json::to_value(&counters)?, |_| {
                for c in &counters {
                    println!("{:<12} {:>8} packets {:>10} bytes", c.rule, c.packets, c.bytes);
                }
            });
        }
    }
    Ok(())
}
