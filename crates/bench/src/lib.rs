//! infergate-bench
