//! The sandbox provider of the embedded default: no Meta account needed. It accepts every send,
//! answers with a `sandbox.` message id, and hands a [`SandboxReceipt`] to whoever listens
//! (the server), which feeds `delivered` and `read` statuses for that id through the same
//! status path Meta's webhooks use.

use async_trait::async_trait;
use atlas_conversations::{Channel, ChannelSecrets, MessagingProvider, OutboundContent, ProviderAccepted, ProviderError};
use atlas_kernel::{OrgId, PhoneNumber};
use tokio::sync::mpsc;

/// A send the sandbox accepted; the listener reports its statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxReceipt {
    pub org_id: OrgId,
    pub channel: Channel,
    pub provider_message_id: String,
    pub to: PhoneNumber,
}

/// Accepts every send. Clones share the receipt channel.
#[derive(Debug, Clone)]
pub struct SandboxProvider {
    receipts: mpsc::UnboundedSender<SandboxReceipt>,
}

impl SandboxProvider {
    /// A sandbox and the receiver of its receipts.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<SandboxReceipt>) {
        let (receipts, rx) = mpsc::unbounded_channel();
        (Self { receipts }, rx)
    }
}

#[async_trait]
impl MessagingProvider for SandboxProvider {
    async fn send(
        &self,
        channel: &Channel,
        _secrets: &ChannelSecrets,
        to: &PhoneNumber,
        _content: &OutboundContent,
    ) -> Result<ProviderAccepted, ProviderError> {
        let provider_message_id = format!("sandbox.{}", uuid::Uuid::new_v4().simple());
        let receipt = SandboxReceipt {
            org_id: channel.org_id,
            channel: channel.clone(),
            provider_message_id: provider_message_id.clone(),
            to: to.clone(),
        };
        // Nobody listening (a shut-down server) only means no statuses follow.
        let _ = self.receipts.send(receipt);
        Ok(ProviderAccepted { provider_message_id })
    }

    async fn mark_read(&self, _channel: &Channel, _secrets: &ChannelSecrets, _provider_message_id: &str) -> Result<(), ProviderError> {
        Ok(())
    }
}
