//! WhatsApp's 24-hour customer-service window and the one pure decision of what a send may
//! carry: [`decide_send`].
//!
//! The window is open while `now < last_inbound_at + 24h` (at exactly 24 hours it is closed),
//! where `last_inbound_at` is the latest inbound message's *own* timestamp: never its arrival
//! time, never a delivery receipt, never an outbound message.

use crate::content::{Interactive, OutboundMedia, TemplateButton, TemplateHeader, TemplateShape};
use crate::model::{Direction, Message, Template, TemplateCategory, TemplateId, TemplateStatus};
use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;
use time::{Duration, OffsetDateTime};

/// How long after the customer's last message free-form text may be sent.
pub const WINDOW: Duration = Duration::hours(24);

/// WhatsApp's limit on a text message body, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Whether the window is open at `now`: `now < last_inbound_at + 24h`; never open for a
/// customer who never wrote.
pub fn window_open(last_inbound_at: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    window_expires_at(last_inbound_at).is_some_and(|expires| now < expires)
}

/// When the window closes: `last_inbound_at + 24h`.
pub fn window_expires_at(last_inbound_at: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    last_inbound_at.map(|at| at + WINDOW)
}

/// The conversation's `last_inbound_at` after an inbound message sent at `timestamp`: the later
/// of the two, so a late-arriving old message (Meta retries for 7 days) never moves it back.
pub fn bump_last_inbound(existing: Option<OffsetDateTime>, timestamp: OffsetDateTime) -> Option<OffsetDateTime> {
    Some(existing.map_or(timestamp, |e| e.max(timestamp)))
}

/// `last_inbound_at` computed from messages: the latest inbound message's own timestamp
/// (`created_at`). Outbound messages and their receipts do not count, and the order of the
/// messages does not matter.
pub fn last_inbound_at<'a>(messages: impl IntoIterator<Item = &'a Message>) -> Option<OffsetDateTime> {
    messages.into_iter().filter(|m| m.direction == Direction::Inbound).map(|m| m.created_at).max()
}

/// The timestamp an inbound message counts with: its own, or `now` when it has none; a
/// timestamp in the future (a skewed or forged clock) counts as `now`, so no one can hold the
/// window open beyond 24 hours from today.
pub fn effective_inbound_at(timestamp: Option<OffsetDateTime>, now: OffsetDateTime) -> OffsetDateTime {
    timestamp.map_or(now, |t| t.min(now))
}

/// What a send asks to deliver, as the client spelled it (validated here, not by serde).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendRequest {
    /// Free-form text; blank counts as absent.
    pub text: Option<String>,
    /// A template to send; with free-form content too, it is the fallback for a closed window.
    pub template: Option<TemplateRequest>,
    /// Media to send (inside the window), instead of text.
    pub media: Option<OutboundMedia>,
    /// Reply buttons or a list (inside the window), instead of text.
    pub interactive: Option<Interactive>,
}

/// A template reference in a send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateRequest {
    /// The template's name (`hello_world`) or its id (`tpl_…`).
    pub template_id: String,
    /// Must be given and must match the registered template's category.
    pub category: Option<TemplateCategory>,
    /// Picks among templates of the same name; needed only when several languages are approved.
    pub language: Option<String>,
    /// Values for `{{1}}` … `{{n}}`, in order.
    pub parameters: Vec<String>,
    /// The header parameter (text `{{1}}`, or the media of an image, document or video header).
    pub header: Option<TemplateHeader>,
    /// Button parameters (quick-reply payloads, URL suffixes).
    pub buttons: Vec<TemplateButton>,
}

/// What will be sent to the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutboundContent {
    /// Free-form text (only inside the window).
    Text { body: String },
    /// A registered, approved template.
    Template {
        template_id: TemplateId,
        name: String,
        language: String,
        category: TemplateCategory,
        parameters: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<TemplateHeader>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        buttons: Vec<TemplateButton>,
    },
    /// An image, audio, video, document or sticker (only inside the window).
    Media(OutboundMedia),
    /// Reply buttons or a list (only inside the window).
    Interactive(Interactive),
    /// Marks the customer's message with this provider id read (blue ticks); not a message.
    Read { provider_message_id: String },
}

impl OutboundContent {
    /// Whether this is a template send.
    pub const fn is_template(&self) -> bool {
        matches!(self, OutboundContent::Template { .. })
    }

    /// The kind of message this content makes.
    pub fn kind(&self) -> crate::MessageKind {
        match self {
            OutboundContent::Text { .. } | OutboundContent::Read { .. } => crate::MessageKind::Text,
            OutboundContent::Template { .. } => crate::MessageKind::Template,
            OutboundContent::Media(m) => m.media_type.kind(),
            OutboundContent::Interactive(_) => crate::MessageKind::Interactive,
        }
    }
}

/// Why a template cannot be used (all are `TEMPLATE_NOT_FOUND`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateProblem {
    #[error("no template `{reference}`{}", language.as_ref().map(|l| format!(" in language `{l}`")).unwrap_or_default())]
    Unknown { reference: String, language: Option<String> },
    #[error("template `{reference}` is approved in several languages ({}); say which with `language`", languages.join(", "))]
    Ambiguous { reference: String, languages: Vec<String> },
    #[error("template `{name}` ({language}) is {status}, not approved")]
    NotApproved { name: String, language: String, status: TemplateStatus },
    #[error("template `{name}` is registered as {registered}, not {requested}")]
    CategoryMismatch { name: String, registered: TemplateCategory, requested: TemplateCategory },
}

/// Why a send is refused. Each maps to one envelope code: see [`SendRefusal::code`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendRefusal {
    /// Free-form text outside the 24-hour window and no template given.
    #[error("the 24-hour window is closed: free-form text cannot be sent")]
    WindowClosed {
        /// The customer's last message, if any (for the error's details).
        last_inbound_at: Option<OffsetDateTime>,
    },
    /// The template is unknown, not approved, ambiguous, or of another category.
    #[error(transparent)]
    Template(TemplateProblem),
    /// A field is missing or malformed.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl SendRefusal {
    /// The envelope code: `WINDOW_CLOSED`, `TEMPLATE_NOT_FOUND` or `VALIDATION_ERROR`.
    pub const fn code(&self) -> &'static str {
        match self {
            SendRefusal::WindowClosed { .. } => "WINDOW_CLOSED",
            SendRefusal::Template(_) => "TEMPLATE_NOT_FOUND",
            SendRefusal::Invalid { .. } => "VALIDATION_ERROR",
        }
    }

    /// What the client should do about it.
    pub const fn hint(&self) -> Option<&'static str> {
        match self {
            SendRefusal::WindowClosed { .. } => {
                Some("the customer has not written in the last 24 hours: include `template_id` and `category` to send an approved template")
            }
            SendRefusal::Template(_) => Some("list registered templates with GET /v1/atlas/templates"),
            SendRefusal::Invalid { .. } => None,
        }
    }
}

/// Where `decide_send` finds templates: the caller's organization's, already loaded (so the
/// decision stays pure and synchronous).
pub trait TemplateLookup {
    /// The template with this id.
    fn by_id(&self, id: TemplateId) -> Option<&Template>;
    /// Every template with this name, whatever its language or status.
    fn by_name(&self, name: &str) -> Vec<&Template>;
}

impl TemplateLookup for [Template] {
    fn by_id(&self, id: TemplateId) -> Option<&Template> {
        self.iter().find(|t| t.id == id)
    }

    fn by_name(&self, name: &str) -> Vec<&Template> {
        self.iter().filter(|t| t.name == name).collect()
    }
}

impl TemplateLookup for Vec<Template> {
    fn by_id(&self, id: TemplateId) -> Option<&Template> {
        self.as_slice().by_id(id)
    }

    fn by_name(&self, name: &str) -> Vec<&Template> {
        self.as_slice().by_name(name)
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> SendRefusal {
    SendRefusal::Invalid { field: field.into(), message: message.into() }
}

/// Decides what a send carries, from the request, the window and the organization's templates.
///
/// - free-form content is one of `text`, `media` or `interactive` (two at once is `Invalid`);
///   media and interactive messages are checked against Meta's limits;
/// - window open: free-form content is sent as it is; a template alone is sent as a template;
///   with both, the free-form content is sent (the template is the fallback for a closed
///   window and is not consulted);
/// - window closed: a template is sent as a template; free-form content alone is `WindowClosed`;
/// - neither free-form content nor template: `Invalid` (`text`);
/// - a template used must be given a `category`, exist (by id, or by name and optional
///   language), be approved and be of that category (`transactional` = `utility`), else
///   `Template(..)`; its parameters must number exactly its `{{n}}` count and none may be
///   blank, else `Invalid` (`parameters`); header and button parameters must match its
///   components, else `Invalid` naming the field (`header`, `buttons[0].payload`…).
///
/// # Errors
/// The [`SendRefusal`] saying why nothing may be sent.
pub fn decide_send<L: TemplateLookup + ?Sized>(
    request: &SendRequest,
    last_inbound_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    templates: &L,
) -> Result<OutboundContent, SendRefusal> {
    let text = request.text.as_deref().filter(|t| !t.trim().is_empty());
    if let Some(text) = text {
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(invalid("text", format!("at most {MAX_TEXT_CHARS} characters")));
        }
    }
    let free_form = match (text, &request.media, &request.interactive) {
        (None, None, None) => None,
        (Some(text), None, None) => Some(OutboundContent::Text { body: text.to_owned() }),
        (None, Some(media), None) => {
            media.validate().map_err(|(field, message)| invalid(field, message))?;
            Some(OutboundContent::Media(media.clone()))
        }
        (None, None, Some(interactive)) => {
            interactive.validate().map_err(|(field, message)| invalid(field, message))?;
            Some(OutboundContent::Interactive(interactive.clone()))
        }
        (_, Some(_), _) => return Err(invalid("media", "send `text`, `media` or `interactive`, one at a time")),
        (_, None, Some(_)) => return Err(invalid("interactive", "send `text`, `media` or `interactive`, one at a time")),
    };
    let open = window_open(last_inbound_at, now);
    match (free_form, &request.template) {
        (None, None) => Err(invalid("text", "give `text` (or `media`, `interactive`), or `template_id` with `category`")),
        (Some(content), _) if open => Ok(content),
        (_, Some(template)) => resolve_template(template, templates),
        (Some(_), None) => Err(SendRefusal::WindowClosed { last_inbound_at }),
    }
}

fn resolve_template<L: TemplateLookup + ?Sized>(request: &TemplateRequest, templates: &L) -> Result<OutboundContent, SendRefusal> {
    let reference = request.template_id.trim();
    if reference.is_empty() {
        return Err(invalid("template_id", "must not be blank"));
    }
    let Some(requested) = request.category else {
        return Err(invalid("category", "required with `template_id`: one of utility, marketing, authentication"));
    };
    let language = request.language.as_deref().map(str::trim).filter(|l| !l.is_empty());
    let unknown =
        || SendRefusal::Template(TemplateProblem::Unknown { reference: reference.to_owned(), language: language.map(str::to_owned) });
    let template = match reference.parse::<TemplateId>() {
        Ok(id) => templates.by_id(id).filter(|t| language.is_none_or(|l| t.language == l)).ok_or_else(unknown)?,
        Err(_) => {
            let mut candidates: Vec<&Template> =
                templates.by_name(reference).into_iter().filter(|t| language.is_none_or(|l| t.language == l)).collect();
            candidates.sort_by(|a, b| a.language.cmp(&b.language));
            let approved: Vec<&Template> = candidates.iter().copied().filter(|t| t.status == TemplateStatus::Approved).collect();
            match (approved.as_slice(), candidates.first()) {
                ([one], _) => *one,
                ([], Some(first)) => first,
                ([], None) => return Err(unknown()),
                (several, _) => {
                    return Err(SendRefusal::Template(TemplateProblem::Ambiguous {
                        reference: reference.to_owned(),
                        languages: several.iter().map(|t| t.language.clone()).collect(),
                    }))
                }
            }
        }
    };
    if template.status != TemplateStatus::Approved {
        return Err(SendRefusal::Template(TemplateProblem::NotApproved {
            name: template.name.clone(),
            language: template.language.clone(),
            status: template.status,
        }));
    }
    if template.category != requested {
        return Err(SendRefusal::Template(TemplateProblem::CategoryMismatch {
            name: template.name.clone(),
            registered: template.category,
            requested,
        }));
    }
    let expected = template.parameter_count();
    if request.parameters.len() != expected {
        return Err(invalid(
            "parameters",
            format!("template `{}` takes {expected} parameter(s), {} given", template.name, request.parameters.len()),
        ));
    }
    if let Some(blank) = request.parameters.iter().position(|p| p.trim().is_empty()) {
        return Err(invalid("parameters", format!("parameter {} is blank", blank + 1)));
    }
    TemplateShape::of(template.components.as_ref())
        .check(request.header.as_ref(), &request.buttons)
        .map_err(|(field, message)| invalid(field, message))?;
    Ok(OutboundContent::Template {
        template_id: template.id,
        name: template.name.clone(),
        language: template.language.clone(),
        category: template.category,
        parameters: request.parameters.clone(),
        header: request.header.clone(),
        buttons: request.buttons.clone(),
    })
}

impl fmt::Display for OutboundContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundContent::Text { .. } => f.write_str("text"),
            OutboundContent::Template { name, language, .. } => write!(f, "template {name} ({language})"),
            OutboundContent::Media(m) => write!(f, "{}", m.media_type.as_str()),
            OutboundContent::Interactive(_) => f.write_str("interactive"),
            OutboundContent::Read { .. } => f.write_str("read receipt"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConversationId, MessageId, MessageKind};
    use crate::{DeliveryState, StatusEvent};
    use atlas_kernel::OrgId;
    use proptest::prelude::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-04-07 12:00 UTC);

    fn template(name: &str, language: &str, category: TemplateCategory, status: TemplateStatus, body: &str) -> Template {
        Template {
            id: TemplateId::generate(),
            org_id: OrgId::generate(),
            name: name.into(),
            language: language.into(),
            category,
            status,
            body: body.into(),
            components: None,
            channel_id: None,
            created_at: NOW - Duration::days(30),
        }
    }

    fn registry() -> Vec<Template> {
        vec![
            template("hello_world", "en_US", TemplateCategory::Utility, TemplateStatus::Approved, "Hello!"),
            template("appointment", "en_US", TemplateCategory::Utility, TemplateStatus::Approved, "Hi {{1}}, see you {{2}}"),
            template("promo", "en_US", TemplateCategory::Marketing, TemplateStatus::Pending, "Sale!"),
            template("welcome", "en_US", TemplateCategory::Utility, TemplateStatus::Approved, "Welcome"),
            template("welcome", "pt_BR", TemplateCategory::Utility, TemplateStatus::Approved, "Bem-vindo"),
        ]
    }

    fn text(t: &str) -> SendRequest {
        SendRequest { text: Some(t.into()), template: None, ..Default::default() }
    }

    fn tpl(id: &str, category: Option<TemplateCategory>, parameters: &[&str]) -> TemplateRequest {
        TemplateRequest {
            template_id: id.into(),
            category,
            language: None,
            parameters: parameters.iter().map(|p| (*p).to_owned()).collect(),
            ..Default::default()
        }
    }

    fn with_template(t: TemplateRequest) -> SendRequest {
        SendRequest { text: None, template: Some(t), ..Default::default() }
    }

    fn open() -> Option<OffsetDateTime> {
        Some(NOW - Duration::hours(1))
    }

    fn closed() -> Option<OffsetDateTime> {
        Some(NOW - Duration::hours(25))
    }

    // --- the window ---

    #[test]
    fn the_window_is_open_strictly_before_24_hours_after_the_last_inbound() {
        let last = NOW;
        assert!(window_open(Some(last), last));
        assert!(window_open(Some(last), last + WINDOW - Duration::nanoseconds(1)));
        assert!(!window_open(Some(last), last + WINDOW), "at exactly 24h the window is closed");
        assert!(!window_open(Some(last), last + WINDOW + Duration::seconds(1)));
        assert_eq!(window_expires_at(Some(last)), Some(last + Duration::hours(24)));
    }

    #[test]
    fn a_customer_who_never_wrote_has_no_window() {
        assert!(!window_open(None, NOW));
        assert_eq!(window_expires_at(None), None);
    }

    #[test]
    fn a_late_old_inbound_never_moves_the_window_back() {
        assert_eq!(bump_last_inbound(Some(NOW), NOW - Duration::days(3)), Some(NOW));
        assert_eq!(bump_last_inbound(Some(NOW - Duration::hours(2)), NOW), Some(NOW));
        assert_eq!(bump_last_inbound(None, NOW), Some(NOW));
    }

    #[test]
    fn an_inbound_counts_from_its_own_timestamp_but_never_from_the_future() {
        let sent = NOW - Duration::hours(3);
        assert_eq!(effective_inbound_at(Some(sent), NOW), sent);
        assert_eq!(effective_inbound_at(None, NOW), NOW);
        assert_eq!(effective_inbound_at(Some(NOW + Duration::days(2)), NOW), NOW);
    }

    // --- decide_send ---

    #[test]
    fn window_open_text_is_sent_as_text() {
        assert_eq!(decide_send(&text("Hi"), open(), NOW, &registry()), Ok(OutboundContent::Text { body: "Hi".into() }));
    }

    #[test]
    fn window_open_a_template_is_sent_as_a_template() {
        let got = decide_send(&with_template(tpl("hello_world", Some(TemplateCategory::Utility), &[])), open(), NOW, &registry());
        assert!(matches!(got, Ok(OutboundContent::Template { ref name, .. }) if name == "hello_world"));
    }

    #[test]
    fn window_open_with_text_and_template_the_text_is_sent_and_the_template_not_consulted() {
        let request = SendRequest {
            text: Some("Reminder: your appointment is tomorrow.".into()),
            template: Some(tpl("unknown_template", Some(TemplateCategory::Utility), &[])),
            ..Default::default()
        };
        assert_eq!(
            decide_send(&request, open(), NOW, &registry()),
            Ok(OutboundContent::Text { body: "Reminder: your appointment is tomorrow.".into() })
        );
    }

    #[test]
    fn window_closed_a_template_is_sent_as_a_template() {
        let request = SendRequest {
            text: Some("Reminder".into()),
            template: Some(tpl("hello_world", Some(TemplateCategory::Utility), &[])),
            ..Default::default()
        };
        let got = decide_send(&request, closed(), NOW, &registry()).unwrap();
        assert!(got.is_template());
    }

    #[test]
    fn window_closed_text_alone_is_refused_with_a_hint_to_include_template_id() {
        let refusal = decide_send(&text("Hi"), closed(), NOW, &registry()).unwrap_err();
        assert_eq!(refusal, SendRefusal::WindowClosed { last_inbound_at: closed() });
        assert_eq!(refusal.code(), "WINDOW_CLOSED");
        assert!(refusal.hint().unwrap().contains("template_id"));
    }

    #[test]
    fn a_customer_who_never_wrote_gets_templates_only() {
        assert!(matches!(decide_send(&text("Hi"), None, NOW, &registry()), Err(SendRefusal::WindowClosed { .. })));
        let t = with_template(tpl("hello_world", Some(TemplateCategory::Utility), &[]));
        assert!(decide_send(&t, None, NOW, &registry()).is_ok());
    }

    #[test]
    fn at_exactly_24_hours_text_is_refused() {
        let last = Some(NOW - WINDOW);
        assert!(matches!(decide_send(&text("Hi"), last, NOW, &registry()), Err(SendRefusal::WindowClosed { .. })));
        let just_before = Some(NOW - WINDOW + Duration::nanoseconds(1));
        assert!(decide_send(&text("Hi"), just_before, NOW, &registry()).is_ok());
    }

    #[test]
    fn neither_text_nor_template_is_a_validation_error() {
        let refusal = decide_send(&SendRequest::default(), open(), NOW, &registry()).unwrap_err();
        assert_eq!(refusal.code(), "VALIDATION_ERROR");
        let blank = decide_send(&text("   "), open(), NOW, &registry()).unwrap_err();
        assert!(matches!(blank, SendRefusal::Invalid { ref field, .. } if field == "text"));
    }

    #[test]
    fn text_longer_than_whatsapp_allows_is_refused() {
        let long = "a".repeat(MAX_TEXT_CHARS + 1);
        assert!(
            matches!(decide_send(&text(&long), open(), NOW, &registry()), Err(SendRefusal::Invalid { ref field, .. }) if field == "text")
        );
        assert!(decide_send(&text(&"a".repeat(MAX_TEXT_CHARS)), open(), NOW, &registry()).is_ok());
    }

    #[test]
    fn an_unknown_template_is_template_not_found() {
        let refusal =
            decide_send(&with_template(tpl("nope", Some(TemplateCategory::Utility), &[])), closed(), NOW, &registry()).unwrap_err();
        assert_eq!(refusal.code(), "TEMPLATE_NOT_FOUND");
        assert!(matches!(refusal, SendRefusal::Template(TemplateProblem::Unknown { .. })));
    }

    #[test]
    fn a_template_not_approved_is_template_not_found() {
        let refusal =
            decide_send(&with_template(tpl("promo", Some(TemplateCategory::Marketing), &[])), closed(), NOW, &registry()).unwrap_err();
        assert!(matches!(refusal, SendRefusal::Template(TemplateProblem::NotApproved { status: TemplateStatus::Pending, .. })));
    }

    #[test]
    fn a_category_mismatch_is_template_not_found() {
        let refusal = decide_send(&with_template(tpl("hello_world", Some(TemplateCategory::Marketing), &[])), closed(), NOW, &registry())
            .unwrap_err();
        assert_eq!(
            refusal,
            SendRefusal::Template(TemplateProblem::CategoryMismatch {
                name: "hello_world".into(),
                registered: TemplateCategory::Utility,
                requested: TemplateCategory::Marketing,
            })
        );
    }

    #[test]
    fn transactional_matches_a_utility_template() {
        let category = TemplateCategory::parse("transactional");
        assert!(decide_send(&with_template(tpl("hello_world", category, &[])), closed(), NOW, &registry()).is_ok());
    }

    #[test]
    fn a_template_without_category_is_a_validation_error() {
        let refusal = decide_send(&with_template(tpl("hello_world", None, &[])), closed(), NOW, &registry()).unwrap_err();
        assert!(matches!(refusal, SendRefusal::Invalid { ref field, .. } if field == "category"));
    }

    #[test]
    fn a_template_is_found_by_its_id_too() {
        let templates = registry();
        let id = templates[1].id.to_string();
        let got = decide_send(&with_template(tpl(&id, Some(TemplateCategory::Utility), &["Ana", "at 10"])), closed(), NOW, &templates);
        assert!(matches!(got, Ok(OutboundContent::Template { template_id, .. }) if template_id == templates[1].id));
        let other = TemplateId::generate().to_string();
        assert!(decide_send(&with_template(tpl(&other, Some(TemplateCategory::Utility), &[])), closed(), NOW, &templates).is_err());
    }

    #[test]
    fn the_parameter_count_must_match_the_template() {
        let t = |params: &[&str]| with_template(tpl("appointment", Some(TemplateCategory::Utility), params));
        assert!(
            matches!(decide_send(&t(&["Ana"]), closed(), NOW, &registry()), Err(SendRefusal::Invalid { ref field, .. }) if field == "parameters")
        );
        assert!(matches!(
            decide_send(&t(&["Ana", "b", "c"]), closed(), NOW, &registry()),
            Err(SendRefusal::Invalid { ref field, .. }) if field == "parameters"
        ));
        assert!(matches!(
            decide_send(&t(&["Ana", " "]), closed(), NOW, &registry()),
            Err(SendRefusal::Invalid { ref field, .. }) if field == "parameters"
        ));
        let sent = decide_send(&t(&["Ana", "tomorrow"]), closed(), NOW, &registry()).unwrap();
        assert!(matches!(sent, OutboundContent::Template { parameters, .. } if parameters == ["Ana", "tomorrow"]));
    }

    #[test]
    fn a_name_in_several_approved_languages_needs_a_language() {
        let mut request = tpl("welcome", Some(TemplateCategory::Utility), &[]);
        let refusal = decide_send(&with_template(request.clone()), closed(), NOW, &registry()).unwrap_err();
        assert!(
            matches!(refusal, SendRefusal::Template(TemplateProblem::Ambiguous { ref languages, .. }) if languages == &["en_US", "pt_BR"])
        );
        request.language = Some("pt_BR".into());
        let got = decide_send(&with_template(request.clone()), closed(), NOW, &registry()).unwrap();
        assert!(matches!(got, OutboundContent::Template { ref language, .. } if language == "pt_BR"));
        request.language = Some("de_DE".into());
        assert!(matches!(
            decide_send(&with_template(request), closed(), NOW, &registry()),
            Err(SendRefusal::Template(TemplateProblem::Unknown { .. }))
        ));
    }

    // --- last_inbound_at from messages ---

    fn inbound(secs: i64) -> Message {
        Message::inbound(
            MessageId::generate(),
            OrgId::generate(),
            ConversationId::generate(),
            MessageKind::Text,
            Some("hi".into()),
            None,
            None,
            NOW + Duration::seconds(secs),
        )
    }

    fn outbound(secs: i64) -> Message {
        Message::queued(
            MessageId::generate(),
            OrgId::generate(),
            ConversationId::generate(),
            &OutboundContent::Text { body: "x".into() },
            NOW + Duration::seconds(secs),
        )
    }

    #[test]
    fn outbound_messages_never_count_for_the_window() {
        let messages = [inbound(-100), outbound(50)];
        assert_eq!(last_inbound_at(&messages), Some(NOW - Duration::seconds(100)));
        assert_eq!(last_inbound_at(&[outbound(1)]), None);
    }

    proptest! {
        /// The window is computed from inbound messages' own timestamps: in whatever order the
        /// messages are seen, `last_inbound_at` is the same.
        #[test]
        fn last_inbound_at_is_order_independent(
            (times, shuffled) in proptest::collection::vec(-200_000i64..200_000, 0..10)
                .prop_flat_map(|t| (Just(t.clone()), Just(t).prop_shuffle()))
        ) {
            let a: Vec<Message> = times.iter().map(|&s| inbound(s)).collect();
            let b: Vec<Message> = shuffled.iter().map(|&s| inbound(s)).collect();
            prop_assert_eq!(last_inbound_at(&a), last_inbound_at(&b));
            // Folding them one by one as they arrive gives the same answer.
            let folded = b.iter().fold(None, |acc, m| bump_last_inbound(acc, m.created_at));
            prop_assert_eq!(folded, last_inbound_at(&a));
        }

        /// Receipts and outbound messages never change `last_inbound_at`, nor the window.
        #[test]
        fn receipts_and_outbound_messages_do_not_move_the_window(
            inbound_times in proptest::collection::vec(-200_000i64..200_000, 0..6),
            outbound_times in proptest::collection::vec(-200_000i64..400_000, 0..6),
            receipt_times in proptest::collection::vec(0i64..400_000, 0..6),
            now_offset in -200_000i64..400_000,
        ) {
            let messages: Vec<Message> = inbound_times.iter().map(|&s| inbound(s)).collect();
            let before = last_inbound_at(&messages);
            let mut with_outbound = messages.clone();
            for &s in &outbound_times {
                let mut m = outbound(s);
                let mut record = m.delivery().unwrap_or_default();
                for &r in &receipt_times {
                    record.apply(&StatusEvent::new(DeliveryState::Read, NOW + Duration::seconds(r)));
                }
                m.set_delivery(record);
                with_outbound.push(m);
            }
            prop_assert_eq!(last_inbound_at(&with_outbound), before);
            let now = NOW + Duration::seconds(now_offset);
            prop_assert_eq!(window_open(last_inbound_at(&with_outbound), now), window_open(before, now));
        }

        /// The window rule, stated over arbitrary instants: open exactly when
        /// `now < last_inbound_at + 24h`.
        #[test]
        fn window_open_iff_now_before_expiry(last in -1_000_000i64..1_000_000, now in -1_000_000i64..1_000_000) {
            let last = NOW + Duration::seconds(last);
            let now = NOW + Duration::seconds(now);
            prop_assert_eq!(window_open(Some(last), now), now < last + Duration::hours(24));
        }

        /// Text is only ever sent as text inside the window; outside it a send is a template or a refusal.
        #[test]
        fn text_never_leaves_outside_the_window(last in -200_000i64..0, body in "[a-z ]{0,20}", with_tpl in any::<bool>()) {
            let last = Some(NOW + Duration::seconds(last));
            let request = SendRequest {
                text: Some(body),
                template: with_tpl.then(|| tpl("hello_world", Some(TemplateCategory::Utility), &[])), ..Default::default() };
            if let Ok(OutboundContent::Text { .. }) = decide_send(&request, last, NOW, &registry()) {
                prop_assert!(window_open(last, NOW));
            }
        }
    }
}
