//! Scan tasks (issue #7): one row per task, rewritten when it ends, read per tenant and state.

use rusqlite::{params, Connection, OptionalExtension};

use super::read::read_failed;
use super::to_u64;
use crate::error::StoreError;
use crate::types::StoredScanTask;

pub(super) fn put(conn: &Connection, task: &StoredScanTask) -> Result<(), StoreError> {
    let id = i64::try_from(task.id).map_err(|e| StoreError::PutScanTask { id: task.id, source: e.into() })?;
    conn.prepare_cached(
        "INSERT INTO scan_tasks (id, tenant, state, started_unix_ms, body_json) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, state = excluded.state,
           started_unix_ms = excluded.started_unix_ms, body_json = excluded.body_json",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![id, task.tenant, task.state, task.started_unix_ms, task.body.to_string()])
    })
    .map_err(|e| StoreError::PutScanTask { id: task.id, source: e.into() })?;
    Ok(())
}

/// A row as fetched, decoded outside SQLite so that a damaged body names its task.
type Row = (i64, String, String, i64, String);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn decode((id, tenant, state, started_unix_ms, body): Row) -> Result<StoredScanTask, StoreError> {
    let id = to_u64("scan task id", id)?;
    let body = serde_json::from_str(&body).map_err(|source| StoreError::CorruptScanTask { id, source })?;
    Ok(StoredScanTask { id, tenant, state, started_unix_ms, body })
}

pub(super) fn task(conn: &Connection, id: u64) -> Result<Option<StoredScanTask>, StoreError> {
    let Ok(id) = i64::try_from(id) else { return Ok(None) };
    conn.query_row(
        "SELECT id, tenant, state, started_unix_ms, body_json FROM scan_tasks WHERE id = ?1",
        params![id],
        row,
    )
    .optional()
    .map_err(read_failed)?
    .map(decode)
    .transpose()
}

pub(super) fn tasks(
    conn: &Connection,
    tenant: Option<&str>,
    state: Option<&str>,
    after: u64,
    limit: usize,
) -> Result<Vec<StoredScanTask>, StoreError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, tenant, state, started_unix_ms, body_json FROM scan_tasks \
             WHERE id > ?1 AND (?2 IS NULL OR tenant = ?2) AND (?3 IS NULL OR state = ?3) ORDER BY id LIMIT ?4",
        )
        .map_err(read_failed)?;
    let rows = stmt
        .query_map(params![after, tenant, state, limit], row)
        .map_err(read_failed)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_failed)?;
    rows.into_iter().map(decode).collect()
}

pub(super) fn last_id(conn: &Connection) -> Result<u64, StoreError> {
    let raw: i64 =
        conn.query_row("SELECT ifnull(max(id), 0) FROM scan_tasks", [], |r| r.get(0)).map_err(read_failed)?;
    to_u64("scan task id", raw)
}
