//! The sender ignores proxy settings from the environment: with `HTTP_PROXY` and `ALL_PROXY`
//! pointing at an address where nothing listens, a delivery still reaches the pinned address.
//! (Its own test binary: the variables it sets are process-wide.)

use atlas_webhook_sender::HttpSender;
use atlas_webhooks::{validate_url, WebhookSender};
use axum::routing::post;
use std::net::IpAddr;

#[tokio::test]
async fn a_proxy_in_the_environment_is_never_used() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("the receiver binds");
    let addr = listener.local_addr().expect("an address");
    let app = axum::Router::new().route("/hook", post(|| async { "received" }));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // A port nothing listens on: a client that used the proxy would fail to connect.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    for name in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        std::env::set_var(name, format!("http://{dead}"));
    }
    for name in ["NO_PROXY", "no_proxy"] {
        std::env::remove_var(name);
    }

    let url = validate_url(&format!("http://{addr}/hook")).expect("a valid URL");
    let addresses: Vec<IpAddr> = vec![addr.ip()];
    let sent = HttpSender::new()
        .send(&url, &addresses, &[("content-type", "application/json".to_owned())], b"{}", time::Duration::seconds(10))
        .await;
    let response = sent.expect("the delivery goes straight to the checked address, not through the proxy");
    assert_eq!(response.status, 200);
    server.abort();
}
