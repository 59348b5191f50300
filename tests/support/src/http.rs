//! Small HTTP helpers for calling the service under test.

use serde_json::Value;

/// `GET url` with `headers`; returns the status and the JSON body.
pub async fn get_json(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request failed");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// The `trace_id` of a response body.
pub fn trace_id(body: &Value) -> String {
    body["trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace_id in {body}"))
        .to_owned()
}
