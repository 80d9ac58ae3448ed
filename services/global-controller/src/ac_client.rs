//! GC's calls to AC: meeting tokens, with GC's own client-credentials token
//! (scope `internal:meeting-token`).

use std::time::Duration;

use common::ExposeSecret as _;
use common::token_client::{ClientCredentials, TokenClientError};
use serde::{Deserialize, Serialize};

pub const MEETING_TOKEN_PATH: &str = "/api/v1/auth/internal/meeting-token";

#[derive(Debug, thiserror::Error)]
pub enum AcError {
    #[error("getting GC's own token failed: {0}")]
    Credentials(#[from] TokenClientError),
    #[error("meeting token request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("AC refused the meeting token request: HTTP {0}")]
    Refused(u16),
}

#[derive(Debug, Serialize)]
struct MeetingTokenRequest<'a> {
    meeting_id: &'a str,
    mc_id: &'a str,
    mh_ids: &'a [String],
}

#[derive(Debug, Clone, Deserialize)]
pub struct MeetingToken {
    pub token: String,
    pub expires_in: u64,
    pub participant_id: String,
}

#[derive(Debug)]
pub struct AcClient {
    url: String,
    http: reqwest::Client,
    credentials: ClientCredentials,
}

impl AcClient {
    pub fn new(ac_internal_url: &str, credentials: ClientCredentials) -> Result<Self, AcError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self {
            url: format!(
                "{}{MEETING_TOKEN_PATH}",
                ac_internal_url.trim_end_matches('/')
            ),
            http,
            credentials,
        })
    }

    pub fn credentials(&self) -> &ClientCredentials {
        &self.credentials
    }

    /// A meeting token for a new participant of `meeting_id`.
    pub async fn meeting_token(
        &self,
        meeting_id: &str,
        mc_id: &str,
        mh_ids: &[String],
    ) -> Result<MeetingToken, AcError> {
        let body = MeetingTokenRequest {
            meeting_id,
            mc_id,
            mh_ids,
        };
        // One retry with a fresh token when AC says ours is no good (its key
        // rotated, or the cached token expired early).
        for attempt in 0..2 {
            let token = self.credentials.token().await?;
            let response = self
                .http
                .post(&self.url)
                .bearer_auth(token.expose_secret())
                .json(&body)
                .send()
                .await?;
            let status = response.status();
            if status.is_success() {
                return Ok(response.json().await?);
            }
            if status.as_u16() == 401 && attempt == 0 {
                self.credentials.invalidate().await;
                continue;
            }
            return Err(AcError::Refused(status.as_u16()));
        }
        Err(AcError::Refused(401))
    }
}
