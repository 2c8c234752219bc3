//! The `MessagingProvider` port over the Graph API: maps an `OutboundContent` to Meta's text or
//! template message, and a [`GraphError`] to a retryable or permanent `ProviderError` carrying
//! Meta's code (so a failed message shows `131047`, not a generic failure).

use crate::{GraphClient, GraphError, OutboundMessage};
use async_trait::async_trait;
use atlas_conversations::{
    Channel, ChannelSecrets, MessagingProvider, OutboundContent, ProviderAccepted, ProviderError, ProviderErrorKind,
};
use atlas_kernel::PhoneNumber;
use std::time::Duration;

/// Sends through Meta's WhatsApp Cloud API.
#[derive(Debug, Clone)]
pub struct WhatsAppProvider {
    graph: GraphClient,
}

impl WhatsAppProvider {
    /// A provider over `graph`.
    pub fn new(graph: GraphClient) -> Self {
        Self { graph }
    }
}

/// The Graph message for a domain content.
pub fn outbound_message(to: &PhoneNumber, content: &OutboundContent) -> OutboundMessage {
    let to = to.digits().to_owned();
    match content {
        OutboundContent::Text { body } => OutboundMessage::Text { to, body: body.clone() },
        OutboundContent::Template { name, language, parameters, .. } => {
            OutboundMessage::Template { to, name: name.clone(), language: language.clone(), parameters: parameters.clone() }
        }
    }
}

/// The domain's view of a Graph failure.
pub fn provider_error(error: &GraphError) -> ProviderError {
    let kind = if error.retryable { ProviderErrorKind::Retryable } else { ProviderErrorKind::Permanent };
    let retry_after = error.retry_after.map(|d: Duration| time::Duration::try_from(d).unwrap_or(time::Duration::MAX));
    ProviderError { kind, code: error.code, message: error.message.clone(), retry_after }
}

#[async_trait]
impl MessagingProvider for WhatsAppProvider {
    async fn send(
        &self,
        channel: &Channel,
        secrets: &ChannelSecrets,
        to: &PhoneNumber,
        content: &OutboundContent,
    ) -> Result<ProviderAccepted, ProviderError> {
        let message = outbound_message(to, content);
        match self.graph.send(&channel.phone_number_id, &secrets.access_token, &message).await {
            Ok(accepted) => Ok(ProviderAccepted { provider_message_id: accepted.wamid }),
            Err(e) => Err(provider_error(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_keeps_its_name_language_and_parameters() {
        let to = PhoneNumber::parse("+14155552671").unwrap();
        let content = OutboundContent::Template {
            template_id: atlas_conversations::TemplateId::generate(),
            name: "hello_world".into(),
            language: "en_US".into(),
            category: atlas_conversations::TemplateCategory::Utility,
            parameters: vec!["Ada".into()],
        };
        let json = outbound_message(&to, &content).to_json();
        assert_eq!(json["to"], "14155552671");
        assert_eq!(json["template"]["name"], "hello_world");
        assert_eq!(json["template"]["language"]["code"], "en_US");
        assert_eq!(json["template"]["components"][0]["parameters"][0]["text"], "Ada");
    }

    #[test]
    fn graph_failures_keep_their_class_and_code() {
        let permanent = GraphError::from_response(400, None, br#"{"error":{"message":"Re-engagement message","code":131047}}"#);
        let mapped = provider_error(&permanent);
        assert_eq!(mapped.kind, ProviderErrorKind::Permanent);
        assert_eq!(mapped.code, Some(131047));
        let throttled = GraphError::from_response(400, Some("7"), br#"{"error":{"message":"throughput","code":130429}}"#);
        let mapped = provider_error(&throttled);
        assert_eq!(mapped.kind, ProviderErrorKind::Retryable);
        assert_eq!(mapped.retry_after, Some(time::Duration::seconds(7)));
    }
}
