//! The real switch: Open vSwitch driven through `ovs-ofctl` and `ovs-vsctl`.

use palisade_flows::cookie::{COOKIE_PREFIX, COOKIE_PREFIX_MASK};
use palisade_flows::Installed;
use palisade_host::ToolError;

use crate::parse::{parse_dump_flows, parse_dump_groups, parse_ports_desc};
use crate::{OvsError, PortMap, PortNaming, Switch};

/// Open vSwitch bridge programmed with OpenFlow 1.4 bundles via `ovs-ofctl`.
#[derive(Debug, Clone)]
pub struct OfctlSwitch {
    bridge: String,
    naming: PortNaming,
}

impl OfctlSwitch {
    /// A handle on `bridge`; nothing is checked until first use.
    pub fn new(bridge: impl Into<String>) -> Self {
        Self { bridge: bridge.into(), naming: PortNaming::default() }
    }

    /// The same switch, its ports seen under the inventory's names through `naming`.
    pub fn with_naming(mut self, naming: PortNaming) -> Self {
        self.naming = naming;
        self
    }

    /// The bridge name.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, OvsError> {
        let argv: Vec<&str> = std::iter::once(program).chain(args.iter().copied()).collect();
        match palisade_host::run_with_input(&argv, stdin.map(str::as_bytes)) {
            Ok(out) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            Err(ToolError::Spawn { command, source }) => Err(OvsError::Spawn { command, source }),
            Err(ToolError::Failed { stderr, .. })
                if stderr.contains("is not a bridge or a socket") || stderr.contains("no bridge named") =>
            {
                Err(OvsError::NoBridge(self.bridge.clone()))
            }
            Err(ToolError::Failed { command, stderr, .. }) => Err(OvsError::Failed { command, stderr }),
            Err(other) => Err(OvsError::Tool(other)),
        }
    }

    fn ofctl(&self, verb: &str, extra: &[&str], stdin: Option<&str>) -> Result<String, OvsError> {
        let mut args = vec!["-O", "OpenFlow14", verb, self.bridge.as_str()];
        args.extend_from_slice(extra);
        self.run("ovs-ofctl", &args, stdin)
    }
}

impl Switch for OfctlSwitch {
    fn ports(&self) -> Result<PortMap, OvsError> {
        // The bridge's own ports as its OpenFlow side has them: one process (task spaces ask
        // for every task, so this is on the setup path).
        let text = self.ofctl("dump-ports-desc", &[], None)?;
        Ok(self.naming.ports(parse_ports_desc(&text)))
    }

    fn installed(&self) -> Result<Installed, OvsError> {
        let filter = format!("cookie={COOKIE_PREFIX:#x}/{COOKIE_PREFIX_MASK:#x}");
        let flows_text = self.ofctl("dump-flows", &[&filter], None)?;
        let flows = parse_dump_flows(&flows_text)
            .map_err(|detail| OvsError::Parse { command: "ovs-ofctl dump-flows".to_owned(), detail })?;
        let groups_text = self.ofctl("dump-groups", &[], None)?;
        let groups = parse_dump_groups(&groups_text)
            .map_err(|detail| OvsError::Parse { command: "ovs-ofctl dump-groups".to_owned(), detail })?;
        Ok(Installed { flows, groups })
    }

    fn commit(&self, lines: &[String]) -> Result<(), OvsError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut text = lines.join("\n");
        text.push('\n');
        self.ofctl("bundle", &["-"], Some(&text)).map(|_| ())
    }

    fn dump(&self) -> Result<Vec<String>, OvsError> {
        let text = self.ofctl("dump-flows", &["--names"], None)?;
        Ok(text.lines().filter(|l| l.trim_start().starts_with("cookie=")).map(|l| l.trim().to_owned()).collect())
    }
}
