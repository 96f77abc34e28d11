//! A small blocking client for the controller's REST API.

use std::time::Duration;

use palisade_api::scans::{ScanRequest, TaskRecord};
use palisade_api::{
    AlertPage, ApplyRequest, AuditEntry, DetectorStatus, ErrorBody, EventPage, FlowTable, GuestStatus, ObjectView,
    Outcome, Reconciled, Symbols,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// Errors talking to the controller.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The controller could not be reached.
    #[error("cannot reach the controller at {url} (is palisaded running? `palisade lab up` starts one)")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: Box<ureq::Transport>,
    },
    /// The controller answered with an error.
    #[error("{message}{}", details.iter().map(|d| format!("\n  {d}")).collect::<String>())]
    Api {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
        /// Per-problem details (file:line: field: message).
        details: Vec<String>,
    },
    /// The reply was not the JSON the API documents for the request.
    #[error("the controller sent an unreadable reply")]
    Decode(#[source] std::io::Error),
}

/// A client bound to one controller and token.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:7683`) using `token`.
    pub fn new(base: &str, token: &str) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
        Self { base: base.trim_end_matches('/').to_owned(), token: token.to_owned(), agent }
    }

    /// One request; the reply decoded as `T` (the API's type for this endpoint).
    fn call<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<Value>) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let req = self.agent.request(method, &url).set("Authorization", &format!("Bearer {}", self.token));
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match res {
            Ok(r) => r.into_json().map_err(ClientError::Decode),
            Err(ureq::Error::Status(status, r)) => {
                let body: ErrorBody = r.into_json().unwrap_or_else(|_| ErrorBody {
                    error: format!("request failed with HTTP {status} and no error body"),
                    details: Vec::new(),
                });
                Err(ClientError::Api { status, message: body.error, details: body.details })
            }
            Err(ureq::Error::Transport(t)) => Err(ClientError::Unreachable { url, source: Box::new(t) }),
        }
    }

    /// True if `/healthz` answers.
    pub fn healthy(&self) -> bool {
        self.agent.get(&format!("{}/healthz", self.base)).timeout(Duration::from_millis(500)).call().is_ok()
    }

    /// Applies (or with `dry_run`, diffs) a policy file.
    pub fn apply(&self, file: &str, content: &str, dry_run: bool) -> Result<Outcome, ClientError> {
        let body = ApplyRequest { file: file.to_owned(), content: content.to_owned() };
        self.call("POST", &format!("/v1/apply?dry_run={dry_run}"), Some(json!(body)))
    }

    /// Lists objects, optionally of one kind.
    pub fn list(&self, kind: Option<&str>) -> Result<Vec<ObjectView>, ClientError> {
        match kind {
            Some(k) => self.call("GET", &format!("/v1/objects?kind={k}"), None),
            None => self.call("GET", "/v1/objects", None),
        }
    }

    /// Gets one object: `id` is `name` for tenants and appliances, `tenant/name` otherwise.
    pub fn get(&self, kind: &str, id: &str) -> Result<ObjectView, ClientError> {
        self.call("GET", &format!("/v1/objects/{kind}/{id}"), None)
    }

    /// Deletes one object.
    pub fn delete(&self, kind: &str, id: &str, dry_run: bool) -> Result<Outcome, ClientError> {
        self.call("DELETE", &format!("/v1/objects/{kind}/{id}?dry_run={dry_run}"), None)
    }

    /// The compiled flows.
    pub fn flows(&self) -> Result<FlowTable, ClientError> {
        self.call("GET", "/v1/flows", None)
    }

    /// The audit log.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, ClientError> {
        self.call("GET", &format!("/v1/audit?limit={limit}"), None)
    }

    /// Guest VMs and their state.
    pub fn guests(&self) -> Result<Vec<GuestStatus>, ClientError> {
        self.call("GET", "/v1/guests", None)
    }

    /// A guest's kernel symbols (recovered from its memory), names matching `grep` if given.
    pub fn symbols(&self, tenant: &str, vm: &str, grep: Option<&str>) -> Result<Symbols, ClientError> {
        let query = grep.map(|g| format!("?grep={}", percent_encode(g))).unwrap_or_default();
        self.call("GET", &format!("/v1/vmi/{}/{}/symbols{query}", percent_encode(tenant), percent_encode(vm)), None)
    }

    /// Up to `limit` of a guest's recent monitor events with sequence above `after`.
    pub fn events(&self, tenant: &str, vm: &str, after: u64, limit: usize) -> Result<EventPage, ClientError> {
        let path =
            format!("/v1/vmi/{}/{}/events?after={after}&limit={limit}", percent_encode(tenant), percent_encode(vm));
        self.call("GET", &path, None)
    }

    /// Up to `limit` of a guest's stored monitor events (the whole history, by store id) after `after`.
    pub fn event_history(&self, tenant: &str, vm: &str, after: u64, limit: usize) -> Result<EventPage, ClientError> {
        let path = format!(
            "/v1/vmi/{}/{}/events?history=true&after={after}&limit={limit}",
            percent_encode(tenant),
            percent_encode(vm)
        );
        self.call("GET", &path, None)
    }

    /// Up to `limit` stored anomaly alerts with an id above `after`, optionally of one tenant
    /// and VM.
    pub fn alerts(
        &self,
        tenant: Option<&str>,
        vm: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<AlertPage, ClientError> {
        let mut path = format!("/v1/alerts?after={after}&limit={limit}");
        if let Some(t) = tenant {
            path.push_str(&format!("&tenant={}", percent_encode(t)));
        }
        if let Some(v) = vm {
            path.push_str(&format!("&vm={}", percent_encode(v)));
        }
        self.call("GET", &path, None)
    }

    /// The live anomaly detectors.
    pub fn detectors(&self) -> Result<Vec<DetectorStatus>, ClientError> {
        self.call("GET", "/v1/detectors", None)
    }

    /// Asks the controller to reconcile now.
    pub fn reconcile(&self) -> Result<Reconciled, ClientError> {
        self.call("POST", "/v1/reconcile", None)
    }

    /// Runs a scan task now and returns the finished task (issue #7).
    pub fn scan_run(&self, request: &ScanRequest) -> Result<TaskRecord, ClientError> {
        self.call("POST", "/v1/scans", Some(json!(request)))
    }

    /// Runs scan policy `tenant/name` now; answers with its finished tasks.
    pub fn scan_policy(&self, tenant: &str, name: &str) -> Result<Vec<TaskRecord>, ClientError> {
        self.call("POST", &format!("/v1/scans/policy/{}/{}", percent_encode(tenant), percent_encode(name)), None)
    }

    /// Scan tasks the token may see, oldest first.
    pub fn scan_tasks(&self) -> Result<Vec<TaskRecord>, ClientError> {
        self.call("GET", "/v1/scans", None)
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_encoding_keeps_unreserved_only() {
        assert_eq!(super::percent_encode("^sys_(read|write)$ x/y"), "%5Esys_%28read%7Cwrite%29%24%20x%2Fy");
        assert_eq!(super::percent_encode("guest1"), "guest1");
    }
}
