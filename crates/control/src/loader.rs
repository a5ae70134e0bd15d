//! Loading and validating configuration: YAML text → typed resources → a [`ConfigSet`] whose
//! cross-references have been checked. Every problem is reported with file, line and field, all
//! of them at once (not just the first).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::backends::{
    credential_optional, default_base_url, load_material, secret_values, Backend, CircuitSettings,
    CredentialSource, Pricing,
};
use crate::picker::{
    validate_picker, EndpointPickerConfigDoc, PickerConfig, PICKER_API_GIE, PICKER_API_LLMD,
    PICKER_KIND,
};
use crate::resources::*;
use crate::semantic::{
    validate_guardrails, CachePolicy, CachePolicySpec, CollectionConfig, CollectionSpec,
    EmbeddingsSpec, GuardrailPolicy, GuardrailPolicySpec, SemanticRouterConfig, SemanticRouterSpec,
};
use crate::units::Dur;
use crate::yaml_lines::{document_lines, DocLines};

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    /// `Kind/name` of the resource, when known.
    pub resource: Option<String>,
    /// Field path, e.g. `spec.targets[0].pool`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(r) = &self.resource {
            write!(f, "{r}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// All problems found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// How the upstream speaks HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppProtocol {
    #[default]
    Http1,
    H2c,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Pod-like name used in metrics and logs.
    pub name: String,
    pub address: String,
    pub port: u16,
    pub labels: BTreeMap<String, String>,
}

impl EndpointSpec {
    /// `host:port` as used in `x-gateway-destination-endpoint`.
    pub fn host_port(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EppRef {
    pub name: String,
    pub port: u16,
    pub failure_mode: FailureMode,
}

/// An InferencePool, whichever API version it was written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub namespace: Option<String>,
    pub selector: BTreeMap<String, String>,
    pub target_ports: Vec<u16>,
    pub app_protocol: AppProtocol,
    pub endpoints: Vec<EndpointSpec>,
    pub epp: Option<EppRef>,
    /// Label `infergate.dev/region`: where the pool processes data.
    pub region: Option<String>,
}

/// The label that gives a pool its region.
pub const REGION_LABEL: &str = "infergate.dev/region";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objective {
    pub name: String,
    pub priority: i32,
    pub pool: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedName {
    pub name: String,
    pub weight: u32,
}

/// One InferenceModelRewrite rule: `matches` empty = applies to every model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteRuleSet {
    pub source: String,
    pub pool: String,
    pub exact: Vec<String>,
    pub targets: Vec<WeightedName>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyModel {
    pub model_name: String,
    pub pool: String,
    pub priority: i32,
    pub targets: Vec<WeightedName>,
}

/// Where a target sends requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Upstream {
    Pool(String),
    Backend(String),
}

impl Upstream {
    pub fn name(&self) -> &str {
        match self {
            Upstream::Pool(n) | Upstream::Backend(n) => n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub upstream: Upstream,
    pub model: Option<String>,
    pub weight: u32,
    pub context_window: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    /// Lower-cased header name → exact value.
    pub headers: Vec<(String, String)>,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadow {
    pub target: Target,
    /// Share of requests copied, in millionths (1_000_000 = all).
    pub per_million: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicModel {
    pub name: String,
    pub description: Option<String>,
    pub targets: Vec<Target>,
    pub fallbacks: Vec<Target>,
    pub priority: Option<i32>,
    pub canaries: Vec<Canary>,
    pub shadow: Option<Shadow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulator {
    pub name: String,
    pub model: String,
    pub replicas: usize,
    pub host: String,
    pub port: u16,
    pub args: BTreeMap<String, serde_json::Value>,
}

/// Gateway settings with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub tls: Option<(String, String)>,
    pub max_request_body: u64,
    pub connect_timeout: Duration,
    pub response_headers_timeout: Duration,
    pub stream_idle_timeout: Duration,
    pub request_read_timeout: Duration,
    pub retry_attempts: u32,
    pub consecutive_5xx: u32,
    pub eject_cooldown: Duration,
    pub probe_interval: Duration,
    pub probe_path: String,
    pub access_log: Option<String>,
    pub reload_interval: Option<Duration>,
    /// Identities, limits, budgets, prices, state.
    pub policy: crate::policy::PolicySettings,
    pub first_token_timeout: Duration,
    /// Retry budget: extra attempts ≤ max(min, ratio × requests) over 10 s.
    pub retry_budget_ratio: RatioMillis,
    pub retry_budget_min: u32,
    pub circuit: CircuitSettings,
    /// Trusted request header carrying the allowed regions.
    pub region_header: Option<String>,
    pub local_region: Option<String>,
    pub egress_proxy: Option<String>,
    /// The embedder for guardrails, cache, routing and retrieval (None = no embeddings).
    pub embeddings: Option<EmbeddingsSpec>,
}

/// A ratio in thousandths (so `Settings` stays `Eq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatioMillis(pub u32);

impl RatioMillis {
    pub fn get(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: SocketAddr::from(([127, 0, 0, 1], 9901)),
            tls: None,
            max_request_body: 8 << 20,
            connect_timeout: Duration::from_secs(2),
            response_headers_timeout: Duration::from_secs(300),
            stream_idle_timeout: Duration::from_secs(120),
            request_read_timeout: Duration::from_secs(60),
            retry_attempts: 3,
            consecutive_5xx: 3,
            eject_cooldown: Duration::from_secs(5),
            probe_interval: Duration::from_millis(500),
            probe_path: "/health".into(),
            access_log: Some("stdout".into()),
            reload_interval: Some(Duration::from_secs(1)),
            embeddings: None,
            policy: crate::policy::PolicySettings::default(),
            first_token_timeout: Duration::from_secs(300),
            retry_budget_ratio: RatioMillis(200),
            retry_budget_min: 10,
            circuit: CircuitSettings::default(),
            region_header: None,
            local_region: None,
            egress_proxy: None,
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSet {
    pub settings: Settings,
    pub pools: Vec<Pool>,
    pub objectives: Vec<Objective>,
    pub rewrites: Vec<RewriteRuleSet>,
    pub legacy_models: Vec<LegacyModel>,
    pub public_models: Vec<PublicModel>,
    pub backends: Vec<Backend>,
    pub simulators: Vec<Simulator>,
    pub guardrail_policies: Vec<GuardrailPolicy>,
    pub cache_policies: Vec<CachePolicy>,
    pub semantic_routers: Vec<SemanticRouterConfig>,
    pub collections: Vec<CollectionConfig>,
    pub tenants: Vec<crate::policy::Tenant>,
    /// `EndpointPickerConfig`s by name (see [`ConfigSet::picker_for`]).
    pub pickers: Vec<Arc<PickerConfig>>,
    /// Problems that do not stop the configuration from serving.
    pub warnings: Vec<ConfigError>,
}

impl ConfigSet {
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// Whether any identity is configured; once one is, requests need a credential (or an
    /// `auth.anonymousTenant`).
    pub fn identities_configured(&self) -> bool {
        !self.tenants.is_empty() || self.settings.policy.auth.jwt.is_some()
    }

    /// The endpoint-picker configuration a pool runs: the `EndpointPickerConfig` named like the
    /// pool's `endpointPickerRef` (v1alpha2: `extensionRef`) when there is one; otherwise the
    /// only `EndpointPickerConfig`, or the one named `default` when there are several; otherwise
    /// the built-in default (the anchor's: queue 2, KV cache 2, prefix 3).
    pub fn picker_for(&self, pool: &Pool) -> Arc<PickerConfig> {
        if let Some(epp) = &pool.epp {
            if let Some(p) = self.pickers.iter().find(|p| p.name == epp.name) {
                return p.clone();
            }
        }
        match self.pickers.as_slice() {
            [only] => only.clone(),
            many => many
                .iter()
                .find(|p| p.name == "default")
                .cloned()
                .unwrap_or_else(|| Arc::new(PickerConfig::default())),
        }
    }

    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| b.name == name)
    }
}

/// Where a resource came from, for error messages.
struct At<'a> {
    file: &'a str,
    doc: &'a DocLines,
    resource: String,
}

impl crate::policy::Report for At<'_> {
    fn err(&self, field: &str, message: String) -> ConfigError {
        At::err(self, field, message)
    }
}

impl At<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.doc.line_of(field),
            resource: Some(self.resource.clone()),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

struct Located<'a, T> {
    at: At<'a>,
    res: Resource<T>,
}

#[derive(Default)]
struct Parsed<'a> {
    pools: Vec<Located<'a, Pool>>,
    objectives: Vec<Located<'a, InferenceObjectiveSpec>>,
    rewrites: Vec<Located<'a, InferenceModelRewriteSpec>>,
    legacy: Vec<Located<'a, InferenceModelSpec>>,
    public: Vec<Located<'a, PublicModelSpec>>,
    settings: Vec<Located<'a, GatewaySettingsSpec>>,
    simulators: Vec<Located<'a, SimulatorSpec>>,
    tenants: Vec<Located<'a, crate::policy::TenantSpec>>,
    pickers: Vec<(At<'a>, EndpointPickerConfigDoc)>,
    backends: Vec<Located<'a, BackendSpec>>,
    secrets: Vec<Located<'a, SecretData>>,
    guardrails: Vec<Located<'a, GuardrailPolicySpec>>,
    caches: Vec<Located<'a, CachePolicySpec>>,
    routers: Vec<Located<'a, SemanticRouterSpec>>,
    collections: Vec<Located<'a, CollectionSpec>>,
}

/// A Secret's payload, as filed by the loader.
struct SecretData {
    data: BTreeMap<String, String>,
    string_data: BTreeMap<String, String>,
}

const KNOWN: &str = "InferencePool (inference.networking.k8s.io/v1 or inference.networking.x-k8s.io/v1alpha2), \
InferenceObjective, InferenceModelRewrite, InferenceModel (inference.networking.x-k8s.io/v1alpha2), \
PublicModel, Backend, GatewaySettings, Tenant, Simulator, GuardrailPolicy, CachePolicy, \
SemanticRouter, Collection (infergate.dev/v1alpha1), Secret (v1), \
EndpointPickerConfig (inference.networking.x-k8s.io/v1alpha1)";

fn typed<T: DeserializeOwned>(
    value: serde_yaml_ng::Value,
    file: &str,
    doc: &DocLines,
    resource: &str,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        let message = e.inner().to_string();
        ConfigError {
            file: file.to_string(),
            line: doc.line_of(&field),
            resource: Some(resource.to_string()),
            field,
            message,
        }
    })
}

/// Parse one file's text into `out`, collecting errors.
fn parse_text<'a>(
    file: &'a str,
    text: &str,
    docs: &'a [DocLines],
    out: &mut Parsed<'a>,
    errors: &mut Vec<ConfigError>,
) {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    for (i, document) in de.enumerate() {
        let value = match <serde_yaml_ng::Value as serde::Deserialize>::deserialize(document) {
            Ok(v) => v,
            Err(e) => {
                errors.push(ConfigError {
                    file: file.to_string(),
                    line: e.location().map_or(1, |l| l.line()),
                    resource: None,
                    field: String::new(),
                    message: format!("invalid YAML: {e}"),
                });
                return;
            }
        };
        if value.is_null() {
            continue;
        }
        let Some(doc) = docs.get(i) else { continue };
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let kind = value
            .get("kind")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string();
        let resource = format!("{kind}/{name}");
        let at = At {
            file,
            doc,
            resource: resource.clone(),
        };
        if kind.is_empty() || api_version.is_empty() {
            let field = if kind.is_empty() {
                "kind"
            } else {
                "apiVersion"
            };
            errors.push(at.err(
                field,
                format!("every resource needs `apiVersion` and `kind`; known kinds: {KNOWN}"),
            ));
            continue;
        }
        if kind == PICKER_KIND
            && matches!(
                api_version.as_str(),
                PICKER_API_GIE | PICKER_API_LLMD | INFERGATE_V1ALPHA1
            )
        {
            match typed::<EndpointPickerConfigDoc>(value, file, doc, &resource) {
                Ok(d) => out.pickers.push((at, d)),
                Err(e) => errors.push(e),
            }
            continue;
        }
        let mut load = Loader {
            value: Some(value),
            file,
            doc,
            resource: &resource,
            errors: &mut *errors,
        };
        match (api_version.as_str(), kind.as_str()) {
            (GROUP_V1, "InferencePool") => load.file_into(&mut out.pools, at, pool_from_v1),
            (GROUP_X_V1ALPHA2, "InferencePool") => {
                load.file_into(&mut out.pools, at, pool_from_v1alpha2);
            }
            (GROUP_X_V1ALPHA2, "InferenceObjective") => load.file_into(&mut out.objectives, at, id),
            (GROUP_X_V1ALPHA2, "InferenceModelRewrite") => {
                load.file_into(&mut out.rewrites, at, id);
            }
            (GROUP_X_V1ALPHA2, "InferenceModel") => load.file_into(&mut out.legacy, at, id),
            (INFERGATE_V1ALPHA1, "PublicModel") => load.file_into(&mut out.public, at, id),
            (INFERGATE_V1ALPHA1, "GatewaySettings") => load.file_into(&mut out.settings, at, id),
            (INFERGATE_V1ALPHA1, "Simulator") => load.file_into(&mut out.simulators, at, id),
            (INFERGATE_V1ALPHA1, "GuardrailPolicy") => load.file_into(&mut out.guardrails, at, id),
            (INFERGATE_V1ALPHA1, "CachePolicy") => load.file_into(&mut out.caches, at, id),
            (INFERGATE_V1ALPHA1, "SemanticRouter") => load.file_into(&mut out.routers, at, id),
            (INFERGATE_V1ALPHA1, "Collection") => load.file_into(&mut out.collections, at, id),
            (INFERGATE_V1ALPHA1, "Tenant") => load.file_into(&mut out.tenants, at, id),
            (INFERGATE_V1ALPHA1, "Backend") => load.file_into(&mut out.backends, at, id),
            ("v1", "Secret") => {
                if let Some(value) = load.value.take() {
                    match typed::<SecretResource>(value, file, doc, &resource) {
                        Ok(r) => out.secrets.push(Located {
                            at,
                            res: Resource {
                                api_version: r.api_version,
                                kind: r.kind,
                                metadata: r.metadata,
                                spec: SecretData {
                                    data: r.data,
                                    string_data: r.string_data,
                                },
                                status: None,
                            },
                        }),
                        Err(e) => load.errors.push(e),
                    }
                }
            }
            _ => errors.push(at.err(
                "kind",
                format!("unknown kind `{kind}` in `{api_version}`; known kinds: {KNOWN}"),
            )),
        }
    }
}

fn id<T>(r: T) -> T {
    r
}

/// Deserialises one document into its typed resource and files it, or records the error.
struct Loader<'a, 'r, 'e> {
    value: Option<serde_yaml_ng::Value>,
    file: &'a str,
    doc: &'a DocLines,
    resource: &'r str,
    errors: &'e mut Vec<ConfigError>,
}

impl<'a> Loader<'a, '_, '_> {
    fn file_into<S: DeserializeOwned, T>(
        &mut self,
        list: &mut Vec<Located<'a, T>>,
        at: At<'a>,
        map: impl FnOnce(Resource<S>) -> Resource<T>,
    ) {
        let Some(value) = self.value.take() else {
            return;
        };
        match typed::<Resource<S>>(value, self.file, self.doc, self.resource) {
            Ok(res) => list.push(Located { at, res: map(res) }),
            Err(e) => self.errors.push(e),
        }
    }
}

fn pool_endpoints(eps: &[StaticEndpoint], ports: &[u16]) -> Vec<EndpointSpec> {
    let mut out = Vec::new();
    for ep in eps {
        let ports: Vec<u16> = match ep.port {
            Some(p) => vec![p],
            None => ports.to_vec(),
        };
        for port in ports {
            let host_port = if ep.address.contains(':') {
                format!("[{}]:{port}", ep.address)
            } else {
                format!("{}:{port}", ep.address)
            };
            let name = match (&ep.name, ep.port) {
                (Some(n), Some(_)) => n.clone(),
                (Some(n), None) => format!("{n}:{port}"),
                (None, _) => host_port,
            };
            out.push(EndpointSpec {
                name,
                address: ep.address.clone(),
                port,
                labels: ep.labels.clone(),
            });
        }
    }
    out
}

fn pool_from_v1(r: Resource<InferencePoolV1Spec>) -> Resource<Pool> {
    let ports: Vec<u16> = r.spec.target_ports.iter().map(|p| p.number).collect();
    let app_protocol = match r.spec.app_protocol.as_deref() {
        Some("kubernetes.io/h2c") => AppProtocol::H2c,
        _ => AppProtocol::Http1,
    };
    let pool = Pool {
        name: r.metadata.name.clone(),
        namespace: r.metadata.namespace.clone(),
        selector: r.spec.selector.match_labels.clone(),
        endpoints: pool_endpoints(&r.spec.endpoints, &ports),
        target_ports: ports,
        app_protocol,
        region: r.metadata.labels.get(REGION_LABEL).cloned(),
        epp: r.spec.endpoint_picker_ref.as_ref().map(|e| EppRef {
            name: e.name.clone(),
            port: e.port.as_ref().map_or(9002, |p| p.number),
            failure_mode: e.failure_mode.unwrap_or_default(),
        }),
    };
    Resource {
        api_version: r.api_version,
        kind: r.kind,
        metadata: r.metadata,
        spec: pool,
        status: r.status,
    }
}

fn pool_from_v1alpha2(r: Resource<InferencePoolV1Alpha2Spec>) -> Resource<Pool> {
    let ports = vec![r.spec.target_port_number];
    let pool = Pool {
        name: r.metadata.name.clone(),
        namespace: r.metadata.namespace.clone(),
        selector: r.spec.selector.clone(),
        endpoints: pool_endpoints(&r.spec.endpoints, &ports),
        target_ports: ports,
        app_protocol: AppProtocol::Http1,
        region: r.metadata.labels.get(REGION_LABEL).cloned(),
        epp: r.spec.extension_ref.as_ref().map(|e| EppRef {
            name: e.name.clone(),
            port: e.port_number.unwrap_or(9002),
            failure_mode: e.failure_mode.unwrap_or_default(),
        }),
    };
    Resource {
        api_version: r.api_version,
        kind: r.kind,
        metadata: r.metadata,
        spec: pool,
        status: r.status,
    }
}

fn weights_all_or_none(
    at: &At<'_>,
    field: &str,
    weights: &[Option<u32>],
    errors: &mut Vec<ConfigError>,
) -> Vec<u32> {
    let set = weights.iter().filter(|w| w.is_some()).count();
    if set != 0 && set != weights.len() {
        errors.push(at.err(
            field,
            "set `weight` on every entry or on none (equal shares)",
        ));
    }
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let w = w.unwrap_or(1);
            if !(1..=1_000_000).contains(&w) {
                errors.push(at.err(
                    &format!("{field}[{i}].weight"),
                    format!("weight {w} is out of range; use 1 to 1000000"),
                ));
            }
            w
        })
        .collect()
}

fn validate(parsed: &Parsed<'_>, errors: &mut Vec<ConfigError>) -> ConfigSet {
    let mut set = ConfigSet::default();

    // Duplicate names within a kind.
    fn dup_check<T>(items: &[Located<'_, T>], errors: &mut Vec<ConfigError>) {
        let mut seen = HashMap::new();
        for it in items {
            let key = (&it.res.metadata.namespace, &it.res.metadata.name);
            if let Some(prev) = seen.insert(key, (it.at.file, it.at.doc.start_line)) {
                errors.push(it.at.err(
                    "metadata.name",
                    format!(
                        "`{}` is declared twice (first at {}:{}); give each resource its own name",
                        it.res.metadata.name, prev.0, prev.1
                    ),
                ));
            }
        }
    }
    dup_check(&parsed.pools, errors);
    dup_check(&parsed.objectives, errors);
    dup_check(&parsed.rewrites, errors);
    dup_check(&parsed.legacy, errors);
    dup_check(&parsed.public, errors);
    dup_check(&parsed.simulators, errors);
    dup_check(&parsed.guardrails, errors);
    dup_check(&parsed.caches, errors);
    dup_check(&parsed.routers, errors);
    dup_check(&parsed.collections, errors);
    dup_check(&parsed.tenants, errors);
    dup_check(&parsed.backends, errors);
    dup_check(&parsed.secrets, errors);

    // Settings.
    if parsed.settings.len() > 1 {
        errors.push(parsed.settings[1].at.err(
            "kind",
            "only one GatewaySettings resource is allowed; merge them",
        ));
    }
    if let Some(s) = parsed.settings.first() {
        set.settings = resolve_settings(&s.at, &s.res.spec, errors);
    }

    // Pools.
    let mut pool_names = HashSet::new();
    for p in &parsed.pools {
        let pool = &p.res.spec;
        pool_names.insert(pool.name.clone());
        if pool.target_ports.is_empty() || pool.target_ports.len() > 8 {
            errors.push(p.at.err("spec.targetPorts", "list 1 to 8 target ports"));
        }
        let mut ports = HashSet::new();
        for (i, port) in pool.target_ports.iter().enumerate() {
            if *port == 0 || !ports.insert(*port) {
                errors.push(p.at.err(
                    &format!("spec.targetPorts[{i}].number"),
                    "target ports must be unique and non-zero",
                ));
            }
        }
        if pool.selector.len() > 64 {
            errors.push(p.at.err("spec.selector", "at most 64 labels"));
        }
        let mut eps = HashSet::new();
        for (i, ep) in pool.endpoints.iter().enumerate() {
            if ep.address.is_empty() {
                errors.push(p.at.err(
                    &format!("spec.endpoints[{i}].address"),
                    "give an IP address or host name",
                ));
            }
            if ep.port == 0 {
                errors.push(p.at.err(&format!("spec.endpoints[{i}].port"), "port 0 is not valid"));
            }
            if !eps.insert((ep.address.clone(), ep.port)) {
                errors.push(p.at.err(
                    &format!("spec.endpoints[{i}]"),
                    format!("endpoint {} is listed twice", ep.host_port()),
                ));
            }
        }
        if pool.endpoints.is_empty() {
            set.warnings.push(p.at.err(
                "spec",
                "no endpoints: in standalone mode list them under spec.endpoints \
                 (requests to this pool will get 503 until it has some)",
            ));
        }
        set.pools.push(pool.clone());
    }
    let pool_exists = |at: &At<'_>, field: &str, name: &str, errors: &mut Vec<ConfigError>| {
        if !pool_names.contains(name) {
            let mut known: Vec<_> = pool_names.iter().cloned().collect();
            known.sort();
            errors.push(at.err(
                field,
                format!(
                    "InferencePool `{name}` does not exist; known pools: [{}]",
                    known.join(", ")
                ),
            ));
        }
    };

    for o in &parsed.objectives {
        pool_exists(
            &o.at,
            "spec.poolRef.name",
            &o.res.spec.pool_ref.name,
            errors,
        );
        set.objectives.push(Objective {
            name: o.res.metadata.name.clone(),
            priority: o.res.spec.priority.unwrap_or(0),
            pool: o.res.spec.pool_ref.name.clone(),
        });
    }

    for r in &parsed.rewrites {
        pool_exists(
            &r.at,
            "spec.poolRef.name",
            &r.res.spec.pool_ref.name,
            errors,
        );
        for (ri, rule) in r.res.spec.rules.iter().enumerate() {
            let mut exact = Vec::new();
            for (mi, m) in rule.matches.iter().enumerate() {
                if m.model.match_type != "Exact" {
                    errors.push(r.at.err(
                        &format!("spec.rules[{ri}].matches[{mi}].model.type"),
                        format!(
                            "match type `{}` is not supported; only `Exact` is",
                            m.model.match_type
                        ),
                    ));
                }
                exact.push(m.model.value.clone());
            }
            if rule.targets.is_empty() {
                errors.push(r.at.err(
                    &format!("spec.rules[{ri}].targets"),
                    "a rule needs at least one target",
                ));
            }
            let field = format!("spec.rules[{ri}].targets");
            let weights: Vec<Option<u32>> = rule.targets.iter().map(|t| t.weight).collect();
            let weights = weights_all_or_none(&r.at, &field, &weights, errors);
            set.rewrites.push(RewriteRuleSet {
                source: r.res.metadata.name.clone(),
                pool: r.res.spec.pool_ref.name.clone(),
                exact,
                targets: rule
                    .targets
                    .iter()
                    .zip(weights)
                    .map(|(t, weight)| WeightedName {
                        name: t.model_rewrite.clone(),
                        weight,
                    })
                    .collect(),
            });
        }
    }

    let mut legacy_names: HashMap<(String, String), usize> = HashMap::new();
    for m in &parsed.legacy {
        let spec = &m.res.spec;
        pool_exists(&m.at, "spec.poolRef.name", &spec.pool_ref.name, errors);
        if spec.model_name.is_empty() || spec.model_name.len() > 256 {
            errors.push(m.at.err("spec.modelName", "give a model name of 1 to 256 characters"));
        }
        if spec.target_models.len() > 10 {
            errors.push(m.at.err("spec.targetModels", "at most 10 target models"));
        }
        if let Some(prev) = legacy_names.insert(
            (spec.pool_ref.name.clone(), spec.model_name.clone()),
            m.at.doc.start_line,
        ) {
            errors.push(m.at.err(
                "spec.modelName",
                format!(
                    "model name `{}` is already used in pool `{}` by the InferenceModel at line {prev}",
                    spec.model_name, spec.pool_ref.name
                ),
            ));
        }
        let weights: Vec<Option<u32>> = spec.target_models.iter().map(|t| t.weight).collect();
        let weights = weights_all_or_none(&m.at, "spec.targetModels", &weights, errors);
        set.legacy_models.push(LegacyModel {
            model_name: spec.model_name.clone(),
            pool: spec.pool_ref.name.clone(),
            priority: spec.criticality.map_or(0, Criticality::priority),
            targets: spec
                .target_models
                .iter()
                .zip(weights)
                .map(|(t, weight)| WeightedName {
                    name: t.name.clone(),
                    weight,
                })
                .collect(),
        });
    }

    // Secrets, then the backends that reference them.
    let mut secrets: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    for sec in &parsed.secrets {
        match secret_values(&sec.res.spec.data, &sec.res.spec.string_data) {
            Ok(v) => {
                secrets.insert(sec.res.metadata.name.clone(), v);
            }
            Err(e) => errors.push(sec.at.err("data", e)),
        }
    }
    for b in &parsed.backends {
        if let Some(backend) = validate_backend(
            &b.at,
            &b.res.metadata.name,
            &b.res.spec,
            &secrets,
            set.settings.circuit,
            errors,
        ) {
            set.backends.push(backend);
        }
    }
    let backend_names: HashSet<String> = parsed
        .backends
        .iter()
        .map(|b| b.res.metadata.name.clone())
        .collect();

    let mut public_names: HashMap<String, usize> = HashMap::new();
    for m in &parsed.public {
        let spec = &m.res.spec;
        let name = spec
            .name
            .clone()
            .unwrap_or_else(|| m.res.metadata.name.clone());
        if let Some(prev) = public_names.insert(name.clone(), m.at.doc.start_line) {
            errors.push(m.at.err(
                "spec.name",
                format!("public model `{name}` is already declared at line {prev}"),
            ));
        }
        if spec.targets.is_empty() {
            errors.push(m.at.err("spec.targets", "a public model needs at least one target"));
        }
        let one_target = |t: &ModelTarget,
                          field: &str,
                          weight: u32,
                          errors: &mut Vec<ConfigError>|
         -> Target {
            let upstream = match (&t.pool, &t.backend) {
                (Some(p), None) => {
                    pool_exists(&m.at, &format!("{field}.pool"), p, errors);
                    Upstream::Pool(p.clone())
                }
                (None, Some(b)) => {
                    if !backend_names.contains(b) {
                        let mut known: Vec<_> = backend_names.iter().cloned().collect();
                        known.sort();
                        errors.push(m.at.err(
                            &format!("{field}.backend"),
                            format!(
                                "Backend `{b}` does not exist; known backends: [{}]",
                                known.join(", ")
                            ),
                        ));
                    }
                    Upstream::Backend(b.clone())
                }
                _ => {
                    errors.push(m.at.err(
                        field,
                        "set exactly one of `pool` (an InferencePool) or `backend` (a Backend)",
                    ));
                    Upstream::Pool(String::new())
                }
            };
            if let Some(model) = &t.model {
                if infergate_providers::validate_model_name(model).is_err()
                    && matches!(upstream, Upstream::Backend(_))
                {
                    errors.push(m.at.err(
                        &format!("{field}.model"),
                        "a model name for a backend may use letters, digits and . _ : @ + - / only (it goes into URL paths)",
                    ));
                }
            }
            if t.context_window == Some(0) {
                errors.push(m.at.err(
                    &format!("{field}.contextWindow"),
                    "give the context window in tokens (> 0)",
                ));
            }
            Target {
                upstream,
                model: t.model.clone(),
                weight,
                context_window: t.context_window,
            }
        };
        let convert =
            |list: &[ModelTarget], field: &str, errors: &mut Vec<ConfigError>| -> Vec<Target> {
                let weights: Vec<Option<u32>> = list.iter().map(|t| t.weight).collect();
                let weights = weights_all_or_none(&m.at, field, &weights, errors);
                list.iter()
                    .enumerate()
                    .zip(weights)
                    .map(|((i, t), weight)| one_target(t, &format!("{field}[{i}]"), weight, errors))
                    .collect()
            };
        let targets = convert(&spec.targets, "spec.targets", errors);
        let fallbacks = convert(&spec.fallbacks, "spec.fallbacks", errors);
        let mut canaries = Vec::new();
        for (i, c) in spec.canaries.iter().enumerate() {
            let field = format!("spec.canaries[{i}]");
            if c.matches.headers.is_empty() {
                errors.push(m.at.err(
                    &format!("{field}.match.headers"),
                    "list at least one header to match",
                ));
            }
            if c.targets.is_empty() {
                errors.push(m.at.err(
                    &format!("{field}.targets"),
                    "a canary needs at least one target",
                ));
            }
            canaries.push(Canary {
                headers: c
                    .matches
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect(),
                targets: convert(&c.targets, &format!("{field}.targets"), errors),
            });
        }
        let shadow = spec.shadow.as_ref().map(|sh| {
            let percent = sh.percent.unwrap_or(100.0);
            if !(0.0..=100.0).contains(&percent) {
                errors.push(m.at.err("spec.shadow.percent", "use 0 to 100"));
            }
            Shadow {
                target: one_target(&sh.target, "spec.shadow.target", 1, errors),
                per_million: (percent.clamp(0.0, 100.0) * 10_000.0).round() as u32,
            }
        });
        set.public_models.push(PublicModel {
            name,
            description: spec.description.clone(),
            targets,
            fallbacks,
            priority: spec.priority,
            canaries,
            shadow,
        });
    }

    let tenants: Vec<(crate::policy::Tenant, &dyn crate::policy::Report)> = parsed
        .tenants
        .iter()
        .map(|t| {
            let tenant = crate::policy::tenant(&t.res.metadata.name, &t.res.spec, &t.at, errors);
            (tenant, &t.at as &dyn crate::policy::Report)
        })
        .collect();
    crate::policy::cross_check(
        &set.settings.policy,
        &tenants,
        parsed
            .settings
            .first()
            .map(|s| &s.at as &dyn crate::policy::Report),
        errors,
    );
    set.tenants = tenants.into_iter().map(|(t, _)| t).collect();

    let mut picker_names: HashMap<String, usize> = HashMap::new();
    for (at, doc) in &parsed.pickers {
        let err = |field: &str, message: String| at.err(field, message);
        let cfg = validate_picker(doc, &err, errors);
        if let Some(prev) = picker_names.insert(cfg.name.clone(), at.doc.start_line) {
            errors.push(at.err(
                "metadata.name",
                format!(
                    "EndpointPickerConfig `{}` is declared twice (first at line {prev}); name \
                     them apart with metadata.name",
                    cfg.name
                ),
            ));
        }
        set.pickers.push(Arc::new(cfg));
    }
    if set.pickers.len() > 1 && !picker_names.contains_key("default") {
        for p in &parsed.pools {
            let named = p.res.spec.epp.as_ref().map(|e| e.name.as_str());
            if !named.is_some_and(|n| picker_names.contains_key(n)) {
                set.warnings.push(p.at.err(
                    "spec",
                    format!(
                        "pool `{}` references none of the {} EndpointPickerConfigs (by \
                         endpointPickerRef name) and none is named `default`; it uses the \
                         built-in default profile",
                        p.res.spec.name,
                        set.pickers.len()
                    ),
                ));
            }
        }
    }

    for s in &parsed.simulators {
        let spec = &s.res.spec;
        if spec.replicas == 0 || spec.replicas > 64 {
            errors.push(s.at.err("spec.replicas", "run 1 to 64 replicas"));
        }
        if usize::from(spec.port) + spec.replicas > 65536 || spec.port == 0 {
            errors.push(s.at.err(
                "spec.port",
                "replica i listens on port + i; pick a non-zero port with room for every replica",
            ));
        }
        set.simulators.push(Simulator {
            name: s.res.metadata.name.clone(),
            model: spec.model.clone(),
            replicas: spec.replicas,
            host: spec.host.clone(),
            port: spec.port,
            args: spec.args.clone(),
        });
    }
    validate_semantic(parsed, &mut set, &public_names, errors);
    set
}

/// The kinds that run on embeddings: guardrail and cache policies, semantic routers,
/// collections.
fn validate_semantic(
    parsed: &Parsed<'_>,
    set: &mut ConfigSet,
    public_names: &HashMap<String, usize>,
    errors: &mut Vec<ConfigError>,
) {
    let has_embedder = set.settings.embeddings.is_some();
    for g in &parsed.guardrails {
        for (field, msg) in validate_guardrails(&g.res.spec, has_embedder) {
            errors.push(g.at.err(&field, msg));
        }
        set.guardrail_policies.push(GuardrailPolicy {
            name: g.res.metadata.name.clone(),
            spec: g.res.spec.clone(),
        });
    }
    for c in &parsed.caches {
        let spec = &c.res.spec;
        if spec.semantic == Some(true) && !has_embedder {
            errors.push(c.at.err(
                "spec.semantic",
                "semantic lookups need embeddings: set GatewaySettings spec.embeddings, or \
                 semantic: false for exact-only caching",
            ));
        }
        if let Some(t) = spec.threshold {
            if !(0.0..=1.0).contains(&t.0) {
                errors.push(c.at.err("spec.threshold", "use a cosine similarity between 0 and 1"));
            }
        }
        if spec.max_entries == Some(0) {
            errors.push(c.at.err("spec.maxEntries", "allow at least one entry"));
        }
        set.cache_policies.push(CachePolicy {
            name: c.res.metadata.name.clone(),
            spec: spec.clone(),
        });
    }
    for r in &parsed.routers {
        let spec = &r.res.spec;
        let name = spec
            .name
            .clone()
            .unwrap_or_else(|| r.res.metadata.name.clone());
        if !has_embedder {
            errors.push(r.at.err(
                "kind",
                "a SemanticRouter needs embeddings: set GatewaySettings spec.embeddings",
            ));
        }
        if public_names.contains_key(&name) {
            errors.push(r.at.err(
                "metadata.name",
                format!("`{name}` is already a PublicModel; give the router its own public name"),
            ));
        }
        let known = |m: &str| public_names.contains_key(m);
        let list = || {
            let mut v: Vec<&String> = public_names.keys().collect();
            v.sort();
            v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        };
        if !known(&spec.default) {
            errors.push(r.at.err(
                "spec.default",
                format!(
                    "`{}` is not a PublicModel; known: [{}]",
                    spec.default,
                    list()
                ),
            ));
        }
        if spec.routes.is_empty() {
            errors.push(r.at.err("spec.routes", "list at least one route"));
        }
        for (i, route) in spec.routes.iter().enumerate() {
            if !known(&route.model) {
                errors.push(r.at.err(
                    &format!("spec.routes[{i}].model"),
                    format!(
                        "`{}` is not a PublicModel; known: [{}]",
                        route.model,
                        list()
                    ),
                ));
            }
            if route.examples.is_empty() {
                errors.push(r.at.err(
                    &format!("spec.routes[{i}].examples"),
                    "give a few example prompts for the route",
                ));
            }
        }
        set.semantic_routers.push(SemanticRouterConfig {
            name,
            spec: spec.clone(),
        });
    }
    for c in &parsed.collections {
        let spec = &c.res.spec;
        if !has_embedder {
            errors.push(c.at.err(
                "kind",
                "a Collection needs embeddings: set GatewaySettings spec.embeddings",
            ));
        }
        if spec.paths.is_empty() {
            errors.push(c.at.err("spec.paths", "list the files or directories to index"));
        }
        if spec.top_k == Some(0) || spec.top_k.is_some_and(|k| k > 20) {
            errors.push(c.at.err("spec.topK", "use 1 to 20 chunks"));
        }
        set.collections.push(CollectionConfig {
            name: c.res.metadata.name.clone(),
            spec: spec.clone(),
        });
    }
}

fn resolve_settings(
    at: &At<'_>,
    spec: &GatewaySettingsSpec,
    errors: &mut Vec<ConfigError>,
) -> Settings {
    let mut s = Settings::default();
    let mut addr = |field: &str, v: &Option<String>, dst: &mut SocketAddr| {
        if let Some(v) = v {
            match v.parse() {
                Ok(a) => *dst = a,
                Err(_) => errors.push(at.err(
                    field,
                    format!("`{v}` is not an address; write host:port, e.g. 127.0.0.1:8080"),
                )),
            }
        }
    };
    addr("spec.listen", &spec.listen, &mut s.listen);
    addr("spec.admin", &spec.admin, &mut s.admin);
    if spec.listen.is_some() && spec.listen == spec.admin {
        errors.push(at.err(
            "spec.admin",
            "the admin listener needs its own address, not the data-plane one",
        ));
    }
    if let Some(tls) = &spec.tls {
        s.tls = Some((tls.cert_file.clone(), tls.key_file.clone()));
    }
    if let Some(b) = spec.max_request_body {
        if b.0 < 1024 {
            errors.push(at.err("spec.maxRequestBody", "allow at least 1Ki"));
        }
        s.max_request_body = b.0;
    }
    let t = &spec.timeouts;
    if let Some(d) = t.connect {
        s.connect_timeout = d.get();
    }
    if let Some(d) = t.response_headers {
        s.response_headers_timeout = d.get();
    }
    if let Some(d) = t.stream_idle {
        s.stream_idle_timeout = d.get();
    }
    if let Some(d) = t.request_read {
        s.request_read_timeout = d.get();
    }
    s.first_token_timeout = t.first_token.map_or(s.response_headers_timeout, Dur::get);
    if let Some(b) = &spec.retries.budget {
        if let Some(r) = b.ratio {
            if !(0.0..=10.0).contains(&r) {
                errors.push(at.err(
                    "spec.retries.budget.ratio",
                    "use a ratio from 0 to 10 (0.2 = 20% extra attempts)",
                ));
            }
            s.retry_budget_ratio = RatioMillis((r.clamp(0.0, 10.0) * 1000.0).round() as u32);
        }
        if let Some(m) = b.min_retries {
            s.retry_budget_min = m;
        }
    }
    if let Some(cb) = &spec.circuit_breaker {
        s.circuit = circuit_settings(cb, CircuitSettings::default());
    }
    let dr = &spec.data_residency;
    if let Some(h) = &dr.region_header {
        if http_header_name_ok(h) {
            s.region_header = Some(h.to_ascii_lowercase());
        } else {
            errors.push(at.err(
                "spec.dataResidency.regionHeader",
                format!("`{h}` is not a valid header name"),
            ));
        }
    }
    s.local_region = dr.local_region.clone();
    if let Some(p) = &spec.egress.proxy {
        if let Err(e) = check_url(p, false) {
            errors.push(at.err("spec.egress.proxy", e));
        }
        s.egress_proxy = Some(p.clone());
    }
    if let Some(a) = spec.retries.attempts {
        if a == 0 || a > 10 {
            errors.push(at.err("spec.retries.attempts", "use 1 to 10 attempts"));
        }
        s.retry_attempts = a.clamp(1, 10);
    }
    let h = &spec.health;
    if let Some(n) = h.consecutive_5xx {
        s.consecutive_5xx = n.max(1);
    }
    if let Some(d) = h.cooldown {
        s.eject_cooldown = d.get();
    }
    if let Some(d) = h.probe_interval {
        if d.get() < Duration::from_millis(10) {
            errors.push(at.err("spec.health.probeInterval", "probe at most every 10ms"));
        }
        s.probe_interval = d.get();
    }
    if let Some(p) = &h.probe_path {
        if !p.starts_with('/') {
            errors.push(at.err("spec.health.probePath", "a path starts with `/`"));
        }
        s.probe_path = p.clone();
    }
    if spec.access_log.enabled == Some(false) {
        s.access_log = None;
    } else if let Some(p) = &spec.access_log.path {
        s.access_log = Some(p.clone());
    }
    if let Some(e) = &spec.embeddings {
        match (&e.model_dir, &e.endpoint) {
            (Some(_), None) => {}
            (None, Some(u)) if u.starts_with("http://") => {}
            (None, Some(u)) => errors.push(at.err(
                "spec.embeddings.endpoint",
                format!("`{u}` is not an http:// URL"),
            )),
            _ => errors.push(at.err(
                "spec.embeddings",
                "set exactly one of modelDir (in-process model) or endpoint (OpenAI-compatible \
                 /v1/embeddings)",
            )),
        }
        if e.workers.is_some_and(|w| w == 0 || w > 64) {
            errors.push(at.err("spec.embeddings.workers", "use 1 to 64 workers"));
        }
        if let Some(p) = e.forward_pass.as_deref() {
            if !matches!(p, "auto" | "candle") {
                errors.push(at.err(
                    "spec.embeddings.forwardPass",
                    format!("`{p}` is not a forward pass: use `auto` or `candle`"),
                ));
            }
        }
        s.embeddings = Some(e.clone());
    }
    if spec.reload.enabled == Some(false) {
        s.reload_interval = None;
    } else if let Some(d) = spec.reload.interval {
        s.reload_interval = Some(d.get().max(Duration::from_millis(50)));
    }
    s.policy = crate::policy::settings(
        &crate::policy::PolicySpecs {
            auth: &spec.auth,
            state: &spec.state,
            limits: &spec.limits,
            budgets: &spec.budgets,
            prices: &spec.prices,
        },
        at,
        errors,
    );
    s
}

fn http_header_name_ok(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn circuit_settings(cb: &CircuitBreakerSpec, base: CircuitSettings) -> CircuitSettings {
    CircuitSettings {
        consecutive_failures: cb.consecutive_failures.unwrap_or(base.consecutive_failures),
        cooldown: cb.cooldown.map_or(base.cooldown, Dur::get),
    }
}

/// `http://` or `https://` plus a host; `path_ok` allows a path prefix (base URLs).
fn check_url(url: &str, path_ok: bool) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` must start with http:// or https://"))?;
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "`{url}` has no host (or has credentials in it; use `credentials`)"
        ));
    }
    if !path_ok && !path.is_empty() {
        return Err(format!("`{url}` must not have a path"));
    }
    if url.contains(['?', '#', ' ']) {
        return Err(format!("`{url}` must not have a query, fragment or spaces"));
    }
    Ok(())
}

fn validate_backend(
    at: &At<'_>,
    name: &str,
    spec: &BackendSpec,
    secrets: &HashMap<String, BTreeMap<String, String>>,
    base_circuit: CircuitSettings,
    errors: &mut Vec<ConfigError>,
) -> Option<Backend> {
    let Some(kind) = infergate_providers::ProviderKind::from_config(&spec.provider) else {
        let known: Vec<&str> = infergate_providers::ProviderKind::ALL
            .iter()
            .map(|(n, _)| *n)
            .collect();
        errors.push(at.err(
            "spec.provider",
            format!(
                "unknown provider `{}`; use one of {}",
                spec.provider,
                known.join(", ")
            ),
        ));
        return None;
    };
    use infergate_providers::ProviderKind as K;
    let region = spec.region.clone();
    if matches!(kind, K::Bedrock | K::VertexAi) && region.is_none() {
        errors.push(at.err(
            "spec.region",
            format!(
                "{} needs a region (e.g. eu-west-1 / europe-west4)",
                spec.provider
            ),
        ));
    }
    if kind == K::VertexAi && spec.project.is_none() {
        errors.push(at.err("spec.project", "GCPVertexAI needs the GCP project id"));
    }
    if let Some(r) = &region {
        if r.is_empty()
            || !r
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            errors.push(at.err(
                "spec.region",
                "a region is letters, digits, - and _ (e.g. eu-west-1)",
            ));
        }
    }
    let base_url = match (&spec.base_url, default_base_url(kind, region.as_deref())) {
        (Some(u), _) => {
            if let Err(e) = check_url(u, true) {
                errors.push(at.err("spec.baseURL", e));
            }
            u.trim_end_matches('/').to_string()
        }
        (None, Some(d)) => d,
        (None, None) => {
            errors.push(at.err(
                "spec.baseURL",
                format!(
                    "{} has no public default endpoint; set baseURL",
                    spec.provider
                ),
            ));
            String::new()
        }
    };
    let credentials = match &spec.credentials {
        None => None,
        Some(c) => {
            let set = [c.secret_ref.is_some(), c.file.is_some(), c.env.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if set != 1 {
                errors.push(at.err(
                    "spec.credentials",
                    "set exactly one of secretRef, file or env",
                ));
                None
            } else if let Some(r) = &c.secret_ref {
                match secrets.get(&r.name) {
                    Some(values) => Some(CredentialSource::Secret {
                        name: r.name.clone(),
                        key: r.key.clone(),
                        values: values.clone(),
                    }),
                    None => {
                        errors.push(at.err(
                            "spec.credentials.secretRef.name",
                            format!("Secret `{}` does not exist in the configuration", r.name),
                        ));
                        None
                    }
                }
            } else if let Some(f) = &c.file {
                Some(CredentialSource::File(PathBuf::from(f)))
            } else {
                c.env.clone().map(CredentialSource::Env)
            }
        }
    };
    match &credentials {
        Some(src) => {
            if let Err(e) = load_material(kind, src) {
                errors.push(at.err("spec.credentials", e));
            }
        }
        None if spec.credentials.is_none()
            && !spec.passthrough_credentials
            && !credential_optional(kind) =>
        {
            errors.push(at.err(
                "spec.credentials",
                format!(
                    "{} needs credentials: set secretRef, file or env (or passthroughCredentials: true \
                     to forward each client's own key)",
                    spec.provider
                ),
            ));
        }
        None => {}
    }
    let pricing = spec.pricing.map(|p| {
        if p.input < 0.0 || p.output < 0.0 || p.cached_input.is_some_and(|c| c < 0.0) {
            errors.push(at.err(
                "spec.pricing",
                "prices are USD per million tokens, not negative",
            ));
        }
        Pricing {
            input_per_mtok: p.input,
            output_per_mtok: p.output,
            cached_input_per_mtok: p.cached_input,
        }
    });
    if let Some(p) = spec.proxy.as_deref().filter(|p| *p != "none") {
        if let Err(e) = check_url(p, false) {
            errors.push(at.err("spec.proxy", e));
        }
    }
    Some(Backend {
        name: name.to_string(),
        provider: kind,
        provider_name: spec
            .provider_name
            .clone()
            .unwrap_or_else(|| kind.genai_name().to_string()),
        base_url,
        region,
        project: spec.project.clone(),
        api_version: spec.api_version.clone(),
        credentials,
        passthrough_credentials: spec.passthrough_credentials,
        pricing,
        connect_timeout: spec.timeouts.connect.map(Dur::get),
        first_token_timeout: spec.timeouts.first_token.map(Dur::get),
        stream_idle_timeout: spec.timeouts.stream_idle.map(Dur::get),
        circuit: spec
            .circuit_breaker
            .as_ref()
            .map(|cb| circuit_settings(cb, base_circuit)),
        proxy: spec.proxy.clone(),
    })
}

/// Validate configuration text as if it came from `file`.
pub fn load_str(file: &str, text: &str) -> Result<ConfigSet, ConfigErrors> {
    load_sources(&[(file.to_string(), text.to_string())])
}

/// Validate several files as one configuration.
pub fn load_sources(sources: &[(String, String)]) -> Result<ConfigSet, ConfigErrors> {
    let mut errors = Vec::new();
    let mut docs_per_file = Vec::new();
    for (file, text) in sources {
        match document_lines(text) {
            Ok(d) => docs_per_file.push(d),
            Err((line, msg)) => {
                errors.push(ConfigError {
                    file: file.clone(),
                    line,
                    resource: None,
                    field: String::new(),
                    message: format!("invalid YAML: {msg}"),
                });
                docs_per_file.push(Vec::new());
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let mut parsed = Parsed::default();
    for ((file, text), docs) in sources.iter().zip(&docs_per_file) {
        parse_text(file, text, docs, &mut parsed, &mut errors);
    }
    let set = validate(&parsed, &mut errors);
    // Report in reading order, whichever pass found the problem.
    errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The files a `--config` path stands for: the file itself, or every `*.yaml` / `*.yml` in a
/// directory, sorted by name.
pub fn config_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();
        Ok(files)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

/// Read the sources behind a `--config` path.
pub fn read_sources(path: &Path) -> Result<Vec<(String, String)>, ConfigErrors> {
    let io_err = |file: &Path, e: std::io::Error| {
        ConfigErrors(vec![ConfigError {
            file: file.display().to_string(),
            line: 0,
            resource: None,
            field: String::new(),
            message: format!("cannot read: {e}"),
        }])
    };
    let files = config_files(path).map_err(|e| io_err(path, e))?;
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| io_err(&f, e))?;
        out.push((f.display().to_string(), text));
    }
    Ok(out)
}

/// Read and validate a `--config` path.
pub fn load_path(path: &Path) -> Result<ConfigSet, ConfigErrors> {
    load_sources(&read_sources(path)?)
}
