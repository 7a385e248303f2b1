use super::*;
use crate::web::query::parse;

fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default() // 2026-01-01
}

fn day(d: &str) -> DateTime<Utc> {
    crate::web::query::time(d, now()).unwrap_or_default()
}

/// Affiliate 7 in December 2025, the default columns.
fn scope() -> LinkScope {
    LinkScope {
        affiliate_ids: vec!["7".into()],
        offer_ids: vec![],
        from: Some(day("2025-12-01")),
        to: Some(day("2025-12-31")),
        last: None,
        columns: default_columns(),
        export: true,
    }
}

fn applied(s: &LinkScope, q: &str) -> Result<Request, ScopeError> {
    apply(s, parse(q, now()).unwrap_or_else(|e| panic!("{q}: {e}")), now())
}

/// Every way of asking for more than the scope: each leaves only what is inside it.
#[test]
fn no_parameter_widens_the_scope() {
    let s = scope();
    let seven = Some(vec!["7".to_owned()]);
    let nothing = Some(Vec::<String>::new());
    for (q, affiliates) in [
        ("", &seven),
        ("affiliate_id=7", &seven),
        ("affiliate_id=8", &nothing),
        ("affiliate=8", &nothing),
        ("affiliate_id[]=8", &nothing),
        ("affiliate_id=8&affiliate_id=9", &nothing),
        ("affiliate_id=8,7", &seven),
        ("affiliate_id=7&affiliate=8", &seven),
        ("affiliates=8", &nothing),
    ] {
        let r = applied(&s, q).expect(q);
        assert_eq!(&r.filter.affiliate_ids, affiliates, "{q}");
        assert_eq!(
            r.filter.offer_ids, None,
            "{q}: offers stay free inside affiliate 7"
        );
    }
    let by_offer = LinkScope {
        offer_ids: vec!["5".into()],
        affiliate_ids: vec![],
        ..scope()
    };
    for q in ["offer_id=6", "offer=6", "offer_id[]=6", "offer_id=6,60"] {
        let r = applied(&by_offer, q).expect(q);
        assert_eq!(r.filter.offer_ids, Some(vec![]), "{q}");
    }
}

#[test]
fn times_are_clamped_to_the_window() {
    let s = scope();
    for (q, from, to) in [
        ("", "2025-12-01", "2025-12-31"),
        ("from=2020-01-01&to=2030-01-01", "2025-12-01", "2025-12-31"),
        ("from=2025-12-10", "2025-12-10", "2025-12-31"),
        ("to=2025-12-20", "2025-12-01", "2025-12-20"),
        // Wholly outside: an empty range, so no row.
        ("from=2026-06-01&to=2026-07-01", "2026-06-01", "2025-12-31"),
    ] {
        let f = applied(&s, q).expect(q).filter;
        assert_eq!((f.from, f.to), (Some(day(from)), Some(day(to))), "{q}");
    }
    let rolling = LinkScope {
        from: None,
        to: None,
        last: Some(Duration::from_secs(3600)),
        ..scope()
    };
    let f = applied(&rolling, "from=2020-01-01").expect("rolling").filter;
    assert_eq!(f.from, Some(now() - chrono::Duration::hours(1)));
    assert_eq!(f.to, None);
}

#[test]
fn columns_are_cut_to_the_allowed_ones() {
    let s = scope();
    let cols = |q: &str| applied(&s, q).expect(q).columns.unwrap_or_default();
    assert_eq!(cols(""), default_columns());
    assert!(!cols("").contains(&"revenue".to_owned()));
    assert_eq!(
        cols("columns=revenue"),
        default_columns(),
        "nothing allowed asked: the default"
    );
    assert_eq!(cols("columns=revenue,date,offer"), vec!["date", "offer"]);
    assert_eq!(cols("columns=delivery_id&columns=goal"), vec!["goal"]);
}

#[test]
fn filters_on_hidden_columns_and_exports_may_be_refused() {
    let s = scope();
    for (q, param) in [
        ("url_id=1", "url_id"),
        ("state=failed", "state"),
        ("error_code=dns", "error_code"),
    ] {
        assert_eq!(applied(&s, q), Err(ScopeError::NotAllowed(param)), "{q}");
    }
    assert!(applied(&s, "http_class=2xx&status=approved&goal=g&conversion_id=c").is_ok());
    let no_export = LinkScope {
        export: false,
        ..scope()
    };
    assert_eq!(
        applied(&no_export, "format=csv"),
        Err(ScopeError::ExportNotAllowed)
    );
    assert!(applied(&no_export, "format=json").is_ok());
}

#[test]
fn new_links_are_checked_and_name_the_bad_setting() {
    let max = Duration::from_secs(365 * 86_400);
    let input = |f: &dyn Fn(&mut LinkInput)| {
        let mut i = LinkInput {
            affiliate_ids: vec!["7".into()],
            ..LinkInput::default()
        };
        f(&mut i);
        validate_link(i, max, now())
    };
    let ok = input(&|_| {}).expect("defaults");
    assert_eq!(ok.expires_at, now() + chrono::Duration::days(30));
    assert_eq!(ok.scope.columns, default_columns());
    assert!(ok.scope.export);
    let short = input(&|i| i.expires = Some("5s".into())).expect("seconds");
    assert_eq!(short.expires_at, now() + chrono::Duration::seconds(5));
    for (f, param) in [
        (
            &(|i: &mut LinkInput| i.affiliate_ids.clear()) as &dyn Fn(&mut LinkInput),
            "affiliate_ids",
        ),
        (&|i| i.offer_ids = vec![" ".into()], "offer_ids"),
        (&|i| i.offer_ids = vec!["a\u{0}b".into()], "offer_ids"),
        (&|i| i.label = Some("a\u{0}".into()), "label"),
        (&|i| i.expires = Some("366d".into()), "expires"),
        (&|i| i.expires = Some("0".into()), "expires"),
        (&|i| i.expires = Some("soon".into()), "expires"),
        (&|i| i.last = Some("x".into()), "last"),
        (
            &|i| {
                i.last = Some("1d".into());
                i.from = Some("2025-01-01".into());
            },
            "last",
        ),
        (&|i| i.from = Some("never".into()), "from"),
        (
            &|i| {
                i.from = Some("2025-02-01".into());
                i.to = Some("2025-01-01".into());
            },
            "to",
        ),
        (&|i| i.columns = Some(vec!["password".into()]), "columns"),
        (&|i| i.columns = Some(vec![]), "columns"),
    ] {
        let e = input(f).expect_err(param);
        assert_eq!(e.param, param, "{e}");
    }
}
