//! The signaling wire protocol (SPEC "MC signaling"): newline-delimited JSON
//! on the one bidirectional stream a client opens in its WebTransport
//! session.
//!
//! Client → MC, first line: `{"type":"join","meeting_id","token","display_name"}`;
//! later lines: `{"type":"leave"}` (optional; closing the stream or the
//! session also leaves). Unknown later messages are ignored, so clients may
//! add new ones before MC knows them.
//!
//! MC → client: `joined` (with the participants already in the meeting and
//! the MHs to attach to) or `error` with `code` `unauthorized`,
//! `meeting_not_found` or `full`, after which the session closes; then
//! `participant_joined` / `participant_left` pushes.
//!
//! Everything read from the client is bounded: one line is at most
//! [`MAX_LINE_BYTES`], and a line that does not parse is answered, never a
//! panic.

use serde::{Deserialize, Serialize};

/// Longest line a client may send (a meeting token is at most 8 KiB).
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Join {
        meeting_id: String,
        token: String,
        display_name: String,
    },
    Leave,
}

/// A participant as other participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub participant_id: String,
    pub display_name: String,
}

/// A media handler to attach to (`endpoint` is its QUIC `host:port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MhInfo {
    pub mh_id: String,
    pub endpoint: String,
}

/// Why a join was refused; the codes are part of the wire contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Unauthorized,
    MeetingNotFound,
    Full,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::MeetingNotFound => "meeting_not_found",
            Self::Full => "full",
        }
    }
}

/// What MC sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Joined {
        participant_id: String,
        /// The other participants already in the meeting.
        participants: Vec<ParticipantInfo>,
        mh: Vec<MhInfo>,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    ParticipantJoined {
        participant_id: String,
        display_name: String,
    },
    ParticipantLeft {
        participant_id: String,
    },
}

impl ServerMessage {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }

    /// The message as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        // Serializing these plain structs cannot fail; fall back to a fixed
        // line rather than unwrap anyway.
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"type":"error","code":"unauthorized","message":"internal error"}"#.to_vec()
        });
        line.push(b'\n');
        line
    }
}

/// Why a line could not be read as a client message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("a line is longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    #[error("not a JSON message: {0}")]
    Malformed(String),
}

/// Parses one line (without its newline).
pub fn parse_client_line(line: &[u8]) -> Result<ClientMessage, LineError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(LineError::TooLong);
    }
    serde_json::from_slice(line).map_err(|e| LineError::Malformed(e.to_string()))
}

/// The display name to show, or why it cannot be shown.
pub fn clean_display_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err("display_name must be 1 to 64 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("display_name must not contain control characters");
    }
    Ok(name.to_owned())
}

/// Splits a byte stream into lines, holding at most [`MAX_LINE_BYTES`] of
/// an unfinished line.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
}

impl LineBuffer {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line, if any (without the `\n`, `\r\n` tolerated).
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, LineError> {
        if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > MAX_LINE_BYTES {
                return Err(LineError::TooLong);
            }
            return Ok(Some(line));
        }
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(LineError::TooLong);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn as_json(m: &ServerMessage) -> Value {
        let line = m.to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        serde_json::from_slice(&line[..line.len() - 1]).unwrap()
    }

    #[test]
    fn server_messages_have_the_wire_shape() {
        let joined = ServerMessage::Joined {
            participant_id: "p1".into(),
            participants: vec![ParticipantInfo {
                participant_id: "p0".into(),
                display_name: "Ada".into(),
            }],
            mh: vec![MhInfo {
                mh_id: "mh-0".into(),
                endpoint: "127.0.0.1:4434".into(),
            }],
        };
        assert_eq!(
            as_json(&joined),
            json!({"type": "joined", "participant_id": "p1",
                   "participants": [{"participant_id": "p0", "display_name": "Ada"}],
                   "mh": [{"mh_id": "mh-0", "endpoint": "127.0.0.1:4434"}]})
        );
        for (code, word) in [
            (ErrorCode::Unauthorized, "unauthorized"),
            (ErrorCode::MeetingNotFound, "meeting_not_found"),
            (ErrorCode::Full, "full"),
        ] {
            assert_eq!(
                as_json(&ServerMessage::error(code, "m")),
                json!({"type": "error", "code": word, "message": "m"})
            );
            assert_eq!(code.as_str(), word);
        }
        assert_eq!(
            as_json(&ServerMessage::ParticipantJoined {
                participant_id: "p2".into(),
                display_name: "Bo".into()
            }),
            json!({"type": "participant_joined", "participant_id": "p2", "display_name": "Bo"})
        );
        assert_eq!(
            as_json(&ServerMessage::ParticipantLeft {
                participant_id: "p2".into()
            }),
            json!({"type": "participant_left", "participant_id": "p2"})
        );
    }

    #[test]
    fn client_lines_parse_or_explain() {
        assert_eq!(
            parse_client_line(
                br#"{"type":"join","meeting_id":"m","token":"t","display_name":"Ada"}"#
            )
            .unwrap(),
            ClientMessage::Join {
                meeting_id: "m".into(),
                token: "t".into(),
                display_name: "Ada".into()
            }
        );
        assert_eq!(
            parse_client_line(br#"{"type":"leave"}"#).unwrap(),
            ClientMessage::Leave
        );
        for junk in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"type\":\"join\"}",
            b"{\"type\":\"dance\"}",
            b"\xff\xfe",
            b"{\"type\":\"join\",\"meeting_id\":1,\"token\":\"t\",\"display_name\":\"x\"}",
        ] {
            assert!(
                matches!(parse_client_line(junk), Err(LineError::Malformed(_))),
                "{junk:?}"
            );
        }
        assert_eq!(
            parse_client_line(&vec![b' '; MAX_LINE_BYTES + 1]),
            Err(LineError::TooLong)
        );
    }

    #[test]
    fn line_buffer_splits_and_bounds() {
        let mut b = LineBuffer::default();
        b.push(b"{\"a\":1}\r\n{\"b\"");
        assert_eq!(b.next_line().unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(b.next_line().unwrap(), None);
        b.push(b":2}\n");
        assert_eq!(b.next_line().unwrap().unwrap(), b"{\"b\":2}");
        let mut big = LineBuffer::default();
        big.push(&vec![b'x'; MAX_LINE_BYTES + 1]);
        assert_eq!(big.next_line(), Err(LineError::TooLong));
    }

    #[test]
    fn display_names() {
        assert_eq!(clean_display_name("  Ada  ").unwrap(), "Ada");
        assert!(clean_display_name("").is_err());
        assert!(clean_display_name("a\u{7}b").is_err());
        assert!(clean_display_name(&"é".repeat(65)).is_err());
        assert_eq!(
            clean_display_name(&"é".repeat(64)).unwrap().chars().count(),
            64
        );
    }
}
