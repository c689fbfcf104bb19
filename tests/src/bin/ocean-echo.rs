//! A backend for the ELB tests that keeps up with hundreds of new
//! connections a second: `ocean-echo NAME PORT [READY_FILE]` listens on
//! `0.0.0.0:PORT`, sends `NAME\n` to each connection, then echoes what it
//! reads until the peer closes. With READY_FILE it creates that file once
//! it listens (what a health check can wait for). Runs until killed.
//!
//! A thread per connection: short connections end in microseconds, and a
//! long one (a client holding it open through a drain) blocks no other.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn serve(mut c: TcpStream, greeting: &[u8]) {
    // The peer may vanish at any point: its errors end this connection only.
    if c.set_nodelay(true).is_err() || c.write_all(greeting).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if c.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(port)) = (args.first(), args.get(1)) else {
        eprintln!("usage: ocean-echo NAME PORT [READY_FILE]");
        std::process::exit(2);
    };
    let port: u16 = match port.parse() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("PORT {port:?}: {e}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("listening on port {port}: {e}");
            std::process::exit(1);
        }
    };
    if let Some(ready) = args.get(2) {
        if let Err(e) = std::fs::File::create(ready) {
            eprintln!("creating {ready}: {e}");
            std::process::exit(1);
        }
    }
    let greeting: &'static [u8] = format!("{name}\n").into_bytes().leak();
    for c in listener.incoming() {
        match c {
            Ok(c) => {
                std::thread::spawn(move || serve(c, greeting));
            }
            // Out of descriptors or memory for a moment: the next accept
            // may succeed; the client sees a refused or slow connect.
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}
