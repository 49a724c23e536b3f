//! Test support, one file per concern: verdict under test ([`instance`]), talking to it
//! ([`http`]), tokens ([`tokens`]), fake services on port 0 ([`fakes`]) and real
//! programs ([`programs`]).

pub mod fakes;
pub mod http;
pub mod instance;
pub mod programs;
pub mod tokens;

pub use self::fakes::*;
pub use self::http::*;
pub use self::instance::*;
pub use self::programs::*;
pub use self::tokens::*;
