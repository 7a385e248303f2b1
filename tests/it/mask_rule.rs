//! One masking rule: the SQL masker (`xpb_mask_secrets`, behind `cross_postback_stats`) is held
//! to the same table of cases as the Rust one (`src/mask.rs`), on the real Postgres.

use crate::harness::*;

#[tokio::test]
async fn the_sql_masker_follows_the_same_table_as_the_rust_one() {
    let env = Env::new().await;
    let pg = env.pg().await;
    let cases: Vec<(String, String)> =
        serde_json::from_str(include_str!("../mask_cases.json")).expect("mask_cases.json parses");
    let mut wrong = Vec::new();
    for (input, want) in &cases {
        assert_eq!(&cross_postback::mask::mask_url(input), want, "Rust: {input:?}");
        let row = pg
            .query_one("SELECT xpb_mask_secrets($1)", &[input])
            .await
            .expect("xpb_mask_secrets runs");
        let got: String = row.get(0);
        if &got != want {
            wrong.push(format!("{input:?}\n   gave {got:?}\n   want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "SQL masker disagrees:\n{}", wrong.join("\n"));
}
