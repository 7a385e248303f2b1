//! Masks secrets in URLs before they are logged (SPEC §9): query values whose name looks like
//! a secret, and a password in the user-info part.

/// Parts of a query parameter name that mark its value as secret.
const SECRET_NAMES: &[&str] = &["token", "key", "secret", "password", "passwd", "pwd"];

pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_NAMES.iter().any(|s| lower.contains(s))
}

/// The URL with secret values replaced by `***`; text that is not a URL is returned as is.
pub fn mask_url(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        return text.to_owned();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    let Some(query) = url.query() else {
        return url.to_string();
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    url.set_query(Some(&masked.join("&")));
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let table = [
            (
                "https://x.test/cb?clickid=1&token=abc&api_key=k&Secret=s",
                "https://x.test/cb?clickid=1&token=***&api_key=***&Secret=***",
            ),
            ("https://user:pw@x.test/", "https://user:***@x.test/"),
            ("https://x.test/p?sum=1.5", "https://x.test/p?sum=1.5"),
            ("not a url", "not a url"),
        ];
        for (input, want) in table {
            assert_eq!(mask_url(input), want, "{input}");
        }
    }
}
