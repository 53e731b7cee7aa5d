//! Sending one report until the server has answered it: one `Idempotency-Key` for every
//! attempt, so a retry after a lost answer finds the stored report instead of writing a
//! second one. Connection errors, timeouts and 408/429/500/502/503/504 are retried with
//! exponential backoff and full jitter, honouring `Retry-After`; other answers are final.

use std::time::{Duration, Instant};

use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;
use ureq::Agent;

use super::request::Request;

/// Where and how to send.
pub struct Target {
    /// The server's base URL, without a trailing slash.
    pub base_url: String,
    pub token: Option<String>,
    pub idempotency_key: String,
}

/// How long to keep trying.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// No attempt starts once this much time has gone by since the first.
    pub retry_for: Duration,
    /// At most this many retries (None: as many as fit in `retry_for`).
    pub retries: Option<u32>,
}

/// How a report ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: the report is stored (`replayed`: by an earlier attempt).
    Accepted { body: String, replayed: bool },
    /// An answer retrying cannot change (4xx other than 408 and 429, 3xx, other 5xx).
    Refused { status: u16, body: String },
    /// No attempt was accepted and no more may be made.
    GaveUp { attempts: u32, last_problem: String },
}

/// The first retry waits up to this long; each next one up to twice as long…
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// …but never more than this.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// The answers worth another attempt: the server did not take the report (or may have,
/// which the key makes safe to retry).
pub fn retryable(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Full jitter (AWS's "Exponential Backoff And Jitter"): a random wait between zero and the
/// exponential bound, so clients that failed together do not retry together. A server's
/// `Retry-After` is a floor. `unit` is a random number in [0, 1).
pub fn backoff(retry: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
    let bound = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
        .min(BACKOFF_CAP);
    let jittered = bound.mul_f64(unit.clamp(0.0, 1.0));
    retry_after.map_or(jittered, |floor| floor.max(jittered))
}

/// A `Retry-After` value: seconds, or an HTTP date (RFC 9110).
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// A random number in [0, 1).
fn unit_random() -> f64 {
    let mut bytes = [0u8; 8];
    // Without randomness the wait is the full bound: still a correct backoff.
    if getrandom::fill(&mut bytes).is_err() {
        return 1.0;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// One attempt's result.
enum Attempt {
    Answered {
        status: u16,
        body: String,
        replayed: bool,
        retry_after: Option<Duration>,
    },
    /// No answer (connection refused or reset, timeout): the report may or may not be stored.
    Unanswered(String),
    /// A problem retrying cannot fix (a bad URL, a TLS certificate the client does not trust).
    Broken(String),
}

fn attempt(agent: &Agent, target: &Target, request: &Request) -> Attempt {
    let url = format!("{}{}", target.base_url, request.path);
    let mut call = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", &target.idempotency_key);
    if let Some(token) = &target.token {
        call = call.header("Authorization", &format!("Bearer {token}"));
    }
    match call.send(request.body.as_bytes()) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let replayed = header("idempotent-replayed").as_deref() == Some("true");
            let retry_after = header("retry-after")
                .and_then(|v| parse_retry_after(&v, OffsetDateTime::now_utc()));
            match response.body_mut().read_to_string() {
                Ok(body) => Attempt::Answered {
                    status,
                    body,
                    replayed,
                    retry_after,
                },
                Err(e) => Attempt::Unanswered(format!("the answer ({status}) broke off: {e}")),
            }
        }
        Err(e) => match e {
            ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_) => Attempt::Unanswered(e.to_string()),
            other => Attempt::Broken(other.to_string()),
        },
    }
}

/// Sends `request` until it is answered for good or patience runs out. `say` hears one line
/// per failed attempt (for stderr).
pub fn send(
    agent: &Agent,
    target: &Target,
    request: &Request,
    patience: Patience,
    say: &mut dyn FnMut(&str),
) -> Outcome {
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let (problem, retry_after) = match attempt(agent, target, request) {
            Attempt::Answered {
                status,
                body,
                replayed,
                ..
            } if (200..300).contains(&status) => return Outcome::Accepted { body, replayed },
            Attempt::Answered {
                status,
                body,
                retry_after,
                ..
            } if retryable(status) => (
                format!("answered {status}{}", error_text(&body)),
                retry_after,
            ),
            Attempt::Answered { status, body, .. } => return Outcome::Refused { status, body },
            Attempt::Unanswered(problem) => (format!("no answer: {problem}"), None),
            Attempt::Broken(problem) => {
                return Outcome::GaveUp {
                    attempts,
                    last_problem: format!("{problem} (not retried: retrying cannot fix it)"),
                }
            }
        };
        let retry = attempts;
        let wait = backoff(retry, retry_after, unit_random());
        let out_of_retries = patience.retries.is_some_and(|most| retry > most);
        if out_of_retries || started.elapsed() + wait > patience.retry_for {
            return Outcome::GaveUp {
                attempts,
                last_problem: problem,
            };
        }
        say(&format!(
            "attempt {attempts}: {problem}; retrying in {:.1}s with the same Idempotency-Key",
            wait.as_secs_f64()
        ));
        std::thread::sleep(wait);
    }
}

/// `: <error>` from an error body, when it has one.
pub fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(|e| format!(": {e}")))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_that_may_change_are_retried() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(retryable(status), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 413, 415, 422, 501, 505] {
            assert!(!retryable(status), "{status}");
        }
    }

    #[test]
    fn backoff_is_full_jitter_under_an_exponential_cap_with_retry_after_as_a_floor() {
        assert_eq!(backoff(1, None, 0.0), Duration::ZERO);
        assert_eq!(backoff(1, None, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(3, None, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(3, None, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(30, None, 1.0), BACKOFF_CAP);
        assert_eq!(backoff(u32::MAX, None, 1.0), BACKOFF_CAP);
        let floor = Some(Duration::from_secs(5));
        assert_eq!(backoff(1, floor, 0.3), Duration::from_secs(5));
        assert_eq!(
            backoff(8, floor, 1.0),
            Duration::from_secs(64).min(BACKOFF_CAP)
        );
        let value = unit_random();
        assert!((0.0..1.0).contains(&value));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = OffsetDateTime::parse("Tue, 01 Dec 2026 10:00:00 +0000", &Rfc2822).unwrap();
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Tue, 01 Dec 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 01 Dec 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn error_text_reads_the_error_member() {
        assert_eq!(
            error_text(r#"{"success":false,"error":"write queue full","details":[]}"#),
            ": write queue full"
        );
        assert_eq!(error_text("<html>"), "");
    }
}
