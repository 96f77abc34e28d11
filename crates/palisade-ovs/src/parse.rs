//! Checked parsers for `ovs-ofctl`/`ovs-vsctl` output. They never panic on any input.

use std::collections::{BTreeMap, BTreeSet};

use palisade_flows::Cookie;

/// Counts flows per Palisade cookie in `ovs-ofctl dump-flows` output. Lines without a
/// cookie (headers) are skipped; a cookie that is not hex is an error.
pub fn parse_dump_flows(text: &str) -> Result<BTreeMap<Cookie, u32>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("cookie=") else { continue };
        let hex = rest.split([',', ' ']).next().unwrap_or("");
        let digits = hex.strip_prefix("0x").unwrap_or(hex);
        let value = u64::from_str_radix(digits, 16).map_err(|e| format!("bad cookie `{hex}`: {e}"))?;
        let cookie = Cookie(value);
        if cookie.is_palisade() {
            *out.entry(cookie).or_insert(0) += 1;
        }
    }
    Ok(out)
}

/// Group ids in `ovs-ofctl dump-groups` output.
pub fn parse_dump_groups(text: &str) -> Result<BTreeSet<u32>, String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("group_id=") else { continue };
        let id = rest.split(',').next().unwrap_or("");
        out.insert(id.parse().map_err(|e| format!("bad group id `{id}`: {e}"))?);
    }
    Ok(out)
}

/// `ovs-vsctl --format=csv --no-headings --columns=name,ofport list Interface` ->
/// name -> ofport, skipping interfaces without a valid port number (-1, [] while pending).
pub fn parse_interfaces(text: &str) -> BTreeMap<String, u32> {
    text.lines()
        .filter_map(|line| {
            let (name, port) = line.trim().split_once(',')?;
            let port: i64 = port.trim().parse().ok()?;
            let port = u32::try_from(port).ok().filter(|p| *p > 0 && *p < 0xff00)?;
            Some((name.trim_matches('"').to_owned(), port))
        })
        .collect()
}

/// `ovs-ofctl dump-ports-desc BRIDGE` -> name -> OpenFlow port number of the bridge's ports
/// (`LOCAL` and lines that are not port headers are skipped). Port lines look like
/// ` 3(pa-web1): addr:aa:bb:cc:dd:ee:ff`; a name may itself hold parentheses or colons.
pub fn parse_ports_desc(text: &str) -> BTreeMap<String, u32> {
    text.lines()
        .filter_map(|line| {
            let (head, _) = line.trim_start().rsplit_once("): addr:")?;
            let (number, name) = head.split_once('(')?;
            let port: u32 = number.parse().ok().filter(|p| *p > 0 && *p < 0xff00)?;
            Some((name.to_owned(), port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_desc_gives_each_ports_number_and_skips_local() {
        let text = "OFPST_PORT_DESC reply (OF1.4) (xid=0x2):\n 1(x,y): addr:8e:14:07:a7:94:8c\n     config:     PORT_DOWN\n \
                    12(pa-web1): addr:8e:14:07:a7:94:8d\n LOCAL(palisade0): addr:4e:d4:a0:b1:9c:45\n 7(odd(name)): addr:00:00:00:00:00:01\n \
                    x(bad): addr:00\n";
        let p = parse_ports_desc(text);
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!((p["x,y"], p["pa-web1"], p["odd(name)"]), (1, 12, 7));
    }

    #[test]
    fn flows_are_counted_per_palisade_cookie() {
        let text = "OFPST_FLOW reply (OF1.3) (xid=0x2):\n cookie=0x5a15030000000001, duration=1.0s, table=0, priority=1100,ip actions=group:1\n cookie=0x5a15030000000001, duration=1.0s, table=0, priority=1100,ip actions=group:1\n cookie=0x0, duration=1s, table=0, priority=0 actions=NORMAL\n";
        let flows = parse_dump_flows(text).unwrap();
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[&Cookie(0x5a15030000000001)], 2);
        assert!(parse_dump_flows(" cookie=0xzz, x").is_err());
    }

    #[test]
    fn groups_and_interfaces() {
        let g = parse_dump_groups(
            "OFPST_GROUP_DESC reply:\n group_id=1,type=indirect,bucket=actions=drop\n group_id=1511000000,type=ff\n",
        )
        .unwrap();
        assert_eq!(g.into_iter().collect::<Vec<_>>(), vec![1, 1511000000]);
        let i = parse_interfaces("pa-web1,1\n\"pa-fw1\",3\nbr0,65534\nbroken,-1\nx,[]\n");
        assert_eq!(i.len(), 2);
        assert_eq!(i["pa-fw1"], 3);
    }
}
