//! Webhooks as the API and the deliveries see them: the event types an endpoint
//! subscribes to, the ids and secrets of endpoints and messages, the Standard
//! Webhooks signature every message carries, and when a failed delivery is tried
//! again.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

macro_rules! event_types {
    ($($variant:ident => $name:literal,)+) => {
        /// What a message tells an endpoint.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($variant,)+
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)+
                }
            }
        }
    };
}

event_types! {
    LinkCreated => "link.created",
    LinkUpdated => "link.updated",
    LinkDeleted => "link.deleted",
    LinkClicked => "link.clicked",
    // Sent on request to one endpoint, whatever it subscribes to.
    Test => "webhook.test",
}

impl EventType {
    /// The types an endpoint can subscribe to.
    pub const SUBSCRIBABLE: [EventType; 4] = [
        EventType::LinkCreated,
        EventType::LinkUpdated,
        EventType::LinkDeleted,
        EventType::LinkClicked,
    ];

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|e| e.as_str() == text)
    }

    /// An endpoint's subscription from the API: at least one type, each one
    /// [`EventType::SUBSCRIBABLE`], kept in one order and once each.
    pub fn parse_subscription<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<EventType>, String> {
        let mut events = Vec::new();
        for name in names {
            match EventType::parse(name).filter(|e| EventType::SUBSCRIBABLE.contains(e)) {
                Some(event) => events.push(event),
                None => {
                    return Err(format!(
                        "`{name}` is no event type; they are {}",
                        EventType::SUBSCRIBABLE
                            .iter()
                            .map(|e| format!("`{e}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        if events.is_empty() {
            return Err("name at least one event type".into());
        }
        events.sort_unstable();
        events.dedup();
        Ok(events)
    }

    /// A subscription as the `events` column stores it: space-separated.
    pub fn to_stored(events: &[EventType]) -> String {
        events
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Reads [`EventType::to_stored`] back; names it does not know are left out (a
    /// type retired by a later version subscribes to nothing).
    pub fn from_stored(text: &str) -> Vec<EventType> {
        text.split_whitespace()
            .filter_map(EventType::parse)
            .collect()
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The prefix of an endpoint's signing secret, as Standard Webhooks libraries take it.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret: 192 bits, inside the 24–64 the specification asks for.
pub const SECRET_BYTES: usize = 24;

/// The secret an endpoint is given, from `SECRET_BYTES` random bytes.
pub fn secret_from(bytes: &[u8; SECRET_BYTES]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The HMAC key of a secret (the bytes after the prefix); `None` when it is none.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// The `webhook-signature` header: `v1,` and the base64 HMAC-SHA256, under `key`, of
/// `{id}.{timestamp}.{body}`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        // HMAC takes keys of any length; this arm is never taken.
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Characters of ids: base62, so an id is safe in a URL path and a header.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `prefix` and 22 base62 characters of `random` (128 bits; the last 2 bits of the
/// 130 the characters hold are zero).
pub fn id_from(prefix: &str, random: u128) -> String {
    let mut id = String::with_capacity(prefix.len() + 22);
    id.push_str(prefix);
    let mut rest = random;
    for _ in 0..22 {
        id.push(char::from(BASE62[(rest % 62) as usize]));
        rest /= 62;
    }
    id
}

/// Whether `text` is an id [`id_from`] made with `prefix` (anything else names no
/// endpoint or message).
pub fn is_id(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 22 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

pub const ENDPOINT_PREFIX: &str = "ep_";
pub const MESSAGE_PREFIX: &str = "msg_";

/// First wait after a failed attempt; each later one doubles, up to [`MAX_DELAY`].
pub const FIRST_DELAY: Duration = Duration::from_secs(5);
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// How long to wait after the `attempts`-th failed attempt (1 for the first):
/// exponential from [`FIRST_DELAY`] to [`MAX_DELAY`], then spread by `jitter` (0 to 1)
/// over ±20 %, so endpoints that failed together are not all tried again at once.
pub fn retry_delay(attempts: u32, jitter: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).min(20);
    let base = FIRST_DELAY
        .saturating_mul(1 << doublings)
        .min(MAX_DELAY)
        .as_secs_f64();
    Duration::from_secs_f64(base * (0.8 + 0.4 * jitter.clamp(0.0, 1.0)))
}

/// A network of an allow-list, written `10.1.0.0/16` or as one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Option<Network> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr.parse().ok()?, Some(prefix.parse().ok()?)),
            None => (text.parse().ok()?, None),
        };
        let bits = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, ip, bits) = match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                (u128::from(u32::from(net)), u128::from(u32::from(ip)), 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => (u128::from(net), u128::from(ip), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (net >> shift) == (ip >> shift)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether a delivery may connect to `ip`: an address on the public internet, or one
/// the deployment allowed. Everything else (loopback, private, link-local, shared,
/// reserved, multicast, documentation ranges, and IPv6 forms of them) could reach
/// the deployment's own network.
pub fn may_reach(ip: IpAddr, allowed: &[Network]) -> bool {
    allowed.iter().any(|n| n.contains(ip)) || is_public(ip)
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., a, b, c, d] = v6.octets();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                // Unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32.
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                // IPv4-compatible (deprecated) ::a.b.c.d.
                || v6.segments()[..6] == [0; 6])
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Shared address space (carrier-grade NAT) 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // Benchmarking 198.18.0.0/15, reserved 240.0.0.0/4, IETF 192.0.0.0/24.
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
        || (a == 192 && b == 0 && ip.octets()[2] == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specification_example_signs_the_same() {
        // The example of the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), None);
    }

    #[test]
    fn subscriptions_name_known_types_once() {
        assert_eq!(
            EventType::parse_subscription(["link.deleted", "link.created", "link.deleted"]),
            Ok(vec![EventType::LinkCreated, EventType::LinkDeleted])
        );
        let err = EventType::parse_subscription(["link.made"]).expect_err("unknown");
        assert!(
            err.contains("`link.made`") && err.contains("`link.clicked`"),
            "{err}"
        );
        assert!(EventType::parse_subscription(["webhook.test"]).is_err());
        assert!(EventType::parse_subscription([]).is_err());
        let all = EventType::SUBSCRIBABLE.to_vec();
        assert_eq!(EventType::from_stored(&EventType::to_stored(&all)), all);
        assert_eq!(
            EventType::from_stored("link.created link.gone"),
            [EventType::LinkCreated]
        );
    }

    #[test]
    fn ids_and_secrets_have_their_shapes() {
        let id = id_from(ENDPOINT_PREFIX, u128::MAX);
        assert!(is_id(&id, ENDPOINT_PREFIX), "{id}");
        assert!(!is_id(&id, MESSAGE_PREFIX));
        assert!(!is_id("ep_short", ENDPOINT_PREFIX));
        assert_ne!(id_from("ep_", 1), id_from("ep_", 2));
        let secret = secret_from(&[7; SECRET_BYTES]);
        assert!(secret.starts_with("whsec_"));
        assert_eq!(secret_key(&secret), Some(vec![7; SECRET_BYTES]));
    }

    #[test]
    fn retries_back_off_to_an_hour_with_jitter() {
        assert_eq!(retry_delay(1, 0.5), Duration::from_secs(5));
        assert_eq!(retry_delay(2, 0.5), Duration::from_secs(10));
        assert_eq!(retry_delay(60, 0.5), MAX_DELAY);
        assert_eq!(retry_delay(1, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay(1, 1.0), Duration::from_secs(6));
        // A day of retries is about thirty attempts.
        let mut waited = Duration::ZERO;
        let mut attempts = 0;
        while waited < Duration::from_secs(86_400) {
            attempts += 1;
            waited += retry_delay(attempts, 0.5);
        }
        assert!((25..=35).contains(&attempts), "{attempts}");
    }

    #[test]
    fn only_public_or_allowed_addresses_are_reached() {
        let ip = |t: &str| t.parse::<IpAddr>().expect("ip");
        for public in ["93.184.215.14", "8.8.8.8", "2606:2800:21f:cb07::1"] {
            assert!(may_reach(ip(public), &[]), "{public}");
        }
        for inner in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
        ] {
            assert!(!may_reach(ip(inner), &[]), "{inner}");
        }
        let allowed = [
            Network::parse("127.0.0.1").expect("one address"),
            Network::parse("10.1.0.0/16").expect("a network"),
        ];
        assert!(may_reach(ip("127.0.0.1"), &allowed));
        assert!(!may_reach(ip("127.0.0.2"), &allowed));
        assert!(may_reach(ip("10.1.255.1"), &allowed));
        assert!(!may_reach(ip("10.2.0.1"), &allowed));
        assert!(
            Network::parse("0.0.0.0/0")
                .expect("all")
                .contains(ip("10.0.0.1"))
        );
        assert_eq!(Network::parse("10.0.0.0/33"), None);
        assert_eq!(Network::parse("example.com"), None);
        assert_eq!(allowed[1].to_string(), "10.1.0.0/16");
    }
}
