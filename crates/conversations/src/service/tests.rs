//! Specifications of the messaging use cases, over mockall mocks of the ports.

use super::*;
use crate::ports::{MockConversationStore, MockMessagingProvider, MockOutbox, MockSecretCipher};
use crate::window::{OutboundContent, TemplateProblem, TemplateRequest};
use crate::{Customer, DeliveryRecord, Direction};
use atlas_kernel::ManualClock;
use atlas_runs::{Run, RunId, RunStatus};
use atlas_scopes::Actor;
use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use time::macros::datetime;
use time::Duration;

const NOW: OffsetDateTime = datetime!(2026-04-07 12:00 UTC);

/// Runs a future whose awaits are all on mocks (ready at once): no runtime needed.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn entry(org_id: OrgId, operation: &str, resource_id: Option<String>) -> JournalEntry {
    JournalEntry {
        run: Run {
            id: RunId::generate(),
            org_id,
            actor: Actor::System,
            operation: operation.into(),
            status: RunStatus::Pending,
            request_id: "req_test".into(),
            idempotency_key: None,
            resource_id,
            error: None,
            created_at: NOW,
            updated_at: NOW,
        },
        idempotency: None,
        events: Vec::new(),
    }
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new(NOW))
}

/// A "cipher" that reverses bytes: enough to see that the store gets sealed bytes.
fn reversing_cipher() -> MockSecretCipher {
    let mut cipher = MockSecretCipher::new();
    cipher.expect_seal().returning(|plain| plain.iter().rev().copied().collect());
    cipher.expect_open().returning(|sealed| Ok(sealed.iter().rev().copied().collect()));
    cipher
}

fn messaging(store: MockConversationStore) -> Messaging {
    Messaging::new(Arc::new(store), Arc::new(reversing_cipher()), clock())
}

fn phone() -> PhoneNumber {
    PhoneNumber::parse("+14155552671").unwrap()
}

fn channel(org_id: OrgId, provider: ChannelProvider) -> Channel {
    Channel {
        id: ChannelId::generate(),
        org_id,
        provider,
        name: "Support".into(),
        phone_number_id: "106540352242922".into(),
        display_phone_number: "+1 555 0100".into(),
        verify_token: "verify-me".into(),
        waba_id: None,
        is_default: true,
        created_at: NOW - Duration::days(10),
        disconnected_at: None,
    }
}

fn conversation(org_id: OrgId, channel_id: ChannelId, last_inbound_at: Option<OffsetDateTime>) -> Conversation {
    Conversation {
        id: ConversationId::generate(),
        org_id,
        channel_id,
        customer: Customer {
            id: CustomerId::generate(),
            org_id,
            phone_number: phone(),
            name: Some("Ana".into()),
            created_at: NOW - Duration::days(5),
        },
        status: ConversationStatus::Open,
        last_inbound_at,
        created_at: NOW - Duration::days(5),
    }
}

fn hello_world(org_id: OrgId) -> Template {
    Template {
        id: TemplateId::generate(),
        org_id,
        name: "hello_world".into(),
        language: "en_US".into(),
        category: TemplateCategory::Utility,
        status: TemplateStatus::Approved,
        body: "Hello!".into(),
        components: None,
        channel_id: None,
        created_at: NOW - Duration::days(30),
    }
}

fn text(body: &str) -> SendRequest {
    SendRequest { text: Some(body.into()), template: None, ..Default::default() }
}

fn hello_world_request(text: Option<&str>) -> SendRequest {
    SendRequest {
        text: text.map(str::to_owned),
        template: Some(TemplateRequest {
            template_id: "hello_world".into(),
            category: TemplateCategory::parse("transactional"),
            language: None,
            parameters: Vec::new(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Expects one enqueue; remembers what was queued and the journal entry the store committed.
fn expect_enqueue(store: &mut MockConversationStore, seen: Arc<Mutex<Option<(NewOutbound, JournalEntry)>>>) -> Enqueued {
    let ids = Enqueued {
        customer_id: CustomerId::generate(),
        conversation_id: ConversationId::generate(),
        message_id: MessageId::generate(),
        outbox_id: OutboxId::generate(),
    };
    store.expect_enqueue_outbound().times(1).returning(move |outbound, journal| {
        let ids = Enqueued { message_id: outbound.message_id, outbox_id: outbound.outbox_id, ..ids };
        *seen.lock().unwrap() = Some((outbound.clone(), journal.entry(&ids)));
        Ok(ids)
    });
    ids
}

fn send_journal(org_id: OrgId) -> impl Fn(&SendReceipt) -> JournalEntry + Send + Sync {
    move |receipt: &SendReceipt| entry(org_id, "messages.send", Some(receipt.message_id.to_string()))
}

// --- sending ---

#[test]
fn a_send_by_phone_inside_the_window_queues_text_on_the_default_channel() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let conv = conversation(org, chn.id, Some(NOW - Duration::hours(2)));
    let mut store = MockConversationStore::new();
    let default = chn.clone();
    store.expect_default_channel().returning(move |_| Ok(Some(default.clone())));
    let found = conv.clone();
    store.expect_latest_conversation().returning(move |_, _| Ok(Some(found.clone())));
    store.expect_find_templates().never();
    let seen = Arc::new(Mutex::new(None));
    let ids = expect_enqueue(&mut store, seen.clone());

    let receipt = block_on(messaging(store).send(
        org,
        SendCommand { target: SendTarget::Phone { phone_number: phone(), channel_id: None }, request: text("Hi Ana") },
        &send_journal(org),
    ))
    .unwrap();

    assert_eq!(receipt.conversation_id, ids.conversation_id);
    assert_eq!(receipt.customer_id, ids.customer_id);
    assert_eq!(receipt.channel_id, chn.id);
    assert_eq!(receipt.delivery_state, DeliveryState::Queued);
    assert!(receipt.window_open);
    assert_eq!(receipt.kind, MessageKind::Text);
    let (outbound, journal) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(outbound.content, OutboundContent::Text { body: "Hi Ana".into() });
    assert_eq!(outbound.channel_id, chn.id);
    assert_eq!(outbound.to, phone());
    assert_eq!(outbound.queued_at, NOW);
    assert_eq!(outbound.deadline, NOW + RetryPolicy::default().max_age);
    assert_eq!(receipt.message_id, outbound.message_id);
    assert_eq!(receipt.outbox_id, outbound.outbox_id);
    assert_eq!(journal.run.resource_id, Some(outbound.message_id.to_string()), "the journal saw the receipt");
}

#[test]
fn text_to_a_customer_who_never_wrote_is_window_closed_and_queues_nothing() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let mut store = MockConversationStore::new();
    store.expect_default_channel().returning(move |_| Ok(Some(chn.clone())));
    store.expect_latest_conversation().returning(|_, _| Ok(None));
    store.expect_enqueue_outbound().never();

    let err = block_on(messaging(store).send(
        org,
        SendCommand { target: SendTarget::Phone { phone_number: phone(), channel_id: None }, request: text("Hi") },
        &send_journal(org),
    ))
    .unwrap_err();

    assert!(matches!(err, MessagingError::Refused(SendRefusal::WindowClosed { last_inbound_at: None })));
    assert_eq!(err.code(), "WINDOW_CLOSED");
    assert!(err.is_business_outcome());
}

#[test]
fn after_24_hours_text_with_a_template_queues_the_template() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let conv = conversation(org, chn.id, Some(NOW - Duration::hours(24)));
    let template = hello_world(org);
    let mut store = MockConversationStore::new();
    store.expect_default_channel().returning(move |_| Ok(Some(chn.clone())));
    store.expect_latest_conversation().returning(move |_, _| Ok(Some(conv.clone())));
    let registered = template.clone();
    store.expect_find_templates().withf(|_, reference| reference == "hello_world").returning(move |_, _| Ok(vec![registered.clone()]));
    let seen = Arc::new(Mutex::new(None));
    expect_enqueue(&mut store, seen.clone());

    let receipt = block_on(messaging(store).send(
        org,
        SendCommand {
            target: SendTarget::Phone { phone_number: phone(), channel_id: None },
            request: hello_world_request(Some("Reminder: your appointment is tomorrow.")),
        },
        &send_journal(org),
    ))
    .unwrap();

    assert!(!receipt.window_open);
    assert_eq!(receipt.kind, MessageKind::Template);
    let (outbound, _) = seen.lock().unwrap().clone().unwrap();
    assert!(
        matches!(outbound.content, OutboundContent::Template { template_id, category: TemplateCategory::Utility, .. } if template_id == template.id)
    );
}

#[test]
fn a_template_the_organization_does_not_have_is_template_not_found() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let mut store = MockConversationStore::new();
    store.expect_default_channel().returning(move |_| Ok(Some(chn.clone())));
    store.expect_latest_conversation().returning(|_, _| Ok(None));
    store.expect_find_templates().returning(|_, _| Ok(Vec::new()));
    store.expect_enqueue_outbound().never();

    let err = block_on(messaging(store).send(
        org,
        SendCommand { target: SendTarget::Phone { phone_number: phone(), channel_id: None }, request: hello_world_request(None) },
        &send_journal(org),
    ))
    .unwrap_err();

    assert!(matches!(err, MessagingError::Refused(SendRefusal::Template(TemplateProblem::Unknown { .. }))));
    assert_eq!(err.code(), "TEMPLATE_NOT_FOUND");
}

#[test]
fn a_send_naming_a_channel_the_organization_lacks_is_a_validation_error() {
    let org = OrgId::generate();
    let mut store = MockConversationStore::new();
    store.expect_get_channel().returning(|_, _| Ok(None));
    store.expect_enqueue_outbound().never();

    let err = block_on(messaging(store).send(
        org,
        SendCommand { target: SendTarget::Phone { phone_number: phone(), channel_id: Some(ChannelId::generate()) }, request: text("Hi") },
        &send_journal(org),
    ))
    .unwrap_err();

    assert!(matches!(err, MessagingError::Invalid { ref field, .. } if field == "channel_id"));
    assert_eq!(err.code(), "VALIDATION_ERROR");
}

#[test]
fn a_send_by_phone_without_any_channel_is_no_channel() {
    let org = OrgId::generate();
    let mut store = MockConversationStore::new();
    store.expect_latest_conversation().returning(|_, _| Ok(None));
    store.expect_default_channel().returning(|_| Ok(None));

    let err = block_on(messaging(store).send(
        org,
        SendCommand { target: SendTarget::Phone { phone_number: phone(), channel_id: None }, request: text("Hi") },
        &send_journal(org),
    ))
    .unwrap_err();

    assert!(matches!(err, MessagingError::NoChannel));
    assert_eq!(err.code(), "VALIDATION_ERROR");
}

#[test]
fn a_reply_goes_through_the_conversation_s_own_channel_to_its_customer() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Sandbox);
    let conv = conversation(org, chn.id, Some(NOW - Duration::minutes(5)));
    let mut store = MockConversationStore::new();
    let found = conv.clone();
    store.expect_get_conversation().withf(move |o, id| *o == org && *id == found.id).returning({
        let conv = conv.clone();
        move |_, _| Ok(Some(conv.clone()))
    });
    store.expect_default_channel().never();
    store.expect_get_channel().returning(|org, id| Ok(Some(Channel { id, ..channel(org, ChannelProvider::Whatsapp) })));
    let seen = Arc::new(Mutex::new(None));
    expect_enqueue(&mut store, seen.clone());

    let receipt = block_on(messaging(store).send(
        org,
        SendCommand { target: SendTarget::Conversation(conv.id), request: text("Thanks for reaching out!") },
        &send_journal(org),
    ))
    .unwrap();

    assert!(receipt.window_open);
    let (outbound, _) = seen.lock().unwrap().clone().unwrap();
    assert_eq!((outbound.channel_id, outbound.to), (chn.id, conv.customer.phone_number));
}

#[test]
fn a_reply_to_a_conversation_of_another_organization_is_not_found() {
    let org = OrgId::generate();
    let mut store = MockConversationStore::new();
    store.expect_get_conversation().returning(|_, _| Ok(None));

    let err = block_on(messaging(store).send(
        org,
        SendCommand { target: SendTarget::Conversation(ConversationId::generate()), request: text("Hi") },
        &send_journal(org),
    ))
    .unwrap_err();

    assert!(matches!(err, MessagingError::NotFound));
    assert_eq!(err.code(), "NOT_FOUND");
}

// --- inbound ---

fn recorded(org: OrgId, inbound: &NewInbound, duplicate: bool) -> InboundRecorded {
    let mut conv = conversation(org, inbound.channel_id, Some(inbound.timestamp));
    conv.customer.phone_number = inbound.from.clone();
    let message = Message::inbound(
        inbound.message_id,
        org,
        conv.id,
        inbound.kind,
        inbound.text.clone(),
        inbound.content.clone(),
        inbound.provider_message_id.clone(),
        inbound.timestamp,
    );
    InboundRecorded { customer: conv.customer.clone(), conversation: conv, message, duplicate }
}

#[test]
fn an_inbound_event_counts_from_its_own_timestamp_not_its_arrival() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let mut store = MockConversationStore::new();
    store.expect_default_channel().returning(move |_| Ok(Some(chn.clone())));
    let seen = Arc::new(Mutex::new(None));
    let seen2 = seen.clone();
    store.expect_record_inbound().times(1).returning(move |inbound, journal| {
        let outcome = recorded(org, inbound, false);
        *seen2.lock().unwrap() = Some((inbound.clone(), journal.entry(&outcome)));
        Ok(outcome)
    });
    let sent_at = NOW - Duration::hours(3);

    let outcome = block_on(messaging(store).ingest(
        org,
        InboundEvent {
            channel_id: None,
            from: phone(),
            profile_name: Some("  Ana ".into()),
            provider_message_id: Some("wamid.1".into()),
            kind: MessageKind::Text,
            text: Some("Hi".into()),
            content: None,
            timestamp: Some(sent_at),
        },
        &|r: &InboundRecorded| Some(entry(org, "events.ingest", Some(r.conversation.id.to_string()))),
    ))
    .unwrap();

    let (inbound, journal) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(inbound.timestamp, sent_at);
    assert_eq!(inbound.received_at, NOW);
    assert_eq!(inbound.profile_name.as_deref(), Some("Ana"));
    assert_eq!(outcome.message.direction, Direction::Inbound);
    assert_eq!(journal.unwrap().run.resource_id, Some(outcome.conversation.id.to_string()));
}

#[test]
fn an_inbound_timestamp_in_the_future_counts_as_now() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let chn_id = chn.id;
    let mut store = MockConversationStore::new();
    store.expect_get_channel().returning(move |_, _| Ok(Some(chn.clone())));
    store
        .expect_record_inbound()
        .withf(move |inbound, _| inbound.timestamp == NOW && inbound.channel_id == chn_id)
        .returning(move |inbound, _| Ok(recorded(org, inbound, false)));

    let outcome = block_on(messaging(store).ingest(
        org,
        InboundEvent {
            channel_id: Some(chn_id),
            from: phone(),
            profile_name: None,
            provider_message_id: None,
            kind: MessageKind::Text,
            text: Some("Hi".into()),
            content: None,
            timestamp: Some(NOW + Duration::days(3)),
        },
        &|_: &InboundRecorded| None,
    ))
    .unwrap();
    assert_eq!(outcome.conversation.window_expires_at(), Some(NOW + Duration::hours(24)));
}

#[test]
fn a_duplicate_inbound_is_reported_not_refused() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let mut store = MockConversationStore::new();
    store.expect_default_channel().returning(move |_| Ok(Some(chn.clone())));
    store.expect_record_inbound().returning(move |inbound, _| Ok(recorded(org, inbound, true)));

    let event = InboundEvent {
        channel_id: None,
        from: phone(),
        profile_name: None,
        provider_message_id: Some("wamid.dup".into()),
        kind: MessageKind::Text,
        text: Some("Hi".into()),
        content: None,
        timestamp: None,
    };
    let outcome = block_on(messaging(store).ingest(org, event, &|_: &InboundRecorded| None)).unwrap();
    assert!(outcome.duplicate);
}

#[test]
fn an_inbound_event_without_any_channel_is_no_channel() {
    let org = OrgId::generate();
    let mut store = MockConversationStore::new();
    store.expect_latest_conversation().returning(|_, _| Ok(None));
    store.expect_default_channel().returning(|_| Ok(None));
    store.expect_record_inbound().never();
    let event = InboundEvent {
        channel_id: None,
        from: phone(),
        profile_name: None,
        provider_message_id: None,
        kind: MessageKind::Text,
        text: Some("Hi".into()),
        content: None,
        timestamp: None,
    };
    let err = block_on(messaging(store).ingest(org, event, &|_: &InboundRecorded| None)).unwrap_err();
    assert!(matches!(err, MessagingError::NoChannel));
}

// --- channels and templates ---

fn connect(provider: ChannelProvider, access_token: &str) -> ConnectChannel {
    ConnectChannel {
        provider,
        name: " Support ".into(),
        phone_number_id: "106540352242922".into(),
        display_phone_number: "+1 555 0100".into(),
        verify_token: "verify-me".into(),
        waba_id: None,
        is_default: None,
        secrets: ChannelSecrets { access_token: access_token.into(), app_secret: "app-secret".into() },
    }
}

#[test]
fn connecting_a_channel_hands_the_store_sealed_secrets_only() {
    let org = OrgId::generate();
    let mut store = MockConversationStore::new();
    let expected = ChannelSecrets { access_token: "EAAG-token".into(), app_secret: "app-secret".into() };
    let plain = expected.to_plaintext();
    store
        .expect_create_channel()
        .withf(move |channel, sealed, _| {
            sealed.iter().rev().copied().collect::<Vec<u8>>() == plain && sealed != plain.as_slice() && channel.name == "Support"
        })
        .returning(|channel, _, journal| {
            let stored = channel.clone().into_channel(true);
            let _ = journal.entry(&stored);
            Ok(stored)
        });

    let channel = block_on(messaging(store).connect_channel(org, connect(ChannelProvider::Whatsapp, "EAAG-token"), &|c: &Channel| {
        entry(org, "channels.create", Some(c.id.to_string()))
    }))
    .unwrap();
    assert!(channel.is_default);
    assert_eq!(channel.org_id, org);
}

#[test]
fn a_whatsapp_channel_needs_its_token_and_a_numeric_phone_number_id() {
    let org = OrgId::generate();
    let mut store = MockConversationStore::new();
    store.expect_create_channel().never();
    let m = messaging(store);
    let journal = |c: &Channel| entry(org, "channels.create", Some(c.id.to_string()));

    let err = block_on(m.connect_channel(org, connect(ChannelProvider::Whatsapp, " "), &journal)).unwrap_err();
    assert!(matches!(err, MessagingError::Invalid { ref field, .. } if field == "access_token"));
    let mut request = connect(ChannelProvider::Whatsapp, "EAAG");
    request.phone_number_id = "abc".into();
    let err = block_on(m.connect_channel(org, request, &journal)).unwrap_err();
    assert!(matches!(err, MessagingError::Invalid { ref field, .. } if field == "phone_number_id"));
}

#[test]
fn a_duplicate_channel_is_a_validation_error() {
    let org = OrgId::generate();
    let mut store = MockConversationStore::new();
    store.expect_create_channel().returning(|_, _, _| Err(ConversationError::Duplicate("channel")));
    let err =
        block_on(messaging(store).connect_channel(org, connect(ChannelProvider::Sandbox, ""), &|c: &Channel| {
            entry(org, "channels.create", Some(c.id.to_string()))
        }))
        .unwrap_err();
    assert!(matches!(err, MessagingError::Duplicate("channel")));
    assert_eq!(err.code(), "VALIDATION_ERROR");
}

#[test]
fn the_webhook_route_gets_the_channel_and_its_decrypted_secrets() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let secrets = ChannelSecrets { access_token: "EAAG".into(), app_secret: "shh".into() };
    let sealed: Vec<u8> = secrets.to_plaintext().into_iter().rev().collect();
    let mut store = MockConversationStore::new();
    let stored = chn.clone();
    store.expect_channel_with_secrets().returning(move |_| Ok(Some((stored.clone(), sealed.clone()))));
    let (got, got_secrets) = block_on(messaging(store).webhook_channel(chn.id)).unwrap();
    assert_eq!((got, got_secrets), (chn, secrets));

    let mut store = MockConversationStore::new();
    store.expect_channel_with_secrets().returning(|_| Ok(None));
    assert!(matches!(block_on(messaging(store).webhook_channel(ChannelId::generate())), Err(MessagingError::NotFound)));
}

fn register(name: &str, body: &str) -> RegisterTemplate {
    RegisterTemplate {
        name: name.into(),
        language: "en_US".into(),
        category: TemplateCategory::Utility,
        status: TemplateStatus::Approved,
        body: body.into(),
    }
}

#[test]
fn a_template_is_registered_with_the_journal_of_its_own_record() {
    let org = OrgId::generate();
    let mut store = MockConversationStore::new();
    store
        .expect_create_template()
        .withf(|template, journal| journal.run.resource_id == Some(template.id.to_string()))
        .times(1)
        .returning(|_, _| Ok(()));
    let template = block_on(messaging(store).register_template(org, register("appointment", "Hi {{1}}, at {{2}}"), &|t: &Template| {
        entry(org, "templates.create", Some(t.id.to_string()))
    }))
    .unwrap();
    assert_eq!(template.parameter_count(), 2);
    assert_eq!(template.created_at, NOW);
}

#[test]
fn template_names_and_bodies_follow_meta_s_rules() {
    let org = OrgId::generate();
    let mut store = MockConversationStore::new();
    store.expect_create_template().never();
    let m = messaging(store);
    let journal = |t: &Template| entry(org, "templates.create", Some(t.id.to_string()));
    let err = block_on(m.register_template(org, register("Hello World", "Hi"), &journal)).unwrap_err();
    assert!(matches!(err, MessagingError::Invalid { ref field, .. } if field == "name"));
    let err = block_on(m.register_template(org, register("gap", "Hi {{2}}"), &journal)).unwrap_err();
    assert!(matches!(err, MessagingError::Invalid { ref field, .. } if field == "body"));
    let err = block_on(m.register_template(org, register("empty", "  "), &journal)).unwrap_err();
    assert!(matches!(err, MessagingError::Invalid { ref field, .. } if field == "body"));
}

// --- handoff, drafts, reads ---

#[test]
fn a_handoff_sets_the_conversation_handed_off() {
    let org = OrgId::generate();
    let conv = conversation(org, ChannelId::generate(), None);
    let id = conv.id;
    let mut store = MockConversationStore::new();
    store
        .expect_set_conversation_status()
        .withf(move |o, i, status, _| *o == org && *i == id && *status == ConversationStatus::HandedOff)
        .returning(move |_, _, status, _| Ok(Conversation { status, ..conv.clone() }));
    let got = block_on(messaging(store).handoff(org, id, &entry(org, "actions.handoff", Some(id.to_string())))).unwrap();
    assert_eq!(got.status, ConversationStatus::HandedOff);
}

#[test]
fn a_draft_is_stored_not_sent_and_must_have_text() {
    let org = OrgId::generate();
    let conversation_id = ConversationId::generate();
    let mut store = MockConversationStore::new();
    store.expect_save_draft().times(1).returning(|_, _| Ok(()));
    store.expect_enqueue_outbound().never();
    let m = messaging(store);
    let journal = |d: &Draft| entry(org, "actions.draft", Some(d.conversation_id.to_string()));
    let draft = block_on(m.draft(org, conversation_id, "Let me check that for you", &journal)).unwrap();
    assert_eq!(draft.conversation_id, conversation_id);
    let err = block_on(m.draft(org, conversation_id, "  ", &journal)).unwrap_err();
    assert!(matches!(err, MessagingError::Invalid { ref field, .. } if field == "text"));
}

#[test]
fn a_draft_for_an_unknown_conversation_is_not_found() {
    let org = OrgId::generate();
    let mut store = MockConversationStore::new();
    store.expect_save_draft().returning(|_, _| Err(ConversationError::NotFound));
    let err = block_on(
        messaging(store).draft(org, ConversationId::generate(), "Hi", &|d: &Draft| entry(org, "actions.draft", Some(d.id.to_string()))),
    )
    .unwrap_err();
    assert!(matches!(err, MessagingError::NotFound));
}

#[test]
fn an_unknown_provider_message_id_is_not_found() {
    let mut store = MockConversationStore::new();
    store.expect_message_by_provider_id().returning(|_, _| Ok(None));
    let err = block_on(messaging(store).message_by_provider_id(OrgId::generate(), "wamid.x")).unwrap_err();
    assert!(matches!(err, MessagingError::NotFound));
}

#[test]
fn store_failures_are_internal_and_not_business_outcomes() {
    let err = MessagingError::from(ConversationError::Store(StoreError::new("testing", "boom")));
    assert_eq!(err.code(), "INTERNAL_ERROR");
    assert!(!err.is_business_outcome());
    assert_eq!(MessagingError::from(ConversationError::Conflict("outbox row")).code(), "INTERNAL_ERROR");
    assert_eq!(MessagingError::Secrets(SecretsUnreadable).code(), "INTERNAL_ERROR");
}

#[test]
fn the_use_case_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let m = messaging(MockConversationStore::new());
    let org = OrgId::generate();
    let journal = send_journal(org);
    let send = m.send(org, SendCommand { target: SendTarget::Conversation(ConversationId::generate()), request: text("x") }, &journal);
    assert_send(&send);
    let ingest_journal = |_: &InboundRecorded| None;
    let event = InboundEvent {
        channel_id: None,
        from: phone(),
        profile_name: None,
        provider_message_id: None,
        kind: MessageKind::Text,
        text: None,
        content: None,
        timestamp: None,
    };
    let ingest = m.ingest(org, event, &ingest_journal);
    assert_send(&ingest);
}

// --- delivery ---

fn item(org_id: OrgId, channel_id: ChannelId, attempt: u32) -> OutboxItem {
    OutboxItem {
        id: OutboxId::generate(),
        org_id,
        channel_id,
        conversation_id: ConversationId::generate(),
        message_id: MessageId::generate(),
        to: phone(),
        content: OutboundContent::Text { body: "Hi".into() },
        attempt,
        queued_at: NOW - Duration::seconds(10),
        deadline: NOW - Duration::seconds(10) + RetryPolicy::default().max_age,
        lease_until: NOW + Duration::minutes(2),
        run_id: None,
    }
}

fn sent_message(item: &OutboxItem, record: DeliveryRecord) -> Message {
    let mut message = Message::queued(item.message_id, item.org_id, item.conversation_id, &item.content, item.queued_at);
    message.set_delivery(record);
    message
}

fn store_with_channel(chn: &Channel) -> MockConversationStore {
    let secrets = ChannelSecrets { access_token: "EAAG".into(), app_secret: "shh".into() };
    let sealed: Vec<u8> = secrets.to_plaintext().into_iter().rev().collect();
    let stored = chn.clone();
    let mut store = MockConversationStore::new();
    store.expect_channel_with_secrets().returning(move |_| Ok(Some((stored.clone(), sealed.clone()))));
    store
}

fn delivery(store: MockConversationStore, outbox: MockOutbox, provider: MockMessagingProvider) -> Delivery {
    Delivery::new(Arc::new(store), Arc::new(outbox), Arc::new(provider), Arc::new(reversing_cipher()), clock(), RetryPolicy::default())
}

#[test]
fn an_accepted_send_completes_the_row_with_the_provider_id() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let work = item(org, chn.id, 1);
    let mut provider = MockMessagingProvider::new();
    provider
        .expect_send()
        .withf(|_, secrets, to, _| secrets.access_token == "EAAG" && *to == phone())
        .times(1)
        .returning(|_, _, _, _| Ok(ProviderAccepted { provider_message_id: "wamid.OK".into() }));
    let mut outbox = MockOutbox::new();
    let done = sent_message(&work, DeliveryRecord::queued().applied(&StatusEvent::new(DeliveryState::Sent, NOW)));
    let (id, work_attempt) = (work.id, work.attempt);
    outbox
        .expect_complete()
        .withf(move |i, attempt, provider_id, at| *i == id && *attempt == work_attempt && provider_id == "wamid.OK" && *at == NOW)
        .returning(move |_, _, _, _| Ok(done.clone()));

    let outcome = block_on(delivery(store_with_channel(&chn), outbox, provider).deliver(&work, 0.3)).unwrap();
    assert!(matches!(outcome, DeliveryOutcome::Sent(ref m) if m.delivery_state == Some(DeliveryState::Sent)));
}

#[test]
fn an_accepted_attempt_leaves_its_completion_and_completing_many_reports_each_as_deliver_would() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let (first, second) = (item(org, chn.id, 1), item(org, chn.id, 2));
    let mut provider = MockMessagingProvider::new();
    provider.expect_send().times(2).returning(|_, _, to, _| Ok(ProviderAccepted { provider_message_id: format!("wamid.{to}") }));
    let mut outbox = MockOutbox::new();
    // Nothing is recorded while attempting: the acceptance comes back to the caller.
    outbox.expect_complete().never();
    let done = sent_message(&first, DeliveryRecord::queued().applied(&StatusEvent::new(DeliveryState::Sent, NOW)));
    let expected = vec![
        Completion { id: first.id, attempt: 1, provider_message_id: format!("wamid.{}", phone()), at: NOW },
        Completion { id: second.id, attempt: 2, provider_message_id: format!("wamid.{}", phone()), at: NOW },
    ];
    let recorded = expected.clone();
    outbox
        .expect_complete_many()
        .withf(move |completions| completions == recorded.as_slice())
        .times(1)
        .returning(move |_| vec![Ok(done.clone()), Err(ConversationError::Conflict("the outbox row was released or claimed again"))]);
    let delivery = delivery(store_with_channel(&chn), outbox, provider);

    let mut completions = Vec::new();
    for work in [&first, &second] {
        match block_on(delivery.attempt(work, 0.3)) {
            DeliveryStep::Accepted(completion) => completions.push(completion),
            DeliveryStep::Finished(outcome) => panic!("an accepted send is left to record: {outcome:?}"),
        }
    }
    assert_eq!(completions, expected, "each acceptance carries its row, its attempt, the provider's id and the instant");
    let outcomes = block_on(delivery.complete(&completions));
    assert_eq!(outcomes.len(), 2, "one outcome per completion");
    assert!(matches!(outcomes[0], Ok(DeliveryOutcome::Sent(ref m)) if m.delivery_state == Some(DeliveryState::Sent)), "{outcomes:?}");
    assert!(matches!(outcomes[1], Err(MessagingError::Conflict(_))), "a refused completion is its error: {outcomes:?}");
}

#[test]
fn a_permanent_refusal_fails_the_message_with_the_provider_code_and_no_resend() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let work = item(org, chn.id, 1);
    let mut provider = MockMessagingProvider::new();
    provider.expect_send().times(1).returning(|_, _, _, _| Err(ProviderError::permanent(Some(131047), "Re-engagement message")));
    let mut outbox = MockOutbox::new();
    outbox.expect_retry().never();
    let failed = sent_message(
        &work,
        DeliveryRecord::queued().applied(&StatusEvent::failed(NOW, MessageError::new("131047", "Re-engagement message"))),
    );
    outbox.expect_fail().withf(|_, _, error, _| error.code == "131047").times(1).returning(move |_, _, _, _| Ok(failed.clone()));

    let outcome = block_on(delivery(store_with_channel(&chn), outbox, provider).deliver(&work, 0.0)).unwrap();
    assert!(matches!(outcome, DeliveryOutcome::Failed(ref m) if m.error.as_ref().unwrap().code == "131047"));
}

#[test]
fn a_retryable_failure_is_retried_with_backoff() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let work = item(org, chn.id, 3);
    let mut provider = MockMessagingProvider::new();
    provider.expect_send().returning(|_, _, _, _| Err(ProviderError::retryable(Some(130429), "rate limit hit")));
    let mut outbox = MockOutbox::new();
    let expected_at = NOW + RetryPolicy::default().backoff(3, 0.5);
    let id = work.id;
    outbox
        .expect_retry()
        .withf(move |i, attempt, at, error| *i == id && *attempt == 3 && *at == expected_at && error.code == "130429")
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    outbox.expect_fail().never();

    let outcome = block_on(delivery(store_with_channel(&chn), outbox, provider).deliver(&work, 0.5)).unwrap();
    assert_eq!(outcome, DeliveryOutcome::Retrying { at: expected_at, error: MessageError::new("130429", "rate limit hit") });
}

#[test]
fn a_retryable_failure_whose_next_attempt_would_pass_the_deadline_fails_the_message() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let mut work = item(org, chn.id, 2);
    work.deadline = NOW + Duration::seconds(1);
    let mut provider = MockMessagingProvider::new();
    provider.expect_send().returning(|_, _, _, _| Err(ProviderError::retryable(None, "timeout")));
    let mut outbox = MockOutbox::new();
    outbox.expect_retry().never();
    let failed = sent_message(&work, DeliveryRecord::queued().applied(&StatusEvent::new(DeliveryState::Failed, NOW)));
    outbox
        .expect_fail()
        .withf(|_, _, error, _| error.code == "provider_error" && error.message.contains("deadline_exceeded"))
        .returning(move |_, _, _, _| Ok(failed.clone()));

    let outcome = block_on(delivery(store_with_channel(&chn), outbox, provider).deliver(&work, 0.0)).unwrap();
    assert!(matches!(outcome, DeliveryOutcome::Failed(_)));
}

#[test]
fn a_row_past_its_deadline_fails_without_calling_the_provider() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let mut work = item(org, chn.id, 4);
    work.deadline = NOW;
    let mut provider = MockMessagingProvider::new();
    provider.expect_send().never();
    let mut outbox = MockOutbox::new();
    let failed = sent_message(&work, DeliveryRecord::queued().applied(&StatusEvent::new(DeliveryState::Failed, NOW)));
    outbox.expect_fail().withf(|_, _, error, _| error.code == "deadline_exceeded").returning(move |_, _, _, _| Ok(failed.clone()));

    let outcome = block_on(delivery(MockConversationStore::new(), outbox, provider).deliver(&work, 0.0)).unwrap();
    assert!(matches!(outcome, DeliveryOutcome::Failed(_)));
}

#[test]
fn a_row_whose_channel_is_gone_or_another_organization_s_fails() {
    let org = OrgId::generate();
    let foreign = channel(OrgId::generate(), ChannelProvider::Whatsapp);
    let work = item(org, foreign.id, 1);
    let mut provider = MockMessagingProvider::new();
    provider.expect_send().never();
    let mut outbox = MockOutbox::new();
    let failed = sent_message(&work, DeliveryRecord::queued().applied(&StatusEvent::new(DeliveryState::Failed, NOW)));
    outbox.expect_fail().withf(|_, _, error, _| error.code == "channel_not_found").returning(move |_, _, _, _| Ok(failed.clone()));

    let outcome = block_on(delivery(store_with_channel(&foreign), outbox, provider).deliver(&work, 0.0)).unwrap();
    assert!(matches!(outcome, DeliveryOutcome::Failed(_)));
}

#[test]
fn unreadable_secrets_are_retried_without_calling_the_provider() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let work = item(org, chn.id, 1);
    let mut store = MockConversationStore::new();
    let stored = chn.clone();
    store.expect_channel_with_secrets().returning(move |_| Ok(Some((stored.clone(), b"not sealed by us".to_vec()))));
    let mut provider = MockMessagingProvider::new();
    provider.expect_send().never();
    let mut outbox = MockOutbox::new();
    outbox.expect_retry().times(1).returning(|_, _, _, _| Ok(()));

    let outcome = block_on(delivery(store, outbox, provider).deliver(&work, 0.0)).unwrap();
    assert!(matches!(outcome, DeliveryOutcome::Retrying { .. }));
}

#[test]
fn a_stale_worker_s_retry_is_a_conflict() {
    let org = OrgId::generate();
    let chn = channel(org, ChannelProvider::Whatsapp);
    let work = item(org, chn.id, 1);
    let mut provider = MockMessagingProvider::new();
    provider.expect_send().returning(|_, _, _, _| Err(ProviderError::retryable(None, "503")));
    let mut outbox = MockOutbox::new();
    outbox.expect_retry().returning(|_, _, _, _| Err(ConversationError::Conflict("outbox row claimed again")));
    let err = block_on(delivery(store_with_channel(&chn), outbox, provider).deliver(&work, 0.0)).unwrap_err();
    assert!(matches!(err, MessagingError::Conflict(_)));
}

#[test]
fn claiming_uses_the_policy_s_lease_and_the_clock() {
    let mut outbox = MockOutbox::new();
    outbox
        .expect_claim()
        .withf(|now, limit, lease, per_channel| *now == NOW && *limit == 10 && *lease == RetryPolicy::default().lease && *per_channel == 3)
        .returning(|_, _, _, _| Ok(Vec::new()));
    let items = block_on(delivery(MockConversationStore::new(), outbox, MockMessagingProvider::new()).claim(10, 3)).unwrap();
    assert!(items.is_empty());
}

#[test]
fn the_provider_is_chosen_by_the_channel_s_kind() {
    let mut whatsapp = MockMessagingProvider::new();
    whatsapp.expect_send().returning(|_, _, _, _| Ok(ProviderAccepted { provider_message_id: "wamid.A".into() }));
    let mut sandbox = MockMessagingProvider::new();
    sandbox.expect_send().returning(|_, _, _, _| Ok(ProviderAccepted { provider_message_id: "sbx.B".into() }));
    let providers = ProviderByKind { whatsapp: Arc::new(whatsapp), sandbox: Arc::new(sandbox) };
    let secrets = ChannelSecrets { access_token: String::new(), app_secret: String::new() };
    let content = OutboundContent::Text { body: "x".into() };
    let org = OrgId::generate();
    let via = |kind| block_on(providers.send(&channel(org, kind), &secrets, &phone(), &content)).unwrap().provider_message_id;
    assert_eq!(via(ChannelProvider::Whatsapp), "wamid.A");
    assert_eq!(via(ChannelProvider::Sandbox), "sbx.B");
}
