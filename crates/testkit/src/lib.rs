//! Test support shared by every adapter's tests: access to the real PostgreSQL and Redis
//! servers (a loud skip when they are absent, a failure when `ATLAS_REQUIRE_SERVICES=1`), and
//! the behavioural suites each port's adapters must all pass.

pub mod accounts;
pub mod agents;
pub mod cmdb;
pub mod conversations;
pub mod idempotency;
pub mod incidents;
pub mod itsm;
pub mod knowledge;
pub mod ratelimit;
pub mod runbooks;
pub mod runs;
pub mod services;
pub mod webhooks;
pub mod work;

/// Runs `workers` concurrent claimers, each calling `claim` until it returns `None` (the claim
/// came back empty), and gathers what they all kept (`Some(kept)`, possibly empty when a batch
/// held only other checks' rows): the harness of every "each row goes to exactly one of
/// several concurrent claimers" check.
pub async fn claim_concurrently<T, F, Fut>(workers: usize, claim: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Option<Vec<T>>> + Send,
{
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let claim = claim.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(kept) = claim().await {
                    mine.extend(kept);
                }
                mine
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.expect("a claimer task ran"));
    }
    claimed
}
