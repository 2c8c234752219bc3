//! The messaging records: typed ids, customers, channels (and their secrets, kept apart),
//! conversations, messages, drafts and templates, with the wire names of every enum.
//!
//! Every enum serializes in `snake_case` and offers `as_str` / `parse` with the same names, so
//! the HTTP and SQL layers spell states one way. Records serialize in the API's shapes (with
//! `org_id` skipped: the organization comes from the credential, never from a body).

use crate::content::MessageContent;
use crate::delivery::{DeliveryRecord, DeliveryState};
use crate::window;
use atlas_kernel::{typed_id, OrgId, PhoneNumber};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use thiserror::Error;
use time::OffsetDateTime;

typed_id!(
    /// A customer: one phone number within an organization.
    CustomerId,
    "cus"
);
typed_id!(
    /// A connected WhatsApp (or sandbox) number.
    ChannelId,
    "chn"
);
typed_id!(
    /// A conversation: one per (organization, channel, customer).
    ConversationId,
    "conv"
);
typed_id!(
    /// A message, inbound or outbound.
    MessageId,
    "msg"
);
typed_id!(
    /// A registered message template.
    TemplateId,
    "tpl"
);
typed_id!(
    /// An outbox row: one queued outbound message awaiting delivery to the provider.
    OutboxId,
    "obx"
);
typed_id!(
    /// A stored, unsent draft reply.
    DraftId,
    "drf"
);

/// Declares an enum with fixed wire names: `as_str`, `parse`, `ALL`, `Display`, and serde in
/// the same (snake_case) spelling.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire),+
                }
            }

            /// Parses a wire name (exact, lower case).
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($wire => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum!(
    /// Which kind of provider a channel talks to.
    ChannelProvider {
        /// The WhatsApp Cloud API (Graph API).
        Whatsapp = "whatsapp",
        /// The embedded sandbox: accepts sends and reports receipts through the inbound path.
        Sandbox = "sandbox",
    }
);

wire_enum!(
    /// Where a conversation stands. `handed_off` means automation (agents) stops; people can
    /// still reply.
    ConversationStatus {
        Open = "open",
        HandedOff = "handed_off",
        Closed = "closed",
    }
);

impl ConversationStatus {
    /// The status after a new inbound message: a closed conversation reopens; an open or
    /// handed-off one keeps its status (a handoff is only undone explicitly).
    pub const fn after_inbound(self) -> Self {
        match self {
            ConversationStatus::Closed => ConversationStatus::Open,
            other => other,
        }
    }
}

wire_enum!(
    /// Who sent a message.
    Direction {
        /// From the customer to the business.
        Inbound = "inbound",
        /// From the business to the customer.
        Outbound = "outbound",
    }
);

wire_enum!(
    /// What a message carries.
    MessageKind {
        Text = "text",
        Template = "template",
        /// Media of messages stored before kinds were told apart (legacy rows only).
        Media = "media",
        Image = "image",
        Audio = "audio",
        Video = "video",
        Document = "document",
        Sticker = "sticker",
        Location = "location",
        Contacts = "contacts",
        /// Reply buttons or a list (outbound), or the customer's choice of one (inbound).
        Interactive = "interactive",
        /// A template's quick-reply button the customer pressed.
        Button = "button",
        Reaction = "reaction",
        /// A type Meta does not deliver through the API (`content` carries its error).
        Unsupported = "unsupported",
    }
);

wire_enum!(
    /// Whether Meta lets a template be sent.
    TemplateStatus {
        Approved = "approved",
        Pending = "pending",
        Rejected = "rejected",
        /// Meta paused it (quality): it cannot be sent until it is unpaused.
        Paused = "paused",
        /// Meta disabled it.
        Disabled = "disabled",
        /// Gone from the WhatsApp Business Account (seen by a sync).
        Deleted = "deleted",
    }
);

/// A template's category. `transactional` is accepted on input as the legacy name of
/// `utility`, and always written back as `utility`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateCategory {
    #[serde(alias = "transactional")]
    Utility,
    Marketing,
    Authentication,
}

impl TemplateCategory {
    /// Every category.
    pub const ALL: &'static [Self] = &[Self::Utility, Self::Marketing, Self::Authentication];

    /// The wire name (`utility`, `marketing`, `authentication`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Utility => "utility",
            Self::Marketing => "marketing",
            Self::Authentication => "authentication",
        }
    }

    /// Parses a category, ignoring ASCII case (Meta spells them `UTILITY`); `transactional` is
    /// `utility`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "utility" | "transactional" => Some(Self::Utility),
            "marketing" => Some(Self::Marketing),
            "authentication" => Some(Self::Authentication),
            _ => None,
        }
    }
}

impl TemplateStatus {
    /// Maps Meta's template status (`APPROVED`, `IN_APPEAL`, `PAUSED`…) to ours.
    pub fn from_meta(status: &str) -> Self {
        match status.trim().to_ascii_uppercase().as_str() {
            "APPROVED" => Self::Approved,
            "REJECTED" => Self::Rejected,
            "PAUSED" => Self::Paused,
            "DISABLED" | "LIMIT_EXCEEDED" => Self::Disabled,
            "DELETED" | "PENDING_DELETION" => Self::Deleted,
            _ => Self::Pending,
        }
    }
}

impl fmt::Display for TemplateCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A customer of an organization, known by phone number (unique per organization).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    pub id: CustomerId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub phone_number: PhoneNumber,
    /// The WhatsApp profile name, when one was seen.
    pub name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A connected number. Its secrets are not here: see [`ChannelSecrets`].
///
/// `verify_token` is not serialized: it answers Meta's webhook handshake and is only shown to
/// the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    pub id: ChannelId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub provider: ChannelProvider,
    pub name: String,
    /// Meta's id of the number (the Graph API path segment).
    pub phone_number_id: String,
    pub display_phone_number: String,
    #[serde(skip)]
    pub verify_token: String,
    /// The WhatsApp Business Account id (the Graph API's template listing), when given.
    pub waba_id: Option<String>,
    /// The organization's channel for a send to a customer who has no conversation yet.
    pub is_default: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Set when the channel was disconnected (`DELETE`): its conversations stay readable,
    /// sends on it are refused, Meta's webhook for it answers 404.
    #[serde(with = "time::serde::rfc3339::option")]
    pub disconnected_at: Option<OffsetDateTime>,
}

impl Channel {
    /// Whether the channel is connected (not disconnected).
    pub fn is_active(&self) -> bool {
        self.disconnected_at.is_none()
    }
}

/// Whether a new channel becomes the organization's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRule {
    /// It becomes the default (the previous one stops being it).
    Make,
    /// It never becomes the default.
    Never,
    /// Only when the organization has no default (a sandbox channel).
    IfNone,
    /// When the organization has no default or its default is a sandbox channel: the first
    /// real number replaces the sandbox.
    IfNoneOrSandbox,
}

/// A channel as the caller asks to connect it; the store decides `is_default` (see
/// `ConversationStore::create_channel`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChannel {
    pub id: ChannelId,
    pub org_id: OrgId,
    pub provider: ChannelProvider,
    pub name: String,
    pub phone_number_id: String,
    pub display_phone_number: String,
    pub verify_token: String,
    pub waba_id: Option<String>,
    pub default: DefaultRule,
    pub created_at: OffsetDateTime,
    /// Templates the channel's account comes with (the sandbox's `hello_world`), inserted with
    /// it unless the organization has one of the same name and language.
    pub templates: Vec<Template>,
}

impl NewChannel {
    /// The stored channel, with the default flag the store decided.
    pub fn into_channel(self, is_default: bool) -> Channel {
        Channel {
            id: self.id,
            org_id: self.org_id,
            provider: self.provider,
            name: self.name,
            phone_number_id: self.phone_number_id,
            display_phone_number: self.display_phone_number,
            verify_token: self.verify_token,
            waba_id: self.waba_id,
            is_default,
            created_at: self.created_at,
            disconnected_at: None,
        }
    }
}

/// A channel's secrets in the clear. Deliberately not `Serialize` and redacted in `Debug`: it
/// exists only between decryption and the provider call. At rest it is the opaque bytes of
/// [`ChannelSecrets::to_plaintext`] encrypted by a `SecretCipher`.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelSecrets {
    /// The Graph API bearer token.
    pub access_token: String,
    /// Signs Meta's webhook POSTs (`X-Hub-Signature-256`).
    pub app_secret: String,
}

/// Sealed bytes that do not decode to channel secrets.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the channel's stored secrets are unreadable")]
pub struct SecretsUnreadable;

impl ChannelSecrets {
    /// The bytes to encrypt (a small JSON object; never log them).
    pub fn to_plaintext(&self) -> Vec<u8> {
        serde_json::json!({ "access_token": self.access_token, "app_secret": self.app_secret }).to_string().into_bytes()
    }

    /// Reads back bytes made by [`ChannelSecrets::to_plaintext`].
    ///
    /// # Errors
    /// `SecretsUnreadable` when the bytes are not such a document.
    pub fn from_plaintext(bytes: &[u8]) -> Result<Self, SecretsUnreadable> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| SecretsUnreadable)?;
        let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned).ok_or(SecretsUnreadable);
        Ok(Self { access_token: field("access_token")?, app_secret: field("app_secret")? })
    }
}

impl fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChannelSecrets(..)")
    }
}

/// A conversation: one per (organization, channel, customer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: ConversationId,
    pub org_id: OrgId,
    pub channel_id: ChannelId,
    pub customer: Customer,
    pub status: ConversationStatus,
    /// The latest inbound message's own timestamp (never its arrival time, never a receipt).
    pub last_inbound_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

impl Conversation {
    /// Whether free-form text may be sent at `now`: `now < last_inbound_at + 24h`.
    pub fn window_open(&self, now: OffsetDateTime) -> bool {
        window::window_open(self.last_inbound_at, now)
    }

    /// When the window closes (`last_inbound_at + 24h`); `None` when the customer never wrote.
    pub fn window_expires_at(&self) -> Option<OffsetDateTime> {
        window::window_expires_at(self.last_inbound_at)
    }

    /// The API shape at `now`.
    pub fn view(&self, now: OffsetDateTime) -> ConversationView {
        ConversationView {
            id: self.id,
            customer: CustomerSummary {
                id: self.customer.id,
                phone_number: self.customer.phone_number.clone(),
                name: self.customer.name.clone(),
            },
            channel_id: self.channel_id,
            status: self.status,
            window_open: self.window_open(now),
            window_expires_at: self.window_expires_at(),
            last_inbound_at: self.last_inbound_at,
            created_at: self.created_at,
        }
    }
}

/// A customer as a conversation shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerSummary {
    pub id: CustomerId,
    pub phone_number: PhoneNumber,
    pub name: Option<String>,
}

/// A conversation as the API returns it (`window_open` depends on the time it was viewed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConversationView {
    pub id: ConversationId,
    pub customer: CustomerSummary,
    pub channel_id: ChannelId,
    pub status: ConversationStatus,
    pub window_open: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_inbound_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Why a message failed: the provider's code (Graph's numeric code as text, such as
/// `"131047"`) or one of Atlas's own (`deadline_exceeded`, `channel_not_found`), and a message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageError {
    pub code: String,
    pub message: String,
}

impl MessageError {
    /// An error with this code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

/// The template a message was sent with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageTemplate {
    pub name: String,
    pub language: String,
    pub category: TemplateCategory,
    pub parameters: Vec<String>,
}

/// A message, in the API's shape.
///
/// Timestamps: for an **inbound** message `created_at` and `sent_at` are the message's own
/// timestamp (when the customer sent it, as the provider reports it), not its arrival, and
/// `delivery_state` is `None`. For an **outbound** message `created_at` is when it was queued,
/// and `sent_at` … `failed_at` follow its [`DeliveryRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: MessageId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub conversation_id: ConversationId,
    pub direction: Direction,
    pub kind: MessageKind,
    pub text: Option<String>,
    /// What the message carries beyond text: media, location, contacts, a reply, a reaction…
    /// (`None` for text and templates).
    pub content: Option<MessageContent>,
    pub template: Option<MessageTemplate>,
    pub provider_message_id: Option<String>,
    pub delivery_state: Option<DeliveryState>,
    pub error: Option<MessageError>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub read_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub failed_at: Option<OffsetDateTime>,
}

impl Message {
    /// An inbound message sent by the customer at `timestamp` (its own time).
    #[allow(clippy::too_many_arguments)]
    pub fn inbound(
        id: MessageId,
        org_id: OrgId,
        conversation_id: ConversationId,
        kind: MessageKind,
        text: Option<String>,
        content: Option<MessageContent>,
        provider_message_id: Option<String>,
        timestamp: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            org_id,
            conversation_id,
            direction: Direction::Inbound,
            kind,
            text,
            content,
            template: None,
            provider_message_id,
            delivery_state: None,
            error: None,
            created_at: timestamp,
            sent_at: Some(timestamp),
            delivered_at: None,
            read_at: None,
            failed_at: None,
        }
    }

    /// An outbound message just queued with `content`.
    pub fn queued(
        id: MessageId,
        org_id: OrgId,
        conversation_id: ConversationId,
        content: &crate::OutboundContent,
        at: OffsetDateTime,
    ) -> Self {
        let (kind, text, template, rich) = match content {
            crate::OutboundContent::Text { body } => (MessageKind::Text, Some(body.clone()), None, None),
            crate::OutboundContent::Template { name, language, category, parameters, .. } => (
                MessageKind::Template,
                None,
                Some(MessageTemplate {
                    name: name.clone(),
                    language: language.clone(),
                    category: *category,
                    parameters: parameters.clone(),
                }),
                None,
            ),
            crate::OutboundContent::Media(media) => {
                (media.media_type.kind(), media.caption.clone(), None, Some(MessageContent::OutboundMedia(media.clone())))
            }
            crate::OutboundContent::Interactive(interactive) => (
                MessageKind::Interactive,
                Some(interactive.body.clone()),
                None,
                Some(MessageContent::OutboundInteractive(interactive.clone())),
            ),
            // A read receipt is never a message of its own (it rides on the inbound one).
            crate::OutboundContent::Read { .. } => (MessageKind::Text, None, None, None),
        };
        Self {
            id,
            org_id,
            conversation_id,
            direction: Direction::Outbound,
            kind,
            text,
            content: rich,
            template,
            provider_message_id: None,
            delivery_state: Some(DeliveryState::Queued),
            error: None,
            created_at: at,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            failed_at: None,
        }
    }

    /// The delivery record of an outbound message (`None` for inbound ones).
    pub fn delivery(&self) -> Option<DeliveryRecord> {
        self.delivery_state.map(|state| DeliveryRecord {
            state,
            sent_at: self.sent_at,
            delivered_at: self.delivered_at,
            read_at: self.read_at,
            failed_at: self.failed_at,
            error: self.error.clone(),
        })
    }

    /// Writes a delivery record into the message's fields.
    pub fn set_delivery(&mut self, record: DeliveryRecord) {
        self.delivery_state = Some(record.state);
        self.sent_at = record.sent_at;
        self.delivered_at = record.delivered_at;
        self.read_at = record.read_at;
        self.failed_at = record.failed_at;
        self.error = record.error;
    }
}

/// Where a draft stands: waiting for a person, or decided once and for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftState {
    /// Waiting for a person to approve or reject it.
    Pending,
    /// A person approved it: it was queued as `message_id` in the same transaction.
    Approved,
    /// A person rejected it (with a reason); it is never sent.
    Rejected,
}

impl DraftState {
    /// Every state.
    pub const ALL: [DraftState; 3] = [DraftState::Pending, DraftState::Approved, DraftState::Rejected];

    /// The wire (and stored) name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DraftState::Pending => "pending",
            DraftState::Approved => "approved",
            DraftState::Rejected => "rejected",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A reply stored but not sent (`POST /v1/atlas/actions` with `draft`, or an agent whose
/// maturity keeps its replies for review). Drafts are their own record, not messages: they
/// have no delivery state and never count for the window. A person decides each once:
/// approving queues it (the decision and the send commit together), rejecting keeps a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Draft {
    pub id: DraftId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub conversation_id: ConversationId,
    pub text: String,
    pub state: DraftState,
    /// The message an approval queued.
    pub message_id: Option<MessageId>,
    /// Why it was rejected.
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Draft {
    /// A new draft, pending.
    pub fn pending(org_id: OrgId, conversation_id: ConversationId, text: String, created_at: OffsetDateTime) -> Self {
        Draft {
            id: DraftId::generate(),
            org_id,
            conversation_id,
            text,
            state: DraftState::Pending,
            message_id: None,
            reason: None,
            decided_at: None,
            created_at,
        }
    }
}

/// A registered template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Template {
    pub id: TemplateId,
    #[serde(skip)]
    pub org_id: OrgId,
    /// Meta's template name (`hello_world`); unique per (organization, name, language).
    pub name: String,
    /// A locale such as `en_US`.
    pub language: String,
    pub category: TemplateCategory,
    pub status: TemplateStatus,
    /// The text with `{{1}}`, `{{2}}` … parameters.
    pub body: String,
    /// Meta's `components` (header, body, footer, buttons) when known (synced templates);
    /// header and button parameters of a send are checked against them.
    pub components: Option<serde_json::Value>,
    /// The channel whose account the template was synced from (or came with); `None` for
    /// templates registered through the API. A sync marks only its own channel's templates
    /// `deleted`.
    pub channel_id: Option<ChannelId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Template {
    /// Meta's sample template every WhatsApp Business Account comes with: `hello_world`,
    /// `en_US`, utility, approved, no parameters (its header and footer are plain text).
    pub fn hello_world(id: TemplateId, org_id: OrgId, channel_id: ChannelId, at: OffsetDateTime) -> Self {
        let body = "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp message notification \
                    from the Cloud API, hosted by Meta. Thank you for taking the time to test with us.";
        Template {
            id,
            org_id,
            name: "hello_world".into(),
            language: "en_US".into(),
            category: TemplateCategory::Utility,
            status: TemplateStatus::Approved,
            body: body.into(),
            components: Some(serde_json::json!([
                {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
                {"type": "BODY", "text": body},
                {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"}
            ])),
            channel_id: Some(channel_id),
            created_at: at,
        }
    }

    /// How many parameters a send must supply: the highest `{{n}}` in the body (0 for none).
    pub fn parameter_count(&self) -> usize {
        placeholders(&self.body).last().map_or(0, |&n| n as usize)
    }
}

/// Why a template body is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateBodyError {
    #[error("parameters must be numbered {{{{1}}}}, {{{{2}}}} … without gaps; {{{{{0}}}}} is missing")]
    Gap(u32),
}

/// The distinct `{{n}}` placeholder numbers in a body, ascending (`{{0}}` and non-numeric
/// placeholders are not parameters).
pub fn placeholders(body: &str) -> Vec<u32> {
    let mut found = BTreeSet::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let inner = &after[..end];
                if !inner.is_empty() && inner.len() <= 4 && inner.bytes().all(|b| b.is_ascii_digit()) {
                    if let Ok(n) = inner.parse::<u32>() {
                        if n > 0 {
                            found.insert(n);
                        }
                    }
                    rest = &after[end + 2..];
                } else {
                    rest = after;
                }
            }
            None => break,
        }
    }
    found.into_iter().collect()
}

/// Checks that a body's parameters are `{{1}}` … `{{n}}` without gaps; returns `n`.
///
/// # Errors
/// `Gap` naming the first missing number.
pub fn check_template_body(body: &str) -> Result<usize, TemplateBodyError> {
    let numbers = placeholders(body);
    for (expected, &n) in (1u32..).zip(numbers.iter()) {
        if n != expected {
            return Err(TemplateBodyError::Gap(expected));
        }
    }
    Ok(numbers.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn every_enum_serializes_in_snake_case_as_its_wire_name() {
        for s in ConversationStatus::ALL {
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{}\"", s.as_str()));
            assert_eq!(ConversationStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(ConversationStatus::HandedOff.as_str(), "handed_off");
        for p in ChannelProvider::ALL {
            assert_eq!(serde_json::to_string(p).unwrap(), format!("\"{p}\""));
        }
        for d in Direction::ALL {
            assert_eq!(serde_json::to_string(d).unwrap(), format!("\"{d}\""));
        }
        for k in MessageKind::ALL {
            assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{k}\""));
        }
        for s in TemplateStatus::ALL {
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        for c in TemplateCategory::ALL {
            assert_eq!(serde_json::to_string(c).unwrap(), format!("\"{c}\""));
            assert_eq!(TemplateCategory::parse(c.as_str()), Some(*c));
        }
    }

    #[test]
    fn transactional_is_the_legacy_name_of_utility() {
        assert_eq!(TemplateCategory::parse("transactional"), Some(TemplateCategory::Utility));
        assert_eq!(TemplateCategory::parse("UTILITY"), Some(TemplateCategory::Utility));
        assert_eq!(serde_json::from_str::<TemplateCategory>("\"transactional\"").unwrap(), TemplateCategory::Utility);
        assert_eq!(serde_json::to_string(&TemplateCategory::Utility).unwrap(), "\"utility\"");
        assert_eq!(TemplateCategory::parse("promotional"), None);
    }

    #[test]
    fn a_template_needs_as_many_parameters_as_its_highest_placeholder() {
        let mut t = Template {
            id: TemplateId::generate(),
            org_id: OrgId::generate(),
            name: "appointment".into(),
            language: "en_US".into(),
            category: TemplateCategory::Utility,
            status: TemplateStatus::Approved,
            body: "Hi {{1}}, see you on {{2}} ({{1}}).".into(),
            components: None,
            channel_id: None,
            created_at: datetime!(2026-01-01 00:00 UTC),
        };
        assert_eq!(t.parameter_count(), 2);
        t.body = "Hello world".into();
        assert_eq!(t.parameter_count(), 0);
        t.body = "{{name}} and {{ 1 }} and {{0}} are not parameters; {{3}} is".into();
        assert_eq!(t.parameter_count(), 3);
    }

    #[test]
    fn template_bodies_must_number_parameters_without_gaps() {
        assert_eq!(check_template_body("Hi {{1}}, {{2}}"), Ok(2));
        assert_eq!(check_template_body("plain"), Ok(0));
        assert_eq!(check_template_body("Hi {{2}}"), Err(TemplateBodyError::Gap(1)));
        assert_eq!(check_template_body("{{1}} {{3}}"), Err(TemplateBodyError::Gap(2)));
    }

    #[test]
    fn channel_secrets_never_show_in_debug_and_round_trip_as_plaintext() {
        let secrets = ChannelSecrets { access_token: "EAAG-secret".into(), app_secret: "shh".into() };
        assert_eq!(format!("{secrets:?}"), "ChannelSecrets(..)");
        assert_eq!(ChannelSecrets::from_plaintext(&secrets.to_plaintext()).unwrap(), secrets);
        assert_eq!(ChannelSecrets::from_plaintext(b"garbage"), Err(SecretsUnreadable));
    }

    #[test]
    fn a_channel_serializes_without_org_or_verify_token() {
        let channel = NewChannel {
            id: ChannelId::generate(),
            org_id: OrgId::generate(),
            provider: ChannelProvider::Whatsapp,
            name: "Support".into(),
            phone_number_id: "1234".into(),
            display_phone_number: "+1 415 555 2671".into(),
            verify_token: "vt".into(),
            waba_id: None,
            default: DefaultRule::IfNone,
            created_at: datetime!(2026-01-01 00:00 UTC),
            templates: vec![],
        }
        .into_channel(true);
        let json = serde_json::to_value(&channel).unwrap();
        assert!(json.get("verify_token").is_none());
        assert!(json.get("org_id").is_none());
        assert_eq!(json["provider"], "whatsapp");
        assert_eq!(json["is_default"], true);
    }

    #[test]
    fn a_closed_conversation_reopens_on_inbound_but_a_handoff_stays() {
        assert_eq!(ConversationStatus::Closed.after_inbound(), ConversationStatus::Open);
        assert_eq!(ConversationStatus::HandedOff.after_inbound(), ConversationStatus::HandedOff);
        assert_eq!(ConversationStatus::Open.after_inbound(), ConversationStatus::Open);
    }
}
