//! The network guard: which target addresses a cross-postback may reach.
//!
//! Pure. By default only global unicast addresses pass; loopback, private, link-local, CGNAT,
//! multicast, documentation and the IPv6 forms that embed such IPv4 addresses are refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow_private: bool,
    allow: Vec<IpNet>,
}

/// A refused target, carried through the HTTP client's error chain so the attempt is recorded
/// as `blocked`.
#[derive(Debug, thiserror::Error)]
#[error(
    "refused by the network guard: {host} resolves to {ip}, which is not a public address (open it with delivery.allow_private_networks or delivery.allow_cidrs)"
)]
pub struct Blocked {
    pub host: String,
    pub ip: IpAddr,
}

impl Guard {
    pub fn new(allow_private: bool, allow: Vec<IpNet>) -> Guard {
        Guard { allow_private, allow }
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || self.allow.iter().any(|net| net.contains(&ip)) || is_global(ip)
    }

    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Blocked> {
        if self.allows(ip) {
            Ok(())
        } else {
            Err(Blocked {
                host: host.to_owned(),
                ip,
            })
        }
    }
}

/// Whether an address is publicly routable unicast.
fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0                                   // "this network", unspecified
        || a == 10                                          // RFC 1918
        || a == 127                                         // loopback
        || (a == 100 && (64..128).contains(&b))             // CGNAT 100.64/10
        || (a == 169 && b == 254)                           // link-local
        || (a == 172 && (16..32).contains(&b))              // RFC 1918
        || (a == 192 && b == 0 && c == 0)                   // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)                   // TEST-NET-1
        || (a == 192 && b == 88 && c == 99)                 // 6to4 relay anycast
        || (a == 192 && b == 168)                           // RFC 1918
        || (a == 198 && (18..20).contains(&b))              // benchmarking
        || (a == 198 && b == 51 && c == 100)                // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)                 // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !refused
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return is_global_v4(v4);
    }
    // Only 2000::/3 is global unicast; inside it, documentation, Teredo and benchmarking are not.
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    // Documentation 2001:db8::/32, Teredo 2001::/32, benchmarking 2001:2::/48.
    let refused = s[0] == 0x2001 && (s[1] == 0x0db8 || s[1] == 0 || (s[1] == 2 && s[2] == 0));
    global_unicast && !refused
}

/// The IPv4 address inside IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    if s[..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || (s[5] == 0 && s[6] != 0)) {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_global_targets() {
        let refused = [
            "0.0.0.0",
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:7f00:0001::",
            "2002:c0a8:0101::1",
            "2001::1",
            "fec0::1",
        ];
        let guard = Guard::default();
        for ip in refused {
            let ip: IpAddr = ip.parse().expect("test address");
            assert!(!guard.allows(ip), "{ip} should be refused");
        }
    }

    #[test]
    fn allows_global_targets() {
        let guard = Guard::default();
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
        ] {
            let ip: IpAddr = ip.parse().expect("test address");
            assert!(guard.allows(ip), "{ip} should pass");
        }
    }

    #[test]
    fn allow_lists_open_the_guard() {
        let loopback: IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(Guard::new(true, vec![]).allows(loopback));
        let guard = Guard::new(false, vec!["127.0.0.0/8".parse().expect("cidr")]);
        assert!(guard.allows(loopback));
        assert!(!guard.allows("10.0.0.1".parse().expect("ip")));
        let msg = Guard::default()
            .check("example.test", loopback)
            .expect_err("refused")
            .to_string();
        assert!(msg.contains("example.test") && msg.contains("127.0.0.1"), "{msg}");
    }
}
