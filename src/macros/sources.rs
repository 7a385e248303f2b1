//! Every known macro, and where its value comes from in an event.

use std::borrow::Cow;

use crate::event::Event;

/// Where a macro's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Text(&'static str),
    AffiliateId,
    OfferId,
    ConversionId,
    EventId,
    StatusCode,
    StatusName,
    Payout,
    Revenue,
    Date,
    Timestamp,
    ClickDate,
    ClickUnix,
    ClickClock,
    ClickDay,
    Rand,
}

/// Every known macro name and its source, in the order the help text lists them.
const MACROS: &[(&str, Source)] = &[
    ("clickid", Source::Text("click_id")),
    ("click_id", Source::Text("click_id")),
    ("pid", Source::AffiliateId),
    ("offer_id", Source::OfferId),
    ("offerid", Source::OfferId),
    ("offer_name", Source::Text("offer_name")),
    ("affiliate_name", Source::Text("affiliate_name")),
    ("advertiser_id", Source::Text("advertiser_id")),
    ("transactionid", Source::Text("transaction_id")),
    ("conversion_id", Source::ConversionId),
    ("status", Source::StatusCode),
    ("status_name", Source::StatusName),
    ("goal", Source::Text("goal")),
    ("sum", Source::Payout),
    ("payout", Source::Payout),
    ("revenue", Source::Revenue),
    ("currency", Source::Text("currency")),
    ("comment", Source::Text("comment")),
    ("date", Source::Date),
    ("timestamp", Source::Timestamp),
    ("click_date", Source::ClickDate),
    ("time", Source::ClickUnix),
    ("time_petty", Source::ClickClock),
    ("date_only", Source::ClickDay),
    ("ip", Source::Text("ip")),
    ("geo", Source::Text("geo")),
    ("city", Source::Text("city")),
    ("device_ua", Source::Text("device_ua")),
    ("uagent", Source::Text("device_ua")),
    ("os", Source::Text("os")),
    ("referrer", Source::Text("referrer")),
    ("fbclid", Source::Text("fbclid")),
    ("user_id", Source::Text("user_id")),
    ("promo_code", Source::Text("promo_code")),
    ("ref_id", Source::Text("ref_id")),
    ("os_id", Source::Text("os_id")),
    ("sub1", Source::Text("sub1")),
    ("sub2", Source::Text("sub2")),
    ("sub3", Source::Text("sub3")),
    ("sub4", Source::Text("sub4")),
    ("sub5", Source::Text("sub5")),
    ("sub6", Source::Text("sub6")),
    ("sub7", Source::Text("sub7")),
    ("sub8", Source::Text("sub8")),
    ("ext1", Source::Text("ext1")),
    ("ext2", Source::Text("ext2")),
    ("ext3", Source::Text("ext3")),
    ("custom_field1", Source::Text("custom_field1")),
    ("custom_field2", Source::Text("custom_field2")),
    ("custom_field3", Source::Text("custom_field3")),
    ("custom_field4", Source::Text("custom_field4")),
    ("custom_field5", Source::Text("custom_field5")),
    ("custom_field6", Source::Text("custom_field6")),
    ("custom_field7", Source::Text("custom_field7")),
    ("custom_field_1", Source::Text("custom_field1")),
    ("custom_field_2", Source::Text("custom_field2")),
    ("custom_field_3", Source::Text("custom_field3")),
    ("custom_field_4", Source::Text("custom_field4")),
    ("custom_field_5", Source::Text("custom_field5")),
    ("custom_field_6", Source::Text("custom_field6")),
    ("custom_field_7", Source::Text("custom_field7")),
    ("rand", Source::Rand),
    ("event_id", Source::EventId),
];

/// The known macro names, for error messages and the README.
pub fn known_names() -> impl Iterator<Item = &'static str> {
    MACROS.iter().map(|(name, _)| *name)
}

pub(super) fn lookup(name: &str) -> Option<Source> {
    MACROS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

const DATE_TIME: &str = "%Y-%m-%d %H:%M:%S";

pub(super) fn value<'e>(source: Source, event: &'e Event, rand: &'e str) -> Cow<'e, str> {
    let owned = |s: Option<String>| Cow::Owned(s.unwrap_or_default());
    let conversion_time = event.created_at.unwrap_or(event.updated_at);
    match source {
        Source::Text(name) => Cow::Borrowed(event.field(name).unwrap_or("")),
        Source::AffiliateId => Cow::Borrowed(&event.affiliate_id),
        Source::OfferId => Cow::Borrowed(&event.offer_id),
        Source::ConversionId => Cow::Borrowed(&event.conversion_id),
        Source::EventId => Cow::Borrowed(event.event_id.as_deref().unwrap_or("")),
        Source::StatusCode => owned(event.status.code().map(|c| c.to_string())),
        Source::StatusName => Cow::Borrowed(event.status.as_str()),
        Source::Payout => owned(event.payout.map(|d| d.to_string())),
        Source::Revenue => owned(event.revenue.map(|d| d.to_string())),
        Source::Date => Cow::Owned(conversion_time.format(DATE_TIME).to_string()),
        Source::Timestamp => Cow::Owned(conversion_time.timestamp().to_string()),
        Source::ClickDate => owned(event.click_time.map(|t| t.format(DATE_TIME).to_string())),
        Source::ClickUnix => owned(event.click_time.map(|t| t.timestamp().to_string())),
        Source::ClickClock => owned(event.click_time.map(|t| t.format("%H:%M:%S").to_string())),
        Source::ClickDay => owned(event.click_time.map(|t| t.format("%Y-%m-%d").to_string())),
        Source::Rand => Cow::Borrowed(rand),
    }
}
