//! Event streams kept per tenant and VM: monitor events (issue #5) and anomaly alerts
//! (issue #6). Appended in batches, read back per tenant and VM by row id.

use rusqlite::{params, Connection};

use super::read::read_failed;
use super::to_u64;
use crate::error::StoreError;
use crate::types::{EventStream, StoredEvent};

/// Each stream is its own table of the same shape.
fn table(stream: EventStream) -> &'static str {
    match stream {
        EventStream::Monitor => "events",
        EventStream::Alerts => "alerts",
    }
}

pub(super) fn append(conn: &mut Connection, stream: EventStream, batch: &[StoredEvent]) -> Result<(), StoreError> {
    let failed = |e: rusqlite::Error| StoreError::AppendEvents { what: stream.entry(), source: e.into() };
    let tx = conn.transaction().map_err(failed)?;
    {
        let sql = format!("INSERT INTO {} (tenant, vm, body_json) VALUES (?1, ?2, ?3)", table(stream));
        let mut stmt = tx.prepare_cached(&sql).map_err(failed)?;
        for e in batch {
            stmt.execute(params![e.tenant, e.vm, e.body.to_string()]).map_err(failed)?;
        }
    }
    tx.commit().map_err(failed)
}

pub(super) fn events(
    conn: &Connection,
    stream: EventStream,
    tenant: Option<&str>,
    vm: Option<&str>,
    after: u64,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = format!(
        "SELECT id, tenant, vm, body_json FROM {} \
         WHERE id > ?1 AND (?2 IS NULL OR tenant = ?2) AND (?3 IS NULL OR vm = ?3) ORDER BY id LIMIT ?4",
        table(stream)
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(read_failed)?;
    let rows = stmt
        .query_map(params![after, tenant, vm, limit], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get::<_, String>(3)?))
        })
        .map_err(read_failed)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_failed)?;
    rows.into_iter()
        .map(|(id, tenant, vm, body)| {
            let id = to_u64("event id", id)?;
            let body = serde_json::from_str(&body).map_err(|source| StoreError::CorruptEvent {
                what: stream.entry(),
                id,
                source,
            })?;
            Ok(StoredEvent { id, tenant, vm, body })
        })
        .collect()
}
