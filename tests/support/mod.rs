//! Test support, shared by the hermetic tests (`tests/integration`) and the end-to-end
//! tests (`tests/e2e`), one file per concern: verdict under test ([`instance`]), talking
//! to it ([`http`]), tokens ([`tokens`]), fake services on port 0 ([`fakes`]), real
//! programs ([`programs`]), the shared store's servers and a proxy in front of them
//! ([`store`]), and what callers send and are configured with ([`callers`]).

pub mod callers;
pub mod fakes;
pub mod http;
pub mod instance;
pub mod programs;
pub mod store;
pub mod tokens;

pub use self::callers::*;
pub use self::fakes::*;
pub use self::http::*;
pub use self::instance::*;
pub use self::programs::*;
#[allow(unused_imports)]
pub use self::tokens::*;
