//! The caller's address, for throttling: the socket's peer, or — only when that peer
//! is a configured trusted proxy — the address the proxy forwarded in the one
//! configured header, `X-Forwarded-For` or `Forwarded: for=` (RFC 7239), read from
//! the right: the first address that is not itself a trusted proxy is the caller's.
//! The other header is never read: a proxy appends to the header it writes and
//! passes the other one on as the client sent it.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use super::throttle::Key;

/// Which header the trusted proxies name the caller in (one, never both: a proxy
/// that writes one passes the other on as the client sent it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (nginx's `$proxy_add_x_forwarded_for`, most load
    /// balancers). The default.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=…`.
    Forwarded,
}

impl std::str::FromStr for ForwardedHeader {
    type Err = String;

    /// `x-forwarded-for` or `forwarded`, in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            other => Err(format!("{other:?}: expected x-forwarded-for or forwarded")),
        }
    }
}

/// The caller's address, when the server was started with connect info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

impl ClientIp {
    /// The throttle keys of one password check for `account` (an
    /// [`account_key`](super::throttle::account_key)).
    pub(crate) fn account_keys<'a>(&self, account: &'a str) -> Vec<Key<'a>> {
        let mut keys = vec![Key::AccountFrom(account, self.0), Key::Account(account)];
        keys.extend(self.0.map(Key::Ip));
        keys
    }

    /// The throttle keys of one client authentication.
    pub(crate) fn client_keys<'a>(&self, client_id: &'a str) -> Vec<Key<'a>> {
        let mut keys = vec![Key::ClientFrom(client_id, self.0)];
        keys.extend(self.0.map(Key::Ip));
        keys
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        if let Some(ip) = parts.extensions.get::<ClientIp>() {
            return Ok(*ip);
        }
        Ok(Self(peer(&parts.extensions)))
    }
}

fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
}

/// Resolves the caller's address once per request, for the [`ClientIp`] extractor:
/// tower's `MapRequest`, so no boxed copy of the inner router and no boxed future
/// per request (as `axum::middleware::from_fn` has).
pub(crate) fn resolve_layer(
    trusted: Arc<[IpNet]>,
    header: ForwardedHeader,
) -> tower::util::MapRequestLayer<impl Fn(Request) -> Request + Clone> {
    tower::util::MapRequestLayer::new(move |mut req: Request| {
        let ip = peer(req.extensions()).map(|peer| caller(peer, req.headers(), &trusted, header));
        req.extensions_mut().insert(ClientIp(ip));
        req
    })
}

/// The caller behind `peer`: `peer` itself unless it is trusted.
pub(crate) fn caller(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: ForwardedHeader,
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_for(headers, header);
    let mut nearest = peer;
    // Rightmost first: each hop was added by the proxy on its right.
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if is_trusted(ip) => nearest = *ip,
            Some(ip) => return *ip,
            // An obfuscated or malformed hop: nothing further left can be believed.
            None => return nearest,
        }
    }
    nearest
}

/// The hops listed in `header` (`X-Forwarded-For`, or `Forwarded`'s `for=`), left
/// to right; `None` for one that is no address.
fn forwarded_for(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let values = |name| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or(","))
            .collect::<Vec<_>>()
            .join(",")
    };
    if header == ForwardedHeader::XForwardedFor {
        let xff = values("x-forwarded-for");
        if xff.trim().is_empty() {
            return Vec::new();
        }
        return xff.split(',').map(|h| parse_node(h.trim())).collect();
    }
    values("forwarded")
        .split(',')
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_node(v.trim().trim_matches('"')))
            })
        })
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, _) = rest.split_once(']')?;
        return ip.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    node.parse::<SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    const XFF: ForwardedHeader = ForwardedHeader::XForwardedFor;
    const FWD: ForwardedHeader = ForwardedHeader::Forwarded;

    /// Only the configured header is read: behind a proxy that writes `Forwarded`,
    /// an `X-Forwarded-For` the client sent (and the proxy passed on) is ignored,
    /// and the other way round.
    #[test]
    fn only_the_configured_header_names_the_caller() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // The client forged X-Forwarded-For; the proxy wrote Forwarded.
        let forged_xff = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=198.51.100.7"),
        ]);
        assert_eq!(
            caller(ip("10.0.0.1"), &forged_xff, &trusted, FWD),
            ip("198.51.100.7")
        );
        // The client forged Forwarded; the proxy wrote X-Forwarded-For.
        let forged_fwd = headers(&[
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(
            caller(ip("10.0.0.1"), &forged_fwd, &trusted, XFF),
            ip("198.51.100.7")
        );
        // A header of the other kind alone names no one: the proxy is the caller.
        let only_xff = headers(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(
            caller(ip("10.0.0.1"), &only_xff, &trusted, FWD),
            ip("10.0.0.1")
        );
        let only_fwd = headers(&[("forwarded", "for=6.6.6.6")]);
        assert_eq!(
            caller(ip("10.0.0.1"), &only_fwd, &trusted, XFF),
            ip("10.0.0.1")
        );
        assert_eq!("Forwarded".parse::<ForwardedHeader>(), Ok(FWD));
        assert_eq!(" x-forwarded-for".parse::<ForwardedHeader>(), Ok(XFF));
        assert!("x-real-ip".parse::<ForwardedHeader>().is_err());
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_peers() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            caller(ip("203.0.113.9"), &spoof, &trusted, XFF),
            ip("203.0.113.9")
        );
        assert_eq!(caller(ip("10.1.2.3"), &spoof, &trusted, XFF), ip("1.2.3.4"));
        // Rightmost untrusted: a client-supplied left part is skipped.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(
            caller(ip("10.1.2.3"), &chain, &trusted, XFF),
            ip("198.51.100.7")
        );
        let split = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(caller(ip("::1"), &split, &trusted, XFF), ip("198.51.100.7"));
        let fwd = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https",
        )]);
        assert_eq!(
            caller(ip("10.0.0.1"), &fwd, &trusted, FWD),
            ip("2001:db8:cafe::17")
        );
        let hidden = headers(&[("forwarded", "for=6.6.6.6, for=_hidden, for=10.0.0.9")]);
        assert_eq!(
            caller(ip("10.0.0.1"), &hidden, &trusted, FWD),
            ip("10.0.0.9")
        );
        let none = headers(&[]);
        assert_eq!(caller(ip("10.0.0.1"), &none, &trusted, XFF), ip("10.0.0.1"));
        let port = headers(&[("x-forwarded-for", "198.51.100.7:5000")]);
        assert_eq!(
            caller(ip("10.0.0.1"), &port, &trusted, XFF),
            ip("198.51.100.7")
        );
        // No trusted proxies: the peer, always.
        assert_eq!(caller(ip("10.1.2.3"), &spoof, &[], XFF), ip("10.1.2.3"));
        // An IPv4 peer seen through an IPv6 socket is still trusted.
        assert_eq!(
            caller(ip("::ffff:10.0.0.1").to_canonical(), &spoof, &trusted, XFF),
            ip("1.2.3.4")
        );
    }
}

#[cfg(test)]
mod properties {
    use std::net::{IpAddr, SocketAddr};

    use axum::http::{HeaderMap, HeaderValue};
    use ipnet::IpNet;
    use proptest::prelude::*;

    use super::{caller, forwarded_for, parse_node};
    use crate::test_inputs::{CASES, nasty_bytes};

    /// Header values as a proxy or an attacker may send them, with real addresses
    /// among the noise.
    fn header_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            nasty_bytes(),
            prop::collection::vec(
                prop_oneof![
                    any::<IpAddr>().prop_map(|ip| ip.to_string()),
                    any::<SocketAddr>().prop_map(|s| s.to_string()),
                    any::<IpAddr>().prop_map(|ip| format!("for=\"{ip}\";proto=https")),
                    Just("for=_hidden".to_owned()),
                    Just("unknown".to_owned()),
                ],
                0..6,
            )
            .prop_map(|hops| hops.join(", ").into_bytes()),
        ]
    }

    fn headers(xff: &[Vec<u8>], fwd: &[Vec<u8>]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, values) in [("x-forwarded-for", xff), ("forwarded", fwd)] {
            for v in values {
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    h.append(name, v);
                }
            }
        }
        h
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        /// Any forwarding headers: no panic; an untrusted peer is the caller whatever
        /// it claims; a trusted one yields itself or an address the headers name.
        #[test]
        fn forwarded_headers_never_panic(
            xff in prop::collection::vec(header_value(), 0..3),
            fwd in prop::collection::vec(header_value(), 0..3),
            peer in any::<IpAddr>(),
            xff_header in any::<bool>(),
        ) {
            let header = if xff_header {
                super::ForwardedHeader::XForwardedFor
            } else {
                super::ForwardedHeader::Forwarded
            };
            let h = headers(&xff, &fwd);
            let peer = peer.to_canonical();
            prop_assert_eq!(caller(peer, &h, &[], header), peer);
            let everyone: Vec<IpNet> = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
            let found = caller(peer, &h, &everyone, header);
            prop_assert!(found == peer || forwarded_for(&h, header).contains(&Some(found)));
        }

        /// Every way a proxy writes an address reads back as that address.
        #[test]
        fn nodes_round_trip(ip in any::<IpAddr>(), port in any::<u16>()) {
            let want = Some(ip.to_canonical());
            prop_assert_eq!(parse_node(&ip.to_string()), want);
            prop_assert_eq!(parse_node(&SocketAddr::new(ip, port).to_string()), want);
            if ip.is_ipv6() {
                prop_assert_eq!(parse_node(&format!("[{ip}]")), want);
            }
        }
    }
}
