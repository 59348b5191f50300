//! What every ingest endpoint checks first, as Relay does: the project of the
//! path exists and the request carries one of its keys; and the body, gzip'd
//! or plain. Then OTLP ingest, whose body is an OTLP protobuf request.

use std::io::Read;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;

use super::{Project, Shared};

/// A refused ingest request: the status and Sentry's `detail` text.
pub(super) type Refusal = (StatusCode, String);

/// The project of the path, if the request carries its key in
/// `X-Sentry-Auth`.
pub(super) fn authorize<'a>(
    shared: &'a Shared,
    id: &str,
    headers: &HeaderMap,
) -> Result<&'a Project, Refusal> {
    let rejected = |status, reason: &str| {
        (
            status,
            format!("event submission rejected with_reason: {reason}"),
        )
    };
    let Some(project) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| shared.projects.iter().find(|p| p.id == id))
    else {
        return Err(rejected(StatusCode::FORBIDDEN, "ProjectId"));
    };
    let key = headers
        .get("x-sentry-auth")
        .and_then(|v| v.to_str().ok())
        .and_then(sentry_key);
    match key {
        None => Err(rejected(StatusCode::UNAUTHORIZED, "MissingKey")),
        Some(key) if key != project.public_key => Err(rejected(StatusCode::FORBIDDEN, "ProjectId")),
        Some(_) => Ok(project),
    }
}

/// The body, gunzipped if its `Content-Encoding` says gzip.
pub(super) fn decoded_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, Refusal> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    if !gzip {
        return Ok(body.to_vec());
    }
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut decoded)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad gzip body: {e}")))?;
    Ok(decoded)
}

/// Checks the key against the project in the path and decodes the body as
/// the OTLP request `R`; on failure returns the status and the `detail` to
/// answer with.
pub(super) fn decode_otlp<R: Message + Default>(
    shared: &Shared,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(u64, R), Refusal> {
    let project = authorize(shared, id, headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type != Some("application/x-protobuf") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/x-protobuf".to_owned(),
        ));
    }
    let body = decoded_body(headers, body)?;
    let request = R::decode(body.as_slice())
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad protobuf body: {e}")))?;
    Ok((project.id, request))
}

/// The answer to accepted OTLP ingest: an empty `Export*ServiceResponse`,
/// full success.
pub(super) fn otlp_accepted() -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        Vec::<u8>::new(),
    )
        .into_response()
}

/// The `sentry_key` of an `x-sentry-auth` value such as
/// `sentry sentry_key=abc, sentry_version=7` (the scheme in any case: the
/// sentry crate writes `Sentry`, the collector `sentry`).
pub(super) fn sentry_key(auth: &str) -> Option<&str> {
    let (scheme, pairs) = auth.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("sentry") {
        return None;
    }
    pairs
        .split(',')
        .find_map(|pair| pair.trim().strip_prefix("sentry_key="))
}
