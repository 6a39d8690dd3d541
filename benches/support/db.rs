//! What the benchmarks over a database share: a throw-away PostgreSQL database, this process's
//! peak memory, percentiles.

use anyhow::{Context, Result};

/// This process's peak resident memory (`VmHWM`), MB.
pub fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The `p` quantile (0 to 1) of `sorted`, the nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A new, empty database on the server of `admin` (a URL with a database): its URL and name.
pub async fn postgres_db(admin: &str) -> Result<(String, String)> {
    use sqlx::Connection;
    let name = format!("cybergov_bench_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::PgConnection::connect(admin)
        .await
        .with_context(|| format!("PostgreSQL at {admin}"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await?;
    // Keep the URL's parameters (e.g. `?options=-c%20synchronous_commit%3Doff`).
    let (url, params) = admin.split_once('?').map_or((admin, ""), |(u, p)| (u, p));
    let base = url.rsplit_once('/').context("url has a database")?.0;
    let params = if params.is_empty() {
        String::new()
    } else {
        format!("?{params}")
    };
    Ok((format!("{base}/{name}{params}"), name))
}

/// Drops database `name` of the server of `admin`.
pub async fn drop_postgres_db(admin: &str, name: &str) -> Result<()> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut c)
    .await?;
    Ok(())
}
