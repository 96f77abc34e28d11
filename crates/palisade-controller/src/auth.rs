//! Bearer tokens: one admin token, and per-tenant tokens that see only their own tenant.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use palisade_model::Name;
use serde::Deserialize;

/// A secret that never prints.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret's value, for sending it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented token.
    fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The operator: sees and changes everything.
    Admin,
    /// One tenant: sees and changes only its own objects.
    Tenant(Name),
}

impl Scope {
    /// The audit actor string.
    pub fn actor(&self) -> String {
        match self {
            Scope::Admin => "admin".to_owned(),
            Scope::Tenant(t) => format!("tenant:{t}"),
        }
    }

    /// The tenant filter, if any.
    pub fn tenant(&self) -> Option<&Name> {
        match self {
            Scope::Admin => None,
            Scope::Tenant(t) => Some(t),
        }
    }
}

/// The token file: `{"admin": "...", "tenants": {"alpha": "..."}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    /// The operator's token.
    pub admin: Secret,
    /// Per-tenant tokens.
    #[serde(default)]
    pub tenants: BTreeMap<Name, Secret>,
}

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// It could not be read.
    #[error("cannot read token file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not valid.
    #[error("token file {path} is not valid")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A token is too short to be safe.
    #[error("token file {path}: token for {who} is shorter than 16 characters")]
    Weak {
        /// The file.
        path: String,
        /// Whose token.
        who: String,
    },
}

impl Tokens {
    /// Reads and checks a token file.
    pub fn load(path: &Path) -> Result<Self, TokenError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read { path: p.clone(), source })?;
        let tokens: Tokens =
            serde_json::from_str(&text).map_err(|source| TokenError::Parse { path: p.clone(), source })?;
        let weak = std::iter::once(("admin".to_owned(), &tokens.admin))
            .chain(tokens.tenants.iter().map(|(t, s)| (format!("tenant {t}"), s)))
            .find(|(_, s)| s.0.len() < 16);
        if let Some((who, _)) = weak {
            return Err(TokenError::Weak { path: p, who });
        }
        Ok(tokens)
    }

    /// The scope a presented bearer token grants, if any.
    pub fn scope_of(&self, presented: &str) -> Option<Scope> {
        if self.admin.matches(presented) {
            return Some(Scope::Admin);
        }
        self.tenants.iter().find(|(_, s)| s.matches(presented)).map(|(t, _)| Scope::Tenant(t.clone()))
    }
}
