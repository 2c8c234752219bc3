//! Logs and traces: `tracing` to standard error as text or JSON (`ATLAS_LOG_FORMAT`), filtered
//! by `RUST_LOG` (default `info`), and spans exported over OTLP/HTTP (protobuf) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, under the service name `atlas-api` (or
//! `OTEL_SERVICE_NAME`).
//!
//! The exporter uses a blocking HTTP client driven by the batch processor's own thread: that
//! thread runs outside the Tokio runtime, so an async client there panics on its first export
//! ("there is no reactor running"). Spans are flushed when the [`TelemetryGuard`] drops (on
//! shutdown, after the server stopped).

use crate::config::LogFormat;
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The service name spans carry unless `OTEL_SERVICE_NAME` names another.
pub const SERVICE_NAME: &str = "atlas-api";

/// Keeps the exporter alive; flushes and shuts it down on drop.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.force_flush() {
                eprintln!("OTLP flush failed: {e}");
            }
            if let Err(e) = provider.shutdown() {
                eprintln!("OTLP shutdown failed: {e}");
            }
        }
    }
}

/// The tracer provider exporting to `OTEL_EXPORTER_OTLP_ENDPOINT` (read by the exporter with
/// the other standard `OTEL_EXPORTER_OTLP_*` variables), batching on its own thread.
fn otlp_provider() -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build().map_err(|e| e.to_string())?;
    let service_name = std::env::var("OTEL_SERVICE_NAME").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| SERVICE_NAME.to_owned());
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service_name).build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder().with_resource(resource).with_batch_exporter(exporter).build())
}

/// Installs the global subscriber.
pub fn init(format: LogFormat) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let fmt = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_current_span(true).with_writer(std::io::stderr).boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
    };
    let mut guard = TelemetryGuard::default();
    let otel = if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        match otlp_provider() {
            Ok(provider) => {
                let tracer = provider.tracer("atlas");
                guard.provider = Some(provider);
                Some(tracing_opentelemetry::layer().with_tracer(tracer))
            }
            Err(e) => {
                eprintln!("OTLP exporter not started: {e}");
                None
            }
        }
    } else {
        None
    };
    let _ = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init();
    guard
}
