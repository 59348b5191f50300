//! What each request asks for: the endpoint, drawn by weight from `--mix`
//! among the catalogue's (`routes::catalog`), and for `/users/{id}` the id. Drawn from a generator seeded with `--seed`,
//! so the same seed gives the same sequence of requests.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use hyper::http::uri::PathAndQuery;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};

pub use crate::routes::catalog::Endpoint;

/// The seed article's one known user: `/users/123` answers 200.
const KNOWN_USER: u64 = 123;
/// Ids the service rejects with 400: not a whole number, or out of range.
const INVALID_USER_IDS: [&str; 4] = ["abc", "-1", "1.5", "18446744073709551616"];
/// Largest weight in `--mix`, so that the weights' sum cannot overflow.
const MAX_WEIGHT: u32 = 1_000_000;

/// `--mix`: endpoints and their relative weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: Vec<(Endpoint, u32)>,
}

/// Why a `--mix` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MixError {
    #[error("expected NAME=WEIGHT pairs separated by commas, e.g. somework=70,users=30; got `{0}`")]
    Malformed(String),
    #[error("unknown endpoint `{0}`; expected one of {names}", names = Endpoint::names())]
    UnknownEndpoint(String),
    #[error(
        "the weight of `{endpoint}` must be a whole number from 0 to {MAX_WEIGHT}, got `{weight}`"
    )]
    BadWeight { endpoint: String, weight: String },
    #[error("`{0}` is given twice")]
    Duplicate(String),
    #[error("at least one weight must be above 0")]
    AllZero,
}

impl FromStr for Mix {
    type Err = MixError;

    fn from_str(value: &str) -> Result<Self, MixError> {
        let mut weights: Vec<(Endpoint, u32)> = Vec::new();
        for pair in value.split(',') {
            let (name, weight) = pair
                .split_once('=')
                .ok_or_else(|| MixError::Malformed(pair.to_owned()))?;
            let (name, weight) = (name.trim(), weight.trim());
            let endpoint = Endpoint::from_name(name)
                .ok_or_else(|| MixError::UnknownEndpoint(name.to_owned()))?;
            let weight = weight
                .parse::<u32>()
                .ok()
                .filter(|weight| *weight <= MAX_WEIGHT)
                .ok_or_else(|| MixError::BadWeight {
                    endpoint: name.to_owned(),
                    weight: weight.to_owned(),
                })?;
            if weights.iter().any(|(seen, _)| *seen == endpoint) {
                return Err(MixError::Duplicate(name.to_owned()));
            }
            weights.push((endpoint, weight));
        }
        if weights.iter().all(|(_, weight)| *weight == 0) {
            return Err(MixError::AllZero);
        }
        Ok(Self { weights })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (endpoint, weight)) in self.weights.iter().enumerate() {
            let separator = if i == 0 { "" } else { "," };
            write!(f, "{separator}{endpoint}={weight}")?;
        }
        Ok(())
    }
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Planned {
    pub endpoint: Endpoint,
    pub path: PathAndQuery,
}

/// Draws [`Planned`] requests, reproducibly from a seed.
#[derive(Debug)]
pub struct Draw {
    rng: StdRng,
    choice: WeightedIndex<u32>,
    endpoints: Vec<Endpoint>,
    chain_path: PathAndQuery,
}

impl Draw {
    #[expect(
        clippy::expect_used,
        reason = "a parsed Mix has weights with a sum above 0"
    )]
    pub fn new(mix: &Mix, seed: u64, hops: u8) -> Self {
        let endpoints = mix.weights.iter().map(|(endpoint, _)| *endpoint).collect();
        let choice = WeightedIndex::new(mix.weights.iter().map(|(_, weight)| *weight))
            .expect("Mix::from_str admits only weights with a sum above 0");
        Self {
            rng: StdRng::seed_from_u64(seed),
            choice,
            endpoints,
            chain_path: dynamic_path(format!("{}?hops={hops}", Endpoint::Chain.spec().route)),
        }
    }

    pub fn next(&mut self) -> Planned {
        let endpoint = self.endpoints[self.rng.sample(&self.choice)];
        let path = match endpoint {
            Endpoint::Chain => self.chain_path.clone(),
            Endpoint::Users => {
                let id = self.user_id();
                dynamic_path(Endpoint::Users.spec().route.replace("{id}", &id))
            }
            // The catalogue's example request, the same every time.
            other => PathAndQuery::from_static(other.spec().example),
        };
        Planned { endpoint, path }
    }

    /// Half the requests ask for the known user (200), three in ten for a
    /// valid id that does not exist (404), two in ten for an invalid one (400).
    fn user_id(&mut self) -> String {
        match self.rng.random_range(0..10) {
            0..5 => KNOWN_USER.to_string(),
            5..8 => {
                let id = self.rng.random_range(1..1_000_000_u64);
                if id == KNOWN_USER { id + 1 } else { id }.to_string()
            }
            _ => {
                let invalid = self.rng.random_range(0..INVALID_USER_IDS.len());
                INVALID_USER_IDS[invalid].to_owned()
            }
        }
    }
}

/// A path built from digits, letters and `/?=.-` only, so always valid.
#[expect(
    clippy::expect_used,
    reason = "the callers build paths from URL-safe characters"
)]
fn dynamic_path(path: String) -> PathAndQuery {
    PathAndQuery::from_maybe_shared(Bytes::from(path))
        .expect("paths are built from URL-safe characters only")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_weights() {
        let mix: Mix = "somework=70, errorwork=10,users=10,chain=10"
            .parse()
            .unwrap();
        assert_eq!(
            mix.to_string(),
            "somework=70,errorwork=10,users=10,chain=10"
        );
    }

    #[test]
    fn refuses_what_it_cannot_draw_from() {
        assert_eq!(
            "somework".parse::<Mix>(),
            Err(MixError::Malformed("somework".into()))
        );
        assert_eq!(
            "work=1".parse::<Mix>(),
            Err(MixError::UnknownEndpoint("work".into()))
        );
        assert!(matches!(
            "users=-1".parse::<Mix>(),
            Err(MixError::BadWeight { .. })
        ));
        assert!(matches!(
            "users=2000000".parse::<Mix>(),
            Err(MixError::BadWeight { .. })
        ));
        assert_eq!(
            "users=1,users=2".parse::<Mix>(),
            Err(MixError::Duplicate("users".into()))
        );
        assert_eq!("users=0,chain=0".parse::<Mix>(), Err(MixError::AllZero));
        assert!(matches!("".parse::<Mix>(), Err(MixError::Malformed(_))));
    }

    #[test]
    fn the_same_seed_draws_the_same_requests() {
        let mix: Mix = "somework=1,users=1,chain=1".parse().unwrap();
        let draw = |seed| {
            let mut draw = Draw::new(&mix, seed, 3);
            (0..200)
                .map(|_| draw.next().path.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn users_cover_the_known_user_unknown_and_invalid_ids() {
        let mix: Mix = "users=1".parse().unwrap();
        let mut draw = Draw::new(&mix, 1, 1);
        let paths: Vec<String> = (0..500).map(|_| draw.next().path.to_string()).collect();
        assert!(paths.iter().any(|path| path == "/users/123"));
        assert!(paths.iter().any(|path| path == "/users/abc"));
        assert!(paths.iter().any(|path| {
            path.strip_prefix("/users/")
                .and_then(|id| id.parse::<u64>().ok())
                .is_some_and(|id| id != KNOWN_USER)
        }));
    }

    #[test]
    fn every_endpoint_of_the_catalogue_can_be_drawn_on_its_route() {
        for endpoint in Endpoint::ALL {
            let mix: Mix = format!("{endpoint}=1").parse().unwrap();
            let path = Draw::new(&mix, 5, 2).next().path;
            let route = endpoint.spec().route;
            let fixed = route.split('{').next().unwrap_or(route);
            assert!(path.path().starts_with(fixed), "{endpoint}: {path}");
        }
        assert!(
            MixError::UnknownEndpoint("work".into())
                .to_string()
                .ends_with("somework, errorwork, users, chain, healthz, readyz")
        );
    }

    #[test]
    fn zero_weights_are_never_drawn() {
        let mix: Mix = "somework=0,healthz=1".parse().unwrap();
        let mut draw = Draw::new(&mix, 3, 1);
        assert!((0..100).all(|_| draw.next().endpoint == Endpoint::Healthz));
    }
}
