//! Untrusted `/chain` query strings: parsing never panics, and any accepted
//! value is a hop count the handler can range-check.
#![no_main]

use axum::extract::Query;
use axum::http::Uri;
use libfuzzer_sys::fuzz_target;
use somework::routes::chain::ChainParams;

fuzz_target!(|query: &str| {
    let Ok(uri) = format!("/chain?{query}").parse::<Uri>() else {
        return;
    };
    if let Ok(Query(params)) = Query::<ChainParams>::try_from_uri(&uri) {
        let _ = params.hops();
    }
});
