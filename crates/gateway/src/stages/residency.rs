//! Data residency: which regions a request may be served in. The caller's identity carries the
//! tenant's regions (filled by the identify stage); a trusted front proxy may narrow them with a
//! request header, read only when `dataResidency.regionHeader` is configured. Routing then
//! keeps the request inside them (see `infergate_control::routing`).

use std::sync::Arc;

use http::HeaderMap;
use infergate_control::{parse_regions, region_allowed, Settings};
use infergate_policy::Identity;

/// The allowed regions, or `None` when nothing restricts the request.
pub fn allowed_regions(
    settings: &Settings,
    identity: Option<&Identity>,
    headers: &HeaderMap,
) -> Option<Vec<Arc<str>>> {
    let from_identity = identity
        .map(|i| i.regions.clone())
        .filter(|r| !r.is_empty());
    let from_header = settings
        .region_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .map(parse_regions)
        .filter(|r| !r.is_empty());
    match (from_identity, from_header) {
        (None, None) => None,
        (Some(i), None) => Some(i),
        (None, Some(h)) => Some(h),
        // A header may narrow the tenant's regions, never widen them.
        (Some(i), Some(h)) => Some(
            h.into_iter()
                .filter(|r| region_allowed(Some(r), &i))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(regions: &[&str]) -> Identity {
        Identity {
            tenant: Arc::from("acme"),
            key_id: None,
            subject: None,
            roles: vec![],
            regions: regions.iter().map(|r| Arc::from(*r)).collect(),
            priority: None,
        }
    }

    fn settings(header: Option<&str>) -> Settings {
        Settings {
            region_header: header.map(str::to_string),
            ..Settings::default()
        }
    }

    #[test]
    fn identity_regions_apply() {
        let id = identity(&["eu-*"]);
        let got = allowed_regions(&settings(None), Some(&id), &HeaderMap::new()).unwrap();
        assert_eq!(got, vec![Arc::<str>::from("eu-*")]);
        assert!(allowed_regions(&settings(None), None, &HeaderMap::new()).is_none());
        assert!(
            allowed_regions(&settings(None), Some(&identity(&[])), &HeaderMap::new()).is_none()
        );
    }

    #[test]
    fn header_only_when_configured_and_never_widens() {
        let mut h = HeaderMap::new();
        h.insert("x-allowed-regions", "us-east-1, eu-west-1".parse().unwrap());
        assert!(
            allowed_regions(&settings(None), None, &h).is_none(),
            "unconfigured header is ignored"
        );
        let got = allowed_regions(&settings(Some("x-allowed-regions")), None, &h).unwrap();
        assert_eq!(got.len(), 2);
        let id = identity(&["eu-*"]);
        let got = allowed_regions(&settings(Some("x-allowed-regions")), Some(&id), &h).unwrap();
        assert_eq!(got, vec![Arc::<str>::from("eu-west-1")]);
    }
}
