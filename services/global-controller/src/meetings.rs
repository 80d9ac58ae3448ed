//! The meetings API: create a meeting, and join one (placement on a meeting
//! controller and a media handler, plus a meeting token from AC).
//!
//! Placement is sticky: the first join picks a healthy MC with capacity and
//! a healthy MH, asks the MC to host the meeting, and records both on the
//! meeting with a compare-and-set, so concurrent first joins converge on one
//! MC. Later joins reuse the placement while its controllers stay healthy
//! and re-place the meeting when they do not.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::auth::{self, AuthError};
use common::jwks::JwksCache;
use common::jwt::ServiceClaims;
use prometheus::IntCounterVec;
use proto::v1::{HostMeetingRequest, MediaHandlerAssignment};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row as _};

use crate::ac_client::AcClient;
use crate::error::ApiError;
use crate::mc_client::{McCallError, McClients};
use crate::registry::{self, McCandidate, MhCandidate};

pub const CREATE_SCOPE: &str = "meeting:create";
pub const JOIN_SCOPE: &str = "meeting:join";
/// Largest create-meeting body.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest meeting name, in characters.
const MAX_NAME_CHARS: usize = 200;
/// MCs tried per join before answering 503.
const MC_ATTEMPTS: i64 = 3;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub jwks: Arc<JwksCache>,
    pub ac: Arc<AcClient>,
    pub mcs: Arc<McClients>,
    pub region: Arc<str>,
    pub staleness: Duration,
    pub meetings_created: prometheus::IntCounter,
    pub joins: IntCounterVec,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    scope: &str,
) -> Result<ServiceClaims, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::NotBearer)?;
    let token = auth::bearer(value)?;
    Ok(state.jwks.verify_service(token, scope).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateMeeting {
    name: String,
}

#[derive(Debug, Serialize)]
struct MeetingCreated {
    meeting_id: String,
    name: String,
}

/// `POST /api/v1/meetings` (scope `meeting:create`).
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers, CREATE_SCOPE).await?;
    let request: CreateMeeting = common::body::json(&headers, body, MAX_BODY_BYTES).await?;
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::BadRequest(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "name must not contain control characters".to_owned(),
        ));
    }
    let meeting_id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO meetings (meeting_id, name, created_by, region) VALUES ($1, $2, $3, $4)",
    )
    .bind(meeting_id)
    .bind(name)
    .bind(&caller.sub)
    .bind(&*state.region)
    .execute(&state.pool)
    .await?;
    state.meetings_created.inc();
    tracing::info!(%meeting_id, created_by = %caller.sub, "meeting created");
    let location = format!("/api/v1/meetings/{meeting_id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(MeetingCreated {
            meeting_id: meeting_id.to_string(),
            name: name.to_owned(),
        }),
    )
        .into_response())
}

#[derive(Debug, Serialize)]
struct McInfo {
    mc_id: String,
    webtransport_url: String,
}

#[derive(Debug, Serialize)]
struct MhInfo {
    mh_id: String,
    endpoint: String,
}

#[derive(Debug, Serialize)]
struct JoinResponse {
    meeting_id: String,
    mc: McInfo,
    mh: Vec<MhInfo>,
    token: String,
    expires_in: u64,
}

/// The URL clients open for signaling (SPEC: `https://<advertise>/signaling`).
pub fn webtransport_url(webtransport_address: &str) -> String {
    format!("https://{webtransport_address}/signaling")
}

/// `GET /api/v1/meetings/{meeting_id}` (scope `meeting:join`).
pub async fn join(
    State(state): State<AppState>,
    Path(meeting_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let result = join_inner(&state, &meeting_id, &headers).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(ApiError::Auth(_)) => "unauthorized",
        Err(ApiError::NotFound | ApiError::BadRequest(_)) => "not_found",
        Err(ApiError::NoCapacity(_)) => "no_capacity",
        Err(_) => "error",
    };
    state.joins.with_label_values(&[outcome]).inc();
    result
}

async fn join_inner(
    state: &AppState,
    meeting_id: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let caller = authorize(state, headers, JOIN_SCOPE).await?;
    let meeting_id = uuid::Uuid::parse_str(meeting_id)
        .map_err(|_| ApiError::BadRequest("meeting_id must be a UUID".to_owned()))?;
    let (mc, mh) = place(state, meeting_id).await?;
    let mh_ids = vec![mh.mh_id.clone()];
    let token = state
        .ac
        .meeting_token(&meeting_id.to_string(), &mc.mc_id, &mh_ids)
        .await
        .map_err(|e| ApiError::unavailable("AC (meeting tokens)", e))?;
    tracing::info!(
        %meeting_id,
        mc_id = %mc.mc_id,
        mh_id = %mh.mh_id,
        participant_id = %token.participant_id,
        caller = %caller.sub,
        "participant placed"
    );
    Ok(axum::Json(JoinResponse {
        meeting_id: meeting_id.to_string(),
        mc: McInfo {
            mc_id: mc.mc_id.clone(),
            webtransport_url: webtransport_url(&mc.webtransport_address),
        },
        mh: vec![MhInfo {
            mh_id: mh.mh_id,
            endpoint: mh.media_address,
        }],
        token: token.token,
        expires_in: token.expires_in,
    })
    .into_response())
}

struct MeetingRow {
    name: String,
    mc_id: Option<String>,
    mh_id: Option<String>,
}

async fn load_meeting(pool: &PgPool, meeting_id: uuid::Uuid) -> Result<MeetingRow, ApiError> {
    let row = sqlx::query("SELECT name, mc_id, mh_id FROM meetings WHERE meeting_id = $1")
        .bind(meeting_id)
        .fetch_optional(pool)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(MeetingRow {
        name: row.try_get("name")?,
        mc_id: row.try_get("mc_id")?,
        mh_id: row.try_get("mh_id")?,
    })
}

fn host_request(meeting_id: uuid::Uuid, name: &str, mh: &MhCandidate) -> HostMeetingRequest {
    HostMeetingRequest {
        meeting_id: meeting_id.to_string(),
        meeting_name: name.to_owned(),
        media_handlers: vec![MediaHandlerAssignment {
            mh_id: mh.mh_id.clone(),
            media_address: mh.media_address.clone(),
            grpc_address: mh.grpc_address.clone(),
        }],
        max_participants: 0,
    }
}

async fn ask_to_host(
    state: &AppState,
    mc: &McCandidate,
    request: HostMeetingRequest,
) -> Result<(), McCallError> {
    let result = state
        .mcs
        .host_meeting(state.ac.credentials(), &mc.grpc_address, request)
        .await;
    if let Err(McCallError::Status(status)) = &result
        && status.code() == tonic::Code::Unauthenticated
    {
        // Our token may be stale (AC rotated keys): fetch a new one next time.
        state.ac.credentials().invalidate().await;
    }
    result.map(|_| ())
}

/// Finds (or makes) the meeting's placement.
async fn place(
    state: &AppState,
    meeting_id: uuid::Uuid,
) -> Result<(McCandidate, MhCandidate), ApiError> {
    // Two rounds: a lost compare-and-set re-reads the winner's placement.
    for _ in 0..2 {
        let meeting = load_meeting(&state.pool, meeting_id).await?;

        let current_mh = match &meeting.mh_id {
            Some(id) => registry::live_mh(&state.pool, id, state.staleness).await?,
            None => None,
        };
        let mh = match current_mh {
            Some(mh) => mh,
            None => registry::mh_candidates(&state.pool, &state.region, state.staleness, 1)
                .await?
                .into_iter()
                .next()
                .ok_or(ApiError::NoCapacity(
                    "no healthy media handler has capacity",
                ))?,
        };

        // The current MC, if alive, is asked again: hosting is idempotent
        // and this recovers an MC that restarted and lost the meeting.
        let mut candidates = Vec::new();
        if let Some(id) = &meeting.mc_id
            && let Some(mc) = registry::live_mc(&state.pool, id, state.staleness).await?
        {
            candidates.push(mc);
        }
        for mc in registry::mc_candidates(&state.pool, &state.region, state.staleness, MC_ATTEMPTS)
            .await?
        {
            if !candidates.iter().any(|c| c.mc_id == mc.mc_id) {
                candidates.push(mc);
            }
        }
        candidates.truncate(usize::try_from(MC_ATTEMPTS).unwrap_or(3));
        if candidates.is_empty() {
            return Err(ApiError::NoCapacity(
                "no healthy meeting controller has capacity",
            ));
        }

        let mut hosted = None;
        for mc in candidates {
            match ask_to_host(state, &mc, host_request(meeting_id, &meeting.name, &mh)).await {
                Ok(()) => {
                    hosted = Some(mc);
                    break;
                }
                Err(e) => {
                    tracing::warn!(mc_id = %mc.mc_id, %meeting_id, error = %e, "MC did not host the meeting, trying another");
                }
            }
        }
        let mc = hosted.ok_or(ApiError::NoCapacity(
            "no healthy meeting controller accepted the meeting",
        ))?;

        if meeting.mc_id.as_deref() == Some(mc.mc_id.as_str())
            && meeting.mh_id.as_deref() == Some(mh.mh_id.as_str())
        {
            return Ok((mc, mh));
        }
        let updated = sqlx::query(
            "UPDATE meetings SET mc_id = $2, mh_id = $3, assigned_at = now()
             WHERE meeting_id = $1
               AND mc_id IS NOT DISTINCT FROM $4
               AND mh_id IS NOT DISTINCT FROM $5",
        )
        .bind(meeting_id)
        .bind(&mc.mc_id)
        .bind(&mh.mh_id)
        .bind(&meeting.mc_id)
        .bind(&meeting.mh_id)
        .execute(&state.pool)
        .await?;
        if updated.rows_affected() == 1 {
            // Count the meeting against the MC until its next heartbeat says
            // otherwise, so a burst of new meetings spreads out.
            sqlx::query(
                "UPDATE meeting_controllers SET current_meetings = current_meetings + 1 WHERE mc_id = $1",
            )
            .bind(&mc.mc_id)
            .execute(&state.pool)
            .await?;
            tracing::info!(%meeting_id, mc_id = %mc.mc_id, mh_id = %mh.mh_id, "meeting placed");
            return Ok((mc, mh));
        }
        tracing::debug!(%meeting_id, "placement changed concurrently, re-reading");
    }
    Err(ApiError::NoCapacity(
        "the meeting's placement keeps changing; retry",
    ))
}
