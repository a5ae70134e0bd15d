//! `infergate keys …` and `infergate spend …`: a thin client of a running gateway's admin API
//! (`/admin/v1/…` on the admin listener). Going through the API rather than the SQLite file
//! means the same commands work for one replica or many (keys in Redis), locally or remotely,
//! and never race a running gateway for its database. `keys hash` and `keys generate` work
//! offline, for keys declared in configuration.

use std::io::Read as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct AdminConn {
    /// The gateway's admin listener.
    #[arg(
        long,
        global = true,
        env = "INFERGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:9901"
    )]
    admin_url: String,
    /// The admin token (GatewaySettings spec.auth.adminToken).
    #[arg(
        long,
        global = true,
        env = "INFERGATE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(flatten)]
    conn: AdminConn,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create a key for a tenant; the key is printed once and never again.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Extra role (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Narrow the tenant's models for this key (pattern, repeatable).
        #[arg(long = "model")]
        models: Vec<String>,
        /// Stop working after this long (e.g. 30d, 12h).
        #[arg(long)]
        expires_in: Option<String>,
        /// Stop working at this RFC 3339 time.
        #[arg(long)]
        expires_at: Option<String>,
        /// Requests per minute for this key (instead of the tenant's keyLimits).
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens per minute for this key.
        #[arg(long)]
        tpm: Option<u64>,
        /// Which tokens --tpm counts: input, output or total.
        #[arg(long)]
        token_type: Option<String>,
        /// Requests in flight at once.
        #[arg(long)]
        concurrency: Option<u64>,
        /// Budget as PERIOD=USD (day, week, month, lifetime), repeatable: --budget day=5.
        #[arg(long = "budget")]
        budgets: Vec<String>,
    },
    /// List keys (never the keys themselves).
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show one key.
    Show { id: String },
    /// New secret for the same key id; the old one keeps working for --grace.
    Rotate {
        id: String,
        #[arg(long, default_value = "1h")]
        grace: String,
    },
    /// Stop a key at a time (default: now).
    Expire {
        id: String,
        #[arg(long = "in")]
        in_: Option<String>,
        #[arg(long)]
        at: Option<String>,
    },
    /// Revoke a key now, on every replica.
    Revoke { id: String },
    /// Print the SHA-256 of a key (argument or stdin), to declare it in a Tenant's `keys`.
    Hash { key: Option<String> },
    /// Make a new key offline and print it with its SHA-256 (for a Tenant's `keys`).
    Generate,
}

#[derive(Args, Debug)]
pub struct SpendArgs {
    #[command(flatten)]
    conn: AdminConn,
    /// Group by any of tenant, key, model, day (comma-separated).
    #[arg(long, default_value = "tenant")]
    by: String,
    /// First day (YYYY-MM-DD), inclusive.
    #[arg(long)]
    from: Option<String>,
    /// Last day (YYYY-MM-DD), inclusive.
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    key: Option<String>,
    #[arg(long)]
    model: Option<String>,
}

async fn call(
    conn: &AdminConn,
    method: http::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let token = conn
        .admin_token
        .as_deref()
        .context("no admin token: pass --admin-token or set INFERGATE_ADMIN_TOKEN")?;
    let url = format!("{}{path}", conn.admin_url.trim_end_matches('/'));
    let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let req = http::Request::builder()
        .method(method)
        .uri(&url)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(bytes))?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .with_context(|| format!("{url} did not answer within 30s"))?
        .with_context(|| format!("cannot reach the admin API at {url}"))?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let v: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&body)}));
    if !status.is_success() {
        let msg = v["error"]["message"]
            .as_str()
            .map_or_else(|| v.to_string(), str::to_string);
        bail!("{status}: {msg}");
    }
    Ok(v)
}

fn print(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(s).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    print(&line(header.iter().map(|h| h.to_string()).collect()));
    for r in rows {
        print(&line(r.clone()));
    }
}

fn show_key(v: &Value, json_out: bool) {
    if json_out {
        print(&serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    if let Some(k) = v["key"].as_str() {
        print(&format!("key:      {k}"));
        print("          (shown once: store it now; the gateway keeps only its hash)");
    }
    for f in [
        "id",
        "tenant",
        "name",
        "status",
        "roles",
        "models",
        "expiresAt",
        "revokedAt",
        "source",
    ] {
        print(&format!("{:<9} {}", format!("{f}:"), s(&v[f])));
    }
}

pub async fn keys(args: KeysArgs) -> anyhow::Result<()> {
    let c = &args.conn;
    match args.command {
        KeysCommand::Hash { key } => {
            let key = match key {
                Some(k) => k,
                None => {
                    let mut buf = String::new();
                    std::io::stdin().read_to_string(&mut buf)?;
                    buf.trim().to_string()
                }
            };
            if key.is_empty() {
                bail!("give the key as an argument or on stdin");
            }
            print(infergate_policy::key::KeyHash::of(&key).as_str());
        }
        KeysCommand::Generate => {
            let mut rng = rand::rng();
            let k = infergate_policy::key::generate(
                infergate_policy::key::KeyId::random(&mut rng),
                &mut rng,
            );
            print(&format!("key:    {}", k.plaintext));
            print(&format!("sha256: {}", k.hash.as_str()));
            print("declare it under a Tenant's spec.keys as {name: <name>, sha256: <sha256>}");
        }
        KeysCommand::Create {
            tenant,
            name,
            roles,
            models,
            expires_in,
            expires_at,
            rpm,
            tpm,
            token_type,
            concurrency,
            budgets,
        } => {
            let mut body =
                json!({"tenant": tenant, "name": name, "roles": roles, "models": models});
            if let Some(e) = expires_in {
                body["expiresIn"] = json!(e);
            }
            if let Some(e) = expires_at {
                body["expiresAt"] = json!(e);
            }
            if rpm.is_some() || tpm.is_some() || concurrency.is_some() {
                body["limits"] = json!({"requests": rpm, "tokens": tpm, "concurrency": concurrency, "tokenType": token_type});
            }
            if !budgets.is_empty() {
                let mut map = serde_json::Map::new();
                for b in budgets {
                    let (p, usd) = b
                        .split_once('=')
                        .with_context(|| format!("--budget {b}: write PERIOD=USD, e.g. day=5"))?;
                    let usd: f64 = usd
                        .parse()
                        .with_context(|| format!("--budget {b}: {usd} is not a number"))?;
                    map.insert(p.to_string(), json!(usd));
                }
                body["budgetsUsd"] = Value::Object(map);
            }
            let v = call(c, http::Method::POST, "/admin/v1/keys", Some(body)).await?;
            show_key(&v, c.json);
        }
        KeysCommand::List { tenant } => {
            let path = match tenant {
                Some(t) => format!("/admin/v1/keys?tenant={t}"),
                None => "/admin/v1/keys".into(),
            };
            let v = call(c, http::Method::GET, &path, None).await?;
            if c.json {
                print(&serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = v["keys"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|k| {
                            ["id", "tenant", "name", "status", "source", "expiresAt"]
                                .iter()
                                .map(|f| s(&k[*f]))
                                .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            table(
                &["ID", "TENANT", "NAME", "STATUS", "SOURCE", "EXPIRES"],
                &rows,
            );
        }
        KeysCommand::Show { id } => {
            let v = call(c, http::Method::GET, &format!("/admin/v1/keys/{id}"), None).await?;
            show_key(&v, c.json);
        }
        KeysCommand::Rotate { id, grace } => {
            let v = call(
                c,
                http::Method::POST,
                &format!("/admin/v1/keys/{id}/rotate"),
                Some(json!({"gracePeriod": grace})),
            )
            .await?;
            show_key(&v, c.json);
            if !c.json {
                print(&format!("the previous secret keeps working for {grace}"));
            }
        }
        KeysCommand::Expire { id, in_, at } => {
            let v = call(
                c,
                http::Method::POST,
                &format!("/admin/v1/keys/{id}/expire"),
                Some(json!({"in": in_, "at": at})),
            )
            .await?;
            show_key(&v, c.json);
        }
        KeysCommand::Revoke { id } => {
            let v = call(
                c,
                http::Method::POST,
                &format!("/admin/v1/keys/{id}/revoke"),
                None,
            )
            .await?;
            show_key(&v, c.json);
        }
    }
    Ok(())
}

pub async fn spend(args: SpendArgs) -> anyhow::Result<()> {
    let mut q = vec![format!("by={}", args.by)];
    for (k, v) in [
        ("from", &args.from),
        ("to", &args.to),
        ("tenant", &args.tenant),
        ("key", &args.key),
        ("model", &args.model),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={v}"));
        }
    }
    let v = call(
        &args.conn,
        http::Method::GET,
        &format!("/admin/v1/spend?{}", q.join("&")),
        None,
    )
    .await?;
    if args.conn.json {
        print(&serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let dims: Vec<&str> = args
        .by
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    let mut header: Vec<String> = dims.iter().map(|d| d.to_uppercase()).collect();
    header.extend(["REQUESTS", "INPUT", "OUTPUT", "CACHED", "USD"].map(String::from));
    fn field(d: &str) -> &str {
        match d {
            "key" => "keyId",
            other => other,
        }
    }
    let rows: Vec<Vec<String>> = v["rows"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let mut row: Vec<String> = dims.iter().map(|d| s(&r[field(d)])).collect();
                    for f in [
                        "requests",
                        "inputTokens",
                        "outputTokens",
                        "cachedTokens",
                        "usd",
                    ] {
                        row.push(s(&r[f]));
                    }
                    row
                })
                .collect()
        })
        .unwrap_or_default();
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    table(&header_refs, &rows);
    print(&format!(
        "total: ${} ({} time zone days)",
        s(&v["totalUsd"]),
        s(&v["timeZone"])
    ));
    Ok(())
}
