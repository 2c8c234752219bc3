//! OTLP export, end to end with the real binary: `atlas-api` runs as a child process with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a local OTLP/HTTP receiver (a small axum server
//! that decodes each `ExportTraceServiceRequest` protobuf). The test makes a request with its
//! own request id, stops the process with SIGTERM (the spans are flushed on shutdown), and
//! checks what the receiver decoded: the `request` span of that request, carrying the request
//! id, under the service name `atlas-api`; and that the exporter never panicked.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use prost::Message;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// One span as the receiver decoded it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service_name: Option<String>,
    name: String,
    attributes: Vec<(String, String)>,
}

fn text_of(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    })
}

async fn traces(State(spans): State<Arc<Mutex<Vec<ReceivedSpan>>>>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut spans = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service_name = resource_spans.resource.as_ref().and_then(|r| text_of(&r.attributes, "service.name"));
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let attributes =
                    span.attributes.iter().filter_map(|kv| Some((kv.key.clone(), text_of(&span.attributes, &kv.key)?))).collect();
                spans.push(ReceivedSpan { service_name: service_name.clone(), name: span.name, attributes });
            }
        }
    }
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_an_otlp_receiver_with_the_service_name_and_request_id() {
    let received = Arc::new(Mutex::new(Vec::<ReceivedSpan>::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("the receiver binds");
    let receiver_addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/v1/traces", axum::routing::post(traces)).with_state(received.clone());
    let receiver = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let workdir = std::env::temp_dir().join(format!("atlas-otlp-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_atlas-api"));
    for (name, _) in std::env::vars() {
        if name.starts_with("ATLAS_") || name.starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    let database = workdir.join(format!("otlp-{}.db", std::process::id()));
    let mut child = command
        .current_dir(&workdir)
        .env("ATLAS_BIND", "127.0.0.1:0")
        .env("ATLAS_DATABASE_URL", format!("sqlite://{}?mode=rwc", database.display()))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{receiver_addr}"))
        .env("RUST_LOG", "info,sqlx=warn,sea_orm=warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("atlas-api starts");
    let stderr = Arc::new(Mutex::new(Vec::<String>::new()));
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<String>();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let sink = stderr.clone();
    let reader = tokio::spawn(async move {
        let mut addr_tx = Some(addr_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(at) = line.find("listening on http://") {
                let rest = &line[at + "listening on http://".len()..];
                if let (Some(end), Some(tx)) = (rest.find("/v1/atlas"), addr_tx.take()) {
                    let _ = tx.send(rest[..end].to_owned());
                }
            }
            sink.lock().unwrap().push(line);
        }
    });
    let addr = tokio::time::timeout(Duration::from_secs(60), addr_rx)
        .await
        .unwrap_or_else(|_| panic!("atlas-api did not start: {:?}", stderr.lock().unwrap()))
        .expect("the address line");

    let request_id = format!("otlp-test-{}", std::process::id());
    let answer = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .header("x-request-id", &request_id)
        .send()
        .await
        .expect("the server answers");
    assert!(answer.status().is_success(), "{}", answer.status());

    // SIGTERM: a graceful stop, after which the spans are flushed.
    let pid = child.id().expect("the child runs").to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("atlas-api stops").expect("exit status");
    let _ = reader.await;
    let log = stderr.lock().unwrap().join("\n");
    assert!(status.success(), "atlas-api stopped cleanly: {status:?}\n{log}");
    assert!(!log.contains("panicked") && !log.contains("no reactor running"), "the exporter never panics:\n{log}");

    let spans = received.lock().unwrap().clone();
    let ours: Vec<&ReceivedSpan> =
        spans.iter().filter(|s| s.name == "request" && s.attributes.iter().any(|(k, v)| k == "request_id" && *v == request_id)).collect();
    assert_eq!(ours.len(), 1, "the request's span was exported once, with its request id: {spans:?}\n{log}");
    assert_eq!(ours[0].service_name.as_deref(), Some("atlas-api"), "under the service name: {:?}", ours[0]);
    assert!(ours[0].attributes.iter().any(|(k, v)| k == "path" && v == "/healthz"), "with its path: {:?}", ours[0]);
    receiver.abort();
    let _ = std::fs::remove_dir_all(&workdir);
}
