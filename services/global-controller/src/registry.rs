//! The registry of meeting controllers and media handlers, in `PostgreSQL`
//! so every GC replica sees the same controllers.
//!
//! "Healthy" means: heartbeat within the staleness threshold (database
//! clock) and reported health `healthy`. Controllers silent for
//! [`FORGET_AFTER_THRESHOLDS`] thresholds are deleted; their next heartbeat
//! gets NOT_FOUND and they register again.

use std::time::Duration;

use proto::v1::{Capacity, HealthStatus, Load};
use sqlx::{PgPool, Row as _};

/// Controllers silent for this many staleness thresholds are forgotten.
pub const FORGET_AFTER_THRESHOLDS: u32 = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: &'static str,
    pub reason: &'static str,
}

fn invalid(field: &'static str, reason: &'static str) -> Invalid {
    Invalid { field, reason }
}

/// Controller ids and advertised addresses: one definition, shared with the
/// controllers' own config checks.
pub use common::config::{valid_controller_id as valid_id, valid_host_port as valid_address};

fn capacity(c: Option<&Capacity>) -> Result<(i32, i32), Invalid> {
    let c = c.ok_or_else(|| invalid("capacity", "is required"))?;
    let max_meetings = i32::try_from(c.max_meetings).unwrap_or(i32::MAX);
    let max_participants = i32::try_from(c.max_participants).unwrap_or(i32::MAX);
    if max_meetings < 1 || max_participants < 1 {
        return Err(invalid(
            "capacity",
            "max_meetings and max_participants must be at least 1",
        ));
    }
    Ok((max_meetings, max_participants))
}

fn region(region: &str) -> Result<(), Invalid> {
    if region.is_empty() || region.len() > 64 || region.contains(char::is_whitespace) {
        return Err(invalid(
            "region",
            "must be 1 to 64 characters without spaces",
        ));
    }
    Ok(())
}

fn health_word(status: i32) -> &'static str {
    match HealthStatus::try_from(status) {
        Ok(HealthStatus::Degraded) => "degraded",
        Ok(HealthStatus::Draining) => "draining",
        // Unspecified counts as healthy: a controller that does not say
        // otherwise is taking work.
        _ => "healthy",
    }
}

fn load(load: Option<&Load>) -> (i32, i32) {
    load.map_or((0, 0), |l| {
        (
            i32::try_from(l.current_meetings).unwrap_or(i32::MAX),
            i32::try_from(l.current_participants).unwrap_or(i32::MAX),
        )
    })
}

fn truncate(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("unknown controller")]
    NotFound,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// The checks a controller's registration shares, MC or MH: its id, region,
/// gRPC address, the address clients reach (named by `advertised.0`), and
/// capacity. Returns `(max_meetings, max_participants)`.
fn validate_registration(
    id: (&'static str, &str),
    region_name: &str,
    grpc_address: &str,
    advertised: (&'static str, &str),
    cap: Option<&Capacity>,
) -> Result<(i32, i32), RegistryError> {
    if !valid_id(id.1) {
        return Err(invalid(id.0, "must be 1 to 128 id characters").into());
    }
    region(region_name)?;
    if !valid_address(grpc_address) {
        return Err(invalid("grpc_address", "must be host:port").into());
    }
    if !valid_address(advertised.1) {
        return Err(invalid(advertised.0, "must be host:port").into());
    }
    Ok(capacity(cap)?)
}

pub async fn register_mc(
    pool: &PgPool,
    req: &proto::v1::RegisterMcRequest,
) -> Result<(), RegistryError> {
    let (max_meetings, max_participants) = validate_registration(
        ("mc_id", &req.mc_id),
        &req.region,
        &req.grpc_address,
        ("webtransport_address", &req.webtransport_address),
        req.capacity.as_ref(),
    )?;
    sqlx::query(
        "INSERT INTO meeting_controllers
           (mc_id, region, grpc_address, webtransport_address, max_meetings, max_participants, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (mc_id) DO UPDATE SET
           region = EXCLUDED.region,
           grpc_address = EXCLUDED.grpc_address,
           webtransport_address = EXCLUDED.webtransport_address,
           max_meetings = EXCLUDED.max_meetings,
           max_participants = EXCLUDED.max_participants,
           version = EXCLUDED.version,
           current_meetings = 0,
           current_participants = 0,
           health = 'healthy',
           registered_at = now(),
           last_heartbeat_at = now()",
    )
    .bind(&req.mc_id)
    .bind(&req.region)
    .bind(&req.grpc_address)
    .bind(&req.webtransport_address)
    .bind(max_meetings)
    .bind(max_participants)
    .bind(truncate(&req.version, 64))
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn mc_heartbeat(
    pool: &PgPool,
    req: &proto::v1::HeartbeatRequest,
) -> Result<(), RegistryError> {
    if !valid_id(&req.mc_id) {
        return Err(invalid("mc_id", "must be 1 to 128 id characters").into());
    }
    let (meetings, participants) = load(req.load.as_ref());
    let updated = sqlx::query(
        "UPDATE meeting_controllers
         SET current_meetings = $2, current_participants = $3, health = $4,
             last_heartbeat_at = now()
         WHERE mc_id = $1",
    )
    .bind(&req.mc_id)
    .bind(meetings)
    .bind(participants)
    .bind(health_word(req.health))
    .execute(pool)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(RegistryError::NotFound);
    }
    Ok(())
}

pub async fn register_mh(
    pool: &PgPool,
    req: &proto::v1::RegisterMhRequest,
) -> Result<(), RegistryError> {
    let (max_meetings, max_participants) = validate_registration(
        ("mh_id", &req.mh_id),
        &req.region,
        &req.grpc_address,
        ("media_address", &req.media_address),
        req.capacity.as_ref(),
    )?;
    sqlx::query(
        "INSERT INTO media_handlers
           (mh_id, region, grpc_address, media_address, max_meetings, max_participants, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (mh_id) DO UPDATE SET
           region = EXCLUDED.region,
           grpc_address = EXCLUDED.grpc_address,
           media_address = EXCLUDED.media_address,
           max_meetings = EXCLUDED.max_meetings,
           max_participants = EXCLUDED.max_participants,
           version = EXCLUDED.version,
           current_meetings = 0,
           current_participants = 0,
           bandwidth_utilization = 0,
           health = 'healthy',
           registered_at = now(),
           last_heartbeat_at = now()",
    )
    .bind(&req.mh_id)
    .bind(&req.region)
    .bind(&req.grpc_address)
    .bind(&req.media_address)
    .bind(max_meetings)
    .bind(max_participants)
    .bind(truncate(&req.version, 64))
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn mh_load_report(
    pool: &PgPool,
    req: &proto::v1::LoadReportRequest,
) -> Result<(), RegistryError> {
    if !valid_id(&req.mh_id) {
        return Err(invalid("mh_id", "must be 1 to 128 id characters").into());
    }
    if !req.bandwidth_utilization.is_finite() || !(0.0..=1.0).contains(&req.bandwidth_utilization) {
        return Err(invalid("bandwidth_utilization", "must be between 0.0 and 1.0").into());
    }
    let (meetings, participants) = load(req.load.as_ref());
    let updated = sqlx::query(
        "UPDATE media_handlers
         SET current_meetings = $2, current_participants = $3, health = $4,
             bandwidth_utilization = $5, last_heartbeat_at = now()
         WHERE mh_id = $1",
    )
    .bind(&req.mh_id)
    .bind(meetings)
    .bind(participants)
    .bind(health_word(req.health))
    .bind(req.bandwidth_utilization)
    .execute(pool)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(RegistryError::NotFound);
    }
    Ok(())
}

/// A meeting controller GC can place meetings on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McCandidate {
    pub mc_id: String,
    pub grpc_address: String,
    pub webtransport_address: String,
}

/// A media handler GC can hand to a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MhCandidate {
    pub mh_id: String,
    pub grpc_address: String,
    pub media_address: String,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Healthy MCs with room for a meeting, own region first, least loaded first.
pub async fn mc_candidates(
    pool: &PgPool,
    region: &str,
    staleness: Duration,
    limit: i64,
) -> Result<Vec<McCandidate>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT mc_id, grpc_address, webtransport_address FROM meeting_controllers
         WHERE last_heartbeat_at > now() - make_interval(secs => $1)
           AND health = 'healthy'
           AND current_meetings < max_meetings
           AND current_participants < max_participants
         ORDER BY (region = $2) DESC,
                  current_meetings::float8 / max_meetings ASC,
                  random()
         LIMIT $3",
    )
    .bind(secs(staleness))
    .bind(region)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(McCandidate {
                mc_id: r.try_get("mc_id")?,
                grpc_address: r.try_get("grpc_address")?,
                webtransport_address: r.try_get("webtransport_address")?,
            })
        })
        .collect()
}

/// The MC a meeting is already on, if it is still alive (capacity does not
/// matter: it already hosts the meeting).
pub async fn live_mc(
    pool: &PgPool,
    mc_id: &str,
    staleness: Duration,
) -> Result<Option<McCandidate>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT mc_id, grpc_address, webtransport_address FROM meeting_controllers
         WHERE mc_id = $1 AND health <> 'draining'
           AND last_heartbeat_at > now() - make_interval(secs => $2)",
    )
    .bind(mc_id)
    .bind(secs(staleness))
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(McCandidate {
            mc_id: r.try_get("mc_id")?,
            grpc_address: r.try_get("grpc_address")?,
            webtransport_address: r.try_get("webtransport_address")?,
        })
    })
    .transpose()
}

/// Healthy MHs with room, own region first, least loaded first. ADR-0012:
/// no new participants above 80 % bandwidth.
pub async fn mh_candidates(
    pool: &PgPool,
    region: &str,
    staleness: Duration,
    limit: i64,
) -> Result<Vec<MhCandidate>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT mh_id, grpc_address, media_address FROM media_handlers
         WHERE last_heartbeat_at > now() - make_interval(secs => $1)
           AND health = 'healthy'
           AND current_participants < max_participants
           AND current_meetings < max_meetings
           AND bandwidth_utilization < 0.8
         ORDER BY (region = $2) DESC,
                  current_participants::float8 / max_participants ASC,
                  random()
         LIMIT $3",
    )
    .bind(secs(staleness))
    .bind(region)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(mh_from_row).collect()
}

fn mh_from_row(r: &sqlx::postgres::PgRow) -> Result<MhCandidate, sqlx::Error> {
    Ok(MhCandidate {
        mh_id: r.try_get("mh_id")?,
        grpc_address: r.try_get("grpc_address")?,
        media_address: r.try_get("media_address")?,
    })
}

/// The MH a meeting already uses, if still alive and not draining.
pub async fn live_mh(
    pool: &PgPool,
    mh_id: &str,
    staleness: Duration,
) -> Result<Option<MhCandidate>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT mh_id, grpc_address, media_address FROM media_handlers
         WHERE mh_id = $1 AND health <> 'draining'
           AND last_heartbeat_at > now() - make_interval(secs => $2)",
    )
    .bind(mh_id)
    .bind(secs(staleness))
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(mh_from_row).transpose()
}

/// Deletes controllers silent for [`FORGET_AFTER_THRESHOLDS`] thresholds.
/// Returns how many MCs and MHs were forgotten.
pub async fn forget_silent(pool: &PgPool, staleness: Duration) -> Result<(u64, u64), sqlx::Error> {
    let cutoff = secs(staleness) * f64::from(FORGET_AFTER_THRESHOLDS);
    let mcs = sqlx::query(
        "DELETE FROM meeting_controllers WHERE last_heartbeat_at < now() - make_interval(secs => $1)",
    )
    .bind(cutoff)
    .execute(pool)
    .await?
    .rows_affected();
    let mhs = sqlx::query(
        "DELETE FROM media_handlers WHERE last_heartbeat_at < now() - make_interval(secs => $1)",
    )
    .bind(cutoff)
    .execute(pool)
    .await?
    .rows_affected();
    Ok((mcs, mhs))
}

/// Healthy and stale controller counts, for the `gc_controllers` gauge.
pub async fn counts(
    pool: &PgPool,
    staleness: Duration,
) -> Result<[(&'static str, &'static str, i64); 4], sqlx::Error> {
    let row = sqlx::query(
        "SELECT
           (SELECT count(*) FROM meeting_controllers WHERE last_heartbeat_at > now() - make_interval(secs => $1)) AS mc_live,
           (SELECT count(*) FROM meeting_controllers WHERE last_heartbeat_at <= now() - make_interval(secs => $1)) AS mc_stale,
           (SELECT count(*) FROM media_handlers WHERE last_heartbeat_at > now() - make_interval(secs => $1)) AS mh_live,
           (SELECT count(*) FROM media_handlers WHERE last_heartbeat_at <= now() - make_interval(secs => $1)) AS mh_stale",
    )
    .bind(secs(staleness))
    .fetch_one(pool)
    .await?;
    Ok([
        ("mc", "live", row.try_get("mc_live")?),
        ("mc", "stale", row.try_get("mc_stale")?),
        ("mh", "live", row.try_get("mh_live")?),
        ("mh", "stale", row.try_get("mh_stale")?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(valid_address("10.0.0.5:50052"));
        assert!(valid_address("mc-0.meeting-controller.dark-tower:4433"));
        assert!(valid_address("[::1]:4433"));
        assert!(!valid_address("http://mc:4433"));
        assert!(!valid_address("mc"));
        assert!(!valid_address("mc:0"));
        assert!(!valid_address("mc:99999"));
        assert!(!valid_address(":4433"));
        assert!(!valid_address("mc/x:4433"));
        assert!(!valid_address("[nope]:4433"));
    }

    #[test]
    fn ids_and_health() {
        assert!(valid_id("meeting-controller-7d9f-abc"));
        assert!(!valid_id(""));
        assert!(!valid_id("a b"));
        assert_eq!(health_word(HealthStatus::Draining as i32), "draining");
        assert_eq!(health_word(0), "healthy");
        assert_eq!(health_word(99), "healthy");
        assert_eq!(truncate("héllo", 2), "hé");
    }

    #[test]
    fn capacity_is_required_and_positive() {
        assert!(capacity(None).is_err());
        assert!(
            capacity(Some(&Capacity {
                max_meetings: 0,
                max_participants: 5
            }))
            .is_err()
        );
        assert_eq!(
            capacity(Some(&Capacity {
                max_meetings: u32::MAX,
                max_participants: 5
            }))
            .unwrap(),
            (i32::MAX, 5)
        );
    }
}
