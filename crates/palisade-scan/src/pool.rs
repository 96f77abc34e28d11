//! The reserved address pool of task spaces (paper §3.1(b)).
//!
//! Each task takes two addresses: `vport` (the task space's own interface) and `vir` (the
//! virtual address under which the task sees its target). MACs are derived from the IPs
//! (`0e:5a:` + the four IPv4 octets: locally administered, unicast), so one address is one
//! MAC everywhere. The pool must not overlap any tenant subnet.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use palisade_model::inventory::Inventory;
use palisade_model::types::MacAddr;
use serde::Serialize;

/// The default pool: RFC 6598 shared address space, which tenants' subnets do not use.
pub const DEFAULT_POOL: &str = "100.64.0.0/10";

/// One end of the virtual addressing: a MAC and an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Ethernet address.
    pub mac: MacAddr,
    /// IPv4 address.
    pub ip: Ipv4Addr,
}

impl Endpoint {
    /// The endpoint for `ip`, with its derived MAC.
    pub fn for_ip(ip: Ipv4Addr) -> Self {
        let o = ip.octets();
        Self { mac: MacAddr([0x0e, 0x5a, o[0], o[1], o[2], o[3]]), ip }
    }
}

/// A task's addresses: its own (`vport`) and its target's virtual one (`vir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TaskAddrs {
    /// The task space's interface.
    pub vport: Endpoint,
    /// The target as the task sees it.
    pub vir: Endpoint,
}

/// Why the pool refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every pair of addresses is in use.
    #[error("the task address pool {0} is exhausted")]
    Exhausted(Ipv4Net),
    /// The pool overlaps a tenant subnet, so a virtual address could shadow a real one.
    #[error("the task address pool {pool} overlaps subdomain {tenant}/{subdomain} ({cidr})")]
    Overlap {
        /// The pool.
        pool: Ipv4Net,
        /// Tenant of the subdomain.
        tenant: String,
        /// The subdomain.
        subdomain: String,
        /// Its subnet.
        cidr: Ipv4Net,
    },
    /// The pool is too small to hold one pair.
    #[error("the task address pool {0} is too small (at least a /29)")]
    TooSmall(Ipv4Net),
    /// The address was not handed out by this pool.
    #[error("{0} was not allocated from this pool")]
    NotAllocated(Ipv4Addr),
}

/// Hands out address pairs from a reserved range.
#[derive(Debug, Clone)]
pub struct AddressPool {
    net: Ipv4Net,
    used: BTreeSet<u32>,
}

impl AddressPool {
    /// A pool over `net`, which must hold at least one pair (network and broadcast are skipped).
    pub fn new(net: Ipv4Net) -> Result<Self, PoolError> {
        let net = net.trunc();
        if net.prefix_len() > 29 {
            return Err(PoolError::TooSmall(net));
        }
        Ok(Self { net, used: BTreeSet::new() })
    }

    /// The pool's range.
    pub fn net(&self) -> Ipv4Net {
        self.net
    }

    /// Checks that no subdomain of `inv` overlaps the pool.
    pub fn check_against(&self, inv: &Inventory) -> Result<(), PoolError> {
        for (key, sub) in inv.subdomains() {
            if sub.cidr.contains(&self.net.network()) || self.net.contains(&sub.cidr.network()) {
                return Err(PoolError::Overlap {
                    pool: self.net,
                    tenant: key.tenant.as_ref().map(ToString::to_string).unwrap_or_default(),
                    subdomain: key.name.to_string(),
                    cidr: sub.cidr,
                });
            }
        }
        Ok(())
    }

    /// Takes the lowest free pair: `vport` at an even offset, `vir` just after it.
    pub fn allocate(&mut self) -> Result<TaskAddrs, PoolError> {
        let first = u32::from(self.net.network()) + 2;
        let last = u32::from(self.net.broadcast()) - 1; // vir of the last pair
        let mut at = first;
        while at < last {
            if !self.used.contains(&at) {
                self.used.insert(at);
                return Ok(TaskAddrs {
                    vport: Endpoint::for_ip(Ipv4Addr::from(at)),
                    vir: Endpoint::for_ip(Ipv4Addr::from(at + 1)),
                });
            }
            at += 2;
        }
        Err(PoolError::Exhausted(self.net))
    }

    /// Marks a pair as taken (rebuilding the pool's state from running tasks).
    pub fn reserve(&mut self, addrs: &TaskAddrs) -> Result<(), PoolError> {
        let at = u32::from(addrs.vport.ip);
        if !self.net.contains(&addrs.vport.ip) || at % 2 != 0 || u32::from(addrs.vir.ip) != at + 1 {
            return Err(PoolError::NotAllocated(addrs.vport.ip));
        }
        self.used.insert(at);
        Ok(())
    }

    /// Returns a pair to the pool.
    pub fn release(&mut self, addrs: &TaskAddrs) -> Result<(), PoolError> {
        if self.used.remove(&u32::from(addrs.vport.ip)) {
            Ok(())
        } else {
            Err(PoolError::NotAllocated(addrs.vport.ip))
        }
    }

    /// Pairs in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

impl fmt::Display for TaskAddrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vport {} ({}), vir {} ({})", self.vport.ip, self.vport.mac, self.vir.ip, self.vir.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(s: &str) -> AddressPool {
        AddressPool::new(s.parse().unwrap()).unwrap()
    }

    #[test]
    fn pairs_are_distinct_and_released_pairs_come_back() {
        let mut p = pool(DEFAULT_POOL);
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert_eq!(a.vport.ip, Ipv4Addr::new(100, 64, 0, 2));
        assert_eq!(a.vir.ip, Ipv4Addr::new(100, 64, 0, 3));
        assert_eq!(a.vport.mac.to_string(), "0e:5a:64:40:00:02");
        assert_eq!(b.vport.ip, Ipv4Addr::new(100, 64, 0, 4));
        p.release(&a).unwrap();
        assert_eq!(p.allocate().unwrap(), a);
        assert_eq!(p.release(&Endpoint::pair_for_test()), Err(PoolError::NotAllocated(Ipv4Addr::new(100, 64, 9, 2))));
    }

    #[test]
    fn a_small_pool_runs_out_and_says_so() {
        let mut p = pool("100.64.0.0/29"); // .2/.3, .4/.5 (.6 would need .7, the broadcast)
        p.allocate().unwrap();
        p.allocate().unwrap();
        assert_eq!(p.allocate(), Err(PoolError::Exhausted("100.64.0.0/29".parse().unwrap())));
        assert!(matches!(AddressPool::new("100.64.0.0/30".parse().unwrap()), Err(PoolError::TooSmall(_))));
    }

    #[test]
    fn reserve_rebuilds_state() {
        let mut p = pool(DEFAULT_POOL);
        let a = TaskAddrs {
            vport: Endpoint::for_ip(Ipv4Addr::new(100, 64, 0, 2)),
            vir: Endpoint::for_ip(Ipv4Addr::new(100, 64, 0, 3)),
        };
        p.reserve(&a).unwrap();
        assert_eq!(p.allocate().unwrap().vport.ip, Ipv4Addr::new(100, 64, 0, 4));
        let odd = TaskAddrs { vport: a.vir, vir: a.vport };
        assert!(p.reserve(&odd).is_err());
    }

    impl Endpoint {
        fn pair_for_test() -> TaskAddrs {
            TaskAddrs {
                vport: Endpoint::for_ip(Ipv4Addr::new(100, 64, 9, 2)),
                vir: Endpoint::for_ip(Ipv4Addr::new(100, 64, 9, 3)),
            }
        }
    }
}
