//! Does the packet filter let WireGuard's UDP port in? Read from `nft -j list ruleset`
//! (iptables-nft rules show up there too): in every base chain on the input hook
//! (and filter chains on prerouting), the first rule that surely applies to
//! `udp dport PORT` decides; a rule with conditions we cannot judge (source address,
//! interface, jumps) makes the answer uncertain instead of wrong.

use serde_json::Value;

/// What the ruleset does with a new UDP packet to the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortVerdict {
    Open,
    /// Dropped or rejected: where, and the exact commands that let it through.
    Blocked {
        chain: String,
        why: String,
        fix: String,
    },
    /// A rule depends on something we cannot judge here.
    Uncertain {
        chain: String,
        why: String,
    },
}

enum Applies {
    Surely,
    Maybe,
    No,
}

/// Whether a `right` value (number, set, range) contains `port`.
fn contains(right: &Value, port: u16) -> Option<bool> {
    let p = u64::from(port);
    if let Some(n) = right.as_u64() {
        return Some(n == p);
    }
    if let Some(set) = right.get("set").and_then(Value::as_array) {
        return Some(set.iter().any(|v| contains(v, port) == Some(true)));
    }
    if let Some([lo, hi]) = right
        .get("range")
        .and_then(Value::as_array)
        .map(|a| a.as_slice())
    {
        return Some(lo.as_u64()? <= p && p <= hi.as_u64()?);
    }
    None
}

/// Whether a `right` value (a word, a list or a set of words) includes `word`.
fn includes(right: &Value, word: &str) -> bool {
    let list = right
        .as_array()
        .or_else(|| right.get("set").and_then(Value::as_array));
    right == word || list.is_some_and(|l| l.iter().any(|v| v == word))
}

/// Whether an interface match names only interfaces a packet from the internet never
/// comes in on: loopback, the tunnel itself, and K3s's pod interfaces (Proton's table
/// has rules for each).
fn never_underlay(right: &Value, tunnel: &str) -> bool {
    let inside = |v: &Value| {
        v.as_str()
            .is_some_and(|n| n == tunnel || ["lo", "cni0", "flannel.1"].contains(&n))
    };
    match right.get("set").and_then(Value::as_array) {
        Some(list) => !list.is_empty() && list.iter().all(inside),
        None => inside(right),
    }
}

/// Whether a rule's matches apply to a new UDP packet to `port`.
/// `tunnel`: WireGuard's own interface; its UDP packets arrive on the underlay, so a
/// rule limited to packets coming in on the tunnel never sees them.
fn applies(exprs: &[Value], port: u16, tunnel: &str) -> Applies {
    let mut sure = true;
    for e in exprs {
        let Some(m) = e.get("match") else {
            if e.get("xt").is_some() {
                sure = false;
            }
            continue;
        };
        let op = m["op"].as_str().unwrap_or("==");
        let left = &m["left"];
        let right = &m["right"];
        let negate = op == "!=";
        let payload = &left["payload"];
        let is_dport = payload["field"] == "dport"
            && matches!(payload["protocol"].as_str(), Some("udp" | "th"));
        let is_tcp_port = payload["protocol"] == "tcp";
        let is_proto = left["meta"]["key"] == "l4proto"
            || (payload["protocol"] == "ip" && payload["field"] == "protocol");
        let hit = if is_dport {
            contains(right, port)
        } else if is_tcp_port {
            Some(false)
        } else if is_proto {
            Some(includes(right, "udp"))
        } else if matches!(left["meta"]["key"].as_str(), Some("iifname" | "iif"))
            && never_underlay(right, tunnel)
        {
            Some(false)
        } else if left["ct"]["key"] == "state" {
            // A first packet is `new`: rules for established/related do not apply.
            Some(includes(right, "new"))
        } else {
            None
        };
        match hit.map(|h| h != negate) {
            Some(true) => {}
            Some(false) => return Applies::No,
            None => sure = false,
        }
    }
    if sure {
        Applies::Surely
    } else {
        Applies::Maybe
    }
}

fn verdict(exprs: &[Value]) -> Option<&'static str> {
    exprs.iter().find_map(|e| {
        ["accept", "drop", "reject", "jump", "goto", "return"]
            .into_iter()
            .find(|v| e.get(*v).is_some())
    })
}

/// Judges the ruleset (`nft -j list ruleset` output) for UDP `port`.
pub fn udp_port_verdict(ruleset: &Value, port: u16, tunnel: &str) -> PortVerdict {
    let objects = ruleset["nftables"].as_array().cloned().unwrap_or_default();
    let chains = objects.iter().filter_map(|o| o.get("chain")).filter(|c| {
        matches!(c["family"].as_str(), Some("ip" | "inet"))
            && (c["hook"] == "input" || (c["hook"] == "prerouting" && c["type"] == "filter"))
    });
    let mut uncertain = None;
    for chain in chains {
        let (family, table, name) = (
            chain["family"].as_str().unwrap_or(""),
            chain["table"].as_str().unwrap_or(""),
            chain["name"].as_str().unwrap_or(""),
        );
        let id = format!("{family} {table} {name}");
        let fix_insert = format!("nft insert rule {id} udp dport {port} accept");
        let rules = objects
            .iter()
            .filter_map(|o| o.get("rule"))
            .filter(|r| r["family"] == family && r["table"] == table && r["chain"] == name);
        let mut decided = false;
        for rule in rules {
            let exprs = rule["expr"].as_array().cloned().unwrap_or_default();
            let v = verdict(&exprs);
            match (applies(&exprs, port, tunnel), v) {
                (Applies::No, _) | (_, None) => {}
                (Applies::Surely, Some("accept")) => {
                    decided = true;
                    break;
                }
                (Applies::Surely, Some(v @ ("drop" | "reject"))) => {
                    let handle = rule["handle"].as_u64().unwrap_or(0);
                    return PortVerdict::Blocked {
                        chain: id.clone(),
                        why: format!("rule handle {handle} {v}s udp/{port}"),
                        fix: format!("nft delete rule {id} handle {handle}  (or: {fix_insert})"),
                    };
                }
                (_, Some(v)) => {
                    uncertain.get_or_insert_with(|| PortVerdict::Uncertain {
                        chain: id.clone(),
                        why: format!(
                            "rule handle {} may {v} udp/{port} (conditions not judged here)",
                            rule["handle"]
                        ),
                    });
                }
            }
        }
        if !decided && chain["policy"] == "drop" && uncertain.is_none() {
            return PortVerdict::Blocked {
                chain: id.clone(),
                why: format!("the chain's policy drops, and no rule accepts udp/{port}"),
                fix: fix_insert,
            };
        }
    }
    uncertain.unwrap_or(PortVerdict::Open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ruleset(policy: &str, rules: Vec<Value>) -> Value {
        let mut objects = vec![
            json!({"metainfo": {"json_schema_version": 1}}),
            json!({"table": {"family": "inet", "name": "f", "handle": 1}}),
            json!({"chain": {"family": "inet", "table": "f", "name": "input", "handle": 1,
                "type": "filter", "hook": "input", "prio": 0, "policy": policy}}),
        ];
        for (i, expr) in rules.into_iter().enumerate() {
            objects.push(
                json!({"rule": {"family": "inet", "table": "f", "chain": "input",
                "handle": i + 2, "expr": expr}}),
            );
        }
        json!({ "nftables": objects })
    }

    /// Proton's own table, as nft 1.0.6 lists it: its loopback, pod and tunnel rules
    /// do not see a packet from the internet, so udp/51820 is open.
    #[test]
    fn protons_own_table_leaves_the_wireguard_port_open() {
        let iif = |op: &str, right: Value| json!({"match": {"op": op, "left": {"meta": {"key": "iifname"}}, "right": right}});
        let lo = json!({"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}});
        let pods = iif("==", json!({"set": ["cni0", "flannel.1"]}));
        let src = json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.42.0.0", "len": 16}}}});
        let fib = json!({"match": {"op": "==", "left": {"fib": {"result": "oif", "flags": ["saddr", "iif"]}}, "right": false}});
        let r = ruleset(
            "accept",
            vec![
                json!([lo, {"accept": null}]),
                json!([dport(json!(8472)), {"drop": null}]),
                json!([pods.clone(), src.clone(), fib, {"drop": null}]),
                json!([pods, src, {"accept": null}]),
                json!([dport(json!(51820)), {"accept": null}]),
            ],
        );
        assert_eq!(udp_port_verdict(&r, 51820, "wg0"), PortVerdict::Open);
        // An interface a public packet can arrive on stays "not judged".
        let eth = iif("==", json!("eth0"));
        let r = ruleset("accept", vec![json!([eth, {"drop": null}])]);
        assert!(matches!(
            udp_port_verdict(&r, 51820, "wg0"),
            PortVerdict::Uncertain { .. }
        ));
    }

    fn dport(right: Value) -> Value {
        json!({"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": right}})
    }

    #[test]
    fn judges_common_rulesets() {
        assert_eq!(
            udp_port_verdict(&json!({"nftables": []}), 51820, "wg0"),
            PortVerdict::Open
        );
        let drop = ruleset("accept", vec![json!([dport(json!(51820)), {"drop": null}])]);
        match udp_port_verdict(&drop, 51820, "wg0") {
            PortVerdict::Blocked { fix, .. } => {
                assert_eq!(
                    fix,
                    "nft delete rule inet f input handle 2  (or: nft insert rule inet f input udp dport 51820 accept)"
                )
            }
            other => panic!("{other:?}"),
        }
        // A drop of another port, or of TCP, does not block WireGuard.
        let other = ruleset("accept", vec![json!([dport(json!(53)), {"drop": null}])]);
        assert_eq!(udp_port_verdict(&other, 51820, "wg0"), PortVerdict::Open);
        // Policy drop with an accept first: open; without: blocked.
        let est = json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": {"set": ["established", "related"]}}});
        let ok = ruleset(
            "drop",
            vec![
                json!([est, {"accept": null}]),
                json!([dport(json!({"set": [51820, 51821]})), {"accept": null}]),
            ],
        );
        assert_eq!(udp_port_verdict(&ok, 51820, "wg0"), PortVerdict::Open);
        let closed = ruleset("drop", vec![json!([est, {"accept": null}])]);
        assert!(matches!(
            udp_port_verdict(&closed, 51820, "wg0"),
            PortVerdict::Blocked { .. }
        ));
        // A drop limited by source address cannot be judged: uncertain, not blocked.
        let src = json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "192.0.2.0/24"}});
        let maybe = ruleset(
            "accept",
            vec![json!([src, dport(json!(51820)), {"drop": null}])],
        );
        assert!(matches!(
            udp_port_verdict(&maybe, 51820, "wg0"),
            PortVerdict::Uncertain { .. }
        ));
        // A range that covers the port, rejected.
        // Proton's own invitee fence only sees packets that came in on the tunnel.
        let iif =
            json!({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "wg0"}});
        let fence = ruleset("accept", vec![json!([iif, src, {"drop": null}])]);
        assert_eq!(udp_port_verdict(&fence, 51820, "wg0"), PortVerdict::Open);
        let range = ruleset(
            "accept",
            vec![json!([dport(json!({"range": [50000, 52000]})), {"reject": null}])],
        );
        assert!(matches!(
            udp_port_verdict(&range, 51820, "wg0"),
            PortVerdict::Blocked { .. }
        ));
    }
}
