//! Error ingest: `POST /api/{project_id}/envelope/`, the endpoint the sentry
//! crate's transports post to, as Relay takes it. The body is an envelope
//! (develop.sentry.dev/sdk/envelopes): a JSON header line, then items, each a
//! JSON header line and a payload of `length` bytes, or up to the next
//! newline when the header has no `length`. The double keeps every item, so
//! tests read the events and the client reports (`discarded_events`) the
//! service really sent. A test can hold the answers (to fill the sender's
//! queue) and release them.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use super::ingest::{Refusal, authorize, decoded_body};
use super::rate_limits::{ERROR_CATEGORY, detail_response};

/// One envelope as received.
#[derive(Debug, Clone)]
pub struct ReceivedEnvelope {
    pub headers: Value,
    pub items: Vec<ReceivedItem>,
}

/// One item of an envelope: its header (`type`, `length`, ...) and payload.
#[derive(Debug, Clone)]
pub struct ReceivedItem {
    pub headers: Value,
    pub payload: Vec<u8>,
}

impl ReceivedItem {
    pub fn ty(&self) -> &str {
        self.headers["type"].as_str().unwrap_or_default()
    }

    /// The payload as JSON (events and client reports are JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("a {} item that is not JSON: {e}", self.ty()))
    }
}

impl ReceivedEnvelope {
    /// The payloads of the items of type `ty`, as JSON.
    pub fn items_of(&self, ty: &str) -> Vec<Value> {
        self.items
            .iter()
            .filter(|item| item.ty() == ty)
            .map(ReceivedItem::json)
            .collect()
    }
}

/// Answers an envelope request; the envelope is returned to be recorded
/// whenever it was readable, whatever the answer.
pub(super) async fn ingest(
    shared: &Shared,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (Response, Option<(u64, ReceivedEnvelope)>) {
    let received = authorize(shared, id, headers).and_then(|project| {
        let body = decoded_body(headers, body)?;
        Ok((project.id, parse(&body)?))
    });
    let received = match received {
        Ok(received) => received,
        Err((status, detail)) => return (detail_response(status, &detail), None),
    };
    // Held here while the test asks, as a Sentry that answers slowly.
    let mut gate = shared.envelope_gate.subscribe();
    let _ = gate.wait_for(|open| *open).await;
    let failure = shared.failures.lock().unwrap().answer(ERROR_CATEGORY);
    let response = failure.unwrap_or_else(|| {
        let id = received.1.headers["event_id"].clone();
        axum::Json(json!({ "id": id })).into_response()
    });
    (response, Some(received))
}

/// Parses an envelope; a malformed one gets a 400, as Relay answers it.
fn parse(body: &[u8]) -> Result<ReceivedEnvelope, Refusal> {
    let malformed = |what: &str| (StatusCode::BAD_REQUEST, format!("invalid envelope: {what}"));
    let (header_line, mut rest) = split_line(body);
    let headers: Value =
        serde_json::from_slice(header_line).map_err(|_| malformed("envelope header"))?;
    let mut items = Vec::new();
    while !rest.is_empty() {
        let (item_header, after_header) = split_line(rest);
        if item_header.is_empty() {
            rest = after_header;
            continue;
        }
        let item_headers: Value =
            serde_json::from_slice(item_header).map_err(|_| malformed("item header"))?;
        let (payload, after_payload) = match item_headers["length"].as_u64() {
            Some(length) => {
                let length = usize::try_from(length).map_err(|_| malformed("length"))?;
                if after_header.len() < length {
                    return Err(malformed("item shorter than its length"));
                }
                let (payload, after) = after_header.split_at(length);
                (payload, after.strip_prefix(b"\n").unwrap_or(after))
            }
            None => split_line(after_header),
        };
        items.push(ReceivedItem {
            headers: item_headers,
            payload: payload.to_vec(),
        });
        rest = after_payload;
    }
    Ok(ReceivedEnvelope { headers, items })
}

/// The bytes up to the first newline, and those after it.
fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => (&bytes[..end], &bytes[end + 1..]),
        None => (bytes, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_with_and_without_a_length_are_read() {
        let body = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n\
            {\"type\":\"event\",\"length\":13}\n{\"a\":\"b\\nc\"}\n\
            {\"type\":\"client_report\"}\n{\"discarded_events\":[]}";
        let envelope = parse(body).expect("a valid envelope");
        assert_eq!(
            envelope.headers["event_id"],
            "9ec79c33ec9942ab8353589fcb2e04dc"
        );
        assert_eq!(envelope.items_of("event"), vec![json!({"a": "b\nc"})]);
        assert_eq!(
            envelope.items_of("client_report"),
            vec![json!({"discarded_events": []})]
        );
    }

    #[test]
    fn a_truncated_item_is_refused() {
        let error = parse(b"{}\n{\"type\":\"event\",\"length\":99}\n{}").unwrap_err();
        assert_eq!(error.0, StatusCode::BAD_REQUEST);
    }
}
