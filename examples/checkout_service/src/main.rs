//! `checkout-service [--store memory|sqlite|sqlite:PATH|postgres:URL] [--listen ADDR] [--demo]`

use std::error::Error;

use checkout_service::{Options, StoreChoice};

fn usage() -> String {
    "usage: checkout-service [--store memory|sqlite|sqlite:PATH|postgres:URL] [--listen 127.0.0.1:8080] [--demo]".to_owned()
}

fn main() {
    if let Err(e) = run() {
        eprintln!("checkout-service: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let mut options = Options {
        store: StoreChoice::Memory,
        listen: "127.0.0.1:8080".parse()?,
        demo: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--store" => options.store = args.next().ok_or_else(usage)?.parse()?,
            "--listen" => options.listen = args.next().ok_or_else(usage)?.parse()?,
            "--demo" => options.demo = true,
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{}", usage()).into()),
        }
    }
    tokio::runtime::Runtime::new()?.block_on(StoreChoice::open_and_serve(options))
}
