//! The outbound side: [`GraphClient`] sends an [`OutboundMessage`] through the Cloud API's
//! `POST {base}/{version}/{phone_number_id}/messages` and returns Meta's message id (`wamid`)
//! or a classified [`GraphError`].
//!
//! The request bodies are exactly the ones Meta documents:
//!
//! ```json
//! {"messaging_product":"whatsapp","recipient_type":"individual","to":"15551234567",
//!  "type":"text","text":{"preview_url":false,"body":"Hello"}}
//!
//! {"messaging_product":"whatsapp","to":"15551234567","type":"template",
//!  "template":{"name":"order_update","language":{"code":"en_US"},
//!   "components":[{"type":"body","parameters":[{"type":"text","text":"A-1042"}]}]}}
//! ```
//!
//! (`components` is omitted when a template has no parameters.) The client holds no secrets: the
//! channel's access token is passed to each call and never logged.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{GraphError, GraphErrorKind};

/// Meta's Graph API host.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// The Graph API version used when none is configured.
pub const DEFAULT_API_VERSION: &str = "v23.0";

/// A message to send. `to` is the recipient's E.164 number as digits, without the `+`
/// (`"15551234567"`); it is passed through unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundMessage {
    /// Free-form text: only deliverable inside the 24-hour customer service window.
    Text { to: String, body: String },
    /// An approved template; `parameters` fill the body's `{{1}}`, `{{2}}`… in order.
    Template {
        to: String,
        name: String,
        /// The template's language code, e.g. `en_US`.
        language: String,
        parameters: Vec<String>,
        /// The `header` component (`{"type":"header","parameters":[…]}`), when the template has one.
        header: Option<Value>,
        /// The `button` components (`{"type":"button","sub_type":"url","index":"0",…}`).
        buttons: Vec<Value>,
    },
    /// Media by id or link: `media_type` is `image`, `audio`, `video`, `document` or `sticker`;
    /// `media` is its object (`{"id": …}` or `{"link": …}`, with `caption`, `filename`).
    Media { to: String, media_type: String, media: Value },
    /// An interactive message: `interactive` is Meta's object (`type`, `header`, `body`,
    /// `footer`, `action`).
    Interactive { to: String, interactive: Value },
}

impl OutboundMessage {
    /// The recipient.
    pub fn to(&self) -> &str {
        match self {
            Self::Text { to, .. } | Self::Template { to, .. } | Self::Media { to, .. } | Self::Interactive { to, .. } => to,
        }
    }

    /// The JSON body sent to Meta, exactly as documented.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Text { to, body } => json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "text",
                "text": { "preview_url": false, "body": body },
            }),
            Self::Template { to, name, language, parameters, header, buttons } => {
                let mut template = json!({
                    "name": name,
                    "language": { "code": language },
                });
                let mut components: Vec<Value> = header.iter().cloned().collect();
                if !parameters.is_empty() {
                    let params: Vec<Value> = parameters.iter().map(|p| json!({ "type": "text", "text": p })).collect();
                    components.push(json!({ "type": "body", "parameters": params }));
                }
                components.extend(buttons.iter().cloned());
                if !components.is_empty() {
                    template["components"] = Value::Array(components);
                }
                json!({
                    "messaging_product": "whatsapp",
                    "to": to,
                    "type": "template",
                    "template": template,
                })
            }
            Self::Media { to, media_type, media } => {
                let mut body = json!({
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": to,
                    "type": media_type,
                });
                body[media_type.as_str()] = media.clone();
                body
            }
            Self::Interactive { to, interactive } => json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "interactive",
                "interactive": interactive,
            }),
        }
    }
}

/// One template of a WhatsApp Business Account, as `GET /{waba_id}/message_templates` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ListedTemplate {
    pub name: String,
    pub language: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`…
    pub status: String,
    /// `UTILITY`, `MARKETING` or `AUTHENTICATION`.
    pub category: String,
    #[serde(default)]
    pub components: Vec<Value>,
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Deserialize)]
struct TemplatePage {
    #[serde(default)]
    data: Vec<ListedTemplate>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    cursors: Option<Cursors>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Cursors {
    #[serde(default)]
    after: Option<String>,
}

/// The most pages a template listing follows (100 templates a page): a guard against a
/// server that never stops paging.
const MAX_TEMPLATE_PAGES: usize = 100;

/// Meta accepted the message (which is not delivery: delivery arrives later as a status webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendAccepted {
    /// The message id (`wamid.…`) that status webhooks will refer to.
    pub wamid: String,
    /// The recipient's WhatsApp id as Meta resolved it (`contacts[0].wa_id`), when returned.
    pub wa_id: Option<String>,
}

/// A configuration the client cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid Graph API base URL {0:?}: {1}")]
    BaseUrl(String, String),
    #[error("invalid Graph API version {0:?}: expected something like \"v23.0\"")]
    Version(String),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// The WhatsApp Cloud API client. Cheap to clone (the connection pool is shared); one per
/// process is enough, whatever the number of channels.
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: Url,
    version: String,
}

impl GraphClient {
    /// A client for `base_url` (e.g. [`DEFAULT_BASE_URL`], or a local fake's URL) and API
    /// `version` (e.g. [`DEFAULT_API_VERSION`]); `timeout` bounds each whole call.
    pub fn new(base_url: &str, version: &str, timeout: Duration) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("atlas-whatsapp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?;
        Self::with_http_client(http, base_url, version)
    }

    /// A client over an existing `reqwest::Client` (its timeouts apply).
    pub fn with_http_client(http: reqwest::Client, base_url: &str, version: &str) -> Result<Self, ConfigError> {
        let base = Url::parse(base_url.trim_end_matches('/')).map_err(|e| ConfigError::BaseUrl(base_url.to_string(), e.to_string()))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(ConfigError::BaseUrl(base_url.to_string(), "expected an http or https URL".to_string()));
        }
        let version = version.trim_matches('/');
        if version.is_empty() || version.contains('/') || version.contains(char::is_whitespace) {
            return Err(ConfigError::Version(version.to_string()));
        }
        Ok(GraphClient { http, base, version: version.to_string() })
    }

    /// The configured base URL (without a trailing slash).
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The configured API version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `{base}/{version}/{phone_number_id}/messages`.
    pub fn messages_url(&self, phone_number_id: &str) -> Url {
        let mut url = self.base.clone();
        {
            let mut segments = url.path_segments_mut().expect("checked in the constructor: the base URL can be a base");
            segments.pop_if_empty().extend([self.version.as_str(), phone_number_id, "messages"]);
        }
        url
    }

    /// `{base}/{version}/{waba_id}/message_templates`.
    pub fn templates_url(&self, waba_id: &str) -> Url {
        let mut url = self.base.clone();
        {
            let mut segments = url.path_segments_mut().expect("checked in the constructor: the base URL can be a base");
            segments.pop_if_empty().extend([self.version.as_str(), waba_id, "message_templates"]);
        }
        url
    }

    /// Every template of the WhatsApp Business Account `waba_id`, following Meta's cursor
    /// paging (`paging.cursors.after` while `paging.next` is present), 100 a page.
    ///
    /// # Errors
    /// A [`GraphError`] for a refused call, a transport failure or an unreadable page.
    pub async fn list_templates(&self, waba_id: &str, access_token: &str) -> Result<Vec<ListedTemplate>, GraphError> {
        if waba_id.trim().is_empty() {
            return Err(GraphError::local(GraphErrorKind::InvalidRequest, None, "empty waba_id"));
        }
        let mut templates = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_TEMPLATE_PAGES {
            let mut url = self.templates_url(waba_id);
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("fields", "name,language,status,category,components").append_pair("limit", "100");
                if let Some(after) = &after {
                    query.append_pair("after", after);
                }
            }
            let response =
                self.http.get(url).header(AUTHORIZATION, format!("Bearer {access_token}")).send().await.map_err(transport_error)?;
            let status = response.status().as_u16();
            let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = response.bytes().await.map_err(transport_error)?;
            if !(200..300).contains(&status) {
                return Err(GraphError::from_response(status, retry_after.as_deref(), &body));
            }
            let page: TemplatePage = serde_json::from_slice(&body).map_err(|e| {
                GraphError::local(GraphErrorKind::InvalidResponse, Some(status), format!("an unreadable template page: {e}"))
            })?;
            templates.extend(page.data);
            let next = page.paging.as_ref().and_then(|p| p.next.as_ref()).is_some();
            after = page.paging.and_then(|p| p.cursors).and_then(|c| c.after);
            if !next || after.is_none() {
                return Ok(templates);
            }
        }
        Err(GraphError::local(GraphErrorKind::InvalidResponse, None, "the template listing did not end after 100 pages"))
    }

    /// Marks the customer's message `wamid` read: `POST …/messages` with
    /// `{"messaging_product":"whatsapp","status":"read","message_id":wamid}`.
    ///
    /// # Errors
    /// A [`GraphError`] saying whether to retry.
    pub async fn mark_read(&self, phone_number_id: &str, access_token: &str, wamid: &str) -> Result<(), GraphError> {
        if phone_number_id.trim().is_empty() {
            return Err(GraphError::local(GraphErrorKind::InvalidRequest, None, "empty phone_number_id"));
        }
        let body = json!({ "messaging_product": "whatsapp", "status": "read", "message_id": wamid });
        let response = self
            .http
            .post(self.messages_url(phone_number_id))
            .header(AUTHORIZATION, format!("Bearer {access_token}"))
            .json(&body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = response.bytes().await.map_err(transport_error)?;
        if !(200..300).contains(&status) {
            return Err(GraphError::from_response(status, retry_after.as_deref(), &bytes));
        }
        Ok(())
    }

    /// Sends `message` from the number `phone_number_id` with the channel's `access_token`.
    ///
    /// `Ok` means Meta accepted the message and gave it a `wamid`; every failure is a
    /// [`GraphError`] saying whether to retry (see [`crate::error`] for the table).
    pub async fn send(&self, phone_number_id: &str, access_token: &str, message: &OutboundMessage) -> Result<SendAccepted, GraphError> {
        if phone_number_id.trim().is_empty() {
            return Err(GraphError::local(GraphErrorKind::InvalidRequest, None, "empty phone_number_id"));
        }
        let url = self.messages_url(phone_number_id);
        let response = self
            .http
            .post(url)
            .header(AUTHORIZATION, format!("Bearer {access_token}"))
            .json(&message.to_json())
            .send()
            .await
            .map_err(transport_error)?;

        let status = response.status().as_u16();
        let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.bytes().await.map_err(transport_error)?;

        if !(200..300).contains(&status) {
            let error = GraphError::from_response(status, retry_after.as_deref(), &body);
            tracing::debug!(
                phone_number_id,
                http_status = status,
                code = error.code,
                retryable = error.retryable,
                kind = error.kind.as_str(),
                "whatsapp send refused"
            );
            return Err(error);
        }

        match serde_json::from_slice::<SendResponse>(&body) {
            Ok(parsed) => match parsed.messages.into_iter().find_map(|m| m.id) {
                Some(wamid) if !wamid.is_empty() => {
                    let wa_id = parsed.contacts.into_iter().find_map(|c| c.wa_id);
                    tracing::debug!(phone_number_id, %wamid, "whatsapp send accepted");
                    Ok(SendAccepted { wamid, wa_id })
                }
                _ => Err(GraphError::local(
                    GraphErrorKind::InvalidResponse,
                    Some(status),
                    "the Graph API answered success without a message id",
                )),
            },
            Err(e) => Err(GraphError::local(
                GraphErrorKind::InvalidResponse,
                Some(status),
                format!("the Graph API answered success with an unreadable body: {e}"),
            )),
        }
    }
}

fn transport_error(e: reqwest::Error) -> GraphError {
    // Never echo the URL with its query, and reqwest errors never carry headers (the token).
    let e = e.without_url();
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut message = format!("Graph API {what}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    if e.is_builder() {
        GraphError::local(GraphErrorKind::InvalidRequest, None, message)
    } else {
        GraphError::transport(message)
    }
}

#[derive(Deserialize)]
struct SendResponse {
    #[serde(default)]
    contacts: Vec<SendContact>,
    #[serde(default)]
    messages: Vec<SendMessageId>,
}

#[derive(Deserialize)]
struct SendContact {
    wa_id: Option<String>,
}

#[derive(Deserialize)]
struct SendMessageId {
    id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_body_is_exactly_metas_shape() {
        let m = OutboundMessage::Text { to: "15551234567".into(), body: "Hello".into() };
        assert_eq!(
            m.to_json(),
            json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"15551234567",
                   "type":"text","text":{"preview_url":false,"body":"Hello"}})
        );
    }

    #[test]
    fn a_template_without_parameters_has_no_components() {
        let m = OutboundMessage::Template {
            to: "15551234567".into(),
            name: "hello_world".into(),
            language: "en_US".into(),
            parameters: vec![],
            header: None,
            buttons: vec![],
        };
        assert_eq!(
            m.to_json(),
            json!({"messaging_product":"whatsapp","to":"15551234567","type":"template",
                   "template":{"name":"hello_world","language":{"code":"en_US"}}})
        );
    }

    #[test]
    fn template_parameters_fill_the_body_in_order() {
        let m = OutboundMessage::Template {
            to: "15551234567".into(),
            name: "order_update".into(),
            language: "pt_BR".into(),
            parameters: vec!["Ada".into(), "A-1042".into()],
            header: None,
            buttons: vec![],
        };
        assert_eq!(
            m.to_json(),
            json!({"messaging_product":"whatsapp","to":"15551234567","type":"template",
                   "template":{"name":"order_update","language":{"code":"pt_BR"},
                   "components":[{"type":"body","parameters":[
                       {"type":"text","text":"Ada"},{"type":"text","text":"A-1042"}]}]}})
        );
    }

    #[test]
    fn the_messages_url_joins_base_version_and_number() {
        let c = GraphClient::new("http://127.0.0.1:9/", "v23.0", Duration::from_secs(1)).unwrap();
        assert_eq!(c.messages_url("106540352242922").as_str(), "http://127.0.0.1:9/v23.0/106540352242922/messages");
        let c = GraphClient::new("https://proxy.example/graph", "/v21.0/", Duration::from_secs(1)).unwrap();
        assert_eq!(c.version(), "v21.0");
        assert_eq!(c.base_url(), "https://proxy.example/graph");
        assert_eq!(c.messages_url("1/2").as_str(), "https://proxy.example/graph/v21.0/1%2F2/messages");
    }

    #[test]
    fn bad_configuration_is_refused() {
        let t = Duration::from_secs(1);
        assert!(matches!(GraphClient::new("not a url", "v23.0", t), Err(ConfigError::BaseUrl(..))));
        assert!(matches!(GraphClient::new("mailto:a@b.c", "v23.0", t), Err(ConfigError::BaseUrl(..))));
        assert!(matches!(GraphClient::new("https://graph.facebook.com", "", t), Err(ConfigError::Version(_))));
        assert!(matches!(GraphClient::new("https://graph.facebook.com", "v1/x", t), Err(ConfigError::Version(_))));
    }
}
