//! Configuration for infergate: Kubernetes-style resources read from files, validated with file,
//! line and field, turned into the routing table the data plane consults, and watched for
//! changes.
//!
//! This crate decides what a configuration means; it never serves traffic.

pub mod backends;
pub mod loader;
pub mod picker;
pub mod policy;
pub mod resources;
pub mod routing;
pub mod semantic;
pub mod units;
pub mod watch;
pub mod yaml_lines;

pub use backends::{Backend, CircuitSettings, CredentialMaterial, CredentialSource, Pricing};
pub use loader::{
    load_path, load_sources, load_str, read_sources, AppProtocol, ConfigError, ConfigErrors,
    ConfigSet, EndpointSpec, Pool, Settings, Target, Upstream,
};
pub use picker::{PickerConfig, PluginKind};
pub use routing::{
    parse_regions, region_allowed, RouteDecision, RouteError, RouteQuery, RouteTable, RouteTarget,
    RouteUpstream,
};
