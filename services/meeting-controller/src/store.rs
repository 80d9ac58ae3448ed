//! Meeting and participant state in Redis.
//!
//! **Standalone or cluster.** `REDIS_URL` names one server. At start MC asks
//! it `CLUSTER INFO`: a cluster node answers and MC uses the cluster client
//! (`redis::cluster_async`, which learns the slot map from that node and
//! follows `MOVED`/`ASK`); a standalone server answers "cluster support
//! disabled" and MC uses one multiplexed connection with automatic
//! reconnection (`ConnectionManager`). No extra variable is needed, so the
//! same config works against the development overlay's standalone Redis and
//! the Redis Cluster of staging and production.
//!
//! **Keys.** Every key of one meeting carries the meeting id as a hash tag,
//! so they live in one cluster slot and the Lua scripts below may touch them
//! together:
//!
//! - `dt:mc:meeting:{<meeting_id>}`: hash `name`, `mc_id`,
//!   `max_participants`, `mh` (JSON list of the MH assignments),
//!   `hosted_at`;
//! - `dt:mc:meeting:{<meeting_id>}:participants`: hash participant id →
//!   JSON `{participant_id, display_name, joined_at, session}`.
//!
//! Per MC instance (hash tag: the MC id):
//!
//! - `dt:mc:instance:{<mc_id>}:meetings`: sorted set of meeting ids scored
//!   by last activity (the load reported to GC, and the capacity check);
//! - `dt:mc:instance:{<mc_id>}:sessions`: set of `meeting_id participant_id
//!   session` entries, so a restarted MC removes the participants its
//!   previous run left behind.
//!
//! Meeting keys expire [`MEETING_TTL`] after their last activity.

use std::time::Duration;

use common::ExposeSecret as _;
use common::SecretString;
use common::backoff::Backoff;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, Cmd, Pipeline, RedisFuture, Script, Value};
use serde::{Deserialize, Serialize};

/// Meeting keys live this long after their last activity.
pub const MEETING_TTL: Duration = Duration::from_hours(24);
/// A hosted meeting without activity for this long no longer counts as load.
pub const MEETING_IDLE: Duration = Duration::from_hours(1);
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis holds malformed data: {0}")]
    Corrupt(String),
}

/// Which kind of Redis `REDIS_URL` turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    Cluster,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Cluster => "cluster",
        }
    }
}

/// One connection type for both modes; both sides reconnect on their own.
#[derive(Clone)]
enum Conn {
    Standalone(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A media handler assigned to a meeting (from GC's HostMeeting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MhAssignment {
    pub mh_id: String,
    pub media_address: String,
    pub grpc_address: String,
}

/// A participant as stored and as shown to the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub participant_id: String,
    pub display_name: String,
    pub joined_at: i64,
    /// The signaling session that holds the seat (a reconnect with the same
    /// token takes the seat over; the old session's leave is then a no-op).
    pub session: String,
}

/// What a join found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    Joined {
        mh: Vec<MhAssignment>,
        /// Everyone in the meeting after the join, the joiner included.
        participants: Vec<Participant>,
    },
    MeetingNotFound,
    Full {
        max_participants: u32,
    },
}

/// Whether a meeting could be hosted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOutcome {
    Hosted,
    AtCapacity,
}

fn meeting_key(meeting_id: &str) -> String {
    format!("dt:mc:meeting:{{{meeting_id}}}")
}

fn participants_key(meeting_id: &str) -> String {
    format!("dt:mc:meeting:{{{meeting_id}}}:participants")
}

fn instance_meetings_key(mc_id: &str) -> String {
    format!("dt:mc:instance:{{{mc_id}}}:meetings")
}

fn instance_sessions_key(mc_id: &str) -> String {
    format!("dt:mc:instance:{{{mc_id}}}:sessions")
}

/// Join atomically: meeting must exist; a new participant must fit.
/// KEYS: meeting, participants. ARGV: participant id, record, ttl seconds.
/// Returns `{status, mh_json, record...}`: 1 joined, -1 no meeting, -2 full.
const JOIN_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local max = tonumber(redis.call('HGET', KEYS[1], 'max_participants')) or 0
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 and max > 0
   and redis.call('HLEN', KEYS[2]) >= max then
  return {-2, tostring(max)}
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
local out = {1, redis.call('HGET', KEYS[1], 'mh') or '[]'}
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do table.insert(out, v) end
return out
";

/// Leave only if the seat still belongs to this session.
/// KEYS: participants. ARGV: participant id, session. Returns 1 if removed.
const LEAVE_SCRIPT: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local ok, rec = pcall(cjson.decode, v)
if ok and rec['session'] == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
";

/// MC's Redis state. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Conn,
    mode: Mode,
    mc_id: String,
    join: Script,
    leave: Script,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("mode", &self.mode)
            .field("mc_id", &self.mc_id)
            .finish_non_exhaustive()
    }
}

fn value<T: redis::FromRedisValue>(v: Value) -> Result<T, StoreError> {
    redis::from_redis_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn unix_now() -> i64 {
    common::jwt::now_unix()
}

fn ttl_seconds() -> u64 {
    MEETING_TTL.as_secs()
}

/// Asks the server whether it is a cluster node.
async fn probe_mode(client: &redis::Client) -> Result<Mode, StoreError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let info: redis::RedisResult<String> = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await;
    match info {
        Ok(_) => Ok(Mode::Cluster),
        // "ERR This instance has cluster support disabled", or a server
        // (or proxy) that does not know the command: a single endpoint.
        Err(e) if e.code().is_some() => Ok(Mode::Standalone),
        Err(e) => Err(e.into()),
    }
}

impl Store {
    /// Connects, retrying until `wait` has passed (Redis may start after MC).
    pub async fn connect(
        url: &SecretString,
        mc_id: &str,
        wait: Duration,
    ) -> Result<Self, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(3));
        let mut retry = 0;
        loop {
            let delay = backoff.delay(retry);
            match Self::connect_once(url, mc_id).await {
                Ok(store) => return Ok(store),
                Err(e) if tokio::time::Instant::now() + delay < deadline => {
                    tracing::warn!(error = %e, "Redis not reachable yet, retrying");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn connect_once(url: &SecretString, mc_id: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url.expose_secret())?;
        let mode = probe_mode(&client).await?;
        let conn = match mode {
            Mode::Standalone => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(1));
                Conn::Standalone(ConnectionManager::new_with_config(client, config).await?)
            }
            Mode::Cluster => {
                let cluster = redis::cluster::ClusterClientBuilder::new(vec![url.expose_secret()])
                    .connection_timeout(TIMEOUT)
                    .response_timeout(TIMEOUT)
                    .retries(2)
                    .build()?;
                Conn::Cluster(cluster.get_async_connection().await?)
            }
        };
        tracing::info!(mode = mode.as_str(), "connected to Redis");
        Ok(Self {
            conn,
            mode,
            mc_id: mc_id.to_owned(),
            join: Script::new(JOIN_SCRIPT),
            leave: Script::new(LEAVE_SCRIPT),
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// `PING`, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!("PING answered {pong:?}")))
        }
    }

    /// Meetings this MC hosts with activity within [`MEETING_IDLE`].
    pub async fn hosted_meetings(&self) -> Result<u32, StoreError> {
        let mut conn = self.conn.clone();
        let since = unix_now() - i64::try_from(MEETING_IDLE.as_secs()).unwrap_or(i64::MAX);
        let key = instance_meetings_key(&self.mc_id);
        let _: i64 = conn.zrembyscore(&key, "-inf", since).await?;
        let count: u64 = conn.zcount(&key, since, "+inf").await?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Marks meetings as active (those with live sessions, at heartbeat).
    pub async fn touch_meetings(&self, meeting_ids: &[String]) -> Result<(), StoreError> {
        if meeting_ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let now = unix_now();
        let items: Vec<(i64, &str)> = meeting_ids.iter().map(|m| (now, m.as_str())).collect();
        let _: i64 = conn
            .zadd_multiple(instance_meetings_key(&self.mc_id), &items)
            .await?;
        Ok(())
    }

    /// Stores (or refreshes) a meeting GC asked this MC to host.
    pub async fn host_meeting(
        &self,
        meeting_id: &str,
        name: &str,
        mh: &[MhAssignment],
        max_participants: u32,
        max_meetings: u32,
    ) -> Result<HostOutcome, StoreError> {
        let mut conn = self.conn.clone();
        let instance = instance_meetings_key(&self.mc_id);
        let already: Option<f64> = conn.zscore(&instance, meeting_id).await?;
        if already.is_none() && self.hosted_meetings().await? >= max_meetings {
            return Ok(HostOutcome::AtCapacity);
        }
        let mh_json = serde_json::to_string(mh).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let key = meeting_key(meeting_id);
        let now = unix_now();
        let ttl = i64::try_from(ttl_seconds()).unwrap_or(i64::MAX);
        let () = redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("name", name.to_owned()),
                    ("mc_id", self.mc_id.clone()),
                    ("max_participants", max_participants.to_string()),
                    ("mh", mh_json),
                    ("hosted_at", now.to_string()),
                ],
            )
            .ignore()
            .expire(&key, ttl)
            .ignore()
            .expire(participants_key(meeting_id), ttl)
            .ignore()
            .query_async(&mut conn)
            .await?;
        let _: i64 = conn.zadd(&instance, meeting_id, now).await?;
        Ok(HostOutcome::Hosted)
    }

    /// Takes a seat in a meeting for `participant`.
    pub async fn join(
        &self,
        meeting_id: &str,
        participant: &Participant,
    ) -> Result<JoinOutcome, StoreError> {
        let mut conn = self.conn.clone();
        let record =
            serde_json::to_string(participant).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let reply: Vec<Value> = self
            .join
            .key(meeting_key(meeting_id))
            .key(participants_key(meeting_id))
            .arg(&participant.participant_id)
            .arg(&record)
            .arg(ttl_seconds())
            .invoke_async(&mut conn)
            .await?;
        let mut it = reply.into_iter();
        let status: i64 = match it.next() {
            Some(v) => value(v)?,
            None => return Err(StoreError::Corrupt("empty join reply".into())),
        };
        match status {
            -1 => return Ok(JoinOutcome::MeetingNotFound),
            -2 => {
                let max: String = match it.next() {
                    Some(v) => value(v)?,
                    None => "0".to_owned(),
                };
                return Ok(JoinOutcome::Full {
                    max_participants: max.parse().unwrap_or(0),
                });
            }
            1 => {}
            other => return Err(StoreError::Corrupt(format!("join status {other}"))),
        }
        let mh_json: String = match it.next() {
            Some(v) => value(v)?,
            None => return Err(StoreError::Corrupt("join reply without mh".into())),
        };
        let mh: Vec<MhAssignment> = serde_json::from_str(&mh_json)
            .map_err(|e| StoreError::Corrupt(format!("mh of {meeting_id}: {e}")))?;
        let mut participants = Vec::new();
        for v in it {
            let raw: String = value(v)?;
            match serde_json::from_str::<Participant>(&raw) {
                Ok(p) => participants.push(p),
                Err(e) => tracing::warn!(%meeting_id, error = %e, "skipping malformed participant"),
            }
        }
        participants.sort_by(|a, b| {
            (a.joined_at, &a.participant_id).cmp(&(b.joined_at, &b.participant_id))
        });
        let session_entry = format!(
            "{meeting_id} {} {}",
            participant.participant_id, participant.session
        );
        let _: i64 = conn
            .sadd(instance_sessions_key(&self.mc_id), session_entry)
            .await?;
        let _: i64 = conn
            .zadd(instance_meetings_key(&self.mc_id), meeting_id, unix_now())
            .await?;
        Ok(JoinOutcome::Joined { mh, participants })
    }

    /// Gives the seat back; true if this session still held it.
    pub async fn leave(
        &self,
        meeting_id: &str,
        participant_id: &str,
        session: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let removed: i64 = self
            .leave
            .key(participants_key(meeting_id))
            .arg(participant_id)
            .arg(session)
            .invoke_async(&mut conn)
            .await?;
        let _: i64 = conn
            .srem(
                instance_sessions_key(&self.mc_id),
                format!("{meeting_id} {participant_id} {session}"),
            )
            .await?;
        Ok(removed == 1)
    }

    /// The participants of a meeting (tests and operators).
    pub async fn participants(&self, meeting_id: &str) -> Result<Vec<Participant>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = conn.hvals(participants_key(meeting_id)).await?;
        raw.iter()
            .map(|r| serde_json::from_str(r).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    /// The stored MH assignments of a meeting, if MC hosts it.
    pub async fn meeting_mh(
        &self,
        meeting_id: &str,
    ) -> Result<Option<Vec<MhAssignment>>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.hget(meeting_key(meeting_id), "mh").await?;
        raw.map(|r| serde_json::from_str(&r).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    /// Removes the seats a previous run of this MC left behind (a crash or
    /// a kill skips the normal leave). Returns how many were removed.
    pub async fn clear_stale_sessions(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        let key = instance_sessions_key(&self.mc_id);
        let entries: Vec<String> = conn.smembers(&key).await?;
        let mut removed = 0;
        for entry in &entries {
            let mut parts = entry.splitn(3, ' ');
            if let (Some(meeting), Some(participant), Some(session)) =
                (parts.next(), parts.next(), parts.next())
                && self.leave(meeting, participant, session).await?
            {
                removed += 1;
            }
            let _: i64 = conn.srem(&key, entry).await?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_meeting_share_a_hash_tag() {
        let m = "0b6c5c1e-8a7e-4f52-9b43-0c1d2e3f4a5b";
        for key in [meeting_key(m), participants_key(m)] {
            let open = key.find('{').unwrap();
            let close = key.find('}').unwrap();
            assert_eq!(&key[open + 1..close], m);
        }
    }
}
