//! Validation reports file, line and field for every problem.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use infergate_control::load_str;

fn errors(text: &str) -> Vec<String> {
    load_str("cfg.yaml", text)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

const POOL: &str = "\
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: p
spec:
  selector: {matchLabels: {app: x}}
  targetPorts:
  - number: 8000
  endpoints:
  - address: 127.0.0.1
";

#[test]
fn valid_config_loads() {
    let set = load_str("cfg.yaml", POOL).unwrap();
    assert_eq!(set.pools.len(), 1);
    assert_eq!(set.pools[0].endpoints[0].host_port(), "127.0.0.1:8000");
}

#[test]
fn unknown_field_has_line_and_field() {
    let text = format!(
        "{POOL}---\napiVersion: infergate.dev/v1alpha1\nkind: PublicModel\nmetadata:\n  name: m\nspec:\n  targets:\n  - pool: p\n    wieght: 3\n"
    );
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "cfg.yaml:19: PublicModel/m: spec.targets[0].wieght: unknown field `wieght`"
        ),
        "{}",
        e[0]
    );
}

#[test]
fn missing_pool_reference_is_reported_at_its_line() {
    let text = format!(
        "{POOL}---\napiVersion: infergate.dev/v1alpha1\nkind: PublicModel\nmetadata:\n  name: m\nspec:\n  targets:\n  - pool: nope\n"
    );
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("cfg.yaml:18: PublicModel/m: spec.targets[0].pool: InferencePool `nope` does not exist; known pools: [p]"), "{}", e[0]);
}

#[test]
fn several_errors_are_all_reported() {
    let text = "\
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: p}
spec:
  selector: {matchLabels: {app: x}}
  targetPorts: [{number: 8000}, {number: 8000}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: im}
spec:
  modelName: food
  poolRef: {name: p}
  targetModels:
  - {name: a, weight: 10}
  - {name: b}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
";
    let e = errors(text);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(
        e[0].contains("cfg.yaml:6:") && e[0].contains("spec.targetPorts[1].number"),
        "{}",
        e[0]
    );
    assert!(
        e[1].contains("cfg.yaml:14:") && e[1].contains("set `weight` on every entry"),
        "{}",
        e[1]
    );
    assert!(
        e[2].contains("cfg.yaml:19:") && e[2].contains("unknown kind `Widget`"),
        "{}",
        e[2]
    );
}

#[test]
fn yaml_syntax_error_has_line() {
    let e = errors("apiVersion: v1\nkind: [InferencePool\nmetadata: {}\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("cfg.yaml:"), "{}", e[0]);
    assert!(e[0].contains("invalid YAML"), "{}", e[0]);
}

#[test]
fn wrong_type_says_what_is_expected() {
    let text = "\
apiVersion: infergate.dev/v1alpha1
kind: GatewaySettings
metadata: {name: g}
spec:
  listen: 127.0.0.1:8080
  timeouts:
    connect: fast
";
    let e = errors(text);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("cfg.yaml:7: GatewaySettings/g: spec.timeouts.connect:"),
        "{}",
        e[0]
    );
    assert!(e[0].contains("500ms"), "{}", e[0]);
}

#[test]
fn settings_defaults_and_overrides() {
    let text = "\
apiVersion: infergate.dev/v1alpha1
kind: GatewaySettings
metadata: {name: g}
spec:
  listen: 0.0.0.0:9000
  maxRequestBody: 1Mi
  retries: {attempts: 2}
";
    let s = load_str("cfg.yaml", text).unwrap().settings;
    assert_eq!(s.listen.port(), 9000);
    assert_eq!(s.max_request_body, 1 << 20);
    assert_eq!(s.retry_attempts, 2);
    assert_eq!(s.probe_path, "/health");
}

const BACKEND: &str = "\
apiVersion: infergate.dev/v1alpha1
kind: Backend
metadata: {name: claude}
spec:
  provider: Anthropic
";

#[test]
fn backend_without_credentials_is_a_load_error() {
    let e = errors(BACKEND);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "cfg.yaml:4: Backend/claude: spec.credentials: Anthropic needs credentials"
        ),
        "{e:?}"
    );
}

#[test]
fn missing_secret_file_and_env_are_load_errors() {
    let e = errors(&format!(
        "{BACKEND}  credentials: {{secretRef: {{name: nope}}}}\n"
    ));
    assert!(e[0].contains("Secret `nope` does not exist"), "{e:?}");
    let e = errors(&format!(
        "{BACKEND}  credentials: {{secretRef: {{name: s, key: other}}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ndata: {{apiKey: c2stMQ==}}\n"
    ));
    assert!(
        e[0].contains("Secret `s` has no key `other` (it has: apiKey)"),
        "{e:?}"
    );
    let e = errors(&format!(
        "{BACKEND}  credentials: {{file: /nonexistent/key}}\n"
    ));
    assert!(
        e[0].contains("cannot read credentials file /nonexistent/key"),
        "{e:?}"
    );
    let e = errors(&format!(
        "{BACKEND}  credentials: {{env: INFERGATE_SURELY_UNSET_VAR}}\n"
    ));
    assert!(
        e[0].contains("`INFERGATE_SURELY_UNSET_VAR` is not set"),
        "{e:?}"
    );
    // Bedrock needs both halves of the key pair; values never appear in the message.
    let e = errors(
        "apiVersion: infergate.dev/v1alpha1\nkind: Backend\nmetadata: {name: b}\nspec:\n  provider: AWSBedrock\n  region: eu-west-1\n  credentials: {secretRef: {name: aws}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: aws}\nstringData: {accessKeyId: AKIDSECRETVALUE}\n",
    );
    assert!(e[0].contains("has no `secretAccessKey`"), "{e:?}");
    assert!(!e[0].contains("AKIDSECRETVALUE"), "{e:?}");
}

#[test]
fn backend_targets_and_regions_validate() {
    let ok = format!(
        "{BACKEND}  region: eu-west-1\n  credentials: {{secretRef: {{name: s}}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{apiKey: k}}\n---\napiVersion: infergate.dev/v1alpha1\nkind: PublicModel\nmetadata: {{name: m}}\nspec:\n  targets: [{{backend: claude, model: claude-sonnet-4-5}}]\n"
    );
    let set = load_str("cfg.yaml", &ok).unwrap();
    assert_eq!(set.backends[0].base_url, "https://api.anthropic.com");
    assert_eq!(set.backends[0].provider_name, "anthropic");
    let bad = ok.replace(
        "{backend: claude, model: claude-sonnet-4-5}",
        "{backend: nope, pool: p, model: \"a b\"}",
    );
    let e = errors(&bad);
    assert!(
        e.iter()
            .any(|e| e.contains("spec.targets[0]: set exactly one of `pool`")),
        "{e:?}"
    );
    let bad = ok.replace("model: claude-sonnet-4-5", "model: \"../admin\"");
    let e = errors(&bad);
    assert!(
        e.iter()
            .any(|e| e.contains("spec.targets[0].model: a model name for a backend")),
        "{e:?}"
    );
    let e = errors(&format!("{BACKEND}  provider: Anthropc\n"));
    assert!(
        e.iter()
            .any(|e| e.contains("duplicate") || e.contains("unknown provider")),
        "{e:?}"
    );
}

#[test]
fn injection_method_and_its_knobs_are_checked() {
    let policy = |guard: &str| {
        format!(
            "{POOL}---\napiVersion: infergate.dev/v1alpha1\nkind: GatewaySettings\nmetadata:\n  name: g\nspec:\n  embeddings: {{modelDir: /models/m}}\n---\napiVersion: infergate.dev/v1alpha1\nkind: GuardrailPolicy\nmetadata:\n  name: gp\nspec:\n  request:\n  - {guard}\n"
        )
    };
    // The default, the classifier with a cutoff, and the v1 form (threshold/margin) all load.
    for ok in [
        "{name: i, type: injection, action: block}",
        "{name: i, type: injection, action: block, method: classifier, minScore: 0.8}",
        "{name: i, type: injection, action: block, threshold: 0.6, margin: 0.04}",
        "{name: i, type: injection, action: block, method: nearest, threshold: 0.7}",
    ] {
        assert!(load_str("cfg.yaml", &policy(ok)).is_ok(), "{ok}");
    }
    for (bad, want) in [
        (
            "{name: i, type: injection, action: block, method: bayes}",
            "unknown injection method `bayes`",
        ),
        (
            "{name: i, type: injection, action: block, method: classifier, threshold: 0.6}",
            "belong to `method: nearest`",
        ),
        (
            "{name: i, type: injection, action: block, method: nearest, minScore: 0.5}",
            "minScore is the classifier's cutoff",
        ),
        (
            "{name: i, type: injection, action: block, minScore: 1.5}",
            "1.5 is not a probability",
        ),
        (
            "{name: i, type: pii, action: block, minScore: 0.5}",
            "only injection guardrails",
        ),
    ] {
        let e = errors(&policy(bad));
        assert!(e.iter().any(|m| m.contains(want)), "{bad}: {e:?}");
    }
}

#[test]
fn embedding_forward_pass_is_auto_or_candle() {
    let settings = |pass: &str| {
        format!(
            "{POOL}---\napiVersion: infergate.dev/v1alpha1\nkind: GatewaySettings\nmetadata:\n  name: g\nspec:\n  embeddings: {{modelDir: /models/m, forwardPass: {pass}}}\n"
        )
    };
    for ok in ["auto", "candle"] {
        let set = load_str("cfg.yaml", &settings(ok)).unwrap();
        let e = set.settings.embeddings.as_ref().unwrap();
        assert_eq!(e.forward_pass.as_deref(), Some(ok));
    }
    let e = errors(&settings("gpu"));
    assert!(
        e.iter().any(|m| m.contains("cfg.yaml:")
            && m.contains("spec.embeddings.forwardPass")
            && m.contains("`gpu` is not a forward pass: use `auto` or `candle`")),
        "{e:?}"
    );
}
