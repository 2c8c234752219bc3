//! Specification of the inbound side: the subscription handshake, `X-Hub-Signature-256`, and
//! the parsing of Meta's webhook payloads into flat messages and statuses.

use atlas_whatsapp::fake::WebhookPayload;
use atlas_whatsapp::{
    parse_webhook, signature_header_value, verify_handshake, verify_signature, DeliveryStatus, GraphErrorKind, ParseError,
    MAX_BATCH_UPDATES,
};
use serde_json::json;
use time::macros::datetime;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

// ---- handshake ----

#[test]
fn the_handshake_echoes_the_challenge_when_mode_and_token_match() {
    assert_eq!(
        verify_handshake(Some("subscribe"), Some("my-verify-token"), Some("1158201444"), "my-verify-token"),
        Some("1158201444".to_string())
    );
}

#[test]
fn the_handshake_refuses_a_wrong_token_a_wrong_mode_or_missing_parts() {
    let ok = "my-verify-token";
    assert_eq!(verify_handshake(Some("subscribe"), Some("nope"), Some("1"), ok), None);
    assert_eq!(verify_handshake(Some("subscribe"), Some("my-verify-toke"), Some("1"), ok), None);
    assert_eq!(verify_handshake(Some("unsubscribe"), Some(ok), Some("1"), ok), None);
    assert_eq!(verify_handshake(None, Some(ok), Some("1"), ok), None);
    assert_eq!(verify_handshake(Some("subscribe"), None, Some("1"), ok), None);
    assert_eq!(verify_handshake(Some("subscribe"), Some(ok), None, ok), None);
    // a channel without a verify token never verifies, even against an empty token
    assert_eq!(verify_handshake(Some("subscribe"), Some(""), Some("1"), ""), None);
}

// ---- signature ----

#[test]
fn a_signature_over_the_raw_body_verifies() {
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    let header = signature_header_value(SECRET, body);
    assert!(header.starts_with("sha256="));
    assert_eq!(header.len(), "sha256=".len() + 64);
    assert!(verify_signature(SECRET, body, Some(&header)));
    // upper-case hex is the same signature
    let upper = format!("sha256={}", header["sha256=".len()..].to_uppercase());
    assert!(verify_signature(SECRET, body, Some(&upper)));
}

#[test]
fn the_signature_covers_the_exact_bytes_not_the_json_meaning() {
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    let reformatted = br#"{"object": "whatsapp_business_account", "entry": []}"#;
    let header = signature_header_value(SECRET, body);
    assert!(!verify_signature(SECRET, reformatted, Some(&header)));
}

#[test]
fn a_wrong_secret_or_tampered_body_fails() {
    let body = b"{\"object\":\"whatsapp_business_account\"}";
    let header = signature_header_value(SECRET, body);
    assert!(!verify_signature(b"another secret", body, Some(&header)));
    assert!(!verify_signature(SECRET, b"{\"object\":\"x\"}", Some(&header)));
}

#[test]
fn missing_or_malformed_headers_fail() {
    let body = b"{}";
    let good = signature_header_value(SECRET, body);
    let hex = &good["sha256=".len()..];
    for header in [
        None,
        Some(""),
        Some("sha256="),
        Some(hex),                                  // no prefix
        Some(&*format!("sha1={hex}")),              // wrong algorithm
        Some(&*format!("sha256={}", &hex[..62])),   // truncated
        Some(&*format!("sha256={hex}00")),          // too long
        Some(&*format!("sha256={}zz", &hex[..62])), // not hex
    ] {
        assert!(!verify_signature(SECRET, body, header), "{header:?}");
    }
    // an empty app secret never verifies anything
    let signed_with_empty = signature_header_value(b"", body);
    assert!(!verify_signature(b"", body, Some(&signed_with_empty)));
}

// ---- parsing ----

/// Two entries (two of our numbers), three changes, two customers, contacts listed in the
/// opposite order from the messages, an image and an unknown type, and a status change.
fn realistic_batch() -> serde_json::Value {
    json!({
      "object": "whatsapp_business_account",
      "entry": [
        {
          "id": "102290129340398",
          "changes": [
            {
              "field": "messages",
              "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
                "contacts": [
                  { "profile": { "name": "Grace Hopper" }, "wa_id": "447700900002" },
                  { "profile": { "name": "Ada Lovelace" }, "wa_id": "447700900001" }
                ],
                "messages": [
                  {
                    "from": "447700900001",
                    "id": "wamid.HBgMNDQ3NzAwOTAwMDAxFQIAEhgUM0VCMDRBN0YyQzVCOTg3RjQ1QTEA",
                    "timestamp": "1749416383",
                    "type": "text",
                    "text": { "body": "Where is my order?" }
                  },
                  {
                    "from": "447700900002",
                    "id": "wamid.HBgMNDQ3NzAwOTAwMDAyFQIAEhgUM0VCMEM0QkE5RkU4RkM3NDlBNkMA",
                    "timestamp": "1749416390",
                    "type": "image",
                    "image": { "caption": "the receipt", "mime_type": "image/jpeg", "sha256": "abc", "id": "1003383421387256" }
                  }
                ]
              }
            },
            {
              "field": "messages",
              "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
                "statuses": [
                  {
                    "id": "wamid.OUT1",
                    "status": "read",
                    "timestamp": "1749416400",
                    "recipient_id": "447700900001",
                    "pricing": { "billable": true, "pricing_model": "PMP", "category": "utility" }
                  },
                  {
                    "id": "wamid.OUT2",
                    "status": "failed",
                    "timestamp": "1749416401",
                    "recipient_id": "447700900002",
                    "errors": [{
                      "code": 131047,
                      "title": "Re-engagement message",
                      "message": "Re-engagement message",
                      "error_data": { "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number." },
                      "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
                    }]
                  },
                  {
                    "id": "wamid.OUT3",
                    "status": "sent",
                    "timestamp": "1749416402",
                    "recipient_id": "447700900002",
                    "conversation": { "id": "CONVERSATION_ID", "origin": { "type": "service" } }
                  }
                ]
              }
            }
          ]
        },
        {
          "id": "102290129340399",
          "changes": [
            {
              "field": "messages",
              "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783882", "phone_number_id": "106540352242923" },
                "contacts": [ { "profile": { "name": "Ada Lovelace" }, "wa_id": "447700900001" } ],
                "messages": [
                  {
                    "from": "447700900001",
                    "id": "wamid.SECOND_NUMBER",
                    "timestamp": "1749416500",
                    "type": "some_type_meta_adds_next_year",
                    "some_type_meta_adds_next_year": { "whatever": 1 }
                  }
                ],
                "a_field_we_do_not_know": [1, 2, 3]
              }
            },
            {
              "field": "message_template_status_update",
              "value": { "event": "APPROVED", "message_template_id": 594425479261596_i64, "message_template_name": "order_update", "message_template_language": "en_GB", "reason": "NONE" }
            }
          ]
        }
      ]
    })
}

#[test]
fn every_entry_change_message_and_status_is_returned_in_payload_order() {
    let body = serde_json::to_vec(&realistic_batch()).unwrap();
    let batch = parse_webhook(&body).unwrap();

    let wamids: Vec<&str> = batch.messages.iter().map(|m| m.wamid.as_str()).collect();
    assert_eq!(
        wamids,
        [
            "wamid.HBgMNDQ3NzAwOTAwMDAxFQIAEhgUM0VCMDRBN0YyQzVCOTg3RjQ1QTEA",
            "wamid.HBgMNDQ3NzAwOTAwMDAyFQIAEhgUM0VCMEM0QkE5RkU4RkM3NDlBNkMA",
            "wamid.SECOND_NUMBER",
        ]
    );
    let statuses: Vec<(&str, &str)> = batch.statuses.iter().map(|s| (s.wamid.as_str(), s.status.as_str())).collect();
    assert_eq!(statuses, [("wamid.OUT1", "read"), ("wamid.OUT2", "failed"), ("wamid.OUT3", "sent")]);
    // each item carries the number of the change it came in
    assert_eq!(batch.messages[0].phone_number_id, "106540352242922");
    assert_eq!(batch.messages[2].phone_number_id, "106540352242923");
    assert!(batch.statuses.iter().all(|s| s.phone_number_id == "106540352242922"));
}

#[test]
fn a_message_is_matched_to_its_contact_by_wa_id_not_by_position() {
    let batch = parse_webhook(&serde_json::to_vec(&realistic_batch()).unwrap()).unwrap();

    let ada = &batch.messages[0];
    assert_eq!(ada.from, "447700900001");
    assert_eq!(ada.profile_name.as_deref(), Some("Ada Lovelace"));
    let grace = &batch.messages[1];
    assert_eq!(grace.from, "447700900002");
    assert_eq!(grace.profile_name.as_deref(), Some("Grace Hopper"));
}

#[test]
fn a_message_without_a_matching_contact_has_no_profile_name() {
    let payload = WebhookPayload::new("1065").message(
        "15551230000",
        None,
        json!({"from":"15551230000","id":"wamid.X","timestamp":"1700000000","type":"text","text":{"body":"hi"}}),
    );
    let batch = parse_webhook(&payload.to_bytes()).unwrap();
    assert_eq!(batch.messages[0].profile_name, None);
}

#[test]
fn a_message_keeps_its_own_timestamp_text_and_type() {
    let batch = parse_webhook(&serde_json::to_vec(&realistic_batch()).unwrap()).unwrap();

    let text = &batch.messages[0];
    assert_eq!(text.timestamp, datetime!(2025-06-08 20:59:43 UTC));
    assert_eq!(text.kind, "text");
    assert_eq!(text.text.as_deref(), Some("Where is my order?"));

    let image = &batch.messages[1];
    assert_eq!(image.kind, "image");
    assert_eq!(image.text, None);
    assert_eq!(image.timestamp.unix_timestamp(), 1_749_416_390);
}

#[test]
fn an_unknown_message_type_is_kept_with_its_type_string() {
    let batch = parse_webhook(&serde_json::to_vec(&realistic_batch()).unwrap()).unwrap();
    let unknown = &batch.messages[2];
    assert_eq!(unknown.kind, "some_type_meta_adds_next_year");
    assert_eq!(unknown.text, None);
    assert_eq!(unknown.profile_name.as_deref(), Some("Ada Lovelace"));
}

#[test]
fn statuses_carry_their_own_timestamp_recipient_and_first_error() {
    let batch = parse_webhook(&serde_json::to_vec(&realistic_batch()).unwrap()).unwrap();

    // read arrives without any delivered before it: reported as it comes
    let read = &batch.statuses[0];
    assert_eq!(read.status, DeliveryStatus::Read);
    assert_eq!(read.timestamp.unix_timestamp(), 1_749_416_400);
    assert_eq!(read.recipient_id.as_deref(), Some("447700900001"));
    assert_eq!(read.error, None);
    assert!(!batch.statuses.iter().any(|s| s.status == DeliveryStatus::Delivered));

    let failed = &batch.statuses[1];
    assert_eq!(failed.status, DeliveryStatus::Failed);
    let error = failed.error.as_ref().unwrap();
    assert_eq!(error.code, Some(131047));
    assert_eq!(error.title.as_deref(), Some("Re-engagement message"));
    assert_eq!(error.message.as_deref(), Some("Re-engagement message"));
    assert!(error.details.as_deref().unwrap().contains("24 hours"));
    assert_eq!(GraphErrorKind::from_code(error.code.unwrap()), Some(GraphErrorKind::ReEngagementRequired));
}

#[test]
fn changes_of_other_fields_are_kept_raw() {
    let batch = parse_webhook(&serde_json::to_vec(&realistic_batch()).unwrap()).unwrap();
    assert_eq!(batch.other_changes.len(), 1);
    let change = &batch.other_changes[0];
    assert_eq!(change.field, "message_template_status_update");
    assert_eq!(change.waba_id.as_deref(), Some("102290129340399"));
    assert_eq!(change.value["event"], "APPROVED");
}

#[test]
fn unknown_status_values_are_kept() {
    let body = WebhookPayload::new("1065").status("wamid.A", "deleted", 1_700_000_000, "15551234567").to_bytes();
    let batch = parse_webhook(&body).unwrap();
    assert_eq!(batch.statuses[0].status, DeliveryStatus::Other("deleted".into()));
}

#[test]
fn a_full_batch_of_1000_updates_is_processed_entirely() {
    let mut payload = WebhookPayload::new("106540352242922");
    for i in 0..600 {
        let from = format!("4477009{:05}", i % 50);
        payload = payload.text_message(
            &from,
            Some(&format!("Customer {}", i % 50)),
            &format!("wamid.IN{i}"),
            1_700_000_000 + i,
            &format!("message {i}"),
        );
    }
    for i in 0..400 {
        payload = payload.status(&format!("wamid.OUT{i}"), "delivered", 1_700_000_000 + i, "447700900000");
    }
    let body = payload.to_bytes();
    let batch = parse_webhook(&body).unwrap();

    assert_eq!(batch.messages.len() + batch.statuses.len(), MAX_BATCH_UPDATES);
    assert_eq!(batch.messages[599].wamid, "wamid.IN599");
    assert_eq!(batch.messages[599].profile_name.as_deref(), Some("Customer 49"));
    assert_eq!(batch.messages[599].timestamp.unix_timestamp(), 1_700_000_599);
    assert_eq!(batch.statuses[399].wamid, "wamid.OUT399");
}

#[test]
fn duplicates_are_reported_not_hidden() {
    let body = WebhookPayload::new("1065")
        .text_message("15551234567", Some("Ada"), "wamid.SAME", 1_700_000_000, "hi")
        .text_message("15551234567", Some("Ada"), "wamid.SAME", 1_700_000_000, "hi")
        .to_bytes();
    assert_eq!(parse_webhook(&body).unwrap().messages.len(), 2);
}

#[test]
fn an_integer_timestamp_is_accepted_too() {
    let body = WebhookPayload::new("1065")
        .message("15551234567", None, json!({"from":"15551234567","id":"wamid.A","timestamp":1700000000,"type":"text","text":{"body":"x"}}))
        .to_bytes();
    assert_eq!(parse_webhook(&body).unwrap().messages[0].timestamp.unix_timestamp(), 1_700_000_000);
}

#[test]
fn malformed_timestamps_are_a_parse_error_naming_the_path() {
    for bad in [json!("yesterday"), json!("-1700000000"), json!("1700000000.5"), json!(""), json!(null), json!("99999999999999999999")] {
        let body = WebhookPayload::new("1065")
            .message("15551234567", None, json!({"from":"15551234567","id":"wamid.A","timestamp":bad,"type":"text"}))
            .to_bytes();
        let err = parse_webhook(&body).unwrap_err();
        match err {
            ParseError::Invalid { path, .. } => {
                assert_eq!(path, "$.entry[0].changes[0].value.messages[0].timestamp", "{bad}")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    let body = WebhookPayload::new("1065")
        .status("wamid.A", "sent", 0, "1555")
        .to_json()
        .to_string()
        .replace("\"timestamp\":\"0\"", "\"timestamp\":\"soon\"");
    let err = parse_webhook(body.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("statuses[0].timestamp"), "{err}");
}

#[test]
fn missing_ids_and_wrong_types_are_parse_errors() {
    let no_id = WebhookPayload::new("1065").message("1555", None, json!({"from":"1555","timestamp":"1700000000","type":"text"})).to_bytes();
    assert_eq!(
        parse_webhook(&no_id).unwrap_err(),
        ParseError::Invalid { path: "$.entry[0].changes[0].value.messages[0].id".into(), reason: "missing".into() }
    );

    let wrong_type = WebhookPayload::new("1065")
        .message("1555", None, json!({"from":"1555","id":"wamid.A","timestamp":"1700000000","type":"text","text":{"body":42}}))
        .to_bytes();
    let err = parse_webhook(&wrong_type).unwrap_err();
    assert!(err.to_string().contains("$.entry[0].changes[0].value.messages[0].text.body"), "{err}");

    let no_number = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"statuses":[{"id":"wamid.A","status":"sent","timestamp":"1700000000"}]}}]}]}"#;
    let err = parse_webhook(no_number).unwrap_err();
    assert!(err.to_string().contains("metadata.phone_number_id"), "{err}");
}

#[test]
fn not_json_or_another_object_is_refused() {
    assert!(matches!(parse_webhook(b"not json"), Err(ParseError::Json(_))));
    assert_eq!(parse_webhook(br#"{"object":"page","entry":[]}"#).unwrap_err(), ParseError::UnexpectedObject("page".into()));
    assert!(parse_webhook(br#"{"entry":[]}"#).is_err());
}

#[test]
fn an_empty_batch_is_fine() {
    let batch = parse_webhook(br#"{"object":"whatsapp_business_account","entry":[]}"#).unwrap();
    assert!(batch.is_empty());
    let batch = parse_webhook(br#"{"object":"whatsapp_business_account"}"#).unwrap();
    assert!(batch.is_empty());
}

#[test]
fn the_fake_payload_builder_signs_like_meta() {
    let (body, signature) = WebhookPayload::new("1065")
        .text_message("15551234567", Some("Ada"), "wamid.A", 1_700_000_000, "hi")
        .failed_status("wamid.B", 1_700_000_001, "15551234567", 131047, "Re-engagement message")
        .signed(SECRET);
    assert!(verify_signature(SECRET, &body, Some(&signature)));
    let batch = parse_webhook(&body).unwrap();
    assert_eq!(batch.messages[0].profile_name.as_deref(), Some("Ada"));
    assert_eq!(batch.statuses[0].error.as_ref().unwrap().code, Some(131047));
}
