//! Fuzzes `event::parse` with arbitrary message bodies.
//!
//! The invariants of `src/event/props.rs`, on any bytes: no panic; a refusal carries a reason;
//! an accepted event round-trips through its stored form (serde JSON, the same text again) and
//! renders its canonical JSON body. Also what the message format promises of an accepted event: ids of 1–128 characters without
//! control characters, text fields only from `TEXT_FIELDS` and at most 4096 characters,
//! timestamps kept to the microsecond.
#![no_main]

use cross_postback::event::{self, Event, Invalid, TEXT_FIELDS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    match event::parse(body) {
        Ok(ev) => check_accepted(&ev),
        Err(Invalid(reason)) => assert!(!reason.is_empty(), "a refusal without a reason"),
    }
});

fn check_accepted(ev: &Event) {
    let stored = serde_json::to_string(ev).expect("an accepted event serialises");
    let back: Event = serde_json::from_str(&stored).expect("the stored form deserialises");
    assert_eq!(&back, ev, "stored form: {stored}");
    // Decimals compare by value; the text also keeps their scale, which `{sum}` renders.
    let again = serde_json::to_string(&back).expect("serialises again");
    assert_eq!(again, stored, "the stored form changes on a round trip");

    for (name, id) in [
        ("conversion_id", &ev.conversion_id),
        ("offer_id", &ev.offer_id),
        ("affiliate_id", &ev.affiliate_id),
    ] {
        let chars = id.chars().count();
        assert!((1..=128).contains(&chars), "{name} has {chars} chars");
        assert!(!id.trim().is_empty(), "{name} is blank");
        assert!(!id.chars().any(char::is_control), "{name} has control characters");
    }
    for (name, value) in &ev.fields {
        assert!(TEXT_FIELDS.contains(&name.as_str()), "unexpected field {name}");
        assert!(value.chars().count() <= 4096, "{name} is too long");
        let bad = value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'));
        assert!(!bad, "{name} has control characters");
    }
    let times = [Some(ev.updated_at), ev.created_at, ev.click_time];
    for t in times.into_iter().flatten() {
        assert_eq!(
            t.timestamp_subsec_nanos() % 1000,
            0,
            "{t:?} is finer than a microsecond"
        );
    }

    // The default POST body: one flat JSON object that serialises.
    let canonical = ev.canonical_json();
    assert!(canonical.is_object());
    let _ = canonical.to_string();
}
