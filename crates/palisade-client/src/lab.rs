//! The single-host lab: the model's inventory built as network namespaces on one OVS bridge,
//! plus the lab's own controller process.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use palisade_lab::{
    ApplianceFunction, ApplianceSpec, FirewallRule, FirewallSpec, HostRole, HostSpec, LabSpec, Proto, Verdict,
};
use palisade_model::inventory::Inventory;
use palisade_model::types::{self as mt, Protocol};
use palisade_model::{merge_file, FileError};
use std::os::unix::process::CommandExt;

use crate::Client;

/// The lab's inventory, built into the CLI so `palisade lab up` needs no file.
pub const LAB_YAML: &str = include_str!("../../../examples/lab.yaml");

/// Errors of the lab glue.
#[derive(Debug, thiserror::Error)]
pub enum LabGlueError {
    /// The lab inventory is invalid.
    #[error("the lab inventory is invalid:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Inventory(Vec<FileError>),
    /// An object has no switch port, so it cannot be built.
    #[error("{0} has no switch port; the lab cannot attach it")]
    NoPort(String),
    /// A file could not be read or written.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The controller did not start.
    #[error("palisaded did not become healthy within {0:?}; see {1}")]
    ControllerStart(Duration, String),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LabGlueError {
    let path = path.display().to_string();
    move |source| LabGlueError::Io { what, path, source }
}

/// Parses the built-in lab inventory.
pub fn lab_inventory() -> Result<Inventory, LabGlueError> {
    merge_file("lab.yaml", LAB_YAML, &Inventory::default()).map(|m| m.after).map_err(LabGlueError::Inventory)
}

fn firewall(fw: Option<&palisade_model::document::FirewallDoc>) -> FirewallSpec {
    let Some(fw) = fw else { return FirewallSpec::default() };
    let verdict = |v: mt::Verdict| match v {
        mt::Verdict::Accept => Verdict::Accept,
        mt::Verdict::Drop => Verdict::Drop,
    };
    FirewallSpec {
        default: verdict(fw.default),
        rules: fw
            .rules
            .iter()
            .map(|r| FirewallRule {
                name: r.name.to_string(),
                verdict: verdict(r.verdict),
                protocol: match r.protocol {
                    Protocol::Any => None,
                    Protocol::Tcp => Some(Proto::Tcp),
                    Protocol::Udp => Some(Proto::Udp),
                    Protocol::Icmp => Some(Proto::Icmp),
                },
                dst_port: r.port,
                src: r.src,
                dst: r.dst,
            })
            .collect(),
    }
}

/// Maps an inventory to the lab's namespaces: one per VM, per subdomain gateway and per
/// appliance, each on an access port tagged with its domain's segment.
pub fn lab_spec(inv: &Inventory, bridge: &str) -> Result<LabSpec, LabGlueError> {
    let mut hosts = Vec::new();
    for (key, sub) in inv.subdomains() {
        let tenant = key.tenant.as_ref().map(|t| t.to_string()).unwrap_or_default();
        let segment = key.tenant.as_ref().and_then(|t| inv.domain(t, &sub.domain)).map_or(0, |d| d.segment);
        let net = |ip| Ipv4Net::new(ip, sub.cidr.prefix_len()).unwrap_or(sub.cidr);
        if let (Some(port), Some(mac)) = (&sub.gateway_port, &sub.gateway_mac) {
            hosts.push(HostSpec {
                netns: format!("pal-{tenant}-gw-{}", key.name),
                port: port.to_string(),
                mac: mac.to_string(),
                addr: net(sub.gateway),
                gateway: None,
                vlan: segment,
                role: HostRole::Gateway,
            });
        }
        for (vkey, vm) in inv.vms().filter(|(k, v)| k.tenant == key.tenant && v.subdomain == key.name) {
            let port = vm.port.as_ref().ok_or_else(|| LabGlueError::NoPort(vkey.to_string()))?;
            hosts.push(HostSpec {
                netns: format!("pal-{tenant}-{}", vkey.name),
                port: port.to_string(),
                mac: vm.mac.to_string(),
                addr: net(vm.ip),
                gateway: Some(sub.gateway),
                vlan: segment,
                role: HostRole::Vm,
            });
        }
    }
    for (key, app) in inv.appliances() {
        let segment = inv.domain(&app.tenant, &app.domain).map_or(0, |d| d.segment);
        let sub = inv
            .subdomains()
            .find(|(k, s)| k.tenant.as_ref() == Some(&app.tenant) && s.domain == app.domain && s.cidr.contains(&app.ip))
            .map(|(_, s)| s);
        let prefix = sub.map_or(32, |s| s.cidr.prefix_len());
        let functions = app
            .functions
            .iter()
            .filter_map(|f| match f {
                mt::ApplianceFunction::Firewall => Some(ApplianceFunction::Firewall),
                mt::ApplianceFunction::Tap => Some(ApplianceFunction::Tap),
                mt::ApplianceFunction::Ids => None,
            })
            .collect();
        hosts.push(HostSpec {
            netns: format!("pal-{}", key.name),
            port: app.port.to_string(),
            mac: app.mac.to_string(),
            addr: Ipv4Net::new(app.ip, prefix).unwrap_or_else(|_| Ipv4Net::from(app.ip)),
            gateway: sub.map(|s| s.gateway),
            vlan: segment,
            role: HostRole::Appliance(ApplianceSpec { functions, firewall: firewall(app.firewall.as_ref()) }),
        });
    }
    Ok(LabSpec { bridge: bridge.to_owned(), hosts, port_type: palisade_lab::PortType::System })
}

/// Where the lab keeps its controller's database, tokens, pid and logs.
#[derive(Debug, Clone)]
pub struct LabHome {
    /// The directory.
    pub dir: PathBuf,
}

impl LabHome {
    /// The lab home at `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The token file.
    pub fn tokens(&self) -> PathBuf {
        self.dir.join("tokens.json")
    }

    fn pid(&self) -> PathBuf {
        self.dir.join("palisaded.pid")
    }

    /// The controller's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("palisaded.log")
    }

    /// The controller's database.
    pub fn db(&self) -> PathBuf {
        self.dir.join("palisade.db")
    }

    /// The controller's security event stream (monitor events and anomaly alerts, JSON lines).
    pub fn events(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// The controller's anomaly-detection models: `anomaly` policies name its subdirectories
    /// (e.g. `palisade nad train ... --model <lab dir>/models/lab`).
    pub fn models(&self) -> PathBuf {
        self.dir.join("models")
    }

    /// Creates the token file (admin + one per tenant) if it does not exist.
    pub fn ensure_tokens(&self, inv: &Inventory) -> Result<(), LabGlueError> {
        fs::create_dir_all(&self.dir).map_err(io("cannot create", &self.dir))?;
        let path = self.tokens();
        if path.exists() {
            return Ok(());
        }
        let mut tenants = serde_json::Map::new();
        for (key, _) in inv.objects.iter().filter(|(k, _)| k.kind == palisade_model::Kind::Tenant) {
            tenants.insert(key.name.to_string(), random_token(&path)?.into());
        }
        let doc = serde_json::json!({ "admin": random_token(&path)?, "tenants": tenants });
        fs::write(&path, serde_json::to_string_pretty(&doc).unwrap_or_default()).map_err(io("cannot write", &path))?;
        Ok(())
    }

    /// Reads one token: `admin` or a tenant name.
    pub fn token(&self, who: &str) -> Option<String> {
        let text = fs::read_to_string(self.tokens()).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let t = if who == "admin" { &v["admin"] } else { &v["tenants"][who] };
        t.as_str().map(str::to_owned)
    }

    /// Starts the lab's controller unless one already answers at `url`.
    pub fn start_controller(
        &self,
        palisaded: &Path,
        url: &str,
        listen: &str,
        bridge: &str,
    ) -> Result<bool, LabGlueError> {
        let probe = Client::new(url, "");
        if probe.healthy() {
            return Ok(false);
        }
        let log_path = self.log();
        let log =
            fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(io("cannot open", &log_path))?;
        let err = log.try_clone().map_err(io("cannot open", &log_path))?;
        let child = Command::new(palisaded)
            .args(["--db", &self.db().display().to_string(), "--tokens", &self.tokens().display().to_string()])
            .args(["--bridge", bridge, "--listen", listen])
            .args(["--events", &self.events().display().to_string()])
            .args(["--models", &self.models().display().to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(io("cannot start", palisaded))?;
        fs::write(self.pid(), child.id().to_string()).map_err(io("cannot write", &self.pid()))?;
        let limit = Duration::from_secs(15);
        let start = Instant::now();
        while start.elapsed() < limit {
            if probe.healthy() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(LabGlueError::ControllerStart(limit, log_path.display().to_string()))
    }

    /// Stops the lab's controller, if it runs; returns true if one was stopped.
    pub fn stop_controller(&self) -> bool {
        let Some(pid) = fs::read_to_string(self.pid()).ok().and_then(|p| p.trim().parse::<u32>().ok()) else {
            return false;
        };
        let _ = fs::remove_file(self.pid());
        let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
        if !alive(pid) {
            return false;
        }
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let start = Instant::now();
        while alive(pid) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(pid) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        true
    }

    /// Removes the lab home (database, tokens, logs, captures).
    pub fn remove(&self) -> Result<(), LabGlueError> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot remove", &self.dir)(e)),
        }
    }
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(") ").next().map(|r| r.starts_with('Z')))
        .unwrap_or(false)
}

fn random_token(path: &Path) -> Result<String, LabGlueError> {
    let mut buf = [0u8; 24];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(io("cannot read /dev/urandom for", path))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
