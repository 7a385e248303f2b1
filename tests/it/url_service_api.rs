//! The URL service as a library, as the HTTP API will call it: typed errors to branch on.

use cross_postback::url_spec::{UrlSpec, UrlSpecError};
use cross_postback::urls_service::{UrlPatch, UrlService, UrlServiceError};

use crate::harness::*;

fn spec(url: &str) -> UrlSpec {
    UrlSpec::get("5", url)
}

#[tokio::test]
async fn each_refusal_is_a_variant_to_branch_on() {
    let env = Env::new().await;
    let service = UrlService::new(env.pool(), &env.cfg);
    let id = service
        .add(spec("http://x.test/a?c={clickid}"), false)
        .await
        .expect("added");
    match service.add(spec("http://x.test/a?c={clickid}"), false).await {
        Err(UrlServiceError::Duplicate { existing, offer }) => {
            assert_eq!((existing, offer.as_str()), (id, "5"));
        }
        other => panic!("not a duplicate refusal: {other:?}"),
    }
    assert!(matches!(
        service.add(spec("http://x.test/{clikid}"), false).await,
        Err(UrlServiceError::Invalid(UrlSpecError::Url(_)))
    ));
    for missing in [
        service.disable(999_999).await.map(drop),
        service.enable(999_999).await,
        service.remove(999_999).await.map(drop),
        service.edit(999_999, UrlPatch::default(), false).await.map(drop),
        service.test(999_999, None).await.map(drop),
    ] {
        assert!(
            matches!(missing, Err(UrlServiceError::NotFound(999_999))),
            "{missing:?}"
        );
    }
    let edited = service
        .edit(
            id,
            UrlPatch {
                goal: Some(Some("Sale".into())),
                ..UrlPatch::default()
            },
            false,
        )
        .await
        .expect("edited");
    assert_eq!(edited.goal.as_deref(), Some("Sale"));
    assert_eq!(service.list(Some("5")).await.expect("list").len(), 1);
    assert_eq!(service.remove(id).await.expect("removed"), 0);
    assert!(matches!(
        service.remove(id).await,
        Err(UrlServiceError::NotFound(_))
    ));
}
