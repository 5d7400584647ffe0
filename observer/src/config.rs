//! The agent's configuration: one struct, read from a TOML file (`--config`), then overridden
//! by flags. Unknown keys are errors, so a typo never silently falls back to a default.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::agent::{CaptureKind, Cidr, Output, TcAttach};

/// Everything `flowscope agent` can be told. Defaults are what runs with no flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AgentConfig {
    /// Interfaces to capture on; empty means every interface that is up, and new ones.
    pub interfaces: Vec<String>,
    /// Capture path: "tc", "socket" or "afpacket"; unset means tc with fallbacks.
    pub capture: Option<CaptureKind>,
    /// How TC programs attach: "auto", "tcx" or "clsact".
    pub tc_attach: TcAttach,
    /// Payload bytes kept per packet after the TCP/UDP header (1..=8000).
    pub snaplen: u32,
    /// Bytes of the kernel ring buffer (rounded up to a power of two).
    pub ring_size: u32,
    /// Capture only these ports (either side); empty keeps all.
    pub ports: Vec<u16>,
    /// Never capture these ports (either side).
    pub exclude_ports: Vec<u16>,
    /// Capture only these prefixes (source or destination), e.g. "10.0.0.0/8"; empty keeps all.
    pub cidrs: Vec<String>,
    /// Output on stdout: "compact" or "json".
    pub output: Output,
    /// Keep the terminal's own SSH connection in the capture.
    pub include_own_ssh: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            capture: None,
            tc_attach: TcAttach::Auto,
            snaplen: 512,
            ring_size: 16 << 20,
            ports: Vec::new(),
            exclude_ports: Vec::new(),
            cidrs: Vec::new(),
            output: Output::Compact,
            include_own_ssh: false,
        }
    }
}

impl AgentConfig {
    /// Reads and checks a TOML file. Errors name the file, the key and the line.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// Parses and checks TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: AgentConfig =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values serde can't: ranges and CIDR syntax, naming the key.
    pub fn validate(&self) -> Result<()> {
        if !(1..=8000).contains(&self.snaplen) {
            anyhow::bail!("key `snaplen`: {} is outside 1..=8000", self.snaplen);
        }
        if self.ring_size < 4096 {
            anyhow::bail!(
                "key `ring-size`: {} is below one page (4096)",
                self.ring_size
            );
        }
        for c in &self.cidrs {
            c.parse::<Cidr>()
                .map_err(|e| anyhow::anyhow!("key `cidrs`: {e}"))?;
        }
        if self.interfaces.iter().any(String::is_empty) {
            anyhow::bail!("key `interfaces`: an interface name is empty");
        }
        Ok(())
    }

    /// The CIDR filters, parsed (validated before).
    pub fn parsed_cidrs(&self) -> Vec<Cidr> {
        self.cidrs.iter().filter_map(|c| c.parse().ok()).collect()
    }

    /// The whole configuration as TOML, every key with its value (`flowscope agent --print-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let d = AgentConfig::default();
        assert_eq!(AgentConfig::from_toml(&d.to_toml()).unwrap(), d);
        assert_eq!(AgentConfig::from_toml("").unwrap(), d);
    }

    #[test]
    fn a_full_file_round_trips() {
        let text = r#"
            interfaces = ["eth0", "lo"]
            capture = "socket"
            tc-attach = "clsact"
            snaplen = 1024
            ring-size = 8388608
            ports = [80, 443]
            exclude-ports = [22]
            cidrs = ["198.18.0.0/15", "2001:db8::/32"]
            output = "json"
            include-own-ssh = true
        "#;
        let c = AgentConfig::from_toml(text).unwrap();
        assert_eq!(c.interfaces, ["eth0", "lo"]);
        assert_eq!(c.capture, Some(CaptureKind::Socket));
        assert_eq!(c.tc_attach, TcAttach::Clsact);
        assert_eq!(c.snaplen, 1024);
        assert_eq!(c.parsed_cidrs().len(), 2);
        assert_eq!(AgentConfig::from_toml(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let e = AgentConfig::from_toml("snaplenn = 10")
            .unwrap_err()
            .to_string();
        assert!(e.contains("snaplenn"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = AgentConfig::from_toml("snaplen = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("snaplen"), "{e}");
        let e = AgentConfig::from_toml("cidrs = [\"10.0.0.0/99\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cidrs") && e.contains("10.0.0.0/99"), "{e}");
        let e = AgentConfig::from_toml("capture = \"xdp\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("capture") && e.contains("xdp"), "{e}");
        let e = AgentConfig::from_toml("ports = [70000]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ports"), "{e}");
    }
}
