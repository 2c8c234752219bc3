//! Password hashing on tokio's blocking pool: argon2 takes tens of milliseconds of CPU on
//! purpose, which must never stall the async workers that serve every other request.

use async_trait::async_trait;
use atlas_accounts::{hash_password, verify_password, PasswordHashing};

/// Runs argon2 with `spawn_blocking`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockingArgon2;

#[async_trait]
impl PasswordHashing for BlockingArgon2 {
    async fn hash(&self, password: String, salt: [u8; 16]) -> String {
        match tokio::task::spawn_blocking(move || hash_password(&password, &salt)).await {
            Ok(phc) => phc,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    async fn verify(&self, password: String, phc: String) -> bool {
        tokio::task::spawn_blocking(move || verify_password(&password, &phc)).await.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    /// How many times another task ran while `hashing` verified a password, on this (one-thread)
    /// runtime.
    async fn ticks_during(hashing: &dyn PasswordHashing, phc: &str) -> u64 {
        let ticks = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (ticks, done) = (ticks.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    ticks.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
            })
        };
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::SeqCst);
        assert!(hashing.verify("correct horse battery".into(), phc.to_owned()).await);
        let after = ticks.load(Ordering::SeqCst);
        done.store(true, Ordering::SeqCst);
        ticker.await.unwrap();
        after - before
    }

    /// On a one-thread runtime, another task keeps running while a password is verified: the
    /// argon2 work is not on the runtime's thread. Inline, the verification completes within a
    /// single poll and the other task cannot advance meanwhile (which shows the check can fail).
    #[tokio::test(flavor = "current_thread")]
    async fn verification_leaves_the_async_thread_free() {
        let phc = hash_password("correct horse battery", &[5; 16]);
        assert!(ticks_during(&BlockingArgon2, &phc).await > 0, "the async thread kept serving other tasks while argon2 ran");
        assert_eq!(ticks_during(&atlas_accounts::InlineArgon2, &phc).await, 0, "inline, nothing else runs meanwhile");
    }
}
