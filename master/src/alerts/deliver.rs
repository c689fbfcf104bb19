//! Webhook delivery: one POST per transition, retried with capped
//! exponential back-off, each carrying an idempotency key.
//!
//! Delivery is at least once. The transition is in the replicated record
//! before the first attempt, and `delivered` is written only after the
//! receiver answered 2xx, so a leader that dies between the two makes its
//! successor send the same transition again with the same
//! `Idempotency-Key` (`<alert id>@<fired_ms>:<transition>`): a receiver
//! that remembers the keys it has seen gets every transition exactly once.
//! Recording before sending would turn this into at most once (a crash
//! after the record and before the send loses the notification), which an
//! alert cannot afford.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::record::{AlertState, Notification};

/// The first retry's delay.
const FIRST_RETRY_MS: u64 = 250;
/// The longest delay between attempts.
const MAX_RETRY_MS: u64 = 30_000;
/// One attempt's bound.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The delay after `failures` failed attempts: 250 ms doubling, capped at
/// 30 s.
pub fn backoff_ms(failures: u32) -> u64 {
    let exp = failures.saturating_sub(1).min(16);
    (FIRST_RETRY_MS << exp).min(MAX_RETRY_MS)
}

/// This leader's view of the sends: what is in flight, when each failed
/// key may be tried again, and what was acknowledged but not yet recorded.
#[derive(Debug, Default)]
pub struct Outbox {
    in_flight: HashSet<String>,
    retry: HashMap<String, (u32, u64)>,
    acked: HashSet<String>,
}

impl Outbox {
    /// Whether `key` should be sent at `now_ms`.
    pub fn due(&self, key: &str, now_ms: u64) -> bool {
        !self.in_flight.contains(key)
            && !self.acked.contains(key)
            && self.retry.get(key).is_none_or(|(_, at)| *at <= now_ms)
    }

    /// Whether the receiver acknowledged `key` (the record may not say so
    /// yet).
    pub fn acked(&self, key: &str) -> bool {
        self.acked.contains(key)
    }

    /// `key` is being sent.
    pub fn start(&mut self, key: &str) {
        self.in_flight.insert(key.to_string());
    }

    /// The send of `key` ended at `now_ms`.
    pub fn finish(&mut self, key: &str, ok: bool, now_ms: u64) -> u32 {
        self.in_flight.remove(key);
        if ok {
            self.retry.remove(key);
            self.acked.insert(key.to_string());
            0
        } else {
            let e = self.retry.entry(key.to_string()).or_insert((0, 0));
            e.0 += 1;
            e.1 = now_ms + backoff_ms(e.0);
            e.0
        }
    }

    /// The record now says `key` was delivered.
    pub fn recorded(&mut self, key: &str) {
        self.acked.remove(key);
        self.retry.remove(key);
    }

    /// Forgets keys of alerts no longer recorded.
    pub fn retain(&mut self, live: &HashSet<String>) {
        self.retry.retain(|k, _| live.contains(k));
        self.acked.retain(|k| live.contains(k));
    }
}

/// POSTs `n` to `url`; Ok on a 2xx answer.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    n: &Notification,
) -> std::result::Result<(), String> {
    let r = client
        .post(url)
        .header("Idempotency-Key", &n.idempotency_key)
        .json(n)
        .timeout(SEND_TIMEOUT)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", r.status()))
    }
}

/// The notification of `transition` of `alert`.
pub fn notification(alert: &super::record::AlertRecord, transition: AlertState) -> Notification {
    Notification {
        idempotency_key: alert.idempotency_key(transition),
        transition: transition.as_str().to_string(),
        alert: alert.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_to_a_cap_and_an_ack_stops_resends() {
        assert_eq!(
            (backoff_ms(1), backoff_ms(2), backoff_ms(3)),
            (250, 500, 1000)
        );
        assert_eq!(backoff_ms(100), MAX_RETRY_MS);
        let mut o = Outbox::default();
        assert!(o.due("k", 0));
        o.start("k");
        assert!(!o.due("k", 0), "in flight");
        assert_eq!(o.finish("k", false, 1_000), 1);
        assert!(!o.due("k", 1_100));
        assert!(o.due("k", 1_250));
        o.start("k");
        assert_eq!(o.finish("k", false, 2_000), 2);
        assert!(!o.due("k", 2_400) && o.due("k", 2_500));
        o.start("k");
        o.finish("k", true, 3_000);
        assert!(o.acked("k") && !o.due("k", 10_000));
        o.recorded("k");
        assert!(!o.acked("k"));
    }
}
