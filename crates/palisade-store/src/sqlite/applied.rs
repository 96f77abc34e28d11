//! The reconciler's record of what it last programmed: one revision plus one row per flow owner.

use std::collections::HashSet;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::commit::revision_sql;
use super::read::{current_revision, read_failed};
use super::to_u64;
use crate::error::StoreError;
use crate::types::AppliedOwner;

fn record_failed(e: rusqlite::Error) -> StoreError {
    StoreError::RecordApplied { source: e.into() }
}

/// Flow cookies use all 64 bits; SQLite integers are i64. Store the bits unchanged.
fn cookie_to_sql(cookie: u64) -> i64 {
    i64::from_ne_bytes(cookie.to_ne_bytes())
}

fn cookie_from_sql(raw: i64) -> u64 {
    u64::from_ne_bytes(raw.to_ne_bytes())
}

pub(super) fn applied(conn: &Connection) -> Result<(u64, Vec<AppliedOwner>), StoreError> {
    // One read transaction so the revision and the owners come from the same record.
    let tx = conn.unchecked_transaction().map_err(read_failed)?;
    let revision: Option<i64> = tx
        .query_row("SELECT revision FROM applied_state WHERE singleton = 1", [], |row| row.get(0))
        .optional()
        .map_err(read_failed)?;
    let revision = to_u64("applied revision", revision.unwrap_or(0))?;

    let mut stmt =
        tx.prepare("SELECT cookie, digest, flow_count, groups_json FROM applied_owners").map_err(read_failed)?;
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?, row.get::<_, String>(3)?))
        })
        .map_err(read_failed)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_failed)?;
    let mut owners = rows
        .into_iter()
        .map(|(cookie, digest, flow_count, groups)| {
            let cookie = cookie_from_sql(cookie);
            Ok(AppliedOwner {
                cookie,
                digest,
                flow_count: u32::try_from(flow_count)
                    .or(Err(StoreError::Inconsistent { what: "applied flow count", value: flow_count.to_string() }))?,
                groups: serde_json::from_str(&groups)
                    .map_err(|source| StoreError::CorruptApplied { cookie, source })?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    owners.sort_by_key(|o| o.cookie);
    Ok((revision, owners))
}

pub(super) fn record_applied(conn: &mut Connection, revision: u64, owners: &[AppliedOwner]) -> Result<(), StoreError> {
    let mut seen = HashSet::with_capacity(owners.len());
    if let Some(dup) = owners.iter().find(|o| !seen.insert(o.cookie)) {
        return Err(StoreError::DuplicateCookie { cookie: dup.cookie });
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(record_failed)?;
    let current = current_revision(&tx, record_failed)?;
    if revision > current {
        return Err(StoreError::AppliedAhead { applied: revision, current });
    }
    tx.execute(
        "INSERT INTO applied_state (singleton, revision) VALUES (1, ?1) \
         ON CONFLICT (singleton) DO UPDATE SET revision = excluded.revision",
        [revision_sql(revision)?],
    )
    .map_err(record_failed)?;
    tx.execute("DELETE FROM applied_owners", []).map_err(record_failed)?;
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO applied_owners (cookie, digest, flow_count, groups_json) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(record_failed)?;
        for owner in owners {
            insert
                .execute(params![
                    cookie_to_sql(owner.cookie),
                    owner.digest,
                    owner.flow_count,
                    serde_json::Value::from(owner.groups.clone()).to_string(),
                ])
                .map_err(record_failed)?;
        }
    }
    tx.commit().map_err(record_failed)
}
