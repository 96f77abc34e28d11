//! Reading desired state and the audit log.
//!
//! Rows are first fetched as raw text and integers, then decoded outside SQLite, so that a damaged
//! document is reported as [`StoreError::Corrupt`] naming its key rather than as a driver error.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::to_u64;
use crate::error::StoreError;
use crate::types::{AuditEntry, AuditMutation, AuditOp, ObjectKey, StoredObject};

/// Wraps a driver error met while serving a read.
pub(super) fn read_failed(e: rusqlite::Error) -> StoreError {
    StoreError::Read { source: e.into() }
}

/// Decode one stored JSON document belonging to `key`.
pub(super) fn parse_doc(key: &ObjectKey, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt { key: key.clone(), source })
}

/// Highest committed revision, 0 when none. `wrap` says which operation a driver error belongs to.
pub(super) fn current_revision(conn: &Connection, wrap: fn(rusqlite::Error) -> StoreError) -> Result<u64, StoreError> {
    let raw: i64 =
        conn.query_row("SELECT ifnull(max(revision), 0) FROM revisions", [], |row| row.get(0)).map_err(wrap)?;
    to_u64("revision", raw)
}

/// The stored document at `key`, if any.
pub(super) fn load_spec(
    conn: &Connection,
    key: &ObjectKey,
    wrap: fn(rusqlite::Error) -> StoreError,
) -> Result<Option<Value>, StoreError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT spec_json FROM objects WHERE kind = ?1 AND tenant IS ?2 AND name = ?3",
            params![key.kind, key.tenant, key.name],
            |row| row.get(0),
        )
        .optional()
        .map_err(wrap)?;
    text.map(|t| parse_doc(key, &t)).transpose()
}

pub(super) fn objects(conn: &Connection) -> Result<Vec<StoredObject>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT kind, tenant, name, spec_json, revision FROM objects \
             ORDER BY kind, tenant IS NOT NULL, tenant, name",
        )
        .map_err(read_failed)?;
    let rows = stmt
        .query_map([], |row| {
            let key = ObjectKey { kind: row.get(0)?, tenant: row.get(1)?, name: row.get(2)? };
            Ok((key, row.get::<_, String>(3)?, row.get::<_, i64>(4)?))
        })
        .map_err(read_failed)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_failed)?;
    let mut out = rows
        .into_iter()
        .map(|(key, text, revision)| {
            Ok(StoredObject { spec: parse_doc(&key, &text)?, revision: to_u64("object revision", revision)?, key })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // SQLite's BINARY collation already matches `String`'s byte order; sorting here makes the
    // documented order depend on `ObjectKey: Ord` alone.
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

struct RawMutation {
    op: String,
    key: ObjectKey,
    before: Option<String>,
    after: Option<String>,
}

pub(super) fn audit(conn: &Connection, tenant: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // ?1 is the tenant filter (NULL = none): an entry qualifies if any of its mutations touched
    // that tenant's objects, and only those mutations are returned with it.
    let mut heads = conn
        .prepare(
            "SELECT r.revision, r.at_unix_ms, r.actor, r.summary FROM revisions r \
             WHERE ?1 IS NULL OR EXISTS (SELECT 1 FROM audit_mutations m \
                                         WHERE m.revision = r.revision AND m.tenant = ?1) \
             ORDER BY r.revision DESC LIMIT ?2",
        )
        .map_err(read_failed)?;
    let heads = heads
        .query_map(params![tenant, limit], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get(2)?, row.get(3)?))
        })
        .map_err(read_failed)?
        .collect::<Result<Vec<(i64, i64, String, String)>, _>>()
        .map_err(read_failed)?;

    let mut muts = conn
        .prepare(
            "SELECT op, kind, tenant, name, before_json, after_json FROM audit_mutations \
             WHERE revision = ?1 AND (?2 IS NULL OR tenant = ?2) ORDER BY seq",
        )
        .map_err(read_failed)?;
    let mut out = Vec::with_capacity(heads.len());
    for (revision, at_unix_ms, actor, summary) in heads {
        let raw = muts
            .query_map(params![revision, tenant], |row| {
                Ok(RawMutation {
                    op: row.get(0)?,
                    key: ObjectKey { kind: row.get(1)?, tenant: row.get(2)?, name: row.get(3)? },
                    before: row.get(4)?,
                    after: row.get(5)?,
                })
            })
            .map_err(read_failed)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_failed)?;
        let mutations = raw.into_iter().map(decode_mutation).collect::<Result<_, _>>()?;
        out.push(AuditEntry { revision: to_u64("revision", revision)?, at_unix_ms, actor, summary, mutations });
    }
    Ok(out)
}

fn decode_mutation(raw: RawMutation) -> Result<AuditMutation, StoreError> {
    let op = match raw.op.as_str() {
        "put" => AuditOp::Put,
        "delete" => AuditOp::Delete,
        _ => return Err(StoreError::Inconsistent { what: "audit operation", value: raw.op }),
    };
    let doc = |text: Option<String>| text.map(|t| parse_doc(&raw.key, &t)).transpose();
    Ok(AuditMutation { op, before: doc(raw.before)?, after: doc(raw.after)?, key: raw.key })
}
