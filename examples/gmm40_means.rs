//! Prints the GMM40 means as drawn by `annealvi::target::benchmark::gmm40_draw` (seed 40, the
//! draw committed as `GMM40_MEANS`), one `x,y` line per mean after a header.
//!
//! `cargo run --example gmm40_means [seed]`

fn main() {
    let seed = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("seed: an unsigned integer"))
        .unwrap_or(annealvi::target::benchmark::GMM40_SEED);
    println!("x,y");
    for [x, y] in annealvi::target::benchmark::gmm40_draw(seed) {
        println!("{x:.2},{y:.2}");
    }
}
