//! GC's calls to meeting controllers (`HostMeeting`), authorised with GC's
//! service token (scope `service.write.mc`). Channels are cached per
//! address and connect lazily.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use common::grpc::with_bearer;
use common::token_client::ClientCredentials;
use proto::MeetingControllerServiceClient;
use proto::v1::{HostMeetingRequest, HostMeetingResponse};
use tonic::transport::{Channel, Endpoint};

/// Most channels kept; MCs come and go, the cache starts over past this.
const MAX_CHANNELS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum McCallError {
    #[error("bad MC address {0:?}")]
    Address(String),
    #[error("getting GC's own token failed: {0}")]
    Credentials(#[from] common::token_client::TokenClientError),
    #[error("HostMeeting failed: {0}")]
    Status(#[from] tonic::Status),
}

#[derive(Debug, Default)]
pub struct McClients {
    channels: Mutex<HashMap<String, Channel>>,
}

impl McClients {
    fn channel(&self, grpc_address: &str) -> Result<Channel, McCallError> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(channel) = channels.get(grpc_address) {
            return Ok(channel.clone());
        }
        if channels.len() >= MAX_CHANNELS {
            channels.clear();
        }
        let channel = Endpoint::from_shared(format!("http://{grpc_address}"))
            .map_err(|_| McCallError::Address(grpc_address.to_owned()))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(grpc_address.to_owned(), channel.clone());
        Ok(channel)
    }

    pub async fn host_meeting(
        &self,
        credentials: &ClientCredentials,
        grpc_address: &str,
        request: HostMeetingRequest,
    ) -> Result<HostMeetingResponse, McCallError> {
        let channel = self.channel(grpc_address)?;
        let token = credentials.token().await?;
        let mut client = MeetingControllerServiceClient::new(channel);
        let response = client.host_meeting(with_bearer(request, &token)?).await?;
        Ok(response.into_inner())
    }
}
