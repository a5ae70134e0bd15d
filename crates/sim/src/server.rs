//! One simulated model server (a replica): its state and its HTTP API.
//!
//! Owns request routing, body limits, the order of checks an inference request goes through
//! (body → readiness → forced/injected failure → parse → model → context length → queue), the
//! small management endpoints (`/health`, `/metrics`, `/v1/models`, LoRA load/unload,
//! `/admin/config`, `/reset_prefix_cache`) and the identity headers on every response.
//! Sockets and connections belong to [`crate::fleet`]; the request lifecycle after admission to
//! [`crate::inference`].

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::api::{
    base64_encode, embedding_inputs, ChatRequest, CompletionRequest, EmbeddingData, EmbeddingList,
    EmbeddingRequest, EmbeddingUsage, EmbeddingVector, LoraAdapterRequest, ModelCard, ModelList,
    Prompt, Text,
};
use crate::config::{
    Mode, SchedulingPolicy, SimConfig, LORA_REGISTRY_LIMIT, MAX_EMBEDDING_DIMENSIONS,
};
use crate::engine::{Admission, Engine};
use crate::error::SimError;
use crate::failure::{fail_after_tokens, forced_error, injected_failure};
use crate::inference::{complete, Endpoint, Job};
use crate::kv_cache::{KvCache, KvCacheConfig};
use crate::lanes::PrefillLanes;
use crate::lora::LoraRegistry;
use crate::metrics::{Gauges, Metrics};
use crate::rng::{mix, SimRng};
use crate::settings::{AdminUpdate, RuntimeSettings};
use crate::stream::{SimBody, TokenStream};
use crate::text::{FinishReason, OutputPlan};

/// Response ids are unique across every replica of the process.
static NEXT_RESPONSE_ID: AtomicU64 = AtomicU64::new(1);

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The state of one simulated model server.
pub(crate) struct Replica {
    pub(crate) index: usize,
    pub(crate) config: Arc<SimConfig>,
    served_names: Vec<String>,
    pub(crate) settings: ArcSwap<RuntimeSettings>,
    pub(crate) engine: Arc<Engine>,
    pub(crate) kv: Option<Arc<KvCache>>,
    /// `--prefill-parallelism` lanes; prefills waiting for one count as waiting, as vLLM
    /// counts requests not yet scheduled.
    pub(crate) lanes: Arc<PrefillLanes>,
    loras: LoraRegistry,
    pub(crate) metrics: Metrics,
    ready_at: Instant,
    created: u64,
    identity: [(HeaderName, HeaderValue); 3],
    request_seq: AtomicU64,
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn header_value(s: &str, fallback: &'static str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(fallback))
}

impl Replica {
    pub(crate) fn new(config: Arc<SimConfig>, index: usize, port: u16) -> Self {
        let served_names = config.served_names();
        let primary = served_names
            .first()
            .cloned()
            .unwrap_or_else(|| config.model.clone());
        let kv = config.enable_kvcache.then(|| {
            KvCache::new(&KvCacheConfig {
                block_size: config.block_size,
                capacity: config.kv_cache_size,
                hash_seed: config.hash_seed.clone(),
            })
        });
        let pod = std::env::var("POD_NAME").unwrap_or_else(|_| format!("sim-{index}"));
        let namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".to_owned());
        let created = unix_secs();
        let startup =
            Duration::try_from_secs_f64(config.startup_duration * config.time_scale / 1000.0)
                .unwrap_or(Duration::ZERO);
        Self {
            index,
            served_names,
            settings: ArcSwap::from_pointee(RuntimeSettings::from_config(&config)),
            engine: Engine::new(
                config.max_num_seqs,
                config.max_waiting_queue_length,
                config.max_loras,
            ),
            kv,
            lanes: PrefillLanes::new(config.prefill_parallelism),
            loras: LoraRegistry::new(
                &config.lora_modules,
                config.max_cpu_loras.unwrap_or(LORA_REGISTRY_LIMIT),
                created,
            ),
            metrics: Metrics::new(&primary),
            ready_at: Instant::now() + startup,
            created,
            identity: [
                (
                    HeaderName::from_static("x-inference-pod"),
                    header_value(&pod, "sim"),
                ),
                (
                    HeaderName::from_static("x-inference-port"),
                    HeaderValue::from(port),
                ),
                (
                    HeaderName::from_static("x-inference-namespace"),
                    header_value(&namespace, "default"),
                ),
            ],
            request_seq: AtomicU64::new(0),
            config,
        }
    }

    /// The name metrics are labelled with.
    pub(crate) fn primary_model(&self) -> &str {
        self.served_names
            .first()
            .map_or(self.config.model.as_str(), String::as_str)
    }

    /// Serves one HTTP request; every response carries the identity headers.
    pub(crate) async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<SimBody> {
        let echo_request_id = req.headers().get("x-request-id").cloned();
        let mut response = match self.route(req).await {
            Ok(response) => response,
            Err(error) => error_response(&error),
        };
        let headers = response.headers_mut();
        for (name, value) in &self.identity {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(id) = echo_request_id {
            headers.insert(HeaderName::from_static("x-request-id"), id);
        }
        response
    }

    async fn route(
        self: &Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<SimBody>, SimError> {
        let method = req.method().clone();
        match (method, req.uri().path()) {
            (Method::POST, "/v1/chat/completions") => self.chat(req).await,
            (Method::POST, "/v1/completions") => self.completion(req).await,
            (Method::POST, "/v1/embeddings") => self.embeddings(req).await,
            (Method::GET, "/v1/models") => Ok(self.models()),
            (Method::GET, "/health" | "/health/ready") => self.health(),
            (Method::GET, "/metrics") => Ok(self.metrics_response()),
            (Method::POST, "/v1/load_lora_adapter") => self.load_lora(req).await,
            (Method::POST, "/v1/unload_lora_adapter") => self.unload_lora(req).await,
            (Method::GET, "/admin/config") => Ok(self.admin_config()),
            (Method::POST, "/admin/config") => self.update_admin_config(req).await,
            (Method::POST, "/reset_prefix_cache") => self.reset_prefix_cache(),
            (method, path) => {
                let known = [
                    "/v1/chat/completions",
                    "/v1/completions",
                    "/v1/embeddings",
                    "/v1/models",
                    "/health",
                    "/health/ready",
                    "/metrics",
                    "/v1/load_lora_adapter",
                    "/v1/unload_lora_adapter",
                    "/admin/config",
                    "/reset_prefix_cache",
                ];
                if known.contains(&path) {
                    Err(SimError::MethodNotAllowed {
                        method: method.to_string(),
                        path: path.to_owned(),
                    })
                } else {
                    Err(SimError::RouteNotFound(path.to_owned()))
                }
            }
        }
    }

    // ------------------------------------------------------------ inference

    async fn chat(self: &Arc<Self>, req: Request<Incoming>) -> Result<Response<SimBody>, SimError> {
        let arrival = Instant::now();
        let (parts, body) = req.into_parts();
        let bytes = self.read_body(&parts.headers, body).await?;
        self.precheck(&parts.headers)?;
        let request: ChatRequest<'_> = parse_json(&bytes)?;
        if request.messages.is_empty() {
            return Err(SimError::InvalidParam {
                message: "messages must not be empty".into(),
                param: "messages",
            });
        }
        let (model, lora) = self.resolve_model(request.model.as_ref().map(Text::as_str))?;
        let spec = InferenceSpec {
            arrival,
            endpoint: Endpoint::Chat,
            model,
            lora,
            prompt: Prompt::from_chat(&request.messages),
            max_tokens: request.max_completion_tokens.or(request.max_tokens),
            seed: request.seed,
            priority: request.priority.unwrap_or(0),
            stream: request.stream.unwrap_or(false),
            include_usage: request
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
        };
        self.run_inference(spec, &parts.headers).await
    }

    async fn completion(
        self: &Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<SimBody>, SimError> {
        let arrival = Instant::now();
        let (parts, body) = req.into_parts();
        let bytes = self.read_body(&parts.headers, body).await?;
        self.precheck(&parts.headers)?;
        let request: CompletionRequest<'_> = parse_json(&bytes)?;
        let (model, lora) = self.resolve_model(request.model.as_ref().map(Text::as_str))?;
        let prompt =
            Prompt::from_text_input(&request.prompt).map_err(|message| SimError::InvalidParam {
                message: message.to_owned(),
                param: "prompt",
            })?;
        let spec = InferenceSpec {
            arrival,
            endpoint: Endpoint::Completion,
            model,
            lora,
            prompt,
            max_tokens: request.max_tokens,
            seed: request.seed,
            priority: request.priority.unwrap_or(0),
            stream: request.stream.unwrap_or(false),
            include_usage: request
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
        };
        self.run_inference(spec, &parts.headers).await
    }

    async fn run_inference(
        self: &Arc<Self>,
        spec: InferenceSpec,
        headers: &HeaderMap,
    ) -> Result<Response<SimBody>, SimError> {
        let InferenceSpec {
            arrival,
            endpoint,
            model,
            lora,
            mut prompt,
            max_tokens,
            seed,
            priority,
            stream,
            include_usage,
        } = spec;
        if priority != 0 && self.config.scheduling_policy != SchedulingPolicy::Priority {
            return Err(SimError::InvalidParam {
                message: format!(
                    "Got priority {priority} but priority scheduling is not enabled \
                     (start the server with --scheduling-policy priority)."
                ),
                param: "priority",
            });
        }
        let param = if endpoint == Endpoint::Chat {
            "messages"
        } else {
            "prompt"
        };
        let max_len = self.config.max_model_len;
        let prompt_tokens = prompt.tokens();
        match max_tokens {
            Some(0) => {
                return Err(SimError::InvalidParam {
                    message: "max_tokens must be at least 1".into(),
                    param: "max_tokens",
                })
            }
            Some(m) if prompt_tokens as u64 + u64::from(m) > u64::from(max_len) => {
                return Err(SimError::ContextLength {
                    max_model_len: max_len,
                    requested: prompt_tokens as u64 + u64::from(m),
                    prompt_tokens,
                    completion_tokens: u64::from(m),
                    param,
                })
            }
            None if prompt_tokens >= max_len as usize => {
                return Err(SimError::ContextLength {
                    max_model_len: max_len,
                    requested: prompt_tokens as u64 + 1,
                    prompt_tokens,
                    completion_tokens: 1,
                    param,
                })
            }
            _ => {}
        }
        let room = u32::try_from(max_len as usize - prompt_tokens.min(max_len as usize))
            .unwrap_or(u32::MAX);
        let fail_after = if stream {
            fail_after_tokens(headers)?
        } else {
            None
        };

        // Same seed + same request → same text, whichever replica serves it.
        let text_seed = mix(
            self.config.seed,
            mix(prompt.fingerprint, seed.map_or(0, |s| s as u64)),
        );
        let plan = match self.config.mode {
            Mode::Random => OutputPlan::random(
                SimRng::new(text_seed),
                max_tokens,
                self.config.default_max_tokens,
                room,
            ),
            // The context window caps an echo too (`max_tokens`, when given, already fits).
            Mode::Echo => OutputPlan::echo(
                std::mem::take(&mut prompt.echo_text),
                Some(max_tokens.unwrap_or(room)),
            ),
        };

        let admission = self
            .engine
            .enqueue(lora.clone(), priority)
            .map_err(|full| SimError::QueueFull { limit: full.limit })?;
        let id_number = NEXT_RESPONSE_ID.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            replica: Arc::clone(self),
            endpoint,
            id: format!("{}{id_number}", endpoint.id_prefix()),
            created: unix_secs(),
            model,
            lora,
            prompt,
            plan,
            latency: self.settings.load().latency.clone(),
            rng: SimRng::new(mix(text_seed, id_number)),
            arrival,
            priority,
        };
        if stream {
            let body = TokenStream::new(job, admission, include_usage, fail_after);
            let mut response = Response::new(SimBody::Stream(Box::new(body)));
            let h = response.headers_mut();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            );
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            Ok(response)
        } else {
            let body = complete(job, admission).await?;
            Ok(json_response(StatusCode::OK, body))
        }
    }

    async fn embeddings(
        self: &Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<SimBody>, SimError> {
        let arrival = Instant::now();
        let (parts, body) = req.into_parts();
        let bytes = self.read_body(&parts.headers, body).await?;
        self.precheck(&parts.headers)?;
        let request: EmbeddingRequest<'_> = parse_json(&bytes)?;
        let (model, lora) = self.resolve_model(request.model.as_ref().map(Text::as_str))?;
        let inputs = embedding_inputs(&request.input);
        if inputs.is_empty() {
            return Err(SimError::InvalidParam {
                message: "input must not be empty".into(),
                param: "input",
            });
        }
        let dimensions = request
            .dimensions
            .unwrap_or(self.config.default_embedding_dimensions);
        if dimensions == 0 || dimensions > MAX_EMBEDDING_DIMENSIONS {
            return Err(SimError::InvalidParam {
                message: format!("dimensions must be between 1 and {MAX_EMBEDDING_DIMENSIONS}"),
                param: "dimensions",
            });
        }
        let base64 = match request.encoding_format.as_ref().map(Text::as_str) {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(SimError::InvalidParam {
                    message: format!(
                        "encoding_format must be \"float\" or \"base64\", got {other:?}"
                    ),
                    param: "encoding_format",
                })
            }
        };
        let max_len = self.config.max_model_len as usize;
        if let Some(&(_, tokens)) = inputs.iter().find(|(_, tokens)| *tokens > max_len) {
            return Err(SimError::ContextLength {
                max_model_len: self.config.max_model_len,
                requested: tokens as u64,
                prompt_tokens: tokens,
                completion_tokens: 0,
                param: "input",
            });
        }
        let prompt_tokens: usize = inputs.iter().map(|(_, t)| t).sum();

        let admission = self
            .engine
            .enqueue(lora, 0)
            .map_err(|full| SimError::QueueFull { limit: full.limit })?;
        let slot = match admission {
            Admission::Running(slot) => slot,
            Admission::Queued(waiting) => waiting
                .await
                .map_err(|e| SimError::ShuttingDown(e.to_string()))?,
        };
        self.metrics
            .queue_time
            .observe(slot.admitted_at().saturating_duration_since(arrival));
        let latency = self.settings.load().latency.clone();
        let seq = self.request_seq.fetch_add(1, Ordering::Relaxed);
        let mut jitter = SimRng::new(mix(self.config.seed, seq));
        let load = latency.load_factor(self.engine.running(), self.engine.max_num_seqs());
        let prefill = latency.prefill(prompt_tokens, 0, load, &mut jitter);
        if !prefill.is_zero() {
            tokio::time::sleep(prefill).await;
        }
        let data = inputs
            .iter()
            .enumerate()
            .map(|(index, (content, _))| {
                let vector = unit_vector(
                    mix(self.config.seed, xxhash_rust::xxh64::xxh64(content, 3)),
                    dimensions,
                );
                let embedding = if base64 {
                    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                    EmbeddingVector::Base64(base64_encode(&bytes))
                } else {
                    EmbeddingVector::Float(vector)
                };
                EmbeddingData {
                    object: "embedding",
                    index,
                    embedding,
                }
            })
            .collect();
        drop(slot);
        self.metrics
            .record_finished(FinishReason::Stop, prompt_tokens, 0, arrival.elapsed());
        let body = serde_json::to_vec(&EmbeddingList {
            object: "list",
            data,
            model: &model,
            usage: EmbeddingUsage {
                prompt_tokens,
                total_tokens: prompt_tokens,
            },
        })
        .map_err(|e| SimError::Internal(format!("cannot serialise the response: {e}")))?;
        Ok(json_response(StatusCode::OK, body))
    }

    /// Checks every inference request passes before its body is interpreted.
    fn precheck(&self, headers: &HeaderMap) -> Result<(), SimError> {
        if Instant::now() < self.ready_at {
            return Err(SimError::NotReady);
        }
        if let Some(error) = forced_error(headers) {
            return Err(error);
        }
        let settings = self.settings.load();
        if settings.failure_injection_rate > 0.0 {
            let seq = self.request_seq.fetch_add(1, Ordering::Relaxed);
            let mut rng = SimRng::new(mix(self.config.seed ^ 0xFA11, mix(self.index as u64, seq)));
            if let Some(error) = injected_failure(
                &mut rng,
                settings.failure_injection_rate,
                &settings.failure_types,
                self.primary_model(),
            ) {
                return Err(error);
            }
        }
        Ok(())
    }

    /// `(model to echo, LoRA adapter)` for the request's `model` (absent = the base model).
    fn resolve_model(
        &self,
        requested: Option<&str>,
    ) -> Result<(String, Option<Arc<str>>), SimError> {
        let Some(name) = requested else {
            return Ok((self.primary_model().to_owned(), None));
        };
        if self.served_names.iter().any(|n| n == name) {
            return Ok((name.to_owned(), None));
        }
        match self.loras.resolve(name) {
            Some(lora) => Ok((name.to_owned(), Some(lora))),
            None => Err(SimError::ModelNotFound(name.to_owned())),
        }
    }

    async fn read_body(&self, headers: &HeaderMap, body: Incoming) -> Result<Bytes, SimError> {
        let limit_mb = self.config.max_request_body_size_mb;
        let limit = limit_mb.saturating_mul(1024 * 1024);
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(SimError::BodyTooLarge { limit_mb });
        }
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(SimError::BodyTooLarge { limit_mb })
            }
            Err(e) => Err(SimError::InvalidRequest(format!(
                "cannot read the request body: {e}"
            ))),
        }
    }

    // ------------------------------------------------------------ management

    fn health(&self) -> Result<Response<SimBody>, SimError> {
        if Instant::now() < self.ready_at {
            return Err(SimError::NotReady);
        }
        Ok(Response::new(SimBody::empty()))
    }

    fn models(&self) -> Response<SimBody> {
        let max_model_len = self.config.max_model_len;
        let mut data: Vec<ModelCard> = self
            .served_names
            .iter()
            .map(|name| ModelCard {
                id: name.clone(),
                object: "model",
                created: self.created,
                owned_by: "vllm",
                root: self.config.model.clone(),
                parent: None,
                max_model_len,
            })
            .collect();
        data.extend(self.loras.list().into_iter().map(|lora| {
            ModelCard {
                id: lora.name.to_string(),
                object: "model",
                created: lora.created,
                owned_by: "vllm",
                root: lora.path.unwrap_or_else(|| lora.name.to_string()),
                parent: Some(
                    lora.base_model_name
                        .unwrap_or_else(|| self.primary_model().to_owned()),
                ),
                max_model_len,
            }
        }));
        let body = serde_json::to_vec(&ModelList {
            object: "list",
            data,
        })
        .unwrap_or_default();
        json_response(StatusCode::OK, body)
    }

    /// The current gauges, real or fake.
    pub(crate) fn gauges(&self) -> Gauges {
        let settings = self.settings.load();
        let fake = settings.fake_metrics.as_ref();
        let since = settings.fake_metrics_since.elapsed();
        let count = |v: f64| v.round().max(0.0);
        // A request holding a slot but not yet prefilling is waiting, as vLLM reports it.
        let lane_waiting = self.lanes.waiting();
        let running = fake.and_then(|f| f.running_requests.as_ref()).map_or(
            self.engine.running().saturating_sub(lane_waiting) as f64,
            |v| count(v.value_at(since)),
        );
        let waiting = fake
            .and_then(|f| f.waiting_requests.as_ref())
            .map_or((self.engine.waiting() + lane_waiting) as f64, |v| {
                count(v.value_at(since))
            });
        let kv_cache_usage = fake
            .and_then(|f| f.kv_cache_usage.as_ref())
            .map(|v| v.value_at(since).clamp(0.0, 1.0))
            .unwrap_or_else(|| self.kv.as_ref().map_or(0.0, |kv| kv.usage()));
        let lora_series = match fake.filter(|f| !f.loras.is_empty()) {
            Some(f) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                f.loras
                    .iter()
                    .map(|l| {
                        (
                            l.running.clone(),
                            l.waiting.clone(),
                            l.timestamp.unwrap_or(now),
                        )
                    })
                    .collect()
            }
            None => {
                let a = self.engine.lora_activity();
                vec![(a.running, a.waiting, a.updated_at)]
            }
        };
        Gauges {
            running,
            waiting,
            kv_cache_usage,
            block_size: self.config.block_size,
            num_gpu_blocks: self.config.kv_cache_size,
            prefix_caching: self.kv.is_some(),
            max_lora: self.engine.max_loras(),
            lora_series,
        }
    }

    fn metrics_response(&self) -> Response<SimBody> {
        let text = self.metrics.render(&self.gauges());
        let mut response = Response::new(SimBody::full(text));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }

    async fn load_lora(&self, req: Request<Incoming>) -> Result<Response<SimBody>, SimError> {
        let (parts, body) = req.into_parts();
        let bytes = self.read_body(&parts.headers, body).await?;
        let request: LoraAdapterRequest = parse_json(&bytes)?;
        self.loras
            .load(&request.lora_name, request.lora_path, unix_secs())?;
        Ok(text_response(format!(
            "Success: LoRA adapter '{}' added successfully.",
            request.lora_name
        )))
    }

    async fn unload_lora(&self, req: Request<Incoming>) -> Result<Response<SimBody>, SimError> {
        let (parts, body) = req.into_parts();
        let bytes = self.read_body(&parts.headers, body).await?;
        let request: LoraAdapterRequest = parse_json(&bytes)?;
        self.loras.unload(&request.lora_name)?;
        Ok(text_response(format!(
            "Success: LoRA adapter '{}' removed successfully.",
            request.lora_name
        )))
    }

    fn admin_config(&self) -> Response<SimBody> {
        let body = serde_json::to_vec(&**self.settings.load()).unwrap_or_default();
        json_response(StatusCode::OK, body)
    }

    async fn update_admin_config(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<SimBody>, SimError> {
        let (parts, body) = req.into_parts();
        let bytes = self.read_body(&parts.headers, body).await?;
        let update: AdminUpdate = parse_json(&bytes)?;
        // Concurrent updates are rare (tests); rcu keeps them from losing each other.
        let mut result = Ok(());
        self.settings
            .rcu(|current| match current.updated(update.clone()) {
                Ok(next) => {
                    result = Ok(());
                    Arc::new(next)
                }
                Err(e) => {
                    result = Err(e);
                    Arc::clone(current)
                }
            });
        result?;
        Ok(self.admin_config())
    }

    fn reset_prefix_cache(&self) -> Result<Response<SimBody>, SimError> {
        match &self.kv {
            Some(kv) if !kv.clear() => Err(SimError::InvalidRequest(
                "cannot reset the prefix cache while requests are running; retry when idle".into(),
            )),
            _ => Ok(Response::new(SimBody::empty())),
        }
    }
}

struct InferenceSpec {
    arrival: Instant,
    endpoint: Endpoint,
    model: String,
    lora: Option<Arc<str>>,
    prompt: Prompt,
    max_tokens: Option<u32>,
    seed: Option<i64>,
    priority: i64,
    stream: bool,
    include_usage: bool,
}

fn parse_json<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, SimError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what: Cow<'_, str> = if bytes.is_empty() {
            "empty request body".into()
        } else {
            e.to_string().into()
        };
        SimError::InvalidRequest(format!("invalid request body: {what}"))
    })
}

/// A deterministic unit vector of `dims` components.
fn unit_vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut rng = SimRng::new(seed);
    let mut v: Vec<f32> = (0..dims).map(|_| (rng.unit() * 2.0 - 1.0) as f32).collect();
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
    v
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<SimBody> {
    let mut response = Response::new(SimBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

fn text_response(text: String) -> Response<SimBody> {
    let mut response = Response::new(SimBody::full(text));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn error_response(error: &SimError) -> Response<SimBody> {
    let mut response = json_response(error.status(), error.body());
    if error.retry_after() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefills_waiting_for_a_lane_are_reported_as_waiting() {
        use crate::lanes::LaneAdmission;
        let config = SimConfig {
            prefill_parallelism: 2,
            ..SimConfig::default()
        };
        let r = Replica::new(Arc::new(config), 0, 1);
        let held: Vec<_> = (0..3).map(|_| r.lanes.acquire(0)).collect();
        assert!(
            matches!(held[2], LaneAdmission::Queued(_)),
            "two lanes: the third waits"
        );
        assert_eq!(r.gauges().waiting, 1.0);
        drop(held);
        assert_eq!(r.gauges().waiting, 0.0);
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = unit_vector(1, 384);
        assert_eq!(a, unit_vector(1, 384));
        assert_ne!(a, unit_vector(2, 384));
        let norm: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn gauges_prefer_fake_metrics() {
        let config = SimConfig {
            fake_metrics: Some(
                crate::fake_metrics::FakeMetrics::parse(
                    r#"{"running-requests":3,"waiting-requests":"squarewave:7:7:1s","kv-cache-usage":1.5,
                        "loras":[{"running":"x","waiting":"","timestamp":5}]}"#,
                )
                .unwrap(),
            ),
            ..SimConfig::default()
        };
        let r = Replica::new(Arc::new(config), 0, 8000);
        let g = r.gauges();
        assert_eq!((g.running, g.waiting, g.kv_cache_usage), (3.0, 7.0, 1.0));
        assert_eq!(g.lora_series, vec![("x".to_owned(), String::new(), 5.0)]);
        let real = Replica::new(Arc::new(SimConfig::default()), 1, 8001).gauges();
        assert_eq!(
            (real.running, real.waiting, real.kv_cache_usage),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(real.lora_series.len(), 1);
    }
}
