//! The paper's Table 2 (issue #7): host CPU and memory while N tenants are scanned at once,
//! (a) by Palisade's multitask method — one engine, a task space per task — and (b) by the
//! multi-VM method — a scanner VM per tenant, a QEMU guest on the tenant's VLAN running the
//! same scanner (`palisade-scan`'s `guest_portscan` example).
//!
//! Both scan every tenant's VM (ports 1..=P, one open) over and over for the same measured
//! window; CPU is the processes' own accounting (/proc/PID/stat) over that window, as a share
//! of the whole host, with Open vSwitch's daemon counted on both sides; memory is resident
//! memory (the engine's growth over its idle size; the scanner VMs' QEMU processes).

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use palisade_guest::initramfs::{self, InitramfsSpec, VIRTIO_NET_MODULES};
use palisade_guest::{Guest, GuestConfig, KernelImage, NicConfig};
use palisade_lab::{HostRole, HostSpec, Lab, LabSpec, PortType};
use palisade_model::{merge_file, Inventory};
use palisade_ovs::{OfctlSwitch, Switch};
use palisade_scan::{AddressPool, Naming, Profile, ScanService, Target, TaskState, DEFAULT_POOL};
use palisade_store::SqliteStore;

/// Arguments of `table2`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Numbers of tenants scanned at once.
    #[arg(long, value_delimiter = ',', default_value = "1,3,5,10,20")]
    tenants: Vec<usize>,
    /// Measured window per run, seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Ports 1..=P are scanned on every tenant's VM (port 80 is open).
    #[arg(long, default_value_t = 1000)]
    ports: u16,
    /// RAM of each scanner VM, MiB.
    #[arg(long, default_value_t = 128)]
    memory_mb: u64,
    /// The scanner the VMs run (`cargo build --release -p palisade-scan --example guest_portscan`).
    #[arg(long, default_value = "target/release/examples/guest_portscan")]
    scanner: PathBuf,
    /// Image cache.
    #[arg(long, env = "PALISADE_GUEST_CACHE", default_value = palisade_guest::DEFAULT_CACHE_DIR)]
    cache: PathBuf,
    /// Internal: run only the multitask side for this many tenants, in this (fresh) process,
    /// on the network the parent built, and print its figures.
    #[arg(long, hide = true)]
    child_multitask: Option<usize>,
}

/// The line a multitask child prints its figures on.
const CHILD_LINE: &str = "PALISADE-TABLE2-MULTITASK";

const BRIDGE: &str = "pbt0";
const VM_IP: &str = "198.18.1.10";
const GW_IP: &str = "198.18.1.1";
const OPEN_PORT: u16 = 80;

fn vlan(t: usize) -> u16 {
    300 + t as u16
}

fn mac(t: usize, host: u8) -> String {
    format!("02:00:00:{:02x}:01:{host:02x}", t)
}

fn lab_spec(tenants: usize) -> anyhow::Result<LabSpec> {
    let mut hosts = Vec::new();
    for t in 1..=tenants {
        for (name, host, ip, gateway, role) in [
            (format!("pbt-t{t}-web"), 0x0a, VM_IP, Some(GW_IP.parse()?), HostRole::Vm),
            (format!("pbt-t{t}-gw"), 0x01, GW_IP, None, HostRole::Gateway),
        ] {
            hosts.push(HostSpec {
                netns: name.clone(),
                port: name,
                mac: mac(t, host),
                addr: format!("{ip}/24").parse()?,
                gateway,
                vlan: vlan(t),
                role,
            });
        }
    }
    Ok(LabSpec { bridge: BRIDGE.to_owned(), hosts, port_type: PortType::System })
}

fn inventory(tenants: usize) -> String {
    let mut y = String::from("tenants:\n");
    for t in 1..=tenants {
        y.push_str(&format!(
            "  - name: t{t}\n    domains:\n      - name: prod\n        segment: {}\n        subdomains:\n\
             \x20         - name: web\n            cidr: 198.18.1.0/24\n            gateway: {GW_IP}\n\
             \x20           gateway_mac: \"{}\"\n            gateway_port: pbt-t{t}-gw\n\
             \x20           vms:\n              - {{ name: web, mac: \"{}\", ip: {VM_IP}, port: pbt-t{t}-web }}\n",
            vlan(t),
            mac(t, 0x01),
            mac(t, 0x0a)
        ));
    }
    y
}

/// utime + stime (+ reaped children's with `children`) of a process, seconds.
fn cpu_seconds(pid: u32, children: bool) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(4).filter_map(|v| v.parse().ok()).collect();
    let n = if children { 4 } else { 2 };
    f.iter().take(n).sum::<f64>() / 100.0 // USER_HZ
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn ovs_pid() -> anyhow::Result<u32> {
    let text = std::fs::read_to_string("/var/run/openvswitch/ovs-vswitchd.pid").context("ovs-vswitchd's pid file")?;
    Ok(text.trim().parse()?)
}

fn host_mib() -> f64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(1.0)
        / 1024.0
}

fn cores() -> f64 {
    std::thread::available_parallelism().map(|n| n.get() as f64).unwrap_or(1.0)
}

/// One method's figures for one tenant count.
#[derive(Debug, Default)]
struct Measured {
    /// Share of the host's CPU (all cores = 100 %): the method's processes.
    cpu_pct: f64,
    /// Open vSwitch's share over the same window.
    ovs_pct: f64,
    /// Resident memory attributable to the method, MiB.
    mem_mib: f64,
    /// Whole scans of a tenant's VM finished in the window.
    scans: u64,
    /// CPU seconds the method's processes used in the window.
    cpu_s: f64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if let Some(n) = args.child_multitask {
        let inv = merge_file("table2.yaml", &inventory(n), &Inventory::default())
            .map_err(|e| anyhow::anyhow!("bench inventory: {e:?}"))?
            .after;
        let m = multitask(args, &inv, Arc::new(OfctlSwitch::new(BRIDGE)), n)?;
        println!("{CHILD_LINE} {} {} {} {} {}", m.cpu_pct, m.ovs_pct, m.mem_mib, m.scans, m.cpu_s);
        return Ok(());
    }
    let max = *args.tenants.iter().max().context("no tenant count")?;
    if !args.scanner.is_file() {
        bail!("scanner {} not found (bench/type2.sh builds it)", args.scanner.display());
    }
    let state = tempfile::tempdir()?;
    let lab = Lab::new(state.path().to_path_buf());
    let spec = lab_spec(max)?;
    eprintln!("building the bench network: {max} tenants on bridge {BRIDGE}...");
    lab.up(&spec, &mut |_| {})?;
    let result = measure_all(args, max);
    let down = lab.down(&spec, &mut |_| {});
    result?;
    down?;
    Ok(())
}

fn measure_all(args: &Args, max: usize) -> anyhow::Result<()> {
    let switch: Arc<dyn Switch> = Arc::new(OfctlSwitch::new(BRIDGE));
    // Plain switching inside each tenant's VLAN (the controller's base flows do this in the lab).
    switch.commit(&["flow add priority=0,actions=NORMAL".to_owned()])?;
    for t in 1..=max {
        let path = PathBuf::from("/run/netns").join(format!("pbt-t{t}-web"));
        let listener = palisade_host::netns::run_in(&path, || TcpListener::bind((Ipv4Addr::UNSPECIFIED, OPEN_PORT)))??;
        std::thread::spawn(move || for _ in listener.incoming() {});
    }
    let kernel = KernelImage::fetch_cloud(&args.cache)?;
    let images = tempfile::tempdir_in("/var/tmp")?;
    let initrd = scanner_image(args, &kernel, images.path())?;

    let mut rows = Vec::new();
    for &n in &args.tenants {
        eprintln!("{n} tenant(s): multitask...");
        let a = multitask_child(args, n)?;
        eprintln!("{n} tenant(s): multi-VM (booting {n} scanner VM(s))...");
        let b = multi_vm(args, &kernel, &initrd, n)?;
        rows.push((n, a, b));
    }
    let host = host_mib();
    println!(
        "## Table 2: N tenants scanned at once, multitask vs one scanner VM per tenant\n\n\
         Each tenant's VM (same IP in every tenant) is scanned on TCP 1-{} (port {OPEN_PORT} open) over and over \
         for {} s; CPU is a share of the whole host ({} cores = 100 %), with ovs-vswitchd shown apart (it \
         switches both methods' packets); memory is resident memory ({:.0} MiB host).\n",
        args.ports,
        args.seconds,
        cores(),
        host
    );
    println!("| tenants | multitask CPU | multi-VM CPU | multitask memory | multi-VM memory | OVS CPU (mt / VM) | scans done (mt / VM) | CPU per scan (mt / VM) |");
    println!("|---|---|---|---|---|---|---|---|");
    for (n, a, b) in &rows {
        println!(
            "| {n} | {:.1} % | {:.1} % | {:.1} MiB ({:.2} %) | {:.0} MiB ({:.1} %) | {:.1} % / {:.1} % | {} / {} | {:.0} / {:.0} ms |",
            a.cpu_pct,
            b.cpu_pct,
            a.mem_mib,
            a.mem_mib / host * 100.0,
            b.mem_mib,
            b.mem_mib / host * 100.0,
            a.ovs_pct,
            b.ovs_pct,
            a.scans,
            b.scans,
            a.cpu_s * 1e3 / a.scans.max(1) as f64,
            b.cpu_s * 1e3 / b.scans.max(1) as f64
        );
    }
    if let (Some((n1, a1, _)), Some((nk, ak, _))) = (rows.first(), rows.last()) {
        if nk > n1 {
            println!(
                "\nmultitask memory per additional concurrent tenant task: {:.2} MiB",
                (ak.mem_mib - a1.mem_mib) / (nk - n1) as f64
            );
        }
    }
    Ok(())
}

/// Runs the multitask side in a fresh process of this program, so its memory figures start
/// from an engine that has run nothing yet (an allocator keeps what earlier runs freed).
fn multitask_child(args: &Args, n: usize) -> anyhow::Result<Measured> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["table2", "--child-multitask", &n.to_string()])
        .args(["--seconds", &args.seconds.to_string(), "--ports", &args.ports.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find_map(|l| l.strip_prefix(CHILD_LINE));
    let v: Vec<f64> = line.unwrap_or_default().split_whitespace().filter_map(|x| x.parse().ok()).collect();
    if !out.status.success() || v.len() != 5 {
        bail!("the multitask run for {n} tenants failed ({}): {text}", out.status);
    }
    Ok(Measured { cpu_pct: v[0], ovs_pct: v[1], mem_mib: v[2], scans: v[3] as u64, cpu_s: v[4] })
}

/// Keeps the peak of this process's resident memory while it runs.
fn sample_peak(stop: Arc<AtomicBool>, peak: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let kib = (rss_mib(std::process::id()) * 1024.0) as u64;
            peak.fetch_max(kib, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

fn multitask(args: &Args, inv: &Inventory, switch: Arc<dyn Switch>, n: usize) -> anyhow::Result<Measured> {
    let pool = AddressPool::new(DEFAULT_POOL.parse()?)?;
    let svc =
        ScanService::start(BRIDGE, switch, Naming::new("pbt-k")?, pool, Arc::new(SqliteStore::open_in_memory()?))?;
    svc.check_pool(inv)?;
    // The scanner VMs' profile (examples/guest_portscan.rs): 64 probes in flight, 2 s timeout.
    let profile = Profile { tcp: (1..=args.ports).collect(), concurrency: 64, timeout_ms: 2000, ..Profile::default() };
    let targets: Vec<Target> = (1..=n)
        .map(|t| Target::resolve(inv, &format!("t{t}").parse().expect("name"), &"web".parse().expect("name")))
        .collect::<Result<_, _>>()?;
    let me = std::process::id();
    let idle_mib = rss_mib(me);
    let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let sampler = sample_peak(stop.clone(), peak.clone());
    let ovs = ovs_pid()?;
    let (cpu0, ovs0, t0) = (cpu_seconds(me, true), cpu_seconds(ovs, false), Instant::now());
    let deadline = t0 + Duration::from_secs(args.seconds);
    let scans = std::thread::scope(|s| -> anyhow::Result<u64> {
        let handles: Vec<_> = targets
            .iter()
            .map(|target| {
                let (svc, profile) = (&svc, &profile);
                s.spawn(move || -> anyhow::Result<u64> {
                    let mut done = 0;
                    while Instant::now() < deadline {
                        let rec = svc.run(target, profile);
                        let open: Vec<u16> = rec.open.iter().map(|p| p.port).collect();
                        if rec.state != TaskState::Done || open != [OPEN_PORT] {
                            bail!("task on {} ended {:?} with open {open:?}: {:?}", rec.target, rec.state, rec.reason);
                        }
                        done += 1;
                    }
                    Ok(done)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("scan thread")).sum()
    })?;
    let wall = t0.elapsed().as_secs_f64();
    let (cpu, ovs_cpu) = (cpu_seconds(me, true) - cpu0, cpu_seconds(ovs, false) - ovs0);
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let peak_mib = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    Ok(Measured {
        cpu_pct: cpu / wall / cores() * 100.0,
        ovs_pct: ovs_cpu / wall / cores() * 100.0,
        mem_mib: (peak_mib - idle_mib).max(0.0),
        scans,
        cpu_s: cpu,
    })
}

/// The scanner VM's initramfs: busybox, virtio-net, the stripped scanner and its libraries.
fn scanner_image(args: &Args, kernel: &KernelImage, dir: &Path) -> anyhow::Result<PathBuf> {
    let scanner = dir.join("guest_portscan");
    let status = std::process::Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&args.scanner)
        .arg(&scanner)
        .status()
        .context("objcopy (binutils)")?;
    if !status.success() {
        bail!("objcopy could not strip {}", args.scanner.display());
    }
    let run_for = 3600; // stopped by the host after its window
    let workload = vec![
        "echo PALISADE-SCANNER-UP".to_owned(),
        format!("{} {VM_IP} 1 {} {run_for}", scanner.display(), args.ports),
    ];
    let spec = InitramfsSpec {
        busybox: initramfs::static_busybox(&args.cache)?,
        modules: kernel.module_closure(VIRTIO_NET_MODULES)?,
        workload,
        files: initramfs::host_program(&scanner)?,
    };
    let out = dir.join("scanner.cpio");
    initramfs::build(&spec, &out)?;
    Ok(out)
}

fn multi_vm(args: &Args, kernel: &KernelImage, initrd: &Path, n: usize) -> anyhow::Result<Measured> {
    let mut guests = Vec::new();
    // Stops the guests and takes their taps off the bridge (a port left behind would hold on
    // to the vanished tap, and the next run's tap of the same name would get no traffic).
    let stop_all = |guests: &mut Vec<Guest>| {
        for g in guests.iter_mut() {
            let _ = g.stop();
        }
        for t in 1..=n {
            let _ = std::process::Command::new("ovs-vsctl")
                .args(["--if-exists", "del-port", BRIDGE, &format!("pbt-v{t}")])
                .status();
        }
    };
    for t in 1..=n {
        let tap = format!("pbt-v{t}");
        let mut config = GuestConfig::for_kernel(format!("bench-t2-{}-{t}", std::process::id()), kernel, initrd)?;
        config.memory_mib = args.memory_mb;
        config.nic = Some(NicConfig { tap: tap.clone(), mac: mac(t, 0x64), ip: Some("198.18.1.100/24".parse()?) });
        let guest = match Guest::start(&config) {
            Ok(g) => g,
            Err(e) => {
                stop_all(&mut guests);
                return Err(e.into());
            }
        };
        guests.push(guest);
        let tag = format!("tag={}", vlan(t));
        let up = std::process::Command::new("ip").args(["link", "set", &tap, "up"]).status()?;
        let added = std::process::Command::new("ovs-vsctl")
            .args(["--may-exist", "add-port", BRIDGE, &tap, "--", "set", "port", &tap, &tag])
            .status()?;
        if !up.success() || !added.success() {
            stop_all(&mut guests);
            bail!("could not attach {tap} to {BRIDGE}");
        }
    }
    // Measure once every scanner VM has finished a first scan.
    let first = Instant::now();
    for g in guests.iter_mut() {
        if let Err(e) = g.wait_for_console("PALISADE-SCAN 1 ", Duration::from_secs(600)) {
            let console = g.console_text().unwrap_or_default();
            stop_all(&mut guests);
            bail!("a scanner VM did not finish its first scan: {e}\n{console}");
        }
    }
    eprintln!("  all {n} scanner VMs scanning ({:.0} s after the last start)", first.elapsed().as_secs_f64());
    let rounds = |g: &Guest| g.console_text().unwrap_or_default().matches("PALISADE-SCAN ").count() as u64;
    let before: Vec<u64> = guests.iter().map(rounds).collect();
    let ovs = ovs_pid()?;
    let pids: Vec<u32> = guests.iter().map(Guest::pid).collect();
    let cpu = || pids.iter().map(|&p| cpu_seconds(p, false)).sum::<f64>();
    let (cpu0, ovs0, t0) = (cpu(), cpu_seconds(ovs, false), Instant::now());
    std::thread::sleep(Duration::from_secs(args.seconds));
    let wall = t0.elapsed().as_secs_f64();
    let (used, ovs_cpu) = (cpu() - cpu0, cpu_seconds(ovs, false) - ovs0);
    let mem: f64 = pids.iter().map(|&p| rss_mib(p)).sum();
    let scans: u64 = guests.iter().zip(&before).map(|(g, b)| rounds(g) - b).sum();
    let wrong = guests.iter().find(|g| {
        let text = g.console_text().unwrap_or_default();
        text.lines().any(|l| {
            l.starts_with("PALISADE-SCAN ") && l.split_whitespace().nth(2) != Some(OPEN_PORT.to_string().as_str())
        })
    });
    let wrong = wrong.map(|g| g.console_text().unwrap_or_default());
    stop_all(&mut guests);
    if let Some(console) = wrong {
        bail!("a scanner VM found other open ports than {OPEN_PORT}:\n{console}");
    }
    Ok(Measured {
        cpu_pct: used / wall / cores() * 100.0,
        ovs_pct: ovs_cpu / wall / cores() * 100.0,
        mem_mib: mem,
        scans,
        cpu_s: used,
    })
}
