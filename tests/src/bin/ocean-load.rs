//! A task that uses a known amount of a resource, for the usage tests:
//! `ocean-load --mib N` touches N MiB and holds it, `ocean-load --burn`
//! keeps one core busy; both run until killed.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut held: Vec<u8> = Vec::new();
    let mut burn = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--mib" => {
                let mib: usize = match args.get(i + 1).and_then(|v| v.parse().ok()) {
                    Some(m) => m,
                    None => {
                        eprintln!("--mib: give a number of MiB");
                        std::process::exit(2);
                    }
                };
                // Written, not just reserved: every page is resident.
                held = vec![1u8; mib << 20];
                i += 2;
            }
            "--burn" => {
                burn = true;
                i += 1;
            }
            other => {
                eprintln!("unknown argument {other:?}: use --mib N and/or --burn");
                std::process::exit(2);
            }
        }
    }
    println!("holding {} MiB, burning: {burn}", held.len() >> 20);
    if burn {
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
        std::hint::black_box(&held);
    }
}
