//! What a message carries beyond its kind: [`MessageContent`] (every inbound type Meta documents,
//! and the rich outbound ones), the outbound [`OutboundMedia`] and [`Interactive`] messages with
//! their validation, and the template components a send fills ([`TemplateHeader`],
//! [`TemplateButton`]) checked against a template's placeholders ([`TemplateShape`]).
//!
//! The wire names are Meta's (`image`, `button_reply`, `quick_reply`…), so the API, the store and
//! the Graph adapter spell them one way. Validation here is pure; a refusal names the field.

use crate::model::MessageKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The five media types of WhatsApp messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaType {
    Image,
    Audio,
    Video,
    Document,
    Sticker,
}

impl MediaType {
    /// Meta's name (`image`…).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Document => "document",
            Self::Sticker => "sticker",
        }
    }

    /// Parses Meta's name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "image" => Self::Image,
            "audio" => Self::Audio,
            "video" => Self::Video,
            "document" => Self::Document,
            "sticker" => Self::Sticker,
            _ => return None,
        })
    }

    /// The message kind of this media type.
    pub const fn kind(self) -> MessageKind {
        match self {
            Self::Image => MessageKind::Image,
            Self::Audio => MessageKind::Audio,
            Self::Video => MessageKind::Video,
            Self::Document => MessageKind::Document,
            Self::Sticker => MessageKind::Sticker,
        }
    }

    /// Whether Meta accepts a caption with it (not for audio and stickers).
    pub const fn takes_caption(self) -> bool {
        matches!(self, Self::Image | Self::Video | Self::Document)
    }
}

/// A media object as an inbound message carries it (Meta's `image`, `audio`… object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InboundMedia {
    /// Meta's media id (download it with the Graph API's media endpoint).
    pub media_id: String,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub caption: Option<String>,
    /// Documents only.
    pub filename: Option<String>,
    /// Audio only: a voice note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<bool>,
    /// Stickers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub animated: Option<bool>,
}

/// A shared location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
    pub url: Option<String>,
}

impl Eq for Location {}

/// A customer's answer to an interactive message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InteractiveReply {
    /// `button_reply` or `list_reply`.
    pub reply_type: String,
    /// The id we gave the button or row.
    pub id: String,
    pub title: String,
    /// List rows only.
    pub description: Option<String>,
}

/// Why Meta could not show us a message (`unsupported`), from its `errors[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnsupportedError {
    pub code: Option<i64>,
    pub title: Option<String>,
    pub details: Option<String>,
}

/// What a message carries, by kind: the API's `content` object. Text and templates keep their
/// existing fields (`text`, `template`) too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessageContent {
    Text {
        body: String,
    },
    Image(InboundMedia),
    Audio(InboundMedia),
    Video(InboundMedia),
    Document(InboundMedia),
    Sticker(InboundMedia),
    Location(Location),
    /// Shared contact cards, as Meta sends them (names, phones, emails… nested objects).
    Contacts {
        #[schema(value_type = Vec<Object>)]
        contacts: Vec<Value>,
    },
    /// A reply button or list row the customer chose.
    Interactive(InteractiveReply),
    /// A template's quick-reply button the customer pressed.
    Button {
        payload: Option<String>,
        text: Option<String>,
    },
    /// An emoji reaction to one of our messages (an empty emoji removes it).
    Reaction {
        /// The provider id (`wamid…`) of the message reacted to.
        message_id: String,
        emoji: String,
    },
    /// A message type Meta does not deliver through the API.
    Unsupported(UnsupportedError),
    /// Media we sent (by id or link).
    OutboundMedia(OutboundMedia),
    /// An interactive message we sent.
    OutboundInteractive(Interactive),
}

impl MessageContent {
    /// The message kind this content is.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Text { .. } => MessageKind::Text,
            Self::Image(_) => MessageKind::Image,
            Self::Audio(_) => MessageKind::Audio,
            Self::Video(_) => MessageKind::Video,
            Self::Document(_) => MessageKind::Document,
            Self::Sticker(_) => MessageKind::Sticker,
            Self::Location(_) => MessageKind::Location,
            Self::Contacts { .. } => MessageKind::Contacts,
            Self::Interactive(_) | Self::OutboundInteractive(_) => MessageKind::Interactive,
            Self::Button { .. } => MessageKind::Button,
            Self::Reaction { .. } => MessageKind::Reaction,
            Self::Unsupported(_) => MessageKind::Unsupported,
            Self::OutboundMedia(m) => m.media_type.kind(),
        }
    }

    /// The readable text of the message, if any: the body, a caption, a reply's title, a
    /// button's text, a reaction's emoji (the message's `text` field, and what knowledge search
    /// and agents read).
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Text { body } => Some(body.clone()),
            Self::Image(m) | Self::Audio(m) | Self::Video(m) | Self::Document(m) | Self::Sticker(m) => m.caption.clone(),
            Self::Location(l) => l.name.clone().or_else(|| l.address.clone()),
            Self::Interactive(r) => Some(r.title.clone()),
            Self::Button { text, payload } => text.clone().or_else(|| payload.clone()),
            Self::Reaction { emoji, .. } => Some(emoji.clone()).filter(|e| !e.is_empty()),
            Self::OutboundMedia(m) => m.caption.clone(),
            Self::OutboundInteractive(i) => Some(i.body.clone()),
            Self::Contacts { .. } | Self::Unsupported(_) => None,
        }
    }
}

/// Media to send: by Meta media id (uploaded before) or by a public `link`, exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundMedia {
    /// `image`, `audio`, `video`, `document` or `sticker`.
    #[serde(rename = "type")]
    pub media_type: MediaType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Image, video and document only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Document only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// A refusal naming the field (relative to the object checked) and why.
pub type FieldProblem = (String, String);

fn problem(field: impl Into<String>, message: impl Into<String>) -> FieldProblem {
    (field.into(), message.into())
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), FieldProblem> {
    if value.trim().is_empty() {
        return Err(problem(field, "must not be blank"));
    }
    if value.chars().count() > max {
        return Err(problem(field, format!("at most {max} characters")));
    }
    Ok(())
}

fn check_link(field: &str, link: &str) -> Result<(), FieldProblem> {
    if !(link.starts_with("https://") || link.starts_with("http://")) || link.len() > 2048 || link.contains(char::is_whitespace) {
        return Err(problem(field, "must be an http(s) URL"));
    }
    Ok(())
}

/// A media reference (`id` xor `link`) checked; `field` prefixes the names.
fn check_media_reference(field: &str, id: Option<&str>, link: Option<&str>) -> Result<(), FieldProblem> {
    match (id, link) {
        (Some(id), None) => check_len(&format!("{field}.id"), id, 256),
        (None, Some(link)) => check_link(&format!("{field}.link"), link),
        (Some(_), Some(_)) => Err(problem(format!("{field}.id"), "give `id` or `link`, not both")),
        (None, None) => Err(problem(format!("{field}.id"), "give the media's `id` or a `link`")),
    }
}

impl OutboundMedia {
    /// Checks Meta's rules: one of `id` and `link`, a caption (at most 1024 characters) only on
    /// images, videos and documents, a file name only on documents.
    ///
    /// # Errors
    /// The field (under `media`) and why.
    pub fn validate(&self) -> Result<(), FieldProblem> {
        check_media_reference("media", self.id.as_deref(), self.link.as_deref())?;
        if let Some(caption) = &self.caption {
            if !self.media_type.takes_caption() {
                return Err(problem("media.caption", format!("{} messages take no caption", self.media_type.as_str())));
            }
            check_len("media.caption", caption, 1024)?;
        }
        if let Some(filename) = &self.filename {
            if self.media_type != MediaType::Document {
                return Err(problem("media.filename", "only documents take a file name"));
            }
            check_len("media.filename", filename, 240)?;
        }
        Ok(())
    }
}

/// A reply button of an interactive message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyButton {
    /// Comes back in the customer's `button_reply` (at most 256 characters).
    pub id: String,
    /// At most 20 characters.
    pub title: String,
}

/// A row of a list message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRow {
    /// Comes back in the customer's `list_reply` (at most 200 characters).
    pub id: String,
    /// At most 24 characters.
    pub title: String,
    /// At most 72 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A section of a list message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSection {
    /// Required when there are several sections (at most 24 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<ListRow>,
}

/// What kind of interactive message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InteractiveType {
    /// Up to three reply buttons.
    Button,
    /// A menu of rows in sections.
    List,
}

/// An interactive message: reply buttons or a list (inside the window only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Interactive {
    #[serde(rename = "type")]
    pub interactive_type: InteractiveType,
    /// A text header (at most 60 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The message text (at most 1024 characters).
    pub body: String,
    /// At most 60 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    /// `button` only: one to three buttons with distinct ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<ReplyButton>,
    /// `list` only: the label of the button that opens the list (at most 20 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<String>,
    /// `list` only: one to ten sections, ten rows in all, distinct row ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<ListSection>,
}

impl Interactive {
    /// Checks Meta's limits for reply buttons and lists.
    ///
    /// # Errors
    /// The field (under `interactive`) and why.
    pub fn validate(&self) -> Result<(), FieldProblem> {
        if let Some(header) = &self.header {
            check_len("interactive.header", header, 60)?;
        }
        check_len("interactive.body", &self.body, 1024)?;
        if let Some(footer) = &self.footer {
            check_len("interactive.footer", footer, 60)?;
        }
        let mut ids = std::collections::BTreeSet::new();
        match self.interactive_type {
            InteractiveType::Button => {
                if self.button.is_some() || !self.sections.is_empty() {
                    return Err(problem("interactive.sections", "`button` and `sections` belong to list messages"));
                }
                if self.buttons.is_empty() || self.buttons.len() > 3 {
                    return Err(problem("interactive.buttons", "one to three buttons"));
                }
                for (i, b) in self.buttons.iter().enumerate() {
                    check_len(&format!("interactive.buttons[{i}].id"), &b.id, 256)?;
                    check_len(&format!("interactive.buttons[{i}].title"), &b.title, 20)?;
                    if !ids.insert(b.id.as_str()) {
                        return Err(problem(format!("interactive.buttons[{i}].id"), "button ids must be distinct"));
                    }
                }
            }
            InteractiveType::List => {
                if !self.buttons.is_empty() {
                    return Err(problem("interactive.buttons", "`buttons` belong to button messages"));
                }
                check_len("interactive.button", self.button.as_deref().unwrap_or(""), 20)?;
                if self.sections.is_empty() || self.sections.len() > 10 {
                    return Err(problem("interactive.sections", "one to ten sections"));
                }
                let mut rows = 0;
                for (i, s) in self.sections.iter().enumerate() {
                    match &s.title {
                        Some(t) => check_len(&format!("interactive.sections[{i}].title"), t, 24)?,
                        None if self.sections.len() > 1 => {
                            return Err(problem(format!("interactive.sections[{i}].title"), "required when there are several sections"))
                        }
                        None => {}
                    }
                    if s.rows.is_empty() {
                        return Err(problem(format!("interactive.sections[{i}].rows"), "at least one row"));
                    }
                    for (j, r) in s.rows.iter().enumerate() {
                        rows += 1;
                        check_len(&format!("interactive.sections[{i}].rows[{j}].id"), &r.id, 200)?;
                        check_len(&format!("interactive.sections[{i}].rows[{j}].title"), &r.title, 24)?;
                        if let Some(d) = &r.description {
                            check_len(&format!("interactive.sections[{i}].rows[{j}].description"), d, 72)?;
                        }
                        if !ids.insert(r.id.as_str()) {
                            return Err(problem(format!("interactive.sections[{i}].rows[{j}].id"), "row ids must be distinct"));
                        }
                    }
                }
                if rows > 10 {
                    return Err(problem("interactive.sections", "at most ten rows in all"));
                }
            }
        }
        Ok(())
    }
}

/// The header parameter of a template send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateHeader {
    /// `text`, `image`, `document` or `video`: must match the template's header format.
    #[serde(rename = "type")]
    pub header_type: TemplateHeaderType,
    /// `text` headers: the value of `{{1}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Media headers: a Meta media id…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// …or a public link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Document headers: the file name shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// A template header's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateHeaderType {
    Text,
    Image,
    Document,
    Video,
}

impl TemplateHeaderType {
    /// The name in requests (`text`…).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::Document => "document",
            Self::Video => "video",
        }
    }
}

/// A button parameter of a template send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateButton {
    /// The button's position in the template (from 0).
    pub index: u32,
    /// `quick_reply` (with `payload`) or `url` (with `text`, the URL's `{{1}}` suffix).
    #[serde(rename = "type")]
    pub button_type: TemplateButtonType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The kinds of template buttons that take a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateButtonType {
    QuickReply,
    Url,
}

impl TemplateButtonType {
    /// Meta's `sub_type`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::QuickReply => "quick_reply",
            Self::Url => "url",
        }
    }
}

/// What a template's components ask of a send: read from Meta's `components` array.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateShape {
    /// The header's format, and for a text header the number of its `{{n}}` parameters.
    pub header: Option<(TemplateHeaderType, usize)>,
    /// Each button: its type (`None` for kinds that take no parameter, such as phone numbers)
    /// and whether it needs a parameter (a URL with `{{1}}`).
    pub buttons: Vec<(Option<TemplateButtonType>, bool)>,
}

impl TemplateShape {
    /// Reads Meta's components (`[{"type": "HEADER", "format": "IMAGE"}, {"type": "BUTTONS",
    /// "buttons": [{"type": "URL", "url": "https://…/{{1}}"}]}]`); unknown parts are ignored.
    pub fn of(components: Option<&Value>) -> Self {
        let mut shape = TemplateShape::default();
        let Some(list) = components.and_then(Value::as_array) else { return shape };
        for component in list {
            let kind = component.get("type").and_then(Value::as_str).unwrap_or("").to_ascii_uppercase();
            match kind.as_str() {
                "HEADER" => {
                    let format = component.get("format").and_then(Value::as_str).unwrap_or("TEXT").to_ascii_uppercase();
                    let header = match format.as_str() {
                        "IMAGE" => Some((TemplateHeaderType::Image, 0)),
                        "DOCUMENT" => Some((TemplateHeaderType::Document, 0)),
                        "VIDEO" => Some((TemplateHeaderType::Video, 0)),
                        "TEXT" => {
                            let text = component.get("text").and_then(Value::as_str).unwrap_or("");
                            Some((TemplateHeaderType::Text, crate::model::placeholders(text).len()))
                        }
                        _ => None,
                    };
                    shape.header = header;
                }
                "BUTTONS" => {
                    for button in component.get("buttons").and_then(Value::as_array).into_iter().flatten() {
                        let kind = button.get("type").and_then(Value::as_str).unwrap_or("").to_ascii_uppercase();
                        shape.buttons.push(match kind.as_str() {
                            "QUICK_REPLY" => (Some(TemplateButtonType::QuickReply), false),
                            "URL" => {
                                let url = button.get("url").and_then(Value::as_str).unwrap_or("");
                                (Some(TemplateButtonType::Url), !crate::model::placeholders(url).is_empty())
                            }
                            _ => (None, false),
                        });
                    }
                }
                _ => {}
            }
        }
        shape
    }

    /// Whether a send must give a header parameter.
    pub fn header_needs_parameter(&self) -> bool {
        match self.header {
            Some((TemplateHeaderType::Text, n)) => n > 0,
            Some(_) => true,
            None => false,
        }
    }

    /// Checks a send's header and button parameters against the template.
    ///
    /// # Errors
    /// The field (`header`, `buttons[i]…`) and why.
    pub fn check(&self, header: Option<&TemplateHeader>, buttons: &[TemplateButton]) -> Result<(), FieldProblem> {
        match (self.header, header) {
            (None, Some(_)) => return Err(problem("header", "this template has no header")),
            (Some((TemplateHeaderType::Text, 0)), Some(_)) => return Err(problem("header", "this template's header takes no parameter")),
            (Some((format, _)), None) if self.header_needs_parameter() => {
                return Err(problem("header", format!("this template's {} header needs a parameter", format.as_str())))
            }
            (Some((format, _)), Some(given)) => {
                if given.header_type != format {
                    return Err(problem("header.type", format!("this template's header is {}", format.as_str())));
                }
                match format {
                    TemplateHeaderType::Text => {
                        check_len("header.text", given.text.as_deref().unwrap_or(""), 60)?;
                        if given.id.is_some() || given.link.is_some() || given.filename.is_some() {
                            return Err(problem("header.text", "a text header takes only `text`"));
                        }
                    }
                    media => {
                        if given.text.is_some() {
                            return Err(problem("header.text", "a media header takes `id` or `link`"));
                        }
                        check_media_reference("header", given.id.as_deref(), given.link.as_deref())?;
                        if given.filename.is_some() && media != TemplateHeaderType::Document {
                            return Err(problem("header.filename", "only document headers take a file name"));
                        }
                    }
                }
            }
            _ => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, given) in buttons.iter().enumerate() {
            let at = |f: &str| format!("buttons[{i}].{f}");
            if !seen.insert(given.index) {
                return Err(problem(at("index"), "one parameter per button"));
            }
            let Some((kind, _)) = self.buttons.get(given.index as usize) else {
                return Err(problem(at("index"), format!("this template has {} button(s)", self.buttons.len())));
            };
            if *kind != Some(given.button_type) {
                return Err(problem(at("type"), format!("button {} is not a {} button", given.index, given.button_type.as_str())));
            }
            match given.button_type {
                TemplateButtonType::QuickReply => {
                    check_len(&at("payload"), given.payload.as_deref().unwrap_or(""), 256)?;
                    if given.text.is_some() {
                        return Err(problem(at("text"), "a quick reply takes a `payload`"));
                    }
                }
                TemplateButtonType::Url => {
                    check_len(&at("text"), given.text.as_deref().unwrap_or(""), 2000)?;
                    if given.payload.is_some() {
                        return Err(problem(at("payload"), "a URL button takes `text` (the URL's suffix)"));
                    }
                }
            }
        }
        for (index, (_, needs)) in self.buttons.iter().enumerate() {
            if *needs && !buttons.iter().any(|b| b.index as usize == index) {
                return Err(problem("buttons", format!("button {index} is a URL with a {{{{1}}}} suffix: give its `text`")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn media(t: MediaType, id: Option<&str>, link: Option<&str>) -> OutboundMedia {
        OutboundMedia { media_type: t, id: id.map(Into::into), link: link.map(Into::into), caption: None, filename: None }
    }

    #[test]
    fn media_takes_an_id_or_a_link_and_captions_only_where_meta_allows() {
        assert!(media(MediaType::Image, Some("123"), None).validate().is_ok());
        assert!(media(MediaType::Image, None, Some("https://x.example/a.png")).validate().is_ok());
        assert_eq!(media(MediaType::Image, None, None).validate().unwrap_err().0, "media.id");
        assert_eq!(media(MediaType::Image, Some("1"), Some("https://x")).validate().unwrap_err().0, "media.id");
        assert_eq!(media(MediaType::Image, None, Some("ftp://x")).validate().unwrap_err().0, "media.link");
        let mut audio = media(MediaType::Audio, Some("1"), None);
        audio.caption = Some("hi".into());
        assert_eq!(audio.validate().unwrap_err().0, "media.caption");
        let mut image = media(MediaType::Image, Some("1"), None);
        image.filename = Some("a.pdf".into());
        assert_eq!(image.validate().unwrap_err().0, "media.filename");
    }

    #[test]
    fn reply_buttons_are_one_to_three_with_distinct_ids_and_short_titles() {
        let b = |id: &str, title: &str| ReplyButton { id: id.into(), title: title.into() };
        let mut m = Interactive {
            interactive_type: InteractiveType::Button,
            header: None,
            body: "Pick".into(),
            footer: None,
            buttons: vec![b("y", "Yes"), b("n", "No")],
            button: None,
            sections: vec![],
        };
        assert!(m.validate().is_ok());
        m.buttons.push(b("y", "Again"));
        assert_eq!(m.validate().unwrap_err().0, "interactive.buttons[2].id");
        m.buttons = vec![b("a", "a title longer than twenty")];
        assert_eq!(m.validate().unwrap_err().0, "interactive.buttons[0].title");
        m.buttons = vec![];
        assert_eq!(m.validate().unwrap_err().0, "interactive.buttons");
    }

    #[test]
    fn a_list_needs_a_button_label_and_at_most_ten_rows() {
        let row = |id: String| ListRow { id, title: "Row".into(), description: None };
        let mut m = Interactive {
            interactive_type: InteractiveType::List,
            header: None,
            body: "Choose".into(),
            footer: None,
            buttons: vec![],
            button: Some("Menu".into()),
            sections: vec![ListSection { title: None, rows: (0..10).map(|i| row(i.to_string())).collect() }],
        };
        assert!(m.validate().is_ok());
        m.sections[0].rows.push(row("10".into()));
        assert_eq!(m.validate().unwrap_err().0, "interactive.sections");
        m.sections[0].rows.pop();
        m.button = None;
        assert_eq!(m.validate().unwrap_err().0, "interactive.button");
    }

    #[test]
    fn template_components_decide_which_parameters_a_send_needs() {
        let components = json!([
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Hi {{1}}"},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Stop"},
                {"type": "URL", "text": "Track", "url": "https://x.example/track/{{1}}"}
            ]}
        ]);
        let shape = TemplateShape::of(Some(&components));
        let header = TemplateHeader {
            header_type: TemplateHeaderType::Image,
            text: None,
            id: None,
            link: Some("https://x.example/a.png".into()),
            filename: None,
        };
        let url = TemplateButton { index: 1, button_type: TemplateButtonType::Url, payload: None, text: Some("A-1".into()) };
        assert!(shape.check(Some(&header), std::slice::from_ref(&url)).is_ok());
        assert_eq!(shape.check(None, std::slice::from_ref(&url)).unwrap_err().0, "header");
        assert_eq!(shape.check(Some(&header), &[]).unwrap_err().0, "buttons");
        let wrong = TemplateButton { index: 0, button_type: TemplateButtonType::Url, payload: None, text: Some("x".into()) };
        assert_eq!(shape.check(Some(&header), &[url.clone(), wrong]).unwrap_err().0, "buttons[1].type");
        let missing = TemplateButton { index: 5, button_type: TemplateButtonType::QuickReply, payload: Some("p".into()), text: None };
        assert_eq!(shape.check(Some(&header), &[url, missing]).unwrap_err().0, "buttons[1].index");
        assert_eq!(TemplateShape::of(None).check(Some(&header), &[]).unwrap_err().0, "header");
    }

    #[test]
    fn content_serializes_with_its_type_and_round_trips() {
        let c = MessageContent::Reaction { message_id: "wamid.X".into(), emoji: "👍".into() };
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json, json!({"type": "reaction", "message_id": "wamid.X", "emoji": "👍"}));
        assert_eq!(serde_json::from_value::<MessageContent>(json).unwrap(), c);
        assert_eq!(c.kind(), MessageKind::Reaction);
    }
}
