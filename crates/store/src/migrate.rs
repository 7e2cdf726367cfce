//! Versioned migrations, one folder per engine, applied at start.
//!
//! Each file is applied once, in version order, inside a transaction, and
//! recorded in `schema_migrations` (system metadata, the one table without a
//! tenant). On PostgreSQL an advisory lock keeps two nodes starting at once
//! from applying the same migration twice.

use crate::{Engine, StoreResult};
use sqlx::{AnyConnection, Connection};

/// A migration: version, name and SQL.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// SQLite migrations.
pub const SQLITE: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/sqlite/0001_init.sql") },
    Migration { version: 2, name: "delivery", sql: include_str!("../migrations/sqlite/0002_delivery.sql") },
    Migration {
        version: 3,
        name: "related_persons",
        sql: include_str!("../migrations/sqlite/0003_related_persons.sql"),
    },
    Migration { version: 4, name: "oauth_tokens", sql: include_str!("../migrations/sqlite/0004_oauth_tokens.sql") },
    Migration {
        version: 5,
        name: "docplanner_notifications",
        sql: include_str!("../migrations/sqlite/0005_docplanner_notifications.sql"),
    },
    Migration {
        version: 6,
        name: "patient_contacts",
        sql: include_str!("../migrations/sqlite/0006_patient_contacts.sql"),
    },
    Migration {
        version: 7,
        name: "patient_messaging",
        sql: include_str!("../migrations/sqlite/0007_patient_messaging.sql"),
    },
    Migration { version: 8, name: "solo_webhooks", sql: include_str!("../migrations/sqlite/0008_solo_webhooks.sql") },
    Migration {
        version: 10,
        name: "scheduler_wakeups",
        sql: include_str!("../migrations/sqlite/0010_scheduler_wakeups.sql"),
    },
    Migration {
        version: 11,
        name: "solo_care_record",
        sql: include_str!("../migrations/sqlite/0011_solo_care_record.sql"),
    },
    Migration { version: 12, name: "busy_probe", sql: include_str!("../migrations/sqlite/0012_busy_probe.sql") },
    Migration {
        version: 13,
        name: "search_indexes",
        sql: include_str!("../migrations/sqlite/0013_search_indexes.sql"),
    },
    Migration {
        version: 15,
        name: "delivery_pending",
        sql: include_str!("../migrations/sqlite/0015_delivery_pending.sql"),
    },
    Migration { version: 16, name: "retention", sql: include_str!("../migrations/sqlite/0016_retention.sql") },
    Migration {
        version: 17,
        name: "delivery_queue_index",
        sql: include_str!("../migrations/sqlite/0017_delivery_queue_index.sql"),
    },
    Migration {
        version: 18,
        name: "delivery_queues",
        sql: include_str!("../migrations/sqlite/0018_delivery_queues.sql"),
    },
];

/// PostgreSQL migrations.
pub const POSTGRES: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/postgres/0001_init.sql") },
    Migration { version: 2, name: "delivery", sql: include_str!("../migrations/postgres/0002_delivery.sql") },
    Migration {
        version: 3,
        name: "related_persons",
        sql: include_str!("../migrations/postgres/0003_related_persons.sql"),
    },
    Migration { version: 4, name: "oauth_tokens", sql: include_str!("../migrations/postgres/0004_oauth_tokens.sql") },
    Migration {
        version: 5,
        name: "docplanner_notifications",
        sql: include_str!("../migrations/postgres/0005_docplanner_notifications.sql"),
    },
    Migration {
        version: 6,
        name: "patient_contacts",
        sql: include_str!("../migrations/postgres/0006_patient_contacts.sql"),
    },
    Migration {
        version: 7,
        name: "patient_messaging",
        sql: include_str!("../migrations/postgres/0007_patient_messaging.sql"),
    },
    Migration { version: 8, name: "solo_webhooks", sql: include_str!("../migrations/postgres/0008_solo_webhooks.sql") },
    Migration {
        version: 10,
        name: "scheduler_wakeups",
        sql: include_str!("../migrations/postgres/0010_scheduler_wakeups.sql"),
    },
    Migration {
        version: 11,
        name: "solo_care_record",
        sql: include_str!("../migrations/postgres/0011_solo_care_record.sql"),
    },
    Migration {
        version: 13,
        name: "search_indexes",
        sql: include_str!("../migrations/postgres/0013_search_indexes.sql"),
    },
    Migration {
        version: 14,
        name: "availability_generation",
        sql: include_str!("../migrations/postgres/0014_availability_generation.sql"),
    },
    Migration {
        version: 15,
        name: "delivery_pending",
        sql: include_str!("../migrations/postgres/0015_delivery_pending.sql"),
    },
    Migration { version: 16, name: "retention", sql: include_str!("../migrations/postgres/0016_retention.sql") },
    Migration {
        version: 17,
        name: "delivery_queue_index",
        sql: include_str!("../migrations/postgres/0017_delivery_queue_index.sql"),
    },
    Migration {
        version: 18,
        name: "delivery_queues",
        sql: include_str!("../migrations/postgres/0018_delivery_queues.sql"),
    },
];

/// Applies every migration not yet applied; answers the versions it applied.
pub async fn run(conn: &mut AnyConnection, engine: Engine) -> StoreResult<Vec<i64>> {
    let (migrations, create) = match engine {
        Engine::Sqlite => (
            SQLITE,
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        ),
        Engine::Postgres => (
            POSTGRES,
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        ),
    };
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_lock(7301964)").execute(&mut *conn).await?;
    }
    let result = apply(conn, migrations, create).await;
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_unlock(7301964)").execute(&mut *conn).await?;
    }
    result
}

async fn apply(conn: &mut AnyConnection, migrations: &[Migration], create: &'static str) -> StoreResult<Vec<i64>> {
    sqlx::query(create).execute(&mut *conn).await?;
    let mut applied = Vec::new();
    for m in migrations {
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(&mut *conn)
            .await?;
        if done.is_some() {
            continue;
        }
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(jiff::Timestamp::now().as_second())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        applied.push(m.version);
    }
    Ok(applied)
}
