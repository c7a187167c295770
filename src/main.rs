//! The `keepalive` command. For now `keepalive bench` runs a short demo
//! against a loopback listener it starts itself: allocate, reuse, stats.

fn main() {
    println!("placeholder");
}
