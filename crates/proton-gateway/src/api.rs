//! The join API's wire types now live in `proton_proto::join`, which both sides use.
//! Compatibility re-export for code that still says `crate::api::…`.

pub use proton_proto::join::{
    ApiError, JOIN_API_PORT, K3sJoin, RedeemRequest, RedeemResponse, WhoAmI,
};
