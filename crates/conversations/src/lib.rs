//! Messaging, the domain of seed 000: customers, channels, conversations, messages, drafts and
//! templates; the 24-hour window rule and the one pure decision of what a send may carry;
//! delivery states that merge out-of-order provider statuses; the outbox retry policy; the
//! ports (`ConversationStore`, `Outbox`, `MessagingProvider`, `SecretCipher`) and the use cases
//! over them (`Messaging`, `Delivery`). Pure: no runtime, database or HTTP client.

mod content;
mod delivery;
mod model;
mod ports;
mod retry;
mod service;
mod window;

pub use content::{
    FieldProblem, InboundMedia, Interactive, InteractiveReply, InteractiveType, ListRow, ListSection, Location, MediaType, MessageContent,
    OutboundMedia, ReplyButton, TemplateButton, TemplateButtonType, TemplateHeader, TemplateHeaderType, TemplateShape, UnsupportedError,
};
pub use delivery::{DeliveryRecord, DeliveryState, StatusEvent};
pub use model::{
    check_template_body, placeholders, Channel, ChannelId, ChannelProvider, ChannelSecrets, Conversation, ConversationId,
    ConversationStatus, ConversationView, Customer, CustomerId, CustomerSummary, DefaultRule, Direction, Draft, DraftId, DraftState,
    Message, MessageError, MessageId, MessageKind, MessageTemplate, NewChannel, OutboxId, SecretsUnreadable, Template, TemplateBodyError,
    TemplateCategory, TemplateId, TemplateStatus,
};
pub use ports::{
    Completion, ConversationError, ConversationStore, Enqueued, InboundRecorded, Journal, MessagingProvider, NewInbound, NewOutbound,
    Outbox, OutboxItem, ProviderAccepted, ProviderChange, ProviderError, ProviderErrorKind, ProviderItem, ProviderMessage, ProviderStatus,
    ReadQueued, RemoteTemplate, SecretCipher, SendContext, SendContexts, SendLookup, StatusApplied, TemplateSource, TemplatesSynced,
    UndecodableWebhook, WebhookDecoder,
};
#[cfg(any(test, feature = "mocks"))]
pub use ports::{MockConversationStore, MockMessagingProvider, MockOutbox, MockSecretCipher, MockTemplateSource, MockWebhookDecoder};
pub use retry::{GiveUp, RetryDecision, RetryPolicy};
pub use service::{
    Approval, ConnectChannel, Delivery, DeliveryOutcome, DeliveryStep, InboundEvent, Messaging, MessagingError, ProviderByKind,
    RegisterTemplate, SendCommand, SendReceipt, SendTarget, WebhookReport,
};
pub use window::{
    bump_last_inbound, decide_send, effective_inbound_at, last_inbound_at, window_expires_at, window_open, OutboundContent, SendRefusal,
    SendRequest, TemplateLookup, TemplateProblem, TemplateRequest, MAX_TEXT_CHARS, WINDOW,
};
