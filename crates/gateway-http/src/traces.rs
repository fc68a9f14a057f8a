//! OpenTelemetry traces of MCP calls, exported over OTLP/HTTP with the JSON encoding.
//!
//! Every MCP request the gateway forwards is one span of kind `SERVER`: it continues the
//! client's W3C trace (`_meta.traceparent`) or starts one, and its span id is the parent the
//! upstream sees (the pipeline injects it into the forwarded `_meta` and, for HTTP upstreams,
//! the `traceparent` header; see `gateway_transport::exchange::TraceContext`). Attributes follow
//! the OpenTelemetry semantic conventions for MCP and generative AI where they exist
//! (`mcp.method.name`, `mcp.session.id`, `mcp.protocol.version`, `gen_ai.tool.name`,
//! `gen_ai.operation.name`, `gen_ai.prompt.name`, `mcp.resource.uri`, `rpc.jsonrpc.error_code`,
//! `error.type`, `network.transport`), plus the gateway's own (`mcp_gateway.server`,
//! `mcp_gateway.outcome`, `mcp_gateway.transport`). Arguments and results are never attributes.
//!
//! Export is off the request path: [`SpanExporter::export`] only `try_send`s onto a bounded
//! queue (full: dropped and counted in `gateway_trace_spans_dropped_total`); one task on the
//! shared runtime batches spans (`traces.batch_size`, or every `traces.flush_interval_ms`) and
//! POSTs them to the collector, retrying a failed batch once before dropping it (counted in
//! `gateway_trace_export_failures_total`). Built on `reqwest` and `serde_json` alone: no
//! OpenTelemetry SDK in the build.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_transport::exchange::{Exchange, Outcome};
use gateway_types::config::TracesConfig;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Spans dropped because the export queue was full.
pub const SPANS_DROPPED_TOTAL: &str = "gateway_trace_spans_dropped_total";
/// Export requests the collector did not accept (after a retry).
pub const EXPORT_FAILURES_TOTAL: &str = "gateway_trace_export_failures_total";

/// `SPAN_KIND_SERVER`.
const KIND_SERVER: u8 = 2;
/// `STATUS_CODE_ERROR`.
const STATUS_ERROR: u8 = 2;

/// One finished span, as queued for export.
#[derive(Debug)]
pub struct SpanRecord {
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
    name: String,
    start_ns: u64,
    end_ns: u64,
    attributes: Vec<(&'static str, Value)>,
    error: Option<String>,
}

impl SpanRecord {
    /// The span of one completed MCP exchange on `server`.
    #[must_use]
    pub fn of_exchange(ex: &Exchange<'_>, server: &str) -> Self {
        let end = SystemTime::now();
        let start = end.checked_sub(ex.latency).unwrap_or(end);
        let mut attributes: Vec<(&'static str, Value)> = vec![
            ("mcp.method.name", json!(ex.method)),
            ("mcp.session.id", json!(ex.session.to_string())),
            ("mcp_gateway.server", json!(server)),
            ("mcp_gateway.outcome", json!(ex.outcome.as_str())),
            ("mcp_gateway.transport", json!(ex.transport.as_str())),
            ("network.transport", json!("tcp")),
        ];
        if let Some(v) = ex.protocol_version {
            attributes.push(("mcp.protocol.version", json!(v)));
        }
        match (ex.method, ex.name) {
            ("tools/call", Some(name)) => {
                attributes.push(("gen_ai.tool.name", json!(name)));
                attributes.push(("gen_ai.operation.name", json!("execute_tool")));
            }
            ("prompts/get", Some(name)) => attributes.push(("gen_ai.prompt.name", json!(name))),
            ("resources/read" | "resources/subscribe" | "resources/unsubscribe", Some(uri)) => {
                attributes.push(("mcp.resource.uri", json!(uri)));
            }
            _ => {}
        }
        let mut error = None;
        if let Some(code) = ex.error_code {
            attributes.push(("rpc.jsonrpc.error_code", json!(code)));
            attributes.push(("error.type", json!(code.to_string())));
        }
        if !matches!(ex.outcome, Outcome::Ok) {
            error = Some(ex.outcome.as_str().to_owned());
        }
        // The span name: `{mcp.method.name} {target}` when there is a target.
        let name = match ex.name {
            Some(target) if matches!(ex.method, "tools/call" | "prompts/get") => {
                format!("{} {target}", ex.method)
            }
            _ => ex.method.to_owned(),
        };
        Self {
            trace_id: ex.trace_id.to_owned(),
            span_id: ex.span_id.to_owned(),
            parent_span_id: ex.parent_span_id.map(str::to_owned),
            name,
            start_ns: unix_nanos(start),
            end_ns: unix_nanos(end),
            attributes,
            error,
        }
    }

    fn to_otlp(&self) -> Value {
        let mut span = json!({
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "name": self.name,
            "kind": KIND_SERVER,
            "startTimeUnixNano": self.start_ns.to_string(),
            "endTimeUnixNano": self.end_ns.to_string(),
            "attributes": self.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
        });
        if let Some(parent) = &self.parent_span_id {
            span["parentSpanId"] = json!(parent);
        }
        if let Some(message) = &self.error {
            span["status"] = json!({"code": STATUS_ERROR, "message": message});
        }
        span
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// An OTLP `KeyValue` (strings, integers, booleans; integers as decimal strings, as the JSON
/// encoding of int64 wants).
fn attribute(key: &str, value: &Value) -> Value {
    let v = match value {
        Value::Number(n) if n.is_i64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n.as_f64().unwrap_or_default()}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::String(s) => json!({"stringValue": s}),
        other => json!({"stringValue": other.to_string()}),
    };
    json!({"key": key, "value": v})
}

/// The handle the pipeline exports spans through; cheap to clone.
#[derive(Clone, Debug)]
pub struct SpanExporter {
    tx: mpsc::Sender<SpanRecord>,
    /// New traces are exported when their first trace-id byte falls under this.
    sample_threshold: u16,
}

impl SpanExporter {
    /// Starts the export task on `runtime` when `cfg` (or the environment) names an endpoint.
    #[must_use]
    pub fn start(
        cfg: &TracesConfig,
        client: reqwest::Client,
        runtime: &tokio::runtime::Handle,
    ) -> Option<Self> {
        let url = cfg.endpoint()?;
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let resource = json!({"attributes": [
            attribute("service.name", &json!(cfg.service())),
            attribute("service.version", &json!(env!("CARGO_PKG_VERSION"))),
        ]});
        let batch = cfg.batch_size.max(1);
        let every = Duration::from_millis(cfg.flush_interval_ms.max(10));
        runtime.spawn(export_loop(
            rx,
            client,
            url.clone(),
            Arc::new(resource),
            batch,
            every,
        ));
        tracing::info!(traces.endpoint = %url, "exporting MCP call spans over OTLP/HTTP");
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a ratio in [0, 1] scaled to 0..=256"
        )]
        let sample_threshold = (cfg.sample_ratio.clamp(0.0, 1.0) * 256.0).round() as u16;
        Some(Self { tx, sample_threshold })
    }

    /// Whether the span of `ex` is exported: a client's sampled flag decides for its trace;
    /// a new trace is sampled by `traces.sample_ratio` (from its random trace id, so every
    /// replica decides the same).
    #[must_use]
    pub fn samples(&self, ex: &Exchange<'_>) -> bool {
        if ex.parent_span_id.is_some() {
            return ex.sampled;
        }
        let first = u16::from_str_radix(ex.trace_id.get(..2).unwrap_or("00"), 16).unwrap_or(0);
        first < self.sample_threshold
    }

    /// Queues a span; never waits (a full queue drops it, counted).
    pub fn export(&self, span: SpanRecord) {
        if self.tx.try_send(span).is_err() {
            metrics::counter!(SPANS_DROPPED_TOTAL).increment(1);
        }
    }
}

async fn export_loop(
    mut rx: mpsc::Receiver<SpanRecord>,
    client: reqwest::Client,
    url: String,
    resource: Arc<Value>,
    batch_size: usize,
    every: Duration,
) {
    let mut batch = Vec::with_capacity(batch_size);
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + every;
        // Collect without parking in `recv` (which would wake this task for every span):
        // drain what is queued, nap, drain again.
        while batch.len() < batch_size {
            match rx.try_recv() {
                Ok(span) => batch.push(span),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let now = tokio::time::Instant::now();
                    if now >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(deadline.min(now + Duration::from_millis(10))).await;
                }
            }
        }
        let body = json!({"resourceSpans": [{
            "resource": &*resource,
            "scopeSpans": [{
                "scope": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
                "spans": batch.iter().map(SpanRecord::to_otlp).collect::<Vec<_>>(),
            }],
        }]});
        batch.clear();
        let Ok(bytes) = serde_json::to_vec(&body) else {
            continue;
        };
        let mut sent = false;
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let result = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .timeout(Duration::from_secs(10))
                .body(bytes.clone())
                .send()
                .await;
            if result.is_ok_and(|r| r.status().is_success()) {
                sent = true;
                break;
            }
        }
        if !sent {
            metrics::counter!(EXPORT_FAILURES_TOTAL).increment(1);
            tracing::warn!(traces.endpoint = %url, "the trace collector did not accept a batch of spans; dropped");
        }
    }
}

/// Describes the trace metrics.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        SPANS_DROPPED_TOTAL,
        "MCP call spans dropped because the export queue was full"
    );
    metrics::describe_counter!(
        EXPORT_FAILURES_TOTAL,
        "Span batches the OTLP collector did not accept (after one retry)"
    );
}

#[cfg(test)]
mod tests {
    use gateway_transport::client::ClientTransport;
    use gateway_types::ids::SessionId;

    use super::*;

    fn exchange<'a>(trace: &'a str, parent: Option<&'a str>, sampled: bool) -> Exchange<'a> {
        Exchange {
            session: SessionId::new(),
            transport: ClientTransport::StreamableHttp,
            protocol_version: Some("2025-11-25"),
            method: "tools/call",
            name: Some("echo"),
            outcome: Outcome::Error,
            error_code: Some(-32602),
            latency: Duration::from_millis(3),
            request_bytes: 10,
            response_bytes: 20,
            params: None,
            response: None,
            tag: None,
            trace_id: trace,
            span_id: "00f067aa0ba902b7",
            parent_span_id: parent,
            sampled,
        }
    }

    #[test]
    fn a_span_follows_the_otlp_json_encoding_and_the_conventions() {
        let ex = exchange("0af7651916cd43dd8448eb211c80319c", Some("b7ad6b7169203331"), true);
        let span = SpanRecord::of_exchange(&ex, "github").to_otlp();
        assert_eq!(span["traceId"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(span["spanId"], "00f067aa0ba902b7");
        assert_eq!(span["parentSpanId"], "b7ad6b7169203331");
        assert_eq!(span["name"], "tools/call echo");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["status"]["code"], 2);
        let start: u64 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u64 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert_eq!(end - start, 3_000_000);
        let attr = |k: &str| {
            span["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == k)
                .map(|a| a["value"].clone())
        };
        assert_eq!(attr("gen_ai.tool.name"), Some(json!({"stringValue": "echo"})));
        assert_eq!(
            attr("mcp.method.name"),
            Some(json!({"stringValue": "tools/call"}))
        );
        assert_eq!(
            attr("rpc.jsonrpc.error_code"),
            Some(json!({"intValue": "-32602"}))
        );
        assert_eq!(
            attr("mcp.protocol.version"),
            Some(json!({"stringValue": "2025-11-25"}))
        );
        assert_eq!(attr("arguments"), None);
    }

    #[tokio::test]
    async fn sampling_honours_the_client_and_the_ratio() {
        let cfg = |ratio: f64| TracesConfig {
            otlp_endpoint: Some("http://127.0.0.1:9/".into()),
            sample_ratio: ratio,
            ..TracesConfig::default()
        };
        let rt = tokio::runtime::Handle::current();
        let none = SpanExporter::start(&cfg(0.0), reqwest::Client::new(), &rt).unwrap();
        let all = SpanExporter::start(&cfg(1.0), reqwest::Client::new(), &rt).unwrap();
        let new_trace = exchange("ff000000000000000000000000000001", None, true);
        assert!(all.samples(&new_trace));
        assert!(!none.samples(&new_trace));
        // A client's decision wins either way.
        assert!(none.samples(&exchange(
            "ff000000000000000000000000000001",
            Some("b7ad6b7169203331"),
            true
        )));
        assert!(!all.samples(&exchange(
            "ff000000000000000000000000000001",
            Some("b7ad6b7169203331"),
            false
        )));
    }
}
