//! Shadow traffic: a copy of a share of a public model's requests goes to a candidate target;
//! its answer is read to the end and discarded, its latency and outcome recorded
//! (`infergate_shadow_requests_total`, `infergate_shadow_duration_seconds`). The client's request
//! never waits for it, and at most [`MAX_IN_FLIGHT`] copies run at once — beyond that copies are
//! dropped (and counted), never queued.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Method};
use http_body_util::BodyExt;
use infergate_control::{RouteDecision, RouteTarget};
use infergate_protocol::{Operation, RequestBody};

use crate::context::RequestContext;
use crate::dispatch::{dispatch_once, UpstreamResponse};
use crate::metrics::{Label, ShadowLabels, UpstreamLabels};
use crate::snapshot::Snapshot;
use crate::Gateway;

pub const MAX_IN_FLIGHT: usize = 64;

/// Send a copy of the request to `target` in the background.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    gw: &Arc<Gateway>,
    snap: &Arc<Snapshot>,
    target: RouteTarget,
    op: Operation,
    body: &RequestBody,
    stream: bool,
    headers: &HeaderMap,
    request_id: &str,
) {
    let upstream = Label(target.upstream.name().clone());
    let Ok(permit) = gw.shadow_slots.clone().try_acquire_owned() else {
        gw.metrics
            .shadow_requests
            .get_or_create(&ShadowLabels {
                upstream,
                outcome: "dropped",
            })
            .inc();
        return;
    };
    let (gw, snap, body, headers) = (gw.clone(), snap.clone(), body.clone(), headers.clone());
    let id = format!("{request_id}-shadow");
    tokio::spawn(async move {
        let _permit = permit;
        let started = Instant::now();
        let mut ctx = RequestContext::new(id, Method::POST, String::new());
        ctx.stream = stream;
        let decision = RouteDecision {
            public_model: Arc::from(""),
            attempts: vec![target],
            priority: -1,
            objective: None,
            shadow: None,
            canary: None,
        };
        let ok = match dispatch_once(&gw, &snap, &mut ctx, op, &body, &decision, &headers).await {
            Ok(UpstreamResponse::Full { status, .. }) => status.is_success(),
            Ok(UpstreamResponse::Stream {
                first,
                mut rest,
                mut translator,
                idle_timeout,
                ..
            }) => {
                let mut complete = first
                    .iter()
                    .any(|ev| ev.as_ref() == infergate_providers::chunk::DONE);
                loop {
                    match tokio::time::timeout(idle_timeout, rest.frame()).await {
                        Ok(Some(Ok(frame))) => {
                            if let Ok(data) = frame.into_data() {
                                translator.feed(data, &mut |ev| {
                                    complete |= ev.as_ref() == infergate_providers::chunk::DONE;
                                });
                            }
                        }
                        Ok(None) => {
                            translator.finish(&mut |ev| {
                                complete |= ev.as_ref() == infergate_providers::chunk::DONE;
                            });
                            break;
                        }
                        _ => break,
                    }
                }
                complete
            }
            Err(_) => false,
        };
        gw.metrics
            .shadow_requests
            .get_or_create(&ShadowLabels {
                upstream: upstream.clone(),
                outcome: if ok { "success" } else { "error" },
            })
            .inc();
        gw.metrics
            .shadow_duration
            .get_or_create(&UpstreamLabels { upstream })
            .observe(started.elapsed().as_secs_f64());
    });
}
