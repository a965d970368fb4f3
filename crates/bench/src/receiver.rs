//! Local keep-alive receivers on 127.0.0.1: they count events per webhook
//! (a batch request counts its events) and, for events that carry the time
//! they were published (`sent_ns` in their data), record the
//! publish→receipt latency (a batch's first event's).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;

/// Field of the event data holding the publish time, in Unix nanoseconds.
pub const SENT_FIELD: &str = "sent_ns";

#[derive(Clone, Default)]
pub struct Receipts {
    counts: Arc<Vec<AtomicU64>>,
    /// Microseconds from publish to receipt, for events that carry `sent_ns`.
    latencies: Arc<Mutex<Vec<u64>>>,
}

impl Receipts {
    pub fn received(&self, receiver: usize) -> u64 {
        self.counts
            .get(receiver)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub fn latencies_micros(&self) -> Vec<u64> {
        self.latencies.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// How a receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 at once.
    Ok,
    /// 200 after this long.
    After(Duration),
    /// 500 at once, counting nothing: an endpoint that is down.
    Fail,
}

#[derive(Clone)]
struct Endpoint {
    receipts: Receipts,
    index: usize,
    answer: Answer,
}

/// Starts `count` receivers, each on its own port (so each is its own host
/// for webhookd's connection pools and limits). Receiver `slow.0` waits
/// `slow.1` before answering. Returns their URLs.
pub async fn start(
    count: usize,
    slow: Option<(usize, Duration)>,
) -> anyhow::Result<(Receipts, Vec<String>)> {
    let answers = (0..count)
        .map(|index| match slow {
            Some((i, delay)) if i == index => Answer::After(delay),
            _ => Answer::Ok,
        })
        .collect();
    start_answering(answers).await
}

/// One receiver per entry of `answers`, answering that way.
pub async fn start_answering(answers: Vec<Answer>) -> anyhow::Result<(Receipts, Vec<String>)> {
    let receipts = Receipts {
        counts: Arc::new(answers.iter().map(|_| AtomicU64::new(0)).collect()),
        latencies: Arc::default(),
    };
    let mut urls = Vec::with_capacity(answers.len());
    for (index, answer) in answers.into_iter().enumerate() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let endpoint = Endpoint {
            receipts: receipts.clone(),
            index,
            answer,
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(endpoint);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        urls.push(format!("http://{addr}/hook"));
    }
    Ok((receipts, urls))
}

async fn receive(State(endpoint): State<Endpoint>, body: Bytes) -> (StatusCode, &'static str) {
    let now = unix_nanos();
    match endpoint.answer {
        Answer::Fail => return (StatusCode::INTERNAL_SERVER_ERROR, "down"),
        Answer::After(delay) => tokio::time::sleep(delay).await,
        Answer::Ok => {}
    }
    // A slow receiver's latency is its own queueing, which would hide the
    // other receivers' figures.
    let stamped = sent_ns(&body).filter(|_| endpoint.answer == Answer::Ok);
    if let Some(sent) = stamped {
        let micros = now.saturating_sub(sent) / 1000;
        if let Ok(mut latencies) = endpoint.receipts.latencies.lock() {
            latencies.push(micros);
        }
    }
    if let Some(count) = endpoint.receipts.counts.get(endpoint.index) {
        count.fetch_add(events_in(&body), Ordering::Relaxed);
    }
    (StatusCode::OK, "ok")
}

/// How many events a request carried: a batch body's (SPEC §11), else one.
fn events_in(body: &[u8]) -> u64 {
    #[derive(serde::Deserialize)]
    struct Batch {
        events: Vec<serde::de::IgnoredAny>,
    }
    const BATCH: &[u8] = br#""event":"batch""#;
    if !body.windows(BATCH.len()).any(|w| w == BATCH) {
        return 1;
    }
    serde_json::from_slice::<Batch>(body).map_or(1, |batch| batch.events.len() as u64)
}

pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The digits after `"sent_ns":` in the delivered body.
fn sent_ns(body: &[u8]) -> Option<u64> {
    let key = format!("\"{SENT_FIELD}\":");
    let start = body
        .windows(key.len())
        .position(|window| window == key.as_bytes())?
        + key.len();
    let digits = body[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&body[start..start + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_publish_time_from_the_envelope() {
        let body = br#"{"id":"x","event":"task.created","data":{"task_id":1,"sent_ns":1234567},"timestamp":1}"#;
        assert_eq!(sent_ns(body), Some(1_234_567));
        assert_eq!(sent_ns(br#"{"data":{"task_id":1}}"#), None);
        assert_eq!(sent_ns(br#"{"sent_ns":"#), None);
    }

    #[test]
    fn a_batch_counts_its_events() {
        let one = br#"{"id":"x","event":"task.created","timestamp":1,"data":{}}"#;
        assert_eq!(events_in(one), 1);
        let batch = br#"{"id":"b","event":"batch","timestamp":1,"events":[{"id":"1"},{"id":"2"}]}"#;
        assert_eq!(events_in(batch), 2);
    }
}
