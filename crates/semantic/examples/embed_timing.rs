//! Quick timing of the encoder (development aid).
#![allow(clippy::unwrap_used, clippy::print_stdout)]
use candle_core::{Device, Tensor};
fn main() {
    let d = Device::Cpu;
    let a = Tensor::randn(0f32, 1.0, (64, 384), &d).unwrap();
    let b = Tensor::randn(0f32, 1.0, (384, 1152), &d).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..10 {
        a.matmul(&b).unwrap();
    }
    println!("matmul: {:?}", t.elapsed() / 10);
    let x = Tensor::randn(0f32, 1.0, (1, 12, 64, 64), &d).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..10 {
        candle_nn::ops::softmax_last_dim(&x).unwrap();
    }
    println!("softmax: {:?}", t.elapsed() / 10);
    let g = Tensor::ones(384, candle_core::DType::F32, &d).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..10 {
        candle_nn::ops::layer_norm(&a, &g, &g, 1e-12).unwrap();
    }
    println!("layer_norm: {:?}", t.elapsed() / 10);
    let t = std::time::Instant::now();
    for _ in 0..10 {
        a.gelu_erf().unwrap();
    }
    println!("gelu: {:?}", t.elapsed() / 10);
    let q = Tensor::randn(0f32, 1.0, (1, 12, 64, 32), &d).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..10 {
        q.matmul(&q.t().unwrap()).unwrap();
    }
    println!("attn matmul: {:?}", t.elapsed() / 10);
}
