//! Query forwarding: the query string a visitor's request carries, added to a link's
//! target. The target's own parameters win: a parameter the target names already is
//! not taken from the request, so a visitor cannot change what the link's owner set
//! (a partner id, a campaign); every other parameter is appended in the request's
//! order. The target's fragment stays last. Names are compared percent-decoded, so
//! `utm%5Fsource` is `utm_source`.

use std::borrow::Cow;

/// `name` of a raw `name=value` pair, percent-decoded (bytes that do not decode are
/// compared as written).
fn name_of(pair: &str) -> Cow<'_, str> {
    let raw = pair.split_once('=').map_or(pair, |(name, _)| name);
    if !raw.contains('%') && !raw.contains('+') {
        return Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, escaped) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// `target` with the pairs of `incoming` (a raw query string, without `?`) that it
/// does not name already; `target` itself when nothing is added.
pub fn forward_query<'a>(target: &'a str, incoming: &str) -> Cow<'a, str> {
    if incoming.is_empty() {
        return Cow::Borrowed(target);
    }
    let (before_fragment, fragment) = match target.find('#') {
        Some(at) => target.split_at(at),
        None => (target, ""),
    };
    let own: Vec<Cow<'_, str>> = match before_fragment.split_once('?') {
        Some((_, query)) => query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(name_of)
            .collect(),
        None => Vec::new(),
    };
    let added: Vec<&str> = incoming
        .split('&')
        .filter(|p| !p.is_empty() && !own.contains(&name_of(p)))
        .collect();
    if added.is_empty() {
        return Cow::Borrowed(target);
    }
    let mut url = String::with_capacity(target.len() + incoming.len() + 1);
    url.push_str(before_fragment);
    match before_fragment.split_once('?') {
        None => url.push('?'),
        Some((_, query)) if query.is_empty() || query.ends_with('&') => {}
        Some(_) => url.push('&'),
    }
    url.push_str(&added.join("&"));
    url.push_str(fragment);
    Cow::Owned(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_request_query_is_added_to_the_target() {
        let cases = [
            ("https://a.example/p", "", "https://a.example/p"),
            (
                "https://a.example/p",
                "utm_source=x",
                "https://a.example/p?utm_source=x",
            ),
            (
                "https://a.example/p?a=1",
                "b=2&c=3",
                "https://a.example/p?a=1&b=2&c=3",
            ),
            ("https://a.example/p?", "b=2", "https://a.example/p?b=2"),
            (
                "https://a.example/p?a=1&",
                "b=2",
                "https://a.example/p?a=1&b=2",
            ),
            (
                "https://a.example/p#top",
                "b=2",
                "https://a.example/p?b=2#top",
            ),
            (
                "https://a.example/p?a=1#top",
                "b=2",
                "https://a.example/p?a=1&b=2#top",
            ),
            // The target's parameters win, whatever the spelling of the name.
            (
                "https://a.example/p?ref=partner",
                "ref=me&x=1",
                "https://a.example/p?ref=partner&x=1",
            ),
            (
                "https://a.example/p?utm_source=mail",
                "utm%5Fsource=web",
                "https://a.example/p?utm_source=mail",
            ),
            // Repeated and valueless parameters pass as they are.
            (
                "https://a.example/p",
                "t=1&t=2&flag",
                "https://a.example/p?t=1&t=2&flag",
            ),
            ("https://a.example/p", "&&x=1&", "https://a.example/p?x=1"),
            // A stray `%` is compared as written.
            (
                "https://a.example/p?a%zz=1",
                "a%zz=2&b%2=3",
                "https://a.example/p?a%zz=1&b%2=3",
            ),
        ];
        for (target, incoming, want) in cases {
            assert_eq!(
                forward_query(target, incoming),
                want,
                "{target} + {incoming}"
            );
        }
    }

    #[test]
    fn nothing_added_borrows_the_target() {
        assert!(matches!(
            forward_query("https://a.example/?a=1", "a=2"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            forward_query("https://a.example/", ""),
            Cow::Borrowed(_)
        ));
    }

    proptest! {
        #[test]
        fn every_pair_lands_once_and_the_target_is_kept(
            own in proptest::collection::vec("[a-c]=[0-9]", 0..4),
            incoming in proptest::collection::vec("[a-e]=[0-9]", 0..6),
            fragment in proptest::option::of("#[a-z]{1,3}"),
        ) {
            let mut target = String::from("https://a.example/p");
            if !own.is_empty() {
                target.push('?');
                target.push_str(&own.join("&"));
            }
            let fragment = fragment.unwrap_or_default();
            target.push_str(&fragment);
            let url = forward_query(&target, &incoming.join("&")).into_owned();
            // The target's query and fragment are kept as they were.
            let before = target.strip_suffix(fragment.as_str()).unwrap_or(&target);
            prop_assert!(url.starts_with(before));
            prop_assert!(url.ends_with(fragment.as_str()));
            // Each incoming pair is there unless the target names it.
            let query = url[..url.len() - fragment.len()]
                .split_once('?')
                .map_or("", |(_, q)| q);
            let pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
            let own_names: Vec<&str> = own.iter().map(|p| &p[..1]).collect();
            let wanted: Vec<&str> = own
                .iter()
                .map(String::as_str)
                .chain(incoming.iter().map(String::as_str).filter(|p| !own_names.contains(&&p[..1])))
                .collect();
            prop_assert_eq!(pairs, wanted);
        }
    }
}
