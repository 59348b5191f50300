//! Every endpoint of the service, once: its method, route and handler, and
//! what a request to it must give back (status and spans).
//!
//! [`routes`](super::routes) builds the router from it, `somework load`
//! draws its mix from it, `somework verify` expects its span shapes, and the
//! tests check the service, the chart's `helm test` and the scripts against
//! it. Adding an endpoint starts here: a variant, its [`Spec`], and its place
//! in [`Endpoint::ALL`].
//!
//! The status and span shapes are the expected side: the service emits its
//! span names where the work happens (`src/work.rs`, `routes/work.rs`) and
//! the tests compare what it exported with what this table says, so a span
//! renamed on one side only fails them.

use std::fmt;

use axum::http::{Method, StatusCode};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde::Serialize;

use super::{AppState, chain, health, work};

/// An endpoint of the service, by the name `--mix` and the load report use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    Somework,
    Errorwork,
    Users,
    Chain,
    Healthz,
    Readyz,
}

impl Endpoint {
    /// Every endpoint, in declaration order (a new variant goes here too).
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Somework,
        Endpoint::Errorwork,
        Endpoint::Users,
        Endpoint::Chain,
        Endpoint::Healthz,
        Endpoint::Readyz,
    ];

    pub const fn spec(self) -> &'static Spec {
        match self {
            Endpoint::Somework => &SOMEWORK,
            Endpoint::Errorwork => &ERRORWORK,
            Endpoint::Users => &USERS,
            Endpoint::Chain => &CHAIN,
            Endpoint::Healthz => &HEALTHZ,
            Endpoint::Readyz => &READYZ,
        }
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Position in [`Endpoint::ALL`], for per-endpoint arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|endpoint| endpoint.name() == name)
    }

    /// The names of all endpoints, comma-separated, for messages.
    pub fn names() -> String {
        Self::ALL.map(Endpoint::name).join(", ")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One endpoint: how it is routed, and what its example request answers.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub method: Method,
    /// The route the router matches, which is also the SERVER span's
    /// `http.route`.
    pub route: &'static str,
    /// A request to this endpoint that `status` and `trace` describe.
    pub example: &'static str,
    pub status: StatusCode,
    /// The trace `example` makes; `None` for the probes, which the router
    /// keeps untraced and outside the concurrency limit.
    pub trace: Option<TraceShape>,
    /// The handler, bound to `method`.
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
}

impl Spec {
    /// The handler behind its method; any other method gets the router's 405.
    #[expect(
        clippy::expect_used,
        reason = "the catalogue names standard methods only, which the unit tests check"
    )]
    pub fn method_router(&self) -> MethodRouter<AppState> {
        let filter = MethodFilter::try_from(self.method.clone())
            .expect("every method in the catalogue is a standard one");
        (self.handler)(filter)
    }
}

/// The spans of one request's trace.
#[derive(Debug)]
pub struct TraceShape {
    /// The trace's distinct span names, the SERVER span's (`{METHOD} {route}`,
    /// as `telemetry::http` names it) first.
    pub span_names: &'static [&'static str],
    /// SERVER spans in the trace: more than one when the request calls the
    /// service again (`/chain`).
    pub server_spans: usize,
    /// The span the request fails in. It and every span it passes through,
    /// up to the SERVER span, end with status Error; with `None`, no span does.
    pub error_span: Option<&'static str>,
}

pub static SOMEWORK: Spec = Spec {
    name: "somework",
    method: Method::GET,
    route: "/somework",
    example: "/somework",
    status: StatusCode::OK,
    trace: Some(TraceShape {
        span_names: &["GET /somework", "somework", "MiddleWork", "ErrorWork"],
        server_spans: 1,
        error_span: None,
    }),
    handler: |method| on(method, work::somework),
};

pub static ERRORWORK: Spec = Spec {
    name: "errorwork",
    method: Method::GET,
    route: "/errorwork",
    example: "/errorwork",
    status: StatusCode::INTERNAL_SERVER_ERROR,
    trace: Some(TraceShape {
        span_names: &["GET /errorwork", "somework", "MiddleWork", "ErrorWork"],
        server_spans: 1,
        error_span: Some("ErrorWork"),
    }),
    handler: |method| on(method, work::errorwork),
};

pub static USERS: Spec = Spec {
    name: "users",
    method: Method::GET,
    route: "/users/{id}",
    example: "/users/123",
    status: StatusCode::OK,
    trace: Some(TraceShape {
        span_names: &["GET /users/{id}", "getUser", "MiddleWork", "ErrorWork"],
        server_spans: 1,
        error_span: None,
    }),
    handler: |method| on(method, work::user),
};

pub static CHAIN: Spec = Spec {
    name: "chain",
    method: Method::GET,
    route: "/chain",
    example: "/chain?hops=2",
    status: StatusCode::OK,
    trace: Some(TraceShape {
        // Each hop's SERVER span, and the CLIENT span of each call onwards.
        span_names: &["GET /chain", "GET"],
        server_spans: 3,
        error_span: None,
    }),
    handler: |method| on(method, chain::chain),
};

pub static HEALTHZ: Spec = Spec {
    name: "healthz",
    method: Method::GET,
    route: "/healthz",
    example: "/healthz",
    status: StatusCode::OK,
    trace: None,
    handler: |method| on(method, health::healthz),
};

pub static READYZ: Spec = Spec {
    name: "readyz",
    method: Method::GET,
    route: "/readyz",
    example: "/readyz",
    status: StatusCode::OK,
    trace: None,
    handler: |method| on(method, health::readyz),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_holds_every_endpoint_once_in_declaration_order() {
        for (position, endpoint) in Endpoint::ALL.into_iter().enumerate() {
            assert_eq!(endpoint.index(), position, "{endpoint:?}");
        }
    }

    #[test]
    fn names_and_routes_are_unique_and_names_round_trip() {
        for endpoint in Endpoint::ALL {
            assert_eq!(Endpoint::from_name(endpoint.name()), Some(endpoint));
            let same_route = Endpoint::ALL
                .into_iter()
                .filter(|other| other.spec().route == endpoint.spec().route)
                .count();
            assert_eq!(same_route, 1, "{} is routed twice", endpoint.spec().route);
        }
    }

    #[test]
    fn each_spec_is_consistent() {
        for endpoint in Endpoint::ALL {
            let spec = endpoint.spec();
            assert!(
                MethodFilter::try_from(spec.method.clone()).is_ok(),
                "{}: {} has no method filter",
                spec.name,
                spec.method
            );
            assert!(
                spec.example.starts_with('/'),
                "{}: {}",
                spec.name,
                spec.example
            );
            let Some(trace) = &spec.trace else { continue };
            assert_eq!(
                trace.span_names.first().copied(),
                Some(format!("{} {}", spec.method, spec.route).as_str()),
                "{}: the SERVER span comes first, named after the route",
                spec.name
            );
            assert!(trace.server_spans >= 1, "{}", spec.name);
            if let Some(error_span) = trace.error_span {
                assert!(
                    trace.span_names.contains(&error_span),
                    "{}: {error_span} is not in the trace",
                    spec.name
                );
                assert!(spec.status.is_server_error(), "{}", spec.name);
            }
        }
    }
}
