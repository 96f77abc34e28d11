//! Schema and its migrations, versioned with SQLite's `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`. Steps are append-only: never
//! edit a step that has shipped, add a new one. Each step runs in its own transaction together
//! with the version bump, so a failed step leaves the database at the previous version.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;

/// Ordered migration steps; see the module doc.
const MIGRATIONS: &[&str] = &[
    // 1: desired state, audit log, applied state.
    r#"
    CREATE TABLE revisions (
        revision   INTEGER PRIMARY KEY CHECK (revision > 0),
        at_unix_ms INTEGER NOT NULL,
        actor      TEXT    NOT NULL,
        summary    TEXT    NOT NULL
    ) STRICT;

    CREATE TABLE objects (
        id        INTEGER PRIMARY KEY,
        kind      TEXT    NOT NULL,
        tenant    TEXT,
        name      TEXT    NOT NULL,
        spec_json TEXT    NOT NULL,
        revision  INTEGER NOT NULL REFERENCES revisions (revision)
    ) STRICT;
    -- tenant is NULL for global objects. SQLite treats NULLs as distinct in a UNIQUE index, so the
    -- key is indexed on expressions that tell NULL apart from every string, including ''.
    CREATE UNIQUE INDEX objects_key ON objects (kind, tenant IS NULL, ifnull(tenant, ''), name);

    CREATE TABLE audit_mutations (
        revision    INTEGER NOT NULL REFERENCES revisions (revision),
        seq         INTEGER NOT NULL,
        op          TEXT    NOT NULL CHECK (op IN ('put', 'delete')),
        kind        TEXT    NOT NULL,
        tenant      TEXT,
        name        TEXT    NOT NULL,
        before_json TEXT,
        after_json  TEXT,
        PRIMARY KEY (revision, seq)
    ) STRICT;
    CREATE INDEX audit_mutations_tenant ON audit_mutations (tenant, revision);

    CREATE TABLE applied_state (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        revision  INTEGER NOT NULL CHECK (revision >= 0)
    ) STRICT;

    -- cookie holds the u64 flow cookie bit for bit in SQLite's i64.
    CREATE TABLE applied_owners (
        cookie      INTEGER PRIMARY KEY,
        digest      TEXT    NOT NULL,
        flow_count  INTEGER NOT NULL CHECK (flow_count BETWEEN 0 AND 4294967295),
        groups_json TEXT    NOT NULL
    ) STRICT;
    "#,
    // 2: monitor events (issue #5), per tenant.
    r#"
    CREATE TABLE events (
        id        INTEGER PRIMARY KEY,
        tenant    TEXT    NOT NULL,
        vm        TEXT    NOT NULL,
        body_json TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX events_tenant ON events (tenant, vm, id);
    "#,
    // 3: anomaly alerts (issue #6), per tenant.
    r#"
    CREATE TABLE alerts (
        id        INTEGER PRIMARY KEY,
        tenant    TEXT    NOT NULL,
        vm        TEXT    NOT NULL,
        body_json TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX alerts_tenant ON alerts (tenant, vm, id);
    "#,
    // 4: scan tasks and their findings (issue #7), per tenant; were a file of their own before.
    r#"
    CREATE TABLE scan_tasks (
        id              INTEGER PRIMARY KEY CHECK (id >= 0),
        tenant          TEXT    NOT NULL,
        state           TEXT    NOT NULL,
        started_unix_ms INTEGER NOT NULL,
        body_json       TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX scan_tasks_tenant ON scan_tasks (tenant, id);
    CREATE INDEX scan_tasks_state ON scan_tasks (state, id);
    "#,
];

/// Schema version this build creates and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Bring the database to [`SCHEMA_VERSION`]. A no-op on a current database.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_with(conn, MIGRATIONS)
}

fn migrate_with(conn: &mut Connection, steps: &[&str]) -> Result<(), StoreError> {
    let supported = u32::try_from(steps.len()).expect("migration list length fits in u32");
    loop {
        // IMMEDIATE takes the write lock before reading the version, so two processes opening
        // the same new file cannot both run a step.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::Read { source: e.into() })?;
        let found = user_version(&tx)?;
        if found > supported {
            return Err(StoreError::SchemaTooNew { found, supported });
        }
        if found == supported {
            return Ok(());
        }
        let to = found + 1;
        let failed = |e: rusqlite::Error| StoreError::Migrate { from: found, to, source: e.into() };
        tx.execute_batch(steps[found as usize]).map_err(failed)?;
        tx.pragma_update(None, "user_version", to).map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
}

fn user_version(conn: &Connection) -> Result<u32, StoreError> {
    let raw: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| StoreError::Read { source: e.into() })?;
    // user_version is a signed 32-bit header field; we only ever write small positive values.
    u32::try_from(raw).or(Err(StoreError::Inconsistent { what: "schema version", value: raw.to_string() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_exists(conn: &Connection, name: &str) -> bool {
        conn.query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1", [name], |row| {
            row.get::<_, i64>(0)
        })
        .unwrap()
            == 1
    }

    #[test]
    fn empty_database_is_migrated_to_current_version() {
        let mut conn = Connection::open_in_memory().unwrap();

        migrate(&mut conn).unwrap();

        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let tables = ["revisions", "objects", "audit_mutations", "applied_state", "applied_owners", "events", "alerts"];
        for table in tables.into_iter().chain(["scan_tasks"]) {
            assert!(table_exists(&conn, table), "missing table {table}");
        }
    }

    /// Issue #14: scan tasks moved into the main store as step 4; a version-3 file keeps its rows.
    #[test]
    fn a_version_3_database_gains_scan_tasks_and_keeps_its_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..3]).unwrap();
        conn.execute("INSERT INTO alerts (tenant, vm, body_json) VALUES ('alpha', 'web1', '{}')", []).unwrap();
        assert!(!table_exists(&conn, "scan_tasks"));

        migrate(&mut conn).unwrap();

        assert_eq!(user_version(&conn).unwrap(), 4);
        assert!(table_exists(&conn, "scan_tasks"));
        let alerts: i64 = conn.query_row("SELECT count(*) FROM alerts", [], |r| r.get(0)).unwrap();
        assert_eq!(alerts, 1);
    }

    #[test]
    fn a_version_5_database_is_refused_by_this_build() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 5).unwrap();

        let err = migrate(&mut conn).unwrap_err();

        assert!(matches!(err, StoreError::SchemaTooNew { found: 5, supported: 4 }), "{err:?}");
        assert!(!table_exists(&conn, "scan_tasks"), "nothing may be created in a newer database");
    }

    #[test]
    fn migrating_a_current_database_again_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute("INSERT INTO applied_state (singleton, revision) VALUES (1, 0)", []).unwrap();

        // Re-running step 1 would fail ("table revisions already exists"), so success means no
        // step ran, and the row proves nothing was recreated.
        migrate(&mut conn).unwrap();

        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let rows: i64 = conn.query_row("SELECT count(*) FROM applied_state", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn database_from_a_newer_build_is_rejected_naming_both_versions() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 7).unwrap();

        let err = migrate(&mut conn).unwrap_err();

        assert!(
            matches!(err, StoreError::SchemaTooNew { found, supported }
                if found == SCHEMA_VERSION + 7 && supported == SCHEMA_VERSION),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&(SCHEMA_VERSION + 7).to_string()), "{msg}");
        assert!(msg.contains(&format!("version {SCHEMA_VERSION}")), "{msg}");
        assert!(!table_exists(&conn, "revisions"), "nothing may be created in a newer database");
    }

    #[test]
    fn failed_step_rolls_back_and_leaves_the_previous_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        let steps = ["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (x INTEGER); SELECT no_such_fn();"];

        let err = migrate_with(&mut conn, &steps).unwrap_err();

        assert!(matches!(err, StoreError::Migrate { from: 1, to: 2, .. }), "{err:?}");
        assert_eq!(user_version(&conn).unwrap(), 1);
        assert!(table_exists(&conn, "a"));
        assert!(!table_exists(&conn, "b"), "half of the failed step was kept");
        assert!(!err.to_string().contains("no_such_fn"), "SQL leaked into the message: {err}");
    }

    #[test]
    fn applies_only_the_steps_not_yet_applied() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_with(&mut conn, &["CREATE TABLE a (x INTEGER);"]).unwrap();

        migrate_with(&mut conn, &["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (x INTEGER);"]).unwrap();

        assert_eq!(user_version(&conn).unwrap(), 2);
        assert!(table_exists(&conn, "b"));
    }
}
