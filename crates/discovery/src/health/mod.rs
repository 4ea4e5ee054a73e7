//! Active health checks: [`HealthCheck`] probes, and [`HealthChecked`], a
//! discovery source whose watches hold only the instances that pass them.

mod check;
mod checked;

pub use check::{HealthCheck, HealthCheckBuilder};
pub use checked::HealthChecked;
