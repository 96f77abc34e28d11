//! Committing desired-state changes: objects and their audit entry in one transaction.

use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use serde_json::Value;

use super::read::{current_revision, load_spec};
use crate::error::StoreError;
use crate::types::{Actor, AuditOp, Mutation, ObjectKey};

fn commit_failed(e: rusqlite::Error) -> StoreError {
    StoreError::Commit { source: e.into() }
}

/// See [`Store::commit`](crate::Store::commit).
pub(super) fn commit(
    conn: &mut Connection,
    actor: &Actor,
    summary: &str,
    mutations: &[Mutation],
    clock_unix_ms: i64,
) -> Result<u64, StoreError> {
    // IMMEDIATE: take the write lock before reading the current revision, so the revision we
    // compute cannot be taken by another writer of the same file.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(commit_failed)?;
    let current = current_revision(&tx, commit_failed)?;
    let next = current + 1;
    // Written first because objects and audit rows reference it; rolled back below if the
    // commit turns out to change nothing.
    tx.execute(
        "INSERT INTO revisions (revision, at_unix_ms, actor, summary) VALUES (?1, ?2, ?3, ?4)",
        params![revision_sql(next)?, clock_unix_ms, actor.0, summary],
    )
    .map_err(commit_failed)?;

    let mut seq: i64 = 0;
    for mutation in mutations {
        // Mutations apply in order, so a key touched twice sees the first change as its `before`.
        let key = mutation.key();
        let before = load_spec(&tx, key, commit_failed)?;
        let (op, after) = match (mutation, &before) {
            (Mutation::Put { spec, .. }, Some(old)) if old == spec => continue,
            (Mutation::Delete { .. }, None) => continue,
            (Mutation::Put { spec, .. }, Some(_)) => {
                update_object(&tx, key, spec, next)?;
                (AuditOp::Put, Some(spec))
            }
            (Mutation::Put { spec, .. }, None) => {
                insert_object(&tx, key, spec, next)?;
                (AuditOp::Put, Some(spec))
            }
            (Mutation::Delete { .. }, Some(_)) => {
                delete_object(&tx, key)?;
                (AuditOp::Delete, None)
            }
        };
        tx.execute(
            "INSERT INTO audit_mutations \
             (revision, seq, op, kind, tenant, name, before_json, after_json) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                revision_sql(next)?,
                seq,
                op.as_str(),
                key.kind,
                key.tenant,
                key.name,
                before.as_ref().map(Value::to_string),
                after.map(Value::to_string),
            ],
        )
        .map_err(commit_failed)?;
        seq += 1;
    }

    if seq == 0 {
        // Every mutation was a no-op: dropping `tx` rolls back the revision row.
        return Ok(current);
    }
    tx.commit().map_err(commit_failed)?;
    Ok(next)
}

fn insert_object(tx: &Transaction<'_>, key: &ObjectKey, spec: &Value, rev: u64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO objects (kind, tenant, name, spec_json, revision) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![key.kind, key.tenant, key.name, spec.to_string(), revision_sql(rev)?],
    )
    .map_err(commit_failed)?;
    Ok(())
}

fn update_object(tx: &Transaction<'_>, key: &ObjectKey, spec: &Value, rev: u64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE objects SET spec_json = ?4, revision = ?5 \
         WHERE kind = ?1 AND tenant IS ?2 AND name = ?3",
        params![key.kind, key.tenant, key.name, spec.to_string(), revision_sql(rev)?],
    )
    .map_err(commit_failed)?;
    Ok(())
}

fn delete_object(tx: &Transaction<'_>, key: &ObjectKey) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM objects WHERE kind = ?1 AND tenant IS ?2 AND name = ?3",
        params![key.kind, key.tenant, key.name],
    )
    .map_err(commit_failed)?;
    Ok(())
}

/// A revision as SQLite's i64. Revisions grow by one per commit from 1, so exceeding i64 would
/// take longer than the age of the universe; the check keeps the conversion honest anyway.
pub(super) fn revision_sql(rev: u64) -> Result<i64, StoreError> {
    i64::try_from(rev).or(Err(StoreError::Inconsistent { what: "revision", value: rev.to_string() }))
}
