//! Free-mail and ISP domains (gmail.com, comcast.net, t-online.de): an address there
//! says nothing about whom its owner works for, so such a domain is never suggested
//! as a client's. The list is `data/free-email-domains.txt`, from the maintained npm
//! package free-email-domains (MIT); `scripts/free-email-domains.sh` refreshes it.

use std::collections::HashSet;
use std::sync::LazyLock;

static DOMAINS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/free-email-domains.txt")
        .lines()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect()
});

/// Whether `domain` (any case) is a free-mail or ISP domain. Only the domain itself is
/// looked up, not its parents: the list holds `net.ua`, which is no reason to take
/// every `*.net.ua` company for a mail provider.
pub fn is_free_mail(domain: &str) -> bool {
    let domain = domain.trim().trim_end_matches('.');
    if domain.bytes().any(|b| b.is_ascii_uppercase()) {
        DOMAINS.contains(domain.to_ascii_lowercase().as_str())
    } else {
        DOMAINS.contains(domain)
    }
}

#[cfg(test)]
mod tests {
    use super::is_free_mail;

    #[test]
    fn free_mail_and_isp_domains_are_known_and_companies_are_not() {
        for free in [
            "gmail.com",
            "Hotmail.COM",
            "comcast.net",
            "t-online.de",
            "orange.fr",
        ] {
            assert!(is_free_mail(free), "{free}");
        }
        for company in ["acme.com", "morganlegal.com", "shop.net.ua", ""] {
            assert!(!is_free_mail(company), "{company}");
        }
    }
}
