//! Adapter for Meta's WhatsApp Cloud API.
//!
//! - [`client`]: [`GraphClient::send`] posts an [`OutboundMessage`] (text, template, media,
//!   interactive) to `{base}/{version}/{phone_number_id}/messages` and returns the `wamid`;
//!   [`GraphClient::mark_read`] marks a customer's message read; [`GraphClient::list_templates`]
//!   pages `{base}/{version}/{waba_id}/message_templates`;
//! - [`error`]: [`GraphError`], Meta's error envelope classified as retryable or permanent (the
//!   table is in the module documentation);
//! - [`webhook`]: inbound webhooks: [`verify_handshake`], [`verify_signature`] and
//!   [`parse_webhook`] into flat [`InboundMessage`]s and [`StatusUpdate`]s;
//! - `fake` (cargo feature `fake`): a scriptable local fake Graph API server for tests, and a
//!   builder of signed Meta-shaped webhook bodies.
//!
//! - [`sandbox`]: [`SandboxProvider`], the embedded default: accepts every send and reports
//!   `delivered` and `read` back through the same inbound status path as Meta's webhooks;
//! - [`provider`]: [`WhatsAppProvider`], the `MessagingProvider` and `TemplateSource` ports of
//!   `atlas-conversations` over the Graph client, mapping contents and classifying failures;
//! - [`inbound`]: [`MetaWebhook`], the `WebhookDecoder` port: handshake, signature, and Meta's
//!   payload decoded item by item with every message type's content.
//!
//! The client, error and webhook types are plain data, independent of the domain; only
//! [`provider`] speaks the domain's language.

pub mod client;
pub mod error;
#[cfg(feature = "fake")]
pub mod fake;
pub mod inbound;
pub mod provider;
pub mod sandbox;
pub mod webhook;

pub use client::{ConfigError, GraphClient, ListedTemplate, OutboundMessage, SendAccepted, DEFAULT_API_VERSION, DEFAULT_BASE_URL};
pub use error::{parse_retry_after, GraphError, GraphErrorKind};
pub use inbound::{decode_changes, MetaWebhook};
pub use provider::WhatsAppProvider;
pub use sandbox::{SandboxProvider, SandboxReceipt};
pub use webhook::{
    parse_webhook, signature_header_value, verify_handshake, verify_signature, DeliveryStatus, InboundMessage, OtherChange, ParseError,
    StatusError, StatusUpdate, WebhookBatch, MAX_BATCH_UPDATES, MAX_BODY_BYTES, SIGNATURE_HEADER, WHATSAPP_OBJECT,
};
