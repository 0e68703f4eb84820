//! Segment's rules on single messages: the clock-skew correction, the columns each field lands
//! in, and the refusals with their place and reason.

use super::*;
use serde_json::json;

fn env(received: &str, sent: Option<&str>) -> Envelope {
    Envelope {
        received_at: parse_time(received).unwrap(),
        sent_at: sent.map(|s| parse_time(s).unwrap()),
    }
}

fn one(v: Value, call: Option<&str>, e: &Envelope) -> Result<Row, Refused> {
    let mut n = 0;
    normalize(&v, call, At::Batch(4), e, &mut || {
        n += 1;
        format!("gen-{n}")
    })
}

#[test]
fn timestamp_is_corrected_by_the_senders_clock_skew() {
    // The sender's clock runs 3 s fast: it stamped 10:00:00 and sent at 10:00:05 by its
    // clock; the server got it at 10:00:02 by its own.
    let e = env("2026-12-05T10:00:02Z", Some("2026-12-05T10:00:05Z"));
    let r = one(
        json!({"type": "track", "event": "Signed Up", "userId": "u1",
               "timestamp": "2026-12-05T10:00:00Z"}),
        None,
        &e,
    )
    .unwrap();
    assert_eq!(r.timestamp, "2026-12-05T09:59:57.000Z");
    assert_eq!(
        r.original_timestamp.as_deref(),
        Some("2026-12-05T10:00:00.000Z")
    );
    assert_eq!(r.sent_at.as_deref(), Some("2026-12-05T10:00:05.000Z"));
    assert_eq!(r.received_at, "2026-12-05T10:00:02.000Z");
    // A message's own sentAt wins over the batch's.
    let r = one(
        json!({"type": "track", "event": "x", "userId": "u1",
               "timestamp": "2026-12-05T10:00:00+01:00", "sentAt": "2026-12-05T09:00:01Z"}),
        None,
        &e,
    )
    .unwrap();
    assert_eq!(r.timestamp, "2026-12-05T10:00:01.000Z");
    // Without sentAt the sender's timestamp stands; without either, the arrival.
    let e = env("2026-12-05T10:00:02Z", None);
    let r = one(
        json!({"type": "track", "event": "x", "userId": "u1", "timestamp": "2026-12-01T08:00:00.250Z"}),
        None,
        &e,
    )
    .unwrap();
    assert_eq!(r.timestamp, "2026-12-01T08:00:00.250Z");
    assert_eq!(r.day(), "2026-12-01");
    let r = one(json!({"event": "x", "anonymousId": "a"}), Some("track"), &e).unwrap();
    assert_eq!(r.timestamp, "2026-12-05T10:00:02.000Z");
}

#[test]
fn fields_land_in_the_events_preset_columns() {
    let e = env("2026-12-05T10:00:02Z", None);
    let r = one(
        json!({"type": "identify", "userId": 42, "anonymousId": "a-1",
               "traits": {"email": "x@y.z", "plan": {"tier": 2}},
               "context": {"library": {"name": "analytics-python", "version": "2.4"}},
               "integrations": {"All": true}}),
        None,
        &e,
    )
    .unwrap();
    assert_eq!(r.message_id, "gen-1");
    assert_eq!(r.user_id.as_deref(), Some("42"));
    assert_eq!(r.kind, "identify");
    let traits: Value = serde_json::from_str(r.traits.as_deref().unwrap()).unwrap();
    assert_eq!(traits["plan"]["tier"], 2);
    assert!(r.properties.is_none());
    assert!(r.context.as_deref().unwrap().contains("analytics-python"));
    let r = one(
        json!({"messageId": "m-1", "name": "Pricing", "category": "Docs", "userId": "u",
               "properties": {"path": "/pricing"}}),
        Some("page"),
        &e,
    )
    .unwrap();
    assert_eq!(
        (
            r.message_id.as_str(),
            r.event.as_deref(),
            r.category.as_deref()
        ),
        ("m-1", Some("Pricing"), Some("Docs"))
    );
    let r = one(
        json!({"type": "alias", "previousId": "a-1", "userId": "u"}),
        None,
        &e,
    )
    .unwrap();
    assert_eq!(r.previous_id.as_deref(), Some("a-1"));
}

#[test]
fn bad_messages_are_refused_with_their_place_and_reason() {
    let e = env("2026-12-05T10:00:02Z", None);
    let cases = [
        (json!({"type": "track", "userId": "u"}), "needs `event`"),
        (
            json!({"type": "track", "event": "x"}),
            "needs `userId` or `anonymousId`",
        ),
        (
            json!({"type": "alias", "userId": "u"}),
            "needs `previousId`",
        ),
        (json!({"type": "group", "userId": "u"}), "needs `groupId`"),
        (
            json!({"type": "purchase", "userId": "u"}),
            "`type` `purchase` is not a call",
        ),
        (json!({"userId": "u", "event": "x"}), "`type` is missing"),
        (
            json!({"type": "track", "event": "x", "userId": "u", "properties": [1]}),
            "`properties` is a JSON object, not a list",
        ),
        (
            json!({"type": "track", "event": "x", "userId": {"a": 1}}),
            "`userId` is a string",
        ),
        (
            json!({"type": "track", "event": "x", "userId": "u", "timestamp": "yesterday"}),
            "not an ISO 8601 time",
        ),
        (json!("track"), "a message is a JSON object"),
        (
            json!({"type": "track", "event": "x", "userId": "u", "timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z"}),
            "falls outside years 1 to 9999",
        ),
    ];
    for (v, want) in cases {
        let err = one(v.clone(), None, &e).unwrap_err().to_string();
        assert!(err.starts_with("batch[4]"), "{err}");
        assert!(err.contains(want), "{v}: {err}");
    }
    let big = "x".repeat(MAX_MESSAGE_BYTES);
    let err = one(
        json!({"messageId": "m-big", "type": "track", "event": "x", "userId": "u", "properties": {"b": big}}),
        None,
        &e,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("(messageId `m-big`)") && err.contains("32 KB"),
        "{err}"
    );
}

#[test]
fn a_batch_lends_its_context_to_messages_without_one() {
    let fields = json!({"context": {"library": {"name": "lib"}}, "sentAt": "x"});
    let Value::Object(fields) = fields else {
        unreachable!()
    };
    let mut plain = json!({"type": "track"});
    let mut own = json!({"type": "track", "context": {"ip": "1.2.3.4"}});
    inherit(&fields, &mut plain);
    inherit(&fields, &mut own);
    assert_eq!(plain["context"]["library"]["name"], "lib");
    assert_eq!(own["context"], json!({"ip": "1.2.3.4"}));
    assert!(plain.get("sentAt").is_none());
}
