//! What the resolver says to one query: answered here (a peer in the zone, a VPN-only
//! host), or forwarded upstream (everything else). Pure: no sockets, no clock.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// Time to live of the answers made here: short, so a renamed or removed peer is
/// forgotten by clients' caches within half a minute.
pub const TTL: u32 = 30;

/// The names the resolver knows, as of one read of the store and the manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The zone peers are named in, lowercase, no trailing dot (`proton.internal`).
    pub zone: String,
    /// Peer name (one label, lowercase) → tunnel address. The gateway is one of them.
    pub peers: HashMap<String, Ipv4Addr>,
    /// Host names of VPN-only services (lowercase, no trailing dot).
    pub vpn_hosts: HashSet<String>,
    /// The gateway's tunnel address: where VPN-only hosts are reached.
    pub gateway: Ipv4Addr,
}

/// The resolver's decision for one query.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Answer with this message.
    Answer(Message),
    /// Relay the query to the upstream resolvers unchanged.
    Forward,
}

/// `name` in lowercase without its trailing dot.
fn plain(name: &hickory_proto::rr::Name) -> String {
    name.to_lowercase()
        .to_ascii()
        .trim_end_matches('.')
        .to_string()
}

fn reply(query: &Message, code: ResponseCode, authoritative: bool) -> Message {
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.response_code = code;
    m.metadata.authoritative = authoritative;
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.queries = query.queries.clone();
    m
}

fn with_a(mut m: Message, name: &hickory_proto::rr::Name, addr: Ipv4Addr) -> Message {
    m.answers
        .push(Record::from_rdata(name.clone(), TTL, RData::A(A(addr))));
    m
}

/// Decides what to say to `query`.
///
/// - A name in the zone is answered here and never forwarded (private names must not
///   leak to the internet's resolvers): `PEER.ZONE` A → its tunnel address, other types
///   → no data; an unknown name → NXDOMAIN.
/// - A VPN-only host: A → the gateway's tunnel address, so clients reach it through the
///   tunnel with their tunnel address as the source; AAAA, SVCB and HTTPS → no data (a
///   public IPv6 or address hint would send them around the tunnel); other types are
///   forwarded.
/// - Anything else is forwarded.
pub fn decide(query: &Message, names: &Names) -> Decision {
    if query.metadata.message_type != MessageType::Query {
        return Decision::Answer(reply(query, ResponseCode::FormErr, false));
    }
    if query.metadata.op_code != OpCode::Query {
        return Decision::Answer(reply(query, ResponseCode::NotImp, false));
    }
    let [q] = query.queries.as_slice() else {
        return Decision::Answer(reply(query, ResponseCode::FormErr, false));
    };
    let name = plain(&q.name);
    let qtype = q.query_type;
    let wants_a = matches!(qtype, RecordType::A | RecordType::ANY);
    if !names.zone.is_empty() {
        let label = if name == names.zone {
            Some("")
        } else {
            name.strip_suffix(&names.zone)
                .and_then(|rest| rest.strip_suffix('.'))
        };
        if let Some(label) = label {
            if label.is_empty() {
                // The zone's apex exists (it holds the peers) but has no address.
                return Decision::Answer(reply(query, ResponseCode::NoError, true));
            }
            return Decision::Answer(match names.peers.get(label) {
                Some(addr) if wants_a => {
                    with_a(reply(query, ResponseCode::NoError, true), &q.name, *addr)
                }
                Some(_) => reply(query, ResponseCode::NoError, true),
                None => reply(query, ResponseCode::NXDomain, true),
            });
        }
    }
    if names.vpn_hosts.contains(&name) {
        if wants_a {
            return Decision::Answer(with_a(
                reply(query, ResponseCode::NoError, false),
                &q.name,
                names.gateway,
            ));
        }
        if matches!(
            qtype,
            RecordType::AAAA | RecordType::HTTPS | RecordType::SVCB
        ) {
            return Decision::Answer(reply(query, ResponseCode::NoError, false));
        }
    }
    Decision::Forward
}

/// The answer to a query that could not be forwarded (no upstream answered).
pub fn server_failure(query: &Message) -> Message {
    reply(query, ResponseCode::ServFail, false)
}

/// The answer to a query from outside the VPN network.
pub fn refused(query: &Message) -> Message {
    reply(query, ResponseCode::Refused, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn names() -> Names {
        Names {
            zone: "proton.internal".into(),
            peers: [
                ("proton".to_string(), Ipv4Addr::new(10, 7, 7, 1)),
                ("w1".to_string(), Ipv4Addr::new(10, 7, 7, 2)),
            ]
            .into(),
            vpn_hosts: ["grafana.example.org".to_string()].into(),
            gateway: Ipv4Addr::new(10, 7, 7, 1),
        }
    }

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        // Through the wire format and back, as a client would send it.
        Message::from_vec(&m.to_vec().unwrap()).unwrap()
    }

    fn answer(name: &str, t: RecordType) -> Message {
        match decide(&query(name, t), &names()) {
            Decision::Answer(m) => Message::from_vec(&m.to_vec().unwrap()).unwrap(),
            Decision::Forward => panic!("{name} {t} was forwarded"),
        }
    }

    fn a_records(m: &Message) -> Vec<Ipv4Addr> {
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn peers_are_answered_by_name_in_the_zone_case_insensitively() {
        for name in ["w1.proton.internal.", "W1.Proton.Internal"] {
            let m = answer(name, RecordType::A);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert!(m.metadata.authoritative);
            assert_eq!(a_records(&m), [Ipv4Addr::new(10, 7, 7, 2)]);
            assert_eq!(m.answers[0].ttl, TTL);
            assert_eq!(m.queries, query(name, RecordType::A).queries);
        }
        assert_eq!(
            a_records(&answer("proton.proton.internal", RecordType::A)),
            [Ipv4Addr::new(10, 7, 7, 1)]
        );
    }

    #[test]
    fn unknown_names_in_the_zone_are_nxdomain_and_never_forwarded() {
        for name in ["w9.proton.internal", "a.w1.proton.internal"] {
            let m = answer(name, RecordType::A);
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
            assert!(m.answers.is_empty());
        }
        // A peer's other types, and the apex: the name exists, no data.
        for (name, t) in [
            ("w1.proton.internal", RecordType::AAAA),
            ("w1.proton.internal", RecordType::MX),
            ("proton.internal", RecordType::A),
        ] {
            let m = answer(name, t);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert!(m.answers.is_empty(), "{name} {t}");
        }
        // A name that merely ends like the zone is not in it.
        assert_eq!(
            decide(&query("xproton.internal", RecordType::A), &names()),
            Decision::Forward
        );
    }

    #[test]
    fn vpn_only_hosts_point_into_the_tunnel_and_have_no_public_v6() {
        let m = answer("Grafana.example.org.", RecordType::A);
        assert_eq!(a_records(&m), [Ipv4Addr::new(10, 7, 7, 1)]);
        for t in [RecordType::AAAA, RecordType::HTTPS] {
            let m = answer("grafana.example.org", t);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert!(m.answers.is_empty());
        }
        assert_eq!(
            decide(&query("grafana.example.org", RecordType::TXT), &names()),
            Decision::Forward
        );
    }

    #[test]
    fn everything_else_is_forwarded() {
        for name in ["example.org", "blog.example.org", "internal"] {
            assert_eq!(
                decide(&query(name, RecordType::A), &names()),
                Decision::Forward
            );
        }
    }

    #[test]
    fn malformed_or_unsupported_messages_get_an_error_not_a_forward() {
        let mut two = query("w1.proton.internal", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("w2.proton.internal").unwrap(),
            RecordType::A,
        ));
        let Decision::Answer(m) = decide(&two, &names()) else {
            panic!()
        };
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        let mut update = query("w1.proton.internal", RecordType::A);
        update.metadata.op_code = OpCode::Update;
        let Decision::Answer(m) = decide(&update, &names()) else {
            panic!()
        };
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    }
}
