//! In-process bookkeeping of the signaling sessions this MC serves: which
//! session holds which participant's seat, the per-meeting event channel
//! that carries `participant_joined` / `participant_left` to the other
//! sessions of the meeting, and the count of live sessions that shutdown
//! waits on.
//!
//! Pushes stay in-process because GC places every participant of a meeting
//! on the meeting's one MC (placement is sticky); Redis holds the state that
//! must survive this process (the meeting, its MHs, its participants).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{broadcast, oneshot, watch};

/// Events buffered per meeting for a slow session before it counts as lagged.
const EVENT_BUFFER: usize = 256;

/// Something that happened in a meeting, for the other participants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Joined {
        participant_id: String,
        display_name: String,
    },
    Left {
        participant_id: String,
    },
}

struct Seat {
    session: String,
    kick: Option<oneshot::Sender<()>>,
}

struct Room {
    events: broadcast::Sender<Event>,
    seats: HashMap<String, Seat>,
}

/// Shared by the signaling server, the gRPC service and the heartbeat.
pub struct Hub {
    rooms: Mutex<HashMap<String, Room>>,
    next_session: AtomicU64,
    live: watch::Sender<usize>,
    closing: watch::Sender<bool>,
    instance: String,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("live_sessions", &*self.live.borrow())
            .finish_non_exhaustive()
    }
}

/// Counts a live session until dropped.
#[derive(Debug)]
pub struct SessionGuard<'a> {
    live: &'a watch::Sender<usize>,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.live.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            live: watch::Sender::new(0),
            closing: watch::Sender::new(false),
            instance: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, Room>> {
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session id, unique across restarts of this MC (the seat in
    /// Redis records it, and a previous run's ids must never match).
    pub fn new_session_id(&self) -> String {
        let n = self.next_session.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.instance)
    }

    /// Registers a live session (connected, not necessarily joined).
    pub fn session_started(&self) -> SessionGuard<'_> {
        self.live.send_modify(|n| *n += 1);
        SessionGuard { live: &self.live }
    }

    pub fn live_sessions(&self) -> usize {
        *self.live.borrow()
    }

    /// Participants seated through this MC right now.
    pub fn seated(&self) -> usize {
        self.rooms().values().map(|r| r.seats.len()).sum()
    }

    /// Meetings with at least one seated participant here.
    pub fn active_meetings(&self) -> Vec<String> {
        self.rooms()
            .iter()
            .filter(|(_, r)| !r.seats.is_empty())
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// The meeting's event stream; subscribe before reading the
    /// participant list, so no event between the two is missed.
    pub fn subscribe(&self, meeting_id: &str) -> broadcast::Receiver<Event> {
        let mut rooms = self.rooms();
        rooms
            .entry(meeting_id.to_owned())
            .or_insert_with(|| Room {
                events: broadcast::Sender::new(EVENT_BUFFER),
                seats: HashMap::new(),
            })
            .events
            .subscribe()
    }

    /// Gives the participant's seat to `session`; a session that held it
    /// before (a reconnect with the same token) is told to go away.
    /// Returns the signal this session gets if it is replaced in turn.
    pub fn take_seat(
        &self,
        meeting_id: &str,
        participant_id: &str,
        session: &str,
    ) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut rooms = self.rooms();
        let room = rooms.entry(meeting_id.to_owned()).or_insert_with(|| Room {
            events: broadcast::Sender::new(EVENT_BUFFER),
            seats: HashMap::new(),
        });
        let previous = room.seats.insert(
            participant_id.to_owned(),
            Seat {
                session: session.to_owned(),
                kick: Some(tx),
            },
        );
        if let Some(mut previous) = previous
            && let Some(kick) = previous.kick.take()
        {
            let _ = kick.send(());
        }
        rx
    }

    /// Releases the seat if `session` still holds it; true if it did.
    pub fn release_seat(&self, meeting_id: &str, participant_id: &str, session: &str) -> bool {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(meeting_id) else {
            return false;
        };
        let held = room
            .seats
            .get(participant_id)
            .is_some_and(|s| s.session == session);
        if held {
            room.seats.remove(participant_id);
        }
        held
    }

    /// Drops the meeting's room once nobody is seated or listening.
    pub fn forget_if_idle(&self, meeting_id: &str) {
        let mut rooms = self.rooms();
        if rooms
            .get(meeting_id)
            .is_some_and(|r| r.seats.is_empty() && r.events.receiver_count() == 0)
        {
            rooms.remove(meeting_id);
        }
    }

    pub fn publish(&self, meeting_id: &str, event: Event) {
        if let Some(room) = self.rooms().get(meeting_id) {
            let _ = room.events.send(event);
        }
    }

    /// Resolves once shutdown asked every session to close.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Asks every session to close (the end of the shutdown drain).
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// Waits until no session is live.
    pub async fn all_closed(&self) {
        let mut rx = self.live.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn seats_events_and_replacement() {
        let hub = Hub::new();
        let mut events = hub.subscribe("m");
        let s1 = hub.new_session_id();
        let s2 = hub.new_session_id();
        assert_ne!(s1, s2);
        let mut kicked = hub.take_seat("m", "p", &s1);
        assert_eq!(hub.seated(), 1);
        assert_eq!(hub.active_meetings(), vec!["m".to_owned()]);
        hub.publish(
            "m",
            Event::Left {
                participant_id: "x".into(),
            },
        );
        assert_eq!(
            events.recv().await.unwrap(),
            Event::Left {
                participant_id: "x".into()
            }
        );
        // A reconnect takes the seat; the first session is told, and its
        // release is a no-op.
        let _second = hub.take_seat("m", "p", &s2);
        assert!(kicked.try_recv().is_ok());
        assert!(!hub.release_seat("m", "p", &s1));
        assert!(hub.release_seat("m", "p", &s2));
        assert_eq!(hub.seated(), 0);
        hub.forget_if_idle("m");
        assert_eq!(hub.active_meetings(), Vec::<String>::new());
        drop(events);
        hub.forget_if_idle("m");
        assert!(hub.rooms().is_empty());
    }

    #[tokio::test]
    async fn live_count_and_closing() {
        let hub = Hub::new();
        let g1 = hub.session_started();
        let g2 = hub.session_started();
        assert_eq!(hub.live_sessions(), 2);
        let mut closing = hub.closing();
        hub.close_all();
        assert!(closing.wait_for(|c| *c).await.is_ok());
        drop(g1);
        drop(g2);
        tokio::time::timeout(std::time::Duration::from_secs(1), hub.all_closed())
            .await
            .unwrap();
    }
}
