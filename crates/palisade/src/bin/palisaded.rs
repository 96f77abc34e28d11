//! `palisaded`: the Palisade controller. Serves the API and keeps Open vSwitch reconciled.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use palisade_controller::anomaly::LiveDetectors;
use palisade_controller::{api, Controller, Tokens};
use palisade_guest::AccelPolicy;
use palisade_ovs::{OfctlSwitch, PortNaming};
use palisade_runtime::{QemuGuests, RuntimeConfig};
use palisade_scan::{AddressPool, Naming, ScanService, Scheduler};
use palisade_store::SqliteStore;
use tracing::{info, warn};

/// Palisade controller: holds the desired state (SQLite), serves the REST API, and programs
/// the Open vSwitch bridge with atomic OpenFlow bundles. Restarting it neither flushes flows
/// nor interrupts traffic: on start it reconciles only what differs.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// SQLite database holding desired state, applied state, the audit log, monitor events,
    /// anomaly alerts and scan tasks.
    #[arg(long, env = "PALISADE_DB", default_value = "/var/lib/palisade/palisade.db")]
    db: PathBuf,
    /// Token file: {"admin": "...", "tenants": {"alpha": "..."}}.
    #[arg(long, env = "PALISADE_TOKENS", default_value = "/var/lib/palisade/tokens.json")]
    tokens: PathBuf,
    /// The Open vSwitch bridge to program.
    #[arg(long, env = "PALISADE_BRIDGE", default_value = "palisade0")]
    bridge: String,
    /// Prefix this host puts before the inventory's port names (0-3 characters of [a-z0-9]):
    /// with `t4`, the VM port `pa-web1` is the interface `t4pa-web1`. Lets two controllers
    /// (two bridges) share a host; flows, guest taps and captures all use it.
    #[arg(long, env = "PALISADE_PORT_PREFIX", default_value = "")]
    port_prefix: String,
    /// Directory of the controller's own state: its instance id and the QEMU processes it
    /// started (only those are ever reaped). Default: the directory of `--db`.
    #[arg(long, env = "PALISADE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Address to serve the API on.
    #[arg(long, env = "PALISADE_LISTEN", default_value = "127.0.0.1:7683")]
    listen: SocketAddr,
    /// How often to check the switch for drift and new ports, in milliseconds.
    #[arg(long, env = "PALISADE_RECONCILE_MS", default_value_t = 1000)]
    reconcile_ms: u64,
    /// Where guest kernels and initramfs images are cached.
    #[arg(long, env = "PALISADE_GUEST_CACHE", default_value = palisade_guest::DEFAULT_CACHE_DIR)]
    guest_cache: PathBuf,
    /// Accelerator for guest VMs: `auto` takes KVM if a test guest really boots with it, else TCG.
    #[arg(long, env = "PALISADE_GUEST_ACCEL", value_enum, default_value_t = AccelArg::Auto)]
    guest_accel: AccelArg,
    /// Reserved range the scan tasks' addresses come from (must not overlap any tenant subnet).
    #[arg(long, env = "PALISADE_SCAN_POOL", default_value = palisade_scan::DEFAULT_POOL)]
    scan_pool: palisade_scan::Ipv4Net,
    /// Prefix of task space names (namespaces and ports): 1-7 characters of [a-z0-9-].
    #[arg(long, env = "PALISADE_SCAN_PREFIX", default_value = "pt-")]
    scan_prefix: String,
    /// No longer read: scan tasks are kept in `--db` (issue #14). Kept only to refuse it loudly.
    #[arg(long, env = "PALISADE_SCAN_DB", hide = true)]
    scan_db: Option<PathBuf>,
    /// Directory of anomaly-detection models: `anomaly` policies name its subdirectories
    /// (each written by `palisade nad train --model`).
    #[arg(long, env = "PALISADE_MODELS", default_value = "/var/lib/palisade/models")]
    models: PathBuf,
    /// The security event stream: monitor events and anomaly alerts as JSON lines, appended
    /// (never in the logs).
    #[arg(long, env = "PALISADE_EVENTS", default_value = "/var/lib/palisade/events.jsonl")]
    events: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(old) = &args.scan_db {
        anyhow::bail!(
            "--scan-db (PALISADE_SCAN_DB) is no longer supported: scan tasks are kept in the main store (--db); \
             remove the option (the tasks in {} are not read or imported)",
            old.display()
        );
    }
    let tokens = Tokens::load(&args.tokens).context("loading tokens")?;
    if let Some(dir) = args.db.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let store: Arc<dyn palisade_store::Store> =
        Arc::new(SqliteStore::open(&args.db).with_context(|| format!("opening store {}", args.db.display()))?);
    let naming = PortNaming::new(&args.port_prefix).context("--port-prefix")?;
    let switch = OfctlSwitch::new(args.bridge.clone()).with_naming(naming.clone());
    let state_dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => args.db.parent().map(std::path::Path::to_path_buf).unwrap_or_default(),
    };
    let mut runtime_config = RuntimeConfig::new(&args.bridge, &state_dir);
    runtime_config.naming = naming.clone();
    runtime_config.cache_dir = args.guest_cache.clone();
    runtime_config.accel = match args.guest_accel {
        AccelArg::Auto => AccelPolicy::Auto,
        AccelArg::Kvm => AccelPolicy::Kvm,
        AccelArg::Tcg => AccelPolicy::Tcg,
    };
    let events = Arc::new(
        palisade_controller::monitors::EventsFile::open(&args.events)
            .with_context(|| format!("opening the events file {}", args.events.display()))?,
    );
    let detectors = Arc::new(
        LiveDetectors::new(
            args.models.clone(),
            vec![events.clone(), Arc::new(palisade_controller::anomaly::StoreAlerts(store.clone()))],
        )
        .with_naming(naming),
    );
    let guests = QemuGuests::new(runtime_config)
        .with_context(|| format!("opening the controller state in {}", state_dir.display()))?
        .with_event_sink(events)
        .with_event_sink(Arc::new(palisade_controller::monitors::StoreEvents(store.clone())));
    let scans = start_scans(&args, store.clone()).context("starting the scan engine")?;
    let controller = Arc::new(
        Controller::open(store, Arc::new(switch))
            .context("loading desired state")?
            .with_guests(Arc::new(guests.clone()))
            .with_detectors(detectors.clone())
            .with_scans(scans)
            .with_reserved("the scan task address pool (--scan-pool)", args.scan_pool),
    );

    let reconciler = controller.clone();
    let period = Duration::from_millis(args.reconcile_ms.max(50));
    tokio::spawn(async move {
        let mut last_ok = true;
        loop {
            let c = reconciler.clone();
            match tokio::task::spawn_blocking(move || {
                c.reconcile_guests();
                c.reconcile_detectors();
                c.reconcile()
            })
            .await
            {
                Ok(Ok(_)) => {
                    if !last_ok {
                        info!("switch reachable again; reconciled");
                    }
                    last_ok = true;
                }
                Ok(Err(e)) if last_ok => {
                    warn!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "reconcile failed; retrying");
                    last_ok = false;
                }
                _ => {}
            }
            tokio::time::sleep(period).await;
        }
    });

    spawn_scan_scheduler(controller.clone());

    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    info!(listen = %args.listen, bridge = %args.bridge, db = %args.db.display(), "palisaded started");
    axum::serve(listener, api::router(controller, Arc::new(tokens)))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving the API")?;
    // Guests live as long as the controller (a crashed controller's guests are reaped on start).
    tokio::task::spawn_blocking(move || guests.shutdown()).await.context("stopping guests")?;
    tokio::task::spawn_blocking(move || detectors.shutdown()).await.context("stopping anomaly detectors")?;
    info!("palisaded stopped");
    Ok(())
}

/// The Type 2 scan engine on the controller's bridge (issue #7), recording its tasks in the
/// controller's store. It first removes the task spaces and flows a previous, crashed
/// controller left behind.
fn start_scans(args: &Args, store: Arc<dyn palisade_store::Store>) -> anyhow::Result<Arc<ScanService>> {
    let naming = Naming::new(&args.scan_prefix)?;
    let pool = AddressPool::new(args.scan_pool)?;
    let ports = PortNaming::new(&args.port_prefix)?;
    let switch = Arc::new(OfctlSwitch::new(args.bridge.clone()).with_naming(ports));
    Ok(Arc::new(ScanService::start(&args.bridge, switch, naming, pool, store)?))
}

/// Runs the `scan` policies that are due, checking every 10 seconds (issue #7).
fn spawn_scan_scheduler(controller: Arc<Controller>) {
    let scheduler = Arc::new(Scheduler::default());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let (c, sch) = (controller.clone(), scheduler.clone());
            let ran = tokio::task::spawn_blocking(move || {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                c.run_due_scans(&sch, now)
            })
            .await;
            if let Err(e) = ran {
                warn!(error = %e, "a scheduled scan pass failed");
            }
        }
    });
}

/// Resolves on SIGINT or SIGTERM (what systemd and `kill` send). Flows stay installed: stopping
/// the controller never interrupts traffic.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops palisaded gracefully");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received; stopping"),
        _ = term => info!("SIGTERM received; stopping"),
    }
}
