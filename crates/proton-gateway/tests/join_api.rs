//! The join API over real TCP, with a service that records what it was asked.

use proton_gateway::server::{self, JoinRefusal, JoinService, Redeemed};
use proton_proto::join::{self as client, ClientError, RedeemRequest, RedeemResponse, WhoAmI};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Fake {
    redeemed: Mutex<bool>,
}

impl JoinService for Fake {
    fn whoami(&self, caller: Ipv4Addr) -> Result<WhoAmI, JoinRefusal> {
        Ok(WhoAmI {
            name: "home-1".into(),
            role: "worker".into(),
            address: format!("{caller}/8"),
            public_key: "k".into(),
        })
    }
    fn redeem(&self, _caller: Ipv4Addr, req: RedeemRequest) -> Result<Redeemed, JoinRefusal> {
        if req.secret != "right" {
            return Err(JoinRefusal::WrongSecret);
        }
        let mut used = self.redeemed.lock().unwrap();
        if *used {
            return Err(JoinRefusal::AlreadyUsed);
        }
        *used = true;
        Ok(Redeemed {
            response: RedeemResponse {
                name: "home-1".into(),
                role: "worker".into(),
                address: "10.7.7.2/24".into(),
                network: "10.7.7.0/24".into(),
                gateway_public_key: "gw".into(),
                persistent_keepalive: 25,
                mtu: 1420,
                k3s: None,
            },
            repeat: false,
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redeem_once_and_refusals_are_one_line() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = Arc::new(Fake::default());
    tokio::spawn(server::serve(listener, fake, std::future::pending()));
    let api = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let t = Duration::from_secs(5);

    let result = tokio::task::spawn_blocking(move || {
        let me = client::whoami(api, t).unwrap();
        assert_eq!(
            me.address, "127.0.0.1/8",
            "the caller is named by its source address"
        );
        let wrong = RedeemRequest {
            secret: "wrong".into(),
            public_key: "x".into(),
        };
        let refused = client::redeem(api, &wrong, t).unwrap_err();
        assert!(
            matches!(refused, ClientError::Refused { status: 403, .. }),
            "{refused}"
        );
        let right = RedeemRequest {
            secret: "right".into(),
            public_key: "x".into(),
        };
        let answer = client::redeem(api, &right, t).unwrap();
        let again = client::redeem(api, &right, t).unwrap_err();
        (answer, again)
    })
    .await
    .unwrap();
    assert_eq!(result.0.address, "10.7.7.2/24");
    assert_eq!(
        result.1.to_string(),
        "this invitation has already been used"
    );
}
