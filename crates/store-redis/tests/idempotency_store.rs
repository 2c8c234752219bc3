//! The idempotency behavioural suite against the real Redis, in a namespace of its own.

use atlas_store_redis::RedisIdempotencyStore;
use atlas_testkit::services::{redis_available, redis_url};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_idempotency_store_passes_the_idempotency_suite() {
    if !redis_available().await {
        return;
    }
    let namespace = format!("test-{}", std::process::id());
    let store = RedisIdempotencyStore::connect(&redis_url()).await.expect("Redis answers").with_namespace(&namespace);
    assert!(!atlas_idempotency::IdempotencyStore::commits_with_effect(&store), "Redis cannot commit with a SQL effect");
    atlas_testkit::idempotency::suite(Arc::new(store), "Redis").await;
}
