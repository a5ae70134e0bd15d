//! infergate-gateway
