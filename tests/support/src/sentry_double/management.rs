//! The management API the collector's `sentry` exporter reads: the org's
//! projects (paginated like Sentry, with a `Link` header and a `?cursor=`
//! query) and their keys, behind `Authorization: Bearer {token}`.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Project, Shared};

/// Runs `answer` for an authorized request to this organization.
pub(super) fn management(
    shared: &Shared,
    headers: &HeaderMap,
    org: &str,
    answer: impl FnOnce() -> Response,
) -> Response {
    let expected = format!("Bearer {}", shared.token);
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&expected)
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"detail": "Invalid token"})),
        )
            .into_response();
    }
    if org != shared.org {
        return not_found();
    }
    answer()
}

pub(super) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"detail": "The requested resource does not exist"})),
    )
        .into_response()
}

/// One page of `items`, with Sentry's `Link` header. Sentry's cursors look like
/// `{value}:{offset}:{is_prev}`; the double only uses the offset.
pub(super) fn paginated(shared: &Shared, uri: &Uri, items: Vec<Value>) -> Response {
    let offset: usize = Query::<HashMap<String, String>>::try_from_uri(uri)
        .ok()
        .and_then(|Query(query)| query.get("cursor")?.split(':').nth(1)?.parse().ok())
        .unwrap_or(0);
    let end = (offset + shared.page_size).min(items.len());
    let page = items.get(offset..end).unwrap_or_default().to_vec();
    let base = format!("http://{}{}", shared.authority, uri.path());
    let link = |rel: &str, offset: usize, is_prev: u8, results: bool| {
        let cursor = format!("0:{offset}:{is_prev}");
        format!(r#"<{base}?&cursor={cursor}>; rel="{rel}"; results="{results}"; cursor="{cursor}""#)
    };
    let previous = link(
        "previous",
        offset.saturating_sub(shared.page_size),
        1,
        offset > 0,
    );
    let next = link("next", end, 0, end < items.len());
    let mut response = axum::Json(page).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("{previous}, {next}")) {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

pub(super) fn project_json(shared: &Shared, project: &Project) -> Value {
    let team = json!({"id": "1", "slug": shared.team, "name": shared.team});
    json!({
        "id": project.id.to_string(),
        "slug": project.slug,
        "name": project.slug,
        "platform": "rust",
        "team": team,
        "teams": [team],
    })
}

pub(super) fn key_json(shared: &Shared, project: &Project) -> Value {
    json!({
        "id": project.public_key,
        "name": "Default",
        "label": "Default",
        "public": project.public_key,
        "secret": project.secret_key,
        "projectId": project.id,
        "isActive": true,
        "dsn": {
            "public": shared.dsn(project),
            "secret": format!(
                "http://{}:{}@{}/{}",
                project.public_key, project.secret_key, shared.authority, project.id
            ),
        },
    })
}
