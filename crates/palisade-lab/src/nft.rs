//! The appliance's nftables ruleset: generation (pure), and reading back what is loaded.
//!
//! One table, `inet palisade`, holds a `forward` chain (priority 0, policy = the spec's
//! default) with one named counter per rule and a final `default` counter, plus a
//! `forwarded` chain at priority 100 whose counter sees only packets the firewall accepted.
//! The table comment carries a hash of the rest, so `up` can tell an unchanged ruleset.

use std::fmt::Write as _;

use ipnet::Ipv4Net;
use serde::Serialize;
use serde_json::Value;

use crate::spec::{ApplianceFunction, ApplianceSpec, FirewallRule, FirewallSpec, Verdict};

/// nftables family and name of the lab's table.
pub const TABLE: &str = "palisade";
/// Counter (and reported name) for packets that matched no rule.
pub const DEFAULT_COUNTER: &str = "default";
/// Counter (and reported name) for packets the firewall let through.
pub const FORWARDED_COUNTER: &str = "forwarded";
const RULE_PREFIX: &str = "rule-";
const COMMENT_PREFIX: &str = "palisade-lab ";

/// Packet and byte counts for one firewall rule, the default verdict, or the forwarded total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCounter {
    /// Rule name, or `default` / `forwarded`.
    pub rule: String,
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub bytes: u64,
}

/// The firewall an appliance actually runs: its spec with the firewall function, an
/// accept-all one (still counting) without it.
pub fn effective_firewall(app: &ApplianceSpec) -> FirewallSpec {
    if app.has(ApplianceFunction::Firewall) {
        app.firewall.clone()
    } else {
        FirewallSpec::default()
    }
}

/// The nftables counter name for a rule.
pub fn counter_name(rule: &str) -> String {
    format!("{RULE_PREFIX}{rule}")
}

/// The full `nft -f -` script for `fw`. Loading it is atomic and replaces any previous
/// `inet palisade` table (the leading empty declaration makes the delete safe when absent).
pub fn render_ruleset(fw: &FirewallSpec) -> String {
    let body = render_body(fw);
    format!(
        "table inet {TABLE} {{}}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n\tcomment \"{}\"\n{body}}}\n",
        table_comment(fw)
    )
}

/// The table comment that identifies the ruleset generated for `fw`.
pub fn table_comment(fw: &FirewallSpec) -> String {
    format!("{COMMENT_PREFIX}{:016x}", fnv1a64(render_body(fw).as_bytes()))
}

fn render_body(fw: &FirewallSpec) -> String {
    let mut s = String::new();
    for rule in &fw.rules {
        let _ = writeln!(s, "\tcounter {} {{}}", counter_name(&rule.name));
    }
    let _ = writeln!(s, "\tcounter {DEFAULT_COUNTER} {{}}");
    let _ = writeln!(s, "\tcounter {FORWARDED_COUNTER} {{}}");
    s.push_str("\tchain forward {\n");
    let _ = writeln!(s, "\t\ttype filter hook forward priority 0; policy {};", fw.default.nft_keyword());
    for rule in &fw.rules {
        let _ = writeln!(s, "\t\t{}", render_rule(rule));
    }
    let _ = writeln!(s, "\t\tcounter name \"{DEFAULT_COUNTER}\" {}", fw.default.nft_keyword());
    s.push_str("\t}\n");
    s.push_str("\tchain forwarded {\n");
    s.push_str("\t\ttype filter hook forward priority 100; policy accept;\n");
    let _ = writeln!(s, "\t\tcounter name \"{FORWARDED_COUNTER}\"");
    s.push_str("\t}\n");
    s
}

fn render_rule(rule: &FirewallRule) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(src) = rule.src {
        parts.push(format!("ip saddr {}", net(src)));
    }
    if let Some(dst) = rule.dst {
        parts.push(format!("ip daddr {}", net(dst)));
    }
    match (rule.protocol, rule.dst_port) {
        (Some(p), Some(port)) => parts.push(format!("{} dport {port}", p.nft_keyword())),
        (Some(p), None) => parts.push(format!("meta l4proto {}", p.nft_keyword())),
        // Validation rejects a port without tcp/udp; render nothing rather than guess.
        (None, _) => {}
    }
    parts.push(format!("counter name \"{}\"", counter_name(&rule.name)));
    parts.push(rule.verdict.nft_keyword().to_owned());
    parts.join(" ")
}

fn net(n: Ipv4Net) -> String {
    let n = n.trunc();
    if n.prefix_len() == 32 {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

/// 64-bit FNV-1a: small, stable across Rust versions, enough to tell rulesets apart.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// Whether `nft list table inet palisade` (text) and `nft -j list table inet palisade` (JSON)
/// show exactly the ruleset generated for `fw`.
pub fn loaded_matches(fw: &FirewallSpec, listing: &str, json: &Value) -> bool {
    let comment = format!("comment \"{}\"", table_comment(fw));
    if !listing.lines().any(|l| l.trim() == comment) {
        return false;
    }
    let mut expected: Vec<(String, Option<Verdict>)> =
        fw.rules.iter().map(|r| (counter_name(&r.name), Some(r.verdict))).collect();
    expected.push((DEFAULT_COUNTER.to_owned(), Some(fw.default)));
    chain_policy(json, "forward") == Some(fw.default)
        && chain_rules(json, "forward") == expected
        && chain_rules(json, "forwarded") == vec![(FORWARDED_COUNTER.to_owned(), None)]
}

fn objects<'a>(json: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    json.get("nftables").and_then(Value::as_array).into_iter().flatten().filter_map(move |o| o.get(kind))
}

fn chain_policy(json: &Value, chain: &str) -> Option<Verdict> {
    let c = objects(json, "chain").find(|c| c.get("name").and_then(Value::as_str) == Some(chain))?;
    match c.get("policy").and_then(Value::as_str)? {
        "accept" => Some(Verdict::Accept),
        "drop" => Some(Verdict::Drop),
        _ => None,
    }
}

/// For each rule of `chain`, in order: the named counter it updates and its verdict.
fn chain_rules(json: &Value, chain: &str) -> Vec<(String, Option<Verdict>)> {
    objects(json, "rule")
        .filter(|r| r.get("chain").and_then(Value::as_str) == Some(chain))
        .map(|r| {
            let exprs = r.get("expr").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
            let counter =
                exprs.iter().find_map(|e| e.get("counter").and_then(Value::as_str)).unwrap_or_default().to_owned();
            let verdict = exprs.iter().find_map(|e| {
                if e.get("accept").is_some() {
                    Some(Verdict::Accept)
                } else if e.get("drop").is_some() {
                    Some(Verdict::Drop)
                } else {
                    None
                }
            });
            (counter, verdict)
        })
        .collect()
}

/// Counters from `nft -j list counters table inet palisade`, as (nft name, packets, bytes).
pub fn parse_counters(json: &Value) -> Vec<(String, u64, u64)> {
    objects(json, "counter")
        .filter(|c| c.get("table").and_then(Value::as_str) == Some(TABLE))
        .filter_map(|c| {
            Some((c.get("name")?.as_str()?.to_owned(), c.get("packets")?.as_u64()?, c.get("bytes")?.as_u64()?))
        })
        .collect()
}

/// Maps nft counters to the report order: rules in spec order, then `default`, then
/// `forwarded`. Returns the nft name of the first counter that is missing.
pub fn rule_counters(fw: &FirewallSpec, counters: &[(String, u64, u64)]) -> Result<Vec<RuleCounter>, String> {
    let wanted = fw
        .rules
        .iter()
        .map(|r| (r.name.clone(), counter_name(&r.name)))
        .chain([DEFAULT_COUNTER, FORWARDED_COUNTER].map(|n| (n.to_owned(), n.to_owned())));
    wanted
        .map(|(rule, nft_name)| {
            let (_, packets, bytes) = counters.iter().find(|(n, _, _)| *n == nft_name).ok_or(nft_name)?;
            Ok(RuleCounter { rule, packets: *packets, bytes: *bytes })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Proto;

    fn web_fw() -> FirewallSpec {
        FirewallSpec {
            default: Verdict::Drop,
            rules: vec![
                FirewallRule {
                    name: "web".into(),
                    verdict: Verdict::Accept,
                    protocol: Some(Proto::Tcp),
                    dst_port: Some(80),
                    src: Some("198.18.0.5/24".parse().expect("net")),
                    dst: Some("198.18.1.7/32".parse().expect("net")),
                },
                FirewallRule {
                    name: "no-icmp".into(),
                    verdict: Verdict::Drop,
                    protocol: Some(Proto::Icmp),
                    dst_port: None,
                    src: None,
                    dst: None,
                },
            ],
        }
    }

    #[test]
    fn ruleset_text_is_exact() {
        let expected = "\
table inet palisade {}
delete table inet palisade
table inet palisade {
\tcomment \"palisade-lab f0492dcb4862cb9a\"
\tcounter rule-web {}
\tcounter rule-no-icmp {}
\tcounter default {}
\tcounter forwarded {}
\tchain forward {
\t\ttype filter hook forward priority 0; policy drop;
\t\tip saddr 198.18.0.0/24 ip daddr 198.18.1.7 tcp dport 80 counter name \"rule-web\" accept
\t\tmeta l4proto icmp counter name \"rule-no-icmp\" drop
\t\tcounter name \"default\" drop
\t}
\tchain forwarded {
\t\ttype filter hook forward priority 100; policy accept;
\t\tcounter name \"forwarded\"
\t}
}
";
        assert_eq!(render_ruleset(&web_fw()), expected);
    }

    #[test]
    fn accept_all_ruleset_still_counts() {
        let text = render_ruleset(&FirewallSpec::default());
        assert!(text.contains("policy accept;\n\t\tcounter name \"default\" accept\n"), "{text}");
        assert!(text.contains("\tcounter forwarded {}\n"), "{text}");
        assert!(!text.contains("rule-"), "{text}");
    }

    #[test]
    fn appliances_without_the_firewall_function_run_accept_all() {
        let app = ApplianceSpec { functions: vec![ApplianceFunction::Tap], firewall: web_fw() };
        assert_eq!(effective_firewall(&app), FirewallSpec::default());
        let app = ApplianceSpec { functions: vec![ApplianceFunction::Firewall], firewall: web_fw() };
        assert_eq!(effective_firewall(&app), web_fw());
    }

    #[test]
    fn comment_changes_with_any_rule_change() {
        let mut other = web_fw();
        other.rules[0].dst_port = Some(81);
        assert_ne!(table_comment(&web_fw()), table_comment(&other));
        assert_eq!(table_comment(&web_fw()), table_comment(&web_fw()));
    }

    /// A trimmed copy of what nft 1.0.6 prints for the ruleset of `web_fw()`.
    fn loaded_json(default_policy: &str) -> Value {
        serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "palisade", "handle": 2}},
            {"counter": {"family": "inet", "name": "rule-web", "table": "palisade", "packets": 3, "bytes": 180}},
            {"counter": {"family": "inet", "name": "rule-no-icmp", "table": "palisade", "packets": 0, "bytes": 0}},
            {"counter": {"family": "inet", "name": "default", "table": "palisade", "packets": 2, "bytes": 168}},
            {"counter": {"family": "inet", "name": "forwarded", "table": "palisade", "packets": 3, "bytes": 180}},
            {"chain": {"family": "inet", "table": "palisade", "name": "forward", "hook": "forward", "prio": 0, "policy": default_policy}},
            {"chain": {"family": "inet", "table": "palisade", "name": "forwarded", "hook": "forward", "prio": 100, "policy": "accept"}},
            {"rule": {"family": "inet", "table": "palisade", "chain": "forward", "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}},
                {"counter": "rule-web"}, {"accept": null}]}},
            {"rule": {"family": "inet", "table": "palisade", "chain": "forward", "expr": [
                {"counter": "rule-no-icmp"}, {"drop": null}]}},
            {"rule": {"family": "inet", "table": "palisade", "chain": "forward", "expr": [
                {"counter": "default"}, {"drop": null}]}},
            {"rule": {"family": "inet", "table": "palisade", "chain": "forwarded", "expr": [
                {"counter": "forwarded"}]}}
        ]})
    }

    #[test]
    fn loaded_ruleset_is_recognised_only_when_comment_and_structure_match() {
        let fw = web_fw();
        let listing = format!("table inet palisade {{\n\tcomment \"{}\"\n}}\n", table_comment(&fw));
        assert!(loaded_matches(&fw, &listing, &loaded_json("drop")));
        assert!(!loaded_matches(&fw, &listing, &loaded_json("accept")), "policy differs");
        assert!(!loaded_matches(&fw, "table inet palisade {\n}\n", &loaded_json("drop")), "no comment");
        let mut fewer = fw.clone();
        fewer.rules.pop();
        let listing = format!("\tcomment \"{}\"\n", table_comment(&fewer));
        assert!(!loaded_matches(&fewer, &listing, &loaded_json("drop")), "extra rule loaded");
    }

    #[test]
    fn counters_come_back_in_spec_order_with_default_and_forwarded() {
        let counters = parse_counters(&loaded_json("drop"));
        let got = rule_counters(&web_fw(), &counters).expect("all counters present");
        let names: Vec<&str> = got.iter().map(|c| c.rule.as_str()).collect();
        assert_eq!(names, ["web", "no-icmp", "default", "forwarded"]);
        assert_eq!(got[0], RuleCounter { rule: "web".into(), packets: 3, bytes: 180 });
        assert_eq!(got[2].packets, 2);
    }

    #[test]
    fn a_missing_counter_is_named() {
        let counters = vec![("default".to_owned(), 0, 0), ("forwarded".to_owned(), 0, 0)];
        assert_eq!(rule_counters(&web_fw(), &counters), Err("rule-web".to_owned()));
        assert!(parse_counters(&serde_json::json!({"nftables": "garbage"})).is_empty());
    }
}
