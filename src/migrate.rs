//! `billable migrate`: applies the Postgres migrations in `sql/` (embedded in the
//! binary) to `DATABASE_URL`, each once, in order, each in its own transaction.
//!
//! Applied migrations are recorded in `billable.schema_migrations` (a schema
//! PostgREST does not expose) with a checksum, so a second run applies nothing and an
//! edited released migration is reported instead of silently diverging. An advisory
//! lock lets two deployments start at once without both migrating.
//!
//! `0000_supabase_compat` creates what a Supabase project already has (roles, the
//! `auth` schema, `auth.uid()`); it is skipped when the database already has an
//! `auth` schema, or always with `--no-compat`.

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};

use crate::store::StoreError;

/// One file of `sql/`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The file name without `.sql`; migrations apply in this order.
    pub name: &'static str,
    pub sql: &'static str,
}

/// The migration that stands in for Supabase on plain Postgres.
pub const COMPAT: &str = "0000_supabase_compat";

/// Every migration, in order. Never edit a released one: add a new file.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: COMPAT,
        sql: include_str!("../sql/0000_supabase_compat.sql"),
    },
    Migration {
        name: "0001_tables",
        sql: include_str!("../sql/0001_tables.sql"),
    },
    Migration {
        name: "0002_rls",
        sql: include_str!("../sql/0002_rls.sql"),
    },
    Migration {
        name: "0003_summary",
        sql: include_str!("../sql/0003_summary.sql"),
    },
    Migration {
        name: "0004_calendar_event_states",
        sql: include_str!("../sql/0004_calendar_event_states.sql"),
    },
    Migration {
        name: "0005_review",
        sql: include_str!("../sql/0005_review.sql"),
    },
    Migration {
        name: "0006_learning",
        sql: include_str!("../sql/0006_learning.sql"),
    },
    Migration {
        name: PGMQ,
        sql: include_str!("../sql/0007_pgmq.sql"),
    },
    Migration {
        name: "0008_scan_jobs",
        sql: include_str!("../sql/0008_scan_jobs.sql"),
    },
    Migration {
        name: "0009_user_versions",
        sql: include_str!("../sql/0009_user_versions.sql"),
    },
    Migration {
        name: "0010_gmail_grants",
        sql: include_str!("../sql/0010_gmail_grants.sql"),
    },
    Migration {
        name: "0011_schedules",
        sql: include_str!("../sql/0011_schedules.sql"),
    },
    Migration {
        name: "0012_rate_limits",
        sql: include_str!("../sql/0012_rate_limits.sql"),
    },
    Migration {
        name: "0013_evidence",
        sql: include_str!("../sql/0013_evidence.sql"),
    },
];

/// The migration that provides pgmq: the extension where the database offers it,
/// else pgmq's own install script, vendored (`sql/vendor/`).
pub const PGMQ: &str = "0007_pgmq";
const PGMQ_SQL: &str = include_str!("../sql/vendor/pgmq.sql");

/// Whether to apply the compat migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compat {
    /// Apply it unless the database already has an `auth` schema (Supabase).
    #[default]
    Auto,
    /// Never apply it (record it as skipped).
    Skip,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Applied by this run.
    pub applied: Vec<String>,
    /// Recorded as skipped by this run (the compat migration on Supabase).
    pub skipped: Vec<String>,
    /// Applied (or skipped) by an earlier run.
    pub already: Vec<String>,
}

fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn failed(name: &str, what: &str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    let name = name.to_owned();
    let what = what.to_owned();
    move |e| StoreError::Migration {
        name: name.clone(),
        message: format!("{what}: {}", describe(&e)),
    }
}

/// The database's own message (with detail and hint) when there is one.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => e.to_string(),
    }
}

/// Connects to `database_url` (a `postgres://` URL, without TLS), driving the
/// connection on a background task.
pub async fn connect(database_url: &str) -> Result<Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(database_url, NoTls)
        .await
        .map_err(|e| {
            StoreError::Unavailable(format!(
                "could not connect to DATABASE_URL: {}. Check the URL, that Postgres is running, \
                 and that it accepts connections without TLS from this host",
                describe(&e)
            ))
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "Postgres connection closed with an error");
        }
    });
    Ok(client)
}

/// Applies the pending migrations to `database_url`.
pub async fn migrate(database_url: &str, compat: Compat) -> Result<Report, StoreError> {
    let mut client = connect(database_url).await?;
    run(&mut client, compat).await
}

/// Applies the pending migrations over an open connection.
pub async fn run(client: &mut Client, compat: Compat) -> Result<Report, StoreError> {
    let setup = failed("(tracking table)", "could not prepare the migration table");
    // Session-level: held until this connection closes, so concurrent runs queue.
    client
        .batch_execute("select pg_advisory_lock(hashtext('billable.migrate'))")
        .await
        .map_err(&setup)?;
    client
        .batch_execute(
            "create schema if not exists billable;
             create table if not exists billable.schema_migrations (
               name text primary key,
               checksum text not null,
               skipped boolean not null default false,
               applied_at timestamptz not null default now()
             );",
        )
        .await
        .map_err(&setup)?;
    let rows = client
        .query(
            "select name, checksum, skipped from billable.schema_migrations",
            &[],
        )
        .await
        .map_err(&setup)?;
    let done: std::collections::HashMap<String, (String, bool)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let has_schema = async |name: &str| -> Result<bool, StoreError> {
        Ok(client
            .query_one(
                "select exists (select 1 from pg_namespace where nspname = $1)",
                &[&name],
            )
            .await
            .map_err(&setup)?
            .get(0))
    };
    let has_auth = has_schema("auth").await?;
    let has_pgmq = has_schema("pgmq").await?;
    let pgmq_extension: bool = client
        .query_one(
            "select exists (select 1 from pg_available_extensions where name = 'pgmq')",
            &[],
        )
        .await
        .map_err(&setup)?
        .get(0);

    let mut report = Report::default();
    for m in MIGRATIONS {
        let sum = checksum(m.sql);
        if let Some((recorded, skipped)) = done.get(m.name) {
            if !skipped && *recorded != sum {
                return Err(StoreError::Migration {
                    name: m.name.to_owned(),
                    message: "it was changed after it was applied. Released migrations must \
                              never be edited: restore it and put the change in a new file"
                        .to_owned(),
                });
            }
            report.already.push(m.name.to_owned());
            continue;
        }
        let skip = (m.name == COMPAT && (compat == Compat::Skip || has_auth))
            || (m.name == PGMQ && has_pgmq);
        let sql = match m.name {
            PGMQ if !pgmq_extension => PGMQ_SQL,
            _ => m.sql,
        };
        let tx = client
            .transaction()
            .await
            .map_err(failed(m.name, "could not begin"))?;
        if !skip {
            tx.batch_execute(sql)
                .await
                .map_err(failed(m.name, "could not apply"))?;
        }
        tx.execute(
            "insert into billable.schema_migrations (name, checksum, skipped) values ($1, $2, $3)",
            &[&m.name, &sum, &skip],
        )
        .await
        .map_err(failed(m.name, "could not record"))?;
        tx.commit()
            .await
            .map_err(failed(m.name, "could not commit"))?;
        if skip {
            report.skipped.push(m.name.to_owned());
        } else {
            report.applied.push(m.name.to_owned());
        }
    }
    client
        .batch_execute("select pg_advisory_unlock(hashtext('billable.migrate'))")
        .await
        .map_err(setup)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_file_order_with_unique_names() {
        let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert_eq!(names[0], COMPAT);
    }

    #[test]
    fn every_sql_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".sql").map(str::to_owned)
            })
            .collect();
        files.sort();
        let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, names);
    }
}
