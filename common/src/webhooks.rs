//! Webhooks' shared parts: which endpoint URLs are taken ([`EndpointPolicy`]), new
//! ids and secrets, and the messages every writer makes (the envelope Standard
//! Webhooks receivers expect: `type`, `timestamp`, `data`).

use serde_json::{Value, json};

use crate::config::WebhookSettings;
use crate::db::webhooks::{EndpointRecord, NewMessage};
use crate::link::TenantId;
use crate::time::from_ms;
use domain::webhooks::{
    ENDPOINT_PREFIX, EventType, MESSAGE_PREFIX, Network, SECRET_BYTES, id_from, may_reach,
    secret_from,
};

/// Longest endpoint URL taken.
const MAX_URL: usize = 2048;

/// Which endpoint URLs a deployment takes, and which addresses deliveries may
/// connect to.
#[derive(Debug, Clone, Default)]
pub struct EndpointPolicy {
    /// Plain `http` endpoints (for a receiver on the same machine or network).
    pub allow_http: bool,
    /// Networks reachable besides the public internet.
    pub allowed: Vec<Network>,
}

impl EndpointPolicy {
    pub fn from_settings(settings: &WebhookSettings) -> EndpointPolicy {
        EndpointPolicy {
            allow_http: settings.allow_http,
            allowed: settings.allowed_networks.clone(),
        }
    }

    /// `text` as an endpoint URL, or why it is not one. An address written in the URL
    /// is checked here; a name is checked when a delivery resolves it.
    pub fn check_url(&self, text: &str) -> Result<String, String> {
        if text.len() > MAX_URL {
            return Err(format!("at most {MAX_URL} bytes"));
        }
        let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err("must be `https`".into()),
            other => return Err(format!("`{other}` URLs cannot receive webhooks")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("no user or password in the URL: the signature authenticates".into());
        }
        if url.fragment().is_some() {
            return Err("no fragment: it is never sent".into());
        }
        let address = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.');
                if name == "localhost" || name.ends_with(".localhost") {
                    Some(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
                } else {
                    None
                }
            }
            None => return Err("needs a host".into()),
        };
        if let Some(ip) = address
            && !may_reach(ip, &self.allowed)
        {
            return Err(format!(
                "`{ip}` is a private, loopback or reserved address, which this deployment \
                 does not deliver to"
            ));
        }
        Ok(url.to_string())
    }
}

fn random_u128() -> u128 {
    rand::random()
}

pub fn new_endpoint_id() -> String {
    id_from(ENDPOINT_PREFIX, random_u128())
}

/// A new endpoint of `tenant_id`, made at `now`: on, with a fresh id and secret, and
/// no URL or events yet (its maker sets them).
pub fn new_endpoint(tenant_id: TenantId, now: i64) -> EndpointRecord {
    EndpointRecord {
        id: new_endpoint_id(),
        tenant_id,
        url: String::new(),
        events: Vec::new(),
        secret: new_secret(),
        description: String::new(),
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    }
}

pub fn new_message_id() -> String {
    id_from(MESSAGE_PREFIX, random_u128())
}

pub fn new_secret() -> String {
    secret_from(&rand::random::<[u8; SECRET_BYTES]>())
}

/// The body of a message: the event's type, when it happened, and its data.
pub fn envelope(event: EventType, at_ms: i64, data: Value) -> String {
    json!({
        "type": event.as_str(),
        "timestamp": from_ms(at_ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

/// A message of `event` about the link `link_key` (empty: none) for `endpoint`.
pub fn message(
    endpoint: &EndpointRecord,
    event: EventType,
    link_key: &str,
    at_ms: i64,
    data: Value,
) -> NewMessage {
    NewMessage {
        id: new_message_id(),
        endpoint_id: endpoint.id.clone(),
        tenant_id: endpoint.tenant_id.clone(),
        event_type: event,
        link_key: link_key.to_string(),
        payload: envelope(event, at_ms, data),
        created_at: at_ms,
    }
}

/// The `webhook.test` message an owner asks for, to see their receiver answer.
pub fn test_message(endpoint: &EndpointRecord, at_ms: i64) -> NewMessage {
    message(
        endpoint,
        EventType::Test,
        "",
        at_ms,
        json!({
            "endpoint_id": endpoint.id,
            "note": "a test event, sent on request; it is about no link",
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_are_https_public_and_plain() {
        let strict = EndpointPolicy::default();
        assert!(strict.check_url("https://hooks.example.com/in?x=1").is_ok());
        for (bad, why) in [
            ("http://hooks.example.com/", "must be `https`"),
            ("ftp://hooks.example.com/", "cannot receive"),
            ("https://user:pw@hooks.example.com/", "no user"),
            ("https://hooks.example.com/#top", "no fragment"),
            ("https://127.0.0.1/", "private"),
            ("https://[::1]:8443/", "private"),
            ("https://169.254.169.254/latest", "private"),
            ("https://10.0.0.8/", "private"),
            ("https://localhost:9000/", "private"),
            ("not a url", "not a URL"),
        ] {
            let err = strict.check_url(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(
            strict
                .check_url(&format!("https://e.com/{}", "a".repeat(2048)))
                .is_err()
        );
        let local = EndpointPolicy {
            allow_http: true,
            allowed: vec![Network::parse("127.0.0.0/8").expect("network")],
        };
        assert_eq!(
            local.check_url("http://127.0.0.1:8080/hook"),
            Ok("http://127.0.0.1:8080/hook".into())
        );
        assert!(local.check_url("http://10.0.0.8/").is_err());
    }

    #[test]
    fn messages_carry_the_standard_envelope() {
        let body: Value =
            serde_json::from_str(&envelope(EventType::LinkCreated, 0, json!({"code": "abc"})))
                .expect("json");
        assert_eq!(body["type"], "link.created");
        assert_eq!(body["timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(body["data"]["code"], "abc");
        assert_ne!(new_message_id(), new_message_id());
        assert!(domain::webhooks::secret_key(&new_secret()).is_some());
    }
}
