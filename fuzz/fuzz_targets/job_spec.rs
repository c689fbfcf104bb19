//! The job-spec parser, as the REST API and the CLI call it: every input as
//! JSON, as YAML and guessed. It must never panic; a refusal names a field;
//! an accepted spec's canonical JSON (what the log stores, and what
//! followers and the DNS server parse again) parses back to an equal spec.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ocean_spec::{parse_job_spec, Format};

fuzz_target!(|input: &[u8]| {
    for format in [Format::Json, Format::Yaml, Format::Auto] {
        match parse_job_spec(input, format) {
            Err(e) => assert!(
                !e.errors.is_empty() && e.errors.iter().all(|f| !f.field.is_empty()),
                "a refusal names no field ({format:?}): {e}"
            ),
            Ok(spec) => {
                let canonical = spec.to_canonical_json();
                match parse_job_spec(&canonical, Format::Json) {
                    Ok(again) => assert_eq!(again, spec, "canonical JSON changed the spec"),
                    Err(e) => panic!(
                        "an accepted spec's canonical JSON is refused: {e}\n{}",
                        String::from_utf8_lossy(&canonical)
                    ),
                }
            }
        }
    }
});
