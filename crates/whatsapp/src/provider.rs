//! The `MessagingProvider` and `TemplateSource` ports over the Graph API: maps an
//! `OutboundContent` to Meta's text, template (with header, body and button components),
//! media or interactive message, read receipts to Meta's `status: read` call, the account's
//! template listing to the domain's templates, and a [`GraphError`] to a retryable or permanent
//! `ProviderError` carrying Meta's code (so a failed message shows `131047`, not a generic
//! failure).

use crate::{GraphClient, GraphError, OutboundMessage};
use async_trait::async_trait;
use atlas_conversations::{
    Channel, ChannelSecrets, Interactive, InteractiveType, MessagingProvider, OutboundContent, OutboundMedia, ProviderAccepted,
    ProviderError, ProviderErrorKind, RemoteTemplate, TemplateButton, TemplateButtonType, TemplateCategory, TemplateHeader,
    TemplateHeaderType, TemplateSource, TemplateStatus,
};
use atlas_kernel::PhoneNumber;
use serde_json::{json, Value};
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
        OutboundContent::Template { name, language, parameters, header, buttons, .. } => OutboundMessage::Template {
            to,
            name: name.clone(),
            language: language.clone(),
            parameters: parameters.clone(),
            header: header.as_ref().map(header_component),
            buttons: buttons.iter().map(button_component).collect(),
        },
        OutboundContent::Media(media) => {
            OutboundMessage::Media { to, media_type: media.media_type.as_str().to_owned(), media: media_object(media) }
        }
        OutboundContent::Interactive(interactive) => OutboundMessage::Interactive { to, interactive: interactive_object(interactive) },
        // Receipts go through `mark_read`; a text placeholder is never sent.
        OutboundContent::Read { .. } => OutboundMessage::Text { to, body: String::new() },
    }
}

fn media_reference(id: Option<&String>, link: Option<&String>) -> Value {
    match (id, link) {
        (Some(id), _) => json!({ "id": id }),
        (None, Some(link)) => json!({ "link": link }),
        (None, None) => json!({}),
    }
}

/// Meta's media object: `{"id"|"link", "caption"?, "filename"?}`.
fn media_object(media: &OutboundMedia) -> Value {
    let mut object = media_reference(media.id.as_ref(), media.link.as_ref());
    if let Some(caption) = &media.caption {
        object["caption"] = json!(caption);
    }
    if let Some(filename) = &media.filename {
        object["filename"] = json!(filename);
    }
    object
}

/// Meta's `interactive` object for reply buttons or a list.
fn interactive_object(interactive: &Interactive) -> Value {
    let action = match interactive.interactive_type {
        InteractiveType::Button => json!({
            "buttons": interactive.buttons.iter().map(|b| json!({"type": "reply", "reply": {"id": b.id, "title": b.title}})).collect::<Vec<_>>()
        }),
        InteractiveType::List => json!({
            "button": interactive.button,
            "sections": interactive.sections.iter().map(|s| {
                let rows: Vec<Value> = s.rows.iter().map(|r| {
                    let mut row = json!({"id": r.id, "title": r.title});
                    if let Some(d) = &r.description { row["description"] = json!(d); }
                    row
                }).collect();
                let mut section = json!({"rows": rows});
                if let Some(t) = &s.title { section["title"] = json!(t); }
                section
            }).collect::<Vec<_>>()
        }),
    };
    let kind = match interactive.interactive_type {
        InteractiveType::Button => "button",
        InteractiveType::List => "list",
    };
    let mut object = json!({"type": kind, "body": {"text": interactive.body}, "action": action});
    if let Some(header) = &interactive.header {
        object["header"] = json!({"type": "text", "text": header});
    }
    if let Some(footer) = &interactive.footer {
        object["footer"] = json!({"text": footer});
    }
    object
}

/// A template's `header` component with its one parameter.
fn header_component(header: &TemplateHeader) -> Value {
    let parameter = match header.header_type {
        TemplateHeaderType::Text => json!({"type": "text", "text": header.text}),
        media => {
            let name = media.as_str();
            let mut object = media_reference(header.id.as_ref(), header.link.as_ref());
            if let Some(filename) = &header.filename {
                object["filename"] = json!(filename);
            }
            json!({"type": name, name: object})
        }
    };
    json!({"type": "header", "parameters": [parameter]})
}

/// A template's `button` component: a quick reply's payload or a URL's suffix.
fn button_component(button: &TemplateButton) -> Value {
    let parameter = match button.button_type {
        TemplateButtonType::QuickReply => json!({"type": "payload", "payload": button.payload}),
        TemplateButtonType::Url => json!({"type": "text", "text": button.text}),
    };
    json!({"type": "button", "sub_type": button.button_type.as_str(), "index": button.index.to_string(), "parameters": [parameter]})
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

    async fn mark_read(&self, channel: &Channel, secrets: &ChannelSecrets, provider_message_id: &str) -> Result<(), ProviderError> {
        self.graph.mark_read(&channel.phone_number_id, &secrets.access_token, provider_message_id).await.map_err(|e| provider_error(&e))
    }
}

#[async_trait]
impl TemplateSource for WhatsAppProvider {
    async fn templates(&self, secrets: &ChannelSecrets, waba_id: &str) -> Result<Vec<RemoteTemplate>, ProviderError> {
        let listed = self.graph.list_templates(waba_id, &secrets.access_token).await.map_err(|e| provider_error(&e))?;
        Ok(listed
            .into_iter()
            .filter_map(|t| {
                let category = TemplateCategory::parse(&t.category)?;
                let body = t
                    .components
                    .iter()
                    .find(|c| c.get("type").and_then(Value::as_str).is_some_and(|k| k.eq_ignore_ascii_case("body")))
                    .and_then(|c| c.get("text").and_then(Value::as_str))
                    .unwrap_or_default()
                    .to_owned();
                Some(RemoteTemplate {
                    name: t.name,
                    language: t.language,
                    category,
                    status: TemplateStatus::from_meta(&t.status),
                    body,
                    components: Value::Array(t.components),
                })
            })
            .collect())
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
            header: Some(TemplateHeader {
                header_type: TemplateHeaderType::Document,
                text: None,
                id: None,
                link: Some("https://x.example/a.pdf".into()),
                filename: Some("a.pdf".into()),
            }),
            buttons: vec![TemplateButton {
                index: 0,
                button_type: TemplateButtonType::QuickReply,
                payload: Some("STOP".into()),
                text: None,
            }],
        };
        let json = outbound_message(&to, &content).to_json();
        assert_eq!(json["to"], "14155552671");
        assert_eq!(json["template"]["name"], "hello_world");
        assert_eq!(json["template"]["language"]["code"], "en_US");
        assert_eq!(
            json["template"]["components"],
            json!([
                {"type": "header", "parameters": [{"type": "document", "document": {"link": "https://x.example/a.pdf", "filename": "a.pdf"}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "Ada"}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "STOP"}]}
            ])
        );
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
