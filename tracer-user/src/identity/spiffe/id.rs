//! SPIFFE IDs and trust domains: checking them against the SPIFFE-ID
//! standard, and the limits and characters it sets.

use thiserror::Error;

use super::SpiffeError;

pub(super) const SCHEME: &str = "spiffe://";
/// SPIFFE-ID standard §2.3: the whole URI.
pub(super) const MAX_ID_LEN: usize = 2048;
/// SPIFFE-ID standard §2.3: RFC 3986's limit on the host.
const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// What is wrong with a SPIFFE ID or trust domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum IdProblem {
    #[error("it is empty")]
    Empty,
    #[error("it is {0} bytes long, over the limit of {MAX_ID_LEN}")]
    TooLong(usize),
    #[error("it must start with \"spiffe://\" (lowercase)")]
    Scheme,
    #[error("the trust domain is missing")]
    MissingTrustDomain,
    #[error("the trust domain is {0} bytes long, over the limit of {MAX_TRUST_DOMAIN_LEN}")]
    TrustDomainTooLong(usize),
    #[error("the trust domain must not have a port")]
    Port,
    #[error("the trust domain must not have user info ('@')")]
    UserInfo,
    #[error("the trust domain must be lowercase")]
    Uppercase,
    #[error(
        "the trust domain may hold only lowercase letters, digits, '.', '-' and '_', not {0:?}"
    )]
    TrustDomainChar(char),
    #[error("give the bare trust domain name, without \"spiffe://\"")]
    TrustDomainWithScheme,
    #[error("it must not have a query ('?')")]
    Query,
    #[error("it must not have a fragment ('#')")]
    Fragment,
    #[error("the path has an empty segment ('//')")]
    EmptySegment,
    #[error("the path has a '.' or '..' segment")]
    DotSegment,
    #[error("the path must not end with '/'")]
    TrailingSlash,
    #[error("path segments may hold only letters, digits, '.', '-' and '_', not {0:?}")]
    PathChar(char),
}

/// Checks `id` against the SPIFFE-ID standard.
pub fn validate_spiffe_id(id: &str) -> Result<(), SpiffeError> {
    check_id(id)
        .map(drop)
        .map_err(|problem| SpiffeError::SpiffeId {
            id: id.to_owned(),
            problem,
        })
}

/// Checks a bare trust domain name (no scheme) against the SPIFFE-ID standard.
pub fn validate_trust_domain(td: &str) -> Result<(), SpiffeError> {
    let checked = if td.contains("://") {
        Err(IdProblem::TrustDomainWithScheme)
    } else {
        check_trust_domain(td)
    };
    checked.map_err(|problem| SpiffeError::TrustDomain {
        trust_domain: td.to_owned(),
        problem,
    })
}

/// Returns the ID's trust domain.
pub(super) fn check_id(id: &str) -> Result<&str, IdProblem> {
    if id.is_empty() {
        return Err(IdProblem::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdProblem::TooLong(id.len()));
    }
    let rest = id.strip_prefix(SCHEME).ok_or(IdProblem::Scheme)?;
    // Checked before splitting so that "spiffe://td?x" is reported as a query.
    if rest.contains('?') {
        return Err(IdProblem::Query);
    }
    if rest.contains('#') {
        return Err(IdProblem::Fragment);
    }
    let (td, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    check_trust_domain(td)?;
    if let Some(path) = path.strip_prefix('/') {
        let mut segments = path.split('/').peekable();
        while let Some(segment) = segments.next() {
            if segment.is_empty() {
                return Err(if segments.peek().is_some() {
                    IdProblem::EmptySegment
                } else {
                    IdProblem::TrailingSlash
                });
            }
            if segment == "." || segment == ".." {
                return Err(IdProblem::DotSegment);
            }
            if let Some(c) = segment.chars().find(|&c| !is_path_char(c)) {
                return Err(IdProblem::PathChar(c));
            }
        }
    }
    Ok(td)
}

fn check_trust_domain(td: &str) -> Result<(), IdProblem> {
    if td.is_empty() {
        return Err(IdProblem::MissingTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(IdProblem::TrustDomainTooLong(td.len()));
    }
    if td.contains('@') {
        return Err(IdProblem::UserInfo);
    }
    if td.contains(':') {
        return Err(IdProblem::Port);
    }
    if td.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(IdProblem::Uppercase);
    }
    match td.chars().find(|&c| !is_trust_domain_char(c)) {
        Some(c) => Err(IdProblem::TrustDomainChar(c)),
        None => Ok(()),
    }
}

fn is_trust_domain_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// Whether `s` can stand as one SPIFFE ID path segment.
pub(super) fn is_path_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && s.chars().all(is_path_char)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::spiffe::Registry;

    const TD: &str = "example.org";

    #[test]
    fn spiffe_id_validation() {
        let long_path = format!("spiffe://{TD}/{}", "a".repeat(MAX_ID_LEN - 21));
        assert_eq!(long_path.len(), MAX_ID_LEN);
        let valid = [
            // The standard's own examples (§2.2).
            "spiffe://staging.example.com/payments/mysql",
            "spiffe://staging.example.com/payments/web-fe",
            "spiffe://k8s-west.example.com/ns/staging/sa/default",
            "spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453",
            // A signing authority's ID has no path (§3.1).
            "spiffe://example.org",
            "spiffe://td_1.example-x.org/A/b.c/d-e/f_g/..a/.b",
            long_path.as_str(),
        ];
        for id in valid {
            assert_eq!(check_id(id).map(drop), Ok(()), "{id}");
            assert!(validate_spiffe_id(id).is_ok(), "{id}");
        }
        let too_long = format!("{long_path}a");
        let long_td = format!("spiffe://{}/a", "a".repeat(256));
        let invalid = [
            ("", IdProblem::Empty),
            (too_long.as_str(), IdProblem::TooLong(MAX_ID_LEN + 1)),
            ("http://example.org/a", IdProblem::Scheme),
            ("SPIFFE://example.org/a", IdProblem::Scheme),
            ("spiffe:/example.org/a", IdProblem::Scheme),
            ("example.org/a", IdProblem::Scheme),
            ("spiffe://", IdProblem::MissingTrustDomain),
            ("spiffe:///a", IdProblem::MissingTrustDomain),
            (long_td.as_str(), IdProblem::TrustDomainTooLong(256)),
            ("spiffe://Example.org/a", IdProblem::Uppercase),
            ("spiffe://example.org:8443/a", IdProblem::Port),
            ("spiffe://user@example.org/a", IdProblem::UserInfo),
            ("spiffe://user:pw@example.org/a", IdProblem::UserInfo),
            ("spiffe://exa mple.org/a", IdProblem::TrustDomainChar(' ')),
            ("spiffe://ex%61mple.org/a", IdProblem::TrustDomainChar('%')),
            ("spiffe://example.org/a?x=1", IdProblem::Query),
            ("spiffe://example.org?x=1", IdProblem::Query),
            ("spiffe://example.org/a#frag", IdProblem::Fragment),
            ("spiffe://example.org/", IdProblem::TrailingSlash),
            ("spiffe://example.org/a/", IdProblem::TrailingSlash),
            ("spiffe://example.org//a", IdProblem::EmptySegment),
            ("spiffe://example.org/a//b", IdProblem::EmptySegment),
            ("spiffe://example.org/a/./b", IdProblem::DotSegment),
            ("spiffe://example.org/../a", IdProblem::DotSegment),
            ("spiffe://example.org/a/..", IdProblem::DotSegment),
            ("spiffe://example.org/a b", IdProblem::PathChar(' ')),
            ("spiffe://example.org/%41", IdProblem::PathChar('%')),
            ("spiffe://example.org/a:b", IdProblem::PathChar(':')),
            ("spiffe://example.org/café", IdProblem::PathChar('é')),
        ];
        for (id, problem) in invalid {
            assert_eq!(check_id(id), Err(problem), "{id}");
            let msg = validate_spiffe_id(id).map_err(|e| e.to_string()).err();
            assert!(msg.is_some_and(|m| m.contains(&format!("{id:?}"))), "{id}");
        }
    }

    #[test]
    fn trust_domain_validation() {
        for td in ["example.org", "trustdomain", "td-1.example_x.org", "a", "0"] {
            assert!(validate_trust_domain(td).is_ok(), "{td}");
        }
        let long = "a".repeat(256);
        let invalid = [
            ("", IdProblem::MissingTrustDomain),
            (long.as_str(), IdProblem::TrustDomainTooLong(256)),
            ("Example.org", IdProblem::Uppercase),
            ("example.org:8080", IdProblem::Port),
            ("user@example.org", IdProblem::UserInfo),
            ("spiffe://example.org", IdProblem::TrustDomainWithScheme),
            ("example.org/path", IdProblem::TrustDomainChar('/')),
            ("exa mple", IdProblem::TrustDomainChar(' ')),
        ];
        for (td, problem) in invalid {
            match validate_trust_domain(td) {
                Err(SpiffeError::TrustDomain {
                    trust_domain,
                    problem: got,
                }) => {
                    assert_eq!(trust_domain, td);
                    assert_eq!(got, problem, "{td}");
                }
                other => panic!("{td}: {other:?}"),
            }
        }
        assert_eq!(
            validate_trust_domain(&"a".repeat(255)).map_err(|e| e.to_string()),
            Ok(())
        );
        assert!(Registry::new("Example.org", true).is_err());
        assert!(Registry::from_toml("bad td", true, "", "x").is_err());
    }
}
